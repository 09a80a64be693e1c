"""Re-embedding every photo when the CLIP model changes.

Vectors of two models are not comparable, so the new model gets its own collection (its name carries
the model id and dimension). Two passes: embed and upsert everything, then recompute each photo's
neighbour list against the complete new collection. Tags, quality and ratings are kept: they were
accepted or earned, not derived from the vector alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from bson import ObjectId

from ml.pipelines.analysis import PhotoAnalyzer
from ml.pipelines.display_image import load_analysis_images
from ml.pipelines.photo_vectors import PHOTO_SCALARS, photo_collection
from storage.blobs import BlobStore
from storage.neighbours import entry
from storage.photos import READY, PhotoRepository
from storage.vectors import VectorIndex


async def reindex_all(
    photos: PhotoRepository,
    blobs: BlobStore,
    vectors: VectorIndex,
    analyzer: PhotoAnalyzer,
    *,
    neighbours_k: int,
    batch_size: int,
    progress: Callable[[str, int], Any] | None = None,
) -> int:
    """`progress(step, total)`: a counter with `update(n)` and `close()` for each of the two steps
    ("embedding", then "neighbour lists"), each counting photos."""
    embedder = analyzer.models.embedder()
    collection = photo_collection(embedder.model_id, embedder.dim)
    await vectors.ensure_collection(collection, embedder.dim, PHOTO_SCALARS)
    docs = await photos.ready_photos()
    bar = progress("embedding", len(docs)) if progress else None
    embedded: dict[Any, np.ndarray] = {}
    for start in range(0, len(docs), batch_size):
        batch = docs[start:start + batch_size]
        # The ingest's own decode, so a reindexed photo's vector is the one ingest would have made.
        decoded = await load_analysis_images(blobs, batch)
        images = [image for image in decoded if not isinstance(image, Exception)]
        if len(images) < len(decoded):  # a photo READY without a readable rendition: say which, stop
            raise next(image for image in decoded if isinstance(image, Exception))
        matrix = await analyzer.models.run(embedder.embed_images, images)
        await vectors.upsert(collection, [
            {"id": str(d["_id"]), "vector": v, "category": d.get("category") or "", "owner": d["owner"],
             "status": READY}
            for d, v in zip(batch, matrix, strict=True)
        ])
        embedded.update({d["_id"]: v for d, v in zip(batch, matrix, strict=True)})
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    ids = list(embedded)
    bar = progress("neighbour lists", len(ids)) if progress else None
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        hits = await vectors.search(collection, np.stack([embedded[i] for i in chunk]), limit=neighbours_k + 1)
        for photo_id, own in zip(chunk, hits, strict=True):
            neighbours = [entry(ObjectId(h.id), h.similarity) for h in own if h.id != str(photo_id)][:neighbours_k]
            await photos.replace_neighbours(photo_id, neighbours, collection, neighbours_k)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return len(ids)
