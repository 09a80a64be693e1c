"""Text to image search: the CLIP text embedding against the photo vectors in Milvus.

The one request path that waits for a vector search (duels and similarPhotos read the neighbour lists
kept at ingest); production Milvus answers it in milliseconds.
"""

from __future__ import annotations

from typing import Any

from ml.pipelines.analysis import PhotoAnalyzer
from ml.pipelines.photo_vectors import photo_collection
from storage.base import parse_object_id
from storage.photos import PhotoRepository
from storage.vectors import VectorIndex


async def search_by_text(
    analyzer: PhotoAnalyzer, vectors: VectorIndex, photos: PhotoRepository, text: str, *, limit: int
) -> list[dict[str, Any]]:
    """READY photos best matching `text`; raises ModelNotReady while the model loads."""
    embedder = analyzer.models.embedder()
    query = await analyzer.embed_text(text)
    collection = photo_collection(embedder.model_id, embedder.dim)
    if collection not in await vectors.list_collections():
        return []
    await vectors.ensure_collection(collection, embedder.dim)
    hits = (await vectors.search(collection, query[None, :], limit=limit))[0]
    ids = [oid for oid in (parse_object_id(h.id) for h in hits) if oid is not None]
    return await photos.ready_many(ids)
