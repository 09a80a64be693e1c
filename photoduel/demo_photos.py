"""The demo's photos: scikit-image's sample photos and variants made from them (crops, mirror images,
tints, soft focus, grain), so that duels have visual neighbours to pair and the model's quality score
has real differences to find. Without scikit-image (the `demo` extra), generated scenes stand in.

Deterministic for a seed: the same command makes the same bytes, so nothing depends on chance but the
simulated players' choices (also seeded).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import structlog
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

log = structlog.get_logger(__name__)

MAX_SIDE = 1024

# scikit-image's photos that ship inside its wheel (others are downloaded on first use), with titles.
SAMPLES = [
    ("astronaut", "Astronaut"), ("coffee", "Morning coffee"), ("chelsea", "Chelsea the cat"),
    ("rocket", "Launch pad"), ("hubble_deep_field", "Deep field"), ("stereo_motorcycle", "Motorcycle"),
    ("immunohistochemistry", "Stained tissue"), ("retina", "Retina"), ("camera", "Cameraman"),
    ("moon", "Moon surface"), ("coins", "Old coins"), ("clock", "Wall clock"), ("grass", "Grass"),
    ("gravel", "Gravel"), ("brick", "Brick wall"),
]

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class DemoPhoto:
    title: str
    data: bytes  # JPEG


def _crop(image: Image.Image, rng: np.random.Generator, low: float = 0.6, high: float = 0.85) -> Image.Image:
    w, h = image.size
    scale = rng.uniform(low, high)
    cw, ch = max(32, int(w * scale)), max(32, int(h * scale))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return image.crop((x, y, x + cw, y + ch))


def _tint(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    warm = np.array([1.0 + rng.uniform(0.05, 0.15), 1.0, 1.0 - rng.uniform(0.05, 0.15)])
    pixels = np.asarray(image, dtype=np.float32) * warm
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _grain(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(18, 30), (image.height, image.width, 1))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _dusk(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    darker = ImageEnhance.Brightness(image).enhance(rng.uniform(0.45, 0.6))
    pixels = np.asarray(darker, dtype=np.float32) * np.array([0.9, 0.95, 1.1])
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


VARIANTS: list[tuple[str, Transform]] = [
    ("", lambda image, rng: image),
    ("cropped", _crop),
    ("mirrored", lambda image, rng: ImageOps.mirror(_crop(image, rng, 0.8, 0.95))),
    ("warm tones", _tint),
    ("soft focus", lambda image, rng: image.filter(ImageFilter.GaussianBlur(rng.uniform(2.5, 4.0)))),
    ("grainy", _grain),
    ("at dusk", _dusk),
    ("close-up", lambda image, rng: _crop(image, rng, 0.35, 0.5)),
]


def _rgb(array: np.ndarray) -> Image.Image:
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    image = Image.fromarray(array[..., :3].astype(np.uint8))
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    return image


def scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A generated scene (gradients, stripes, noise), distinct per seed: a stand-in without scikit-image."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([
        (np.sin(x / rng.uniform(8, 60) + rng.uniform(0, 6)) + 1) * 127,
        (np.cos(y / rng.uniform(8, 60) + rng.uniform(0, 6)) + 1) * 127,
        ((x + y) % rng.integers(30, 160)) * (255 / 160),
    ], axis=-1)
    base += rng.normal(0, 8, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def sources() -> list[tuple[str, Image.Image]]:
    """The base photos, titled: scikit-image's, or generated scenes when it is not installed."""
    try:
        from skimage import data
    except ImportError:
        log.warning("demo.no_scikit_image", fix="pip install 'photoduel[demo]' for real photos; using generated scenes")
        return [(f"Scene {i + 1}", scene(i)) for i in range(12)]
    found = []
    for name, title in SAMPLES:
        array = getattr(data, name)()
        found.append((title, _rgb(array[0] if isinstance(array, tuple) else array)))
    return found


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def demo_photos(count: int, *, seed: int = 0) -> Iterator[DemoPhoto]:
    """`count` photos: every base photo first, then each base in the next variant, and so on."""
    bases = sources()
    for k in range(count):
        title, image = bases[k % len(bases)]
        round_, variant = divmod(k // len(bases), len(VARIANTS))
        name, transform = VARIANTS[variant]
        picture = transform(image, np.random.default_rng([seed, k]))
        suffix = f", {name}" if name else ""
        again = f" #{round_ + 1}" if round_ else ""
        yield DemoPhoto(title=f"{title}{suffix}{again}", data=jpeg(picture))
