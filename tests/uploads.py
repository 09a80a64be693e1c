"""Helpers for tests that upload: real photos as bytes, the GraphQL multipart request, waiting for READY."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from PIL import Image
from skimage import data as skdata

from tests.tokens import auth_header

UPLOAD = "mutation($file: Upload!, $title: String) { uploadPhoto(file: $file, title: $title) { id status title } }"

PHOTO_FIELDS = """
  id status title category tags failureReason width height
  suggestions { tag score source }
  quality { score aesthetic sharpness exposure noise resolution }
  rating { score mu sigma votes }
  duplicateOf { id }
  url(variant: DISPLAY)
"""


def skimage_photo(name: str) -> Image.Image:
    array = getattr(skdata, name)()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(array[..., :3].astype(np.uint8))


def jpeg_bytes(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def near_copy(image: Image.Image) -> bytes:
    """A resized, recompressed copy: what a re-upload from another app looks like."""
    w, h = image.size
    return jpeg_bytes(image.resize((int(w * 0.7), int(h * 0.7)), Image.Resampling.LANCZOS), quality=75)


def crop(image: Image.Image, fraction: float, *, left: float = 0.5, top: float = 0.5) -> Image.Image:
    """A crop keeping `fraction` of each side: what a re-upload cut down in another app looks like. `left`
    and `top` place it (0 = at that edge, 0.5 = centred, 1 = at the opposite edge)."""
    w, h = image.size
    cw, ch = int(w * fraction), int(h * fraction)
    x, y = int((w - cw) * left), int((h - ch) * top)
    return image.crop((x, y, x + cw, y + ch))


def half(image: Image.Image, side: str) -> Image.Image:
    """The left or right half of a photo: two halves are unlike each other, the whole is like both."""
    w, h = image.size
    return image.crop((0, 0, w // 2, h)) if side == "left" else image.crop((w - w // 2, 0, w, h))


def generated_photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A synthetic scene (gradients, shapes, noise): distinct per seed, not a photo of anything."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([
        (np.sin(x / rng.uniform(5, 40) + rng.uniform(0, 6)) + 1) * 127,
        (np.cos(y / rng.uniform(5, 40) + rng.uniform(0, 6)) + 1) * 127,
        ((x + y) % rng.integers(20, 120)) * (255 / 120),
    ], axis=-1)
    base += rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def upload(client: httpx.Client, data: bytes, headers: dict[str, str], *, filename: str = "photo.jpg",
           content_type: str = "image/jpeg", title: str | None = None, preflight: bool = True) -> httpx.Response:
    operations = {"query": UPLOAD, "variables": {"file": None, "title": title}}
    files = {"0": (filename, data, content_type)}
    form = {"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})}
    extra = {"Apollo-Require-Preflight": "true"} if preflight else {}
    return client.post("/graphql", data=form, files=files, headers={**headers, **extra})


def upload_ok(client: httpx.Client, data: bytes, headers: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    response = upload(client, data, headers, **kwargs)
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]["uploadPhoto"]


def fetch_photo(client: httpx.Client, photo_id: str, headers: dict[str, str]) -> dict[str, Any] | None:
    query = f"query($id: ID!) {{ photo(id: $id) {{ {PHOTO_FIELDS} }} }}"
    body = client.post("/graphql", json={"query": query, "variables": {"id": photo_id}}, headers=headers).json()
    assert "errors" not in body, body
    return body["data"]["photo"]


def wait_ready(client: httpx.Client, photo_id: str, headers: dict[str, str], timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    photo: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        photo = fetch_photo(client, photo_id, headers)
        if photo and photo["status"] != "PROCESSING":
            return photo
        time.sleep(0.1)
    raise AssertionError(f"photo {photo_id} not processed in time: {photo}")


def upload_all(client: httpx.Client, images: Sequence[Image.Image | bytes], owners: Sequence[str], *,
               titles: Sequence[str | None] | None = None) -> dict[str, str]:
    """Upload each image (an Image as a JPEG, bytes as they are) for the owners in turn (image i by
    owners[i % len(owners)]), without waiting for ingest: photo id -> owner, in upload order."""
    owned: dict[str, str] = {}
    for i, image in enumerate(images):
        owner = owners[i % len(owners)]
        title = titles[i] if titles is not None else None
        data = image if isinstance(image, bytes) else jpeg_bytes(image)
        owned[upload_ok(client, data, auth_header(owner), title=title)["id"]] = owner
    return owned


def wait_all(client: httpx.Client, owned: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Until each photo (id -> owner) is out of PROCESSING: id -> the photo as its owner reads it."""
    return {photo_id: wait_ready(client, photo_id, auth_header(owner)) for photo_id, owner in owned.items()}


def upload_many(client: httpx.Client, images: Sequence[Image.Image | bytes], owners: Sequence[str], *,
                titles: Sequence[str | None] | None = None, status: str = "READY") -> dict[str, str]:
    """`upload_all`, then wait until every photo is processed and assert it ended in `status`."""
    owned = upload_all(client, images, owners, titles=titles)
    for photo in wait_all(client, owned).values():
        assert photo["status"] == status, photo
    return owned
