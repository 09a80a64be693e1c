"""The image the models see: the display rendition, already decoded, oriented and bounded at upload."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from PIL import Image

from storage.blobs import BlobStore


async def load_display_image(blobs: BlobStore, doc: dict[str, Any]) -> Image.Image:
    data = await blobs.get(doc["blobs"]["display"])
    return await asyncio.to_thread(lambda: Image.open(io.BytesIO(data)).convert("RGB"))
