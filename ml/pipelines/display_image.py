"""The image the models see: the display rendition (oriented, EXIF-free, bounded at upload), decoded small.

Nothing in the analysis needs the display rendition's full 2048 px: CLIP reads 224 px and the technical
quality measures work on a copy of at most 1024 px. A JPEG decodes directly at 1/2, 1/4 or 1/8 of its
size (DCT scaling, Pillow's ``draft``), which costs about half of a full decode and spares the model's
preprocessing a large resize; on 2 cores that is CPU the forward pass gets back (bench/ingest.py).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

from ml.pipelines.pixel_lane import run_in_pixel_lane
from storage.blobs import BlobStore

# Smallest side the decoded copy keeps: twice CLIP's 224 px input, so its resize still has pixels to
# average; a 2048 x 1536 rendition decodes at 1024 x 768, the technical measures' working size.
ANALYSIS_SHORTEST_SIDE = 448


def decode_for_analysis(data: bytes) -> Image.Image:
    """RGB pixels of a display rendition, decoded at the smallest JPEG scale that keeps the side above."""
    image = Image.open(io.BytesIO(data))
    shortest = min(image.size)
    if image.format == "JPEG" and shortest > ANALYSIS_SHORTEST_SIDE:
        scale = ANALYSIS_SHORTEST_SIDE / shortest
        image.draft("RGB", (max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    return image.convert("RGB")


async def load_display_image(blobs: BlobStore, doc: dict[str, Any]) -> Image.Image:
    """The display rendition at full size: face detection needs every pixel of a small face."""
    data = await blobs.get(doc["blobs"]["display"])
    return await asyncio.to_thread(lambda: Image.open(io.BytesIO(data)).convert("RGB"))


async def load_analysis_images(blobs: BlobStore, docs: Sequence[dict[str, Any]]) -> list[Image.Image | Exception]:
    """A batch's display renditions, read concurrently and decoded one after another in the pixel lane.

    A photo whose blob is missing or does not decode gets its exception in its place, so one bad photo
    does not hold up the batch."""
    blobs_data = await asyncio.gather(*(blobs.get(doc["blobs"]["display"]) for doc in docs), return_exceptions=True)

    def decode_all() -> list[Image.Image | Exception]:
        decoded: list[Image.Image | Exception] = []
        for data in blobs_data:
            if isinstance(data, BaseException):
                if not isinstance(data, Exception):
                    raise data
                decoded.append(data)
                continue
            try:
                decoded.append(decode_for_analysis(data))
            except OSError as exc:  # Pillow's UnidentifiedImageError and truncated files are OSErrors
                decoded.append(exc)
        return decoded

    return await run_in_pixel_lane(decode_all)


def original_size(doc: dict[str, Any]) -> tuple[int, int] | None:
    """The photo's size as uploaded (oriented): what the resolution measure is about."""
    width, height = doc.get("width"), doc.get("height")
    return (int(width), int(height)) if width and height else None
