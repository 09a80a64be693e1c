"""Text to image search: the CLIP text embedding against the photo vectors in Milvus.

The one request path that waits for a vector search (duels and similarPhotos read the neighbour lists
kept at ingest); production Milvus answers it in milliseconds.

Milvus holds every processed photo's vector, those held back by moderation included (an approval must
find them unchanged), so its hits are only candidates: what is returned is what the photo documents
say is READY, and not of an owner the viewer blocked (those are filtered in Milvus already, on the row's
`owner`). A few more hits than asked for are read so that a hidden photo among them does not shorten
the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml.pipelines.analysis import PhotoAnalyzer
from ml.pipelines.photo_vectors import photo_collection
from storage.base import parse_object_id
from storage.photos import PhotoRepository
from storage.vectors import VectorIndex, milvus_filter_not_in

# Hits read beyond `limit`, for those that turn out not to be READY.
SLACK = 10


async def search_by_text(
    analyzer: PhotoAnalyzer, vectors: VectorIndex, photos: PhotoRepository, text: str, *, limit: int,
    excluding_owners: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """READY photos best matching `text`, none of `excluding_owners`; raises ModelNotReady while the
    model loads."""
    embedder = analyzer.models.embedder()
    query = await analyzer.embed_text(text)
    collection = photo_collection(embedder.model_id, embedder.dim)
    if collection not in await vectors.list_collections():
        return []
    await vectors.ensure_collection(collection, embedder.dim)
    hits = (await vectors.search(collection, query[None, :], limit=limit + SLACK,
                                 filter=milvus_filter_not_in("owner", excluding_owners)))[0]
    ids = [oid for oid in (parse_object_id(h.id) for h in hits) if oid is not None]
    return (await photos.ready_many(ids, excluding_owners=excluding_owners))[:limit]
