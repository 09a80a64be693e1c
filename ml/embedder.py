"""CLIP image and text embeddings through sentence-transformers.

One class, one model: ``ClipEmbedder`` loads a sentence-transformers CLIP (a hub name such as
``clip-ViT-B-32`` or a local folder) and turns images and strings into L2-normalised float32 vectors in
the same space, so cosine similarity is a dot product everywhere downstream (Milvus IP/COSINE, the
tagger, the quality prompts).

Calls block: the caller runs them in a thread pool. Loading is explicit (``load()``), so a process can
start, report "model unavailable" with a fix, and retry later, rather than crash on import.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ClipEmbedder", "Embedder", "ModelUnavailable", "model_slug"]

PREPARE_SHORTEST_SIDE = 512

_FIX_HINT = (
    "Set PHOTODUEL_CLIP_MODEL to a local sentence-transformers CLIP folder (one saved with "
    "SentenceTransformer.save), or allow network access once so 'clip-ViT-B-32' can be downloaded "
    "into the Hugging Face cache."
)


class ModelUnavailable(RuntimeError):
    """The CLIP model could not be loaded; the message says how to fix it."""


class Embedder(Protocol):
    """What the tagger and the quality scorer need from a model: texts and images into one space."""

    @property
    def dim(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def model_slug(name_or_path: str, dim: int) -> str:
    """A short, stable id for a model, usable in a Milvus collection name ([a-z0-9_], starts with a letter).

    Built from the last component of the name or path plus the dimension, e.g. ``clip_vit_b_32_512``:
    vectors of two models must never share a collection, and a moved model folder keeps its id.
    """
    last = name_or_path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or "model"
    slug = re.sub(r"[^a-z0-9]+", "_", last.lower()).strip("_") or "model"
    if not slug[0].isalpha():
        slug = f"m_{slug}"
    return f"{slug[:48].rstrip('_')}_{dim}"


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _looks_like_path(name_or_path: str) -> bool:
    return name_or_path.startswith(("/", "./", "../", "~")) or "\\" in name_or_path or Path(name_or_path).exists()


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)


def _prepare_image(image: Image.Image) -> Image.Image:
    """RGB, and no more pixels than CLIP can use.

    CLIP reads 224-336 px. Its image processor resamples the full image in float, which for a 24 MP photo
    costs about a second, more than the ViT-B/32 forward pass; a reducing resize to a 512 px shortest side
    first costs a tenth of that and leaves the processor a clean 2x+ downscale.
    """
    from PIL import Image as PILImage

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    shortest = min(rgb.size)
    if shortest > PREPARE_SHORTEST_SIDE:
        scale = PREPARE_SHORTEST_SIDE / shortest
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, PILImage.Resampling.BICUBIC, reducing_gap=2.0)
    return rgb


class ClipEmbedder:
    """A sentence-transformers CLIP model: ``load()`` once, then ``embed_images`` / ``embed_texts``.

    ``batch_size`` bounds how many inputs go through the model at once (memory on a GPU, latency on a
    CPU); callers may pass any number of inputs.
    """

    def __init__(self, name_or_path: str, *, device: str = "auto", batch_size: int = 16) -> None:
        if not name_or_path:
            raise ValueError("name_or_path must name a sentence-transformers CLIP model or folder")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name_or_path = name_or_path
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._dim = 0
        self._lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load the model (idempotent, thread-safe). Raises ModelUnavailable with a fix on failure.

        A missing hub model on a machine without network fails only after huggingface_hub's retries
        (about a minute); a missing local folder fails at once.
        """
        with self._lock:
            if self._model is not None:
                return
            source = self.name_or_path
            if _looks_like_path(source):
                folder = Path(source).expanduser()
                if not folder.is_dir():
                    raise ModelUnavailable(f"CLIP model folder {source!r} does not exist. {_FIX_HINT}")
                source = str(folder)
            device = _resolve_device(self.device)
            try:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(source, device=device)
                model.eval()
            except Exception as exc:  # any loader failure means the same thing to the operator
                raise ModelUnavailable(
                    f"Could not load CLIP model {self.name_or_path!r} on {device}: "
                    f"{type(exc).__name__}: {exc}. {_FIX_HINT}"
                ) from exc
            try:
                # Fail at start, not on the first upload, if this is e.g. a text-only sentence model.
                from PIL import Image as PILImage

                text_probe = self._encode(model, ["a photo."])
                image_probe = self._encode(model, [PILImage.new("RGB", (64, 64), (128, 128, 128))])
            except Exception as exc:
                raise ModelUnavailable(
                    f"{self.name_or_path!r} loaded but cannot embed both text and images "
                    f"({type(exc).__name__}: {exc}); is it a CLIP model? {_FIX_HINT}"
                ) from exc
            if text_probe.ndim != 2 or text_probe.shape[1] < 1 or image_probe.shape != text_probe.shape:
                raise ModelUnavailable(
                    f"{self.name_or_path!r} gives text vectors {text_probe.shape} and image vectors "
                    f"{image_probe.shape}; a CLIP model gives one shared size. {_FIX_HINT}"
                )
            self._dim = int(text_probe.shape[1])
            self.device = device
            self._model = model

    def _require(self) -> Any:
        model = self._model
        if model is None:
            raise ModelUnavailable(f"CLIP model {self.name_or_path!r} is not loaded; call load() first.")
        return model

    # --- identity ------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        self._require()
        return self._dim

    @property
    def model_id(self) -> str:
        return model_slug(self.name_or_path, self.dim)

    # --- inference -----------------------------------------------------------------------------

    def _encode(self, model: Any, inputs: Sequence[Any]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = model.encode(
                list(inputs),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            )
        return _l2_normalise(out)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32, unit length. Images in any mode and size (converted to RGB, big ones reduced)."""
        model = self._require()
        if len(images) == 0:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._encode(model, [_prepare_image(im) for im in images])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, unit length. CLIP reads at most 77 tokens; longer text is truncated."""
        model = self._require()
        if isinstance(texts, str):
            raise TypeError("embed_texts takes a sequence of strings, not one string")
        if len(texts) == 0:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._encode(model, list(texts))

    def __repr__(self) -> str:
        state = f"dim={self._dim}" if self.loaded else "not loaded"
        return f"ClipEmbedder({self.name_or_path!r}, device={self.device!r}, {state})"
