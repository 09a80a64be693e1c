"""The model's quality score for a photo, in [0, 1], with the parts that make it up.

It seeds a photo's rating prior, so it must be explainable and hard to fool by accident. Formula::

    score     = 0.4 * aesthetic + 0.6 * technical
    technical = exp( sum_i w_i * log(max(m_i, 0.01)) / sum_i w_i )       (weighted geometric mean)
                w: sharpness 0.35, exposure 0.30, noise 0.20, resolution 0.15

The geometric mean is deliberate: one ruined dimension (sharpness 0.05 from heavy blur, exposure 0.1 from
blown highlights) pulls the technical score down hard, where an arithmetic mean would let a high
resolution compensate for a photo nobody can use.

Measures, all in [0, 1] with 1 = good, computed with numpy on a grey copy whose longest side is at most
1024 px ("as seen on a screen", and fast), except resolution, which uses the real size:

* noise: sigma estimated with Donoho's robust estimator, ``median(|HH|) / 0.6745`` on the finest
  diagonal Haar detail band of the float luminance (8-bit units; Pillow's rounded "L" would quantise
  it). ``noise = 1 / (1 + (sigma / 4)^2)``: sigma 1 -> 0.94, 4 -> 0.5, 10 -> 0.14.
* sharpness: variance of the 4-neighbour Laplacian (8-bit units), minus the part white noise explains
  (the Laplacian of noise with std sigma has variance 20 * sigma^2; we subtract 22 * sigma^2, see
  NOISE_LAPLACIAN_GAIN, so grain does not pass for detail), through a saturating curve
  ``1 - exp(-v / 300)``: v 50 -> 0.15, 300 -> 0.63, 1000 -> 0.96. A sharp 512 px photo is 400-2000,
  the same photo under a 2 px Gaussian blur about 5-10.
* exposure: ``(1 - ((mean - 0.5) / 0.5)^2) * (1 - min(1, 3 * highlights + 1.5 * shadows))`` where mean is
  the mean luminance in [0, 1] and highlights / shadows are the fractions of pixels at >= 250 / <= 5.
  Blown highlights cost twice what crushed shadows do: a black background is a style, a white sky
  with no detail is a mistake.
* resolution: ``log(MP / 0.1) / log(12 / 0.1)`` clipped to [0, 1]: 0.1 MP -> 0, 1 MP -> 0.48, 12 MP -> 1.

Aesthetic: CLIP-IQA (Wang et al., 2023): for each antonym prompt pair, ``softmax(100 * [cos(img, pos),
cos(img, neg)])[0]``, averaged over the pairs. With a real CLIP it tracks human ratings; with the
random test CLIP it is noise, which is why the tests are on the technical part.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .embedder import Embedder

__all__ = [
    "DEFAULT_PAIRS",
    "TECHNICAL_WEIGHTS",
    "ClipIqa",
    "Quality",
    "TechnicalMeasures",
    "combine_quality",
    "technical_measures",
    "technical_score",
]

WORKING_MAX_SIDE = 1024
AESTHETIC_WEIGHT = 0.4
TECHNICAL_WEIGHT = 0.6
TECHNICAL_WEIGHTS: dict[str, float] = {"sharpness": 0.35, "exposure": 0.30, "noise": 0.20, "resolution": 0.15}
MEASURE_FLOOR = 0.01  # log(0) guard; also "as bad as it gets"

SHARPNESS_SCALE = 300.0  # Laplacian variance (8-bit units) where sharpness reaches 1 - 1/e
# The 4-neighbour Laplacian turns white noise of variance s^2 into variance 20 s^2; 22 because the median
# estimator reads clipped, rounded 8-bit noise about 5% low (measured on scikit-image photos + N(0, 15)).
NOISE_LAPLACIAN_GAIN = 22.0
NOISE_SIGMA_HALF = 4.0  # noise sigma (8-bit units) that scores 0.5
HIGHLIGHT_LEVEL, SHADOW_LEVEL = 250, 5
HIGHLIGHT_COST, SHADOW_COST = 3.0, 1.5
RESOLUTION_ZERO_MP, RESOLUTION_FULL_MP = 0.1, 12.0

DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Good photo.", "Bad photo."),
    ("Sharp photo.", "Blurry photo."),
    ("Well-lit photo.", "Dark photo."),
    ("High quality photo.", "Low quality photo."),
    ("Beautiful photo.", "Ugly photo."),
    ("Clean photo.", "Noisy photo."),
    ("Well-composed photo.", "Badly composed photo."),
)


@dataclass(frozen=True)
class TechnicalMeasures:
    """Pixel-level measures, each in [0, 1], 1 = good."""

    sharpness: float
    exposure: float
    noise: float
    resolution: float


@dataclass(frozen=True)
class Quality:
    """The model's quality score and its parts, all in [0, 1]."""

    score: float
    aesthetic: float
    sharpness: float
    exposure: float
    noise: float
    resolution: float


# --- pixel measures (pure functions of arrays) ---------------------------------------------------


def _grey(image: Image.Image) -> np.ndarray:
    """Luminance as float32 in 8-bit units on a copy no longer than WORKING_MAX_SIDE.

    float32 halves the memory traffic of float64 (this runs beside the model on the same cores) and its
    24-bit mantissa is far finer than any 8-bit measure needs."""
    work = image if image.mode in ("RGB", "L") else image.convert("RGB")
    longest = max(work.size)
    if longest > WORKING_MAX_SIDE:
        scale = WORKING_MAX_SIDE / longest
        size = (max(1, round(work.width * scale)), max(1, round(work.height * scale)))
        work = work.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    # Float luminance (Rec. 601 weights, Pillow's "F" mode), not the rounded "L": rounding quantises the
    # noise estimate. Pillow computes it in one pass, twice as fast as numpy's matrix product.
    return np.asarray(work.convert("F"), dtype=np.float32)


def noise_sigma(grey: np.ndarray) -> float:
    """Donoho's robust noise estimate: median absolute finest-scale diagonal Haar detail / 0.6745."""
    h, w = grey.shape[0] // 2 * 2, grey.shape[1] // 2 * 2
    if h < 2 or w < 2:
        return 0.0
    g = grey[:h, :w]
    hh = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745)


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the interior pixels."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    lap = 4.0 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(lap.var(dtype=np.float64))


def sharpness_from(lap_var: float, sigma: float) -> float:
    detail = max(0.0, lap_var - NOISE_LAPLACIAN_GAIN * sigma * sigma)
    return 1.0 - math.exp(-detail / SHARPNESS_SCALE)


def noise_from(sigma: float) -> float:
    return 1.0 / (1.0 + (sigma / NOISE_SIGMA_HALF) ** 2)


def exposure_from(grey: np.ndarray) -> float:
    if grey.size == 0:
        return 0.0
    mean = float(grey.mean(dtype=np.float64)) / 255.0
    highlights = float((grey >= HIGHLIGHT_LEVEL).mean())
    shadows = float((grey <= SHADOW_LEVEL).mean())
    balance = 1.0 - ((mean - 0.5) / 0.5) ** 2
    clipping = min(1.0, HIGHLIGHT_COST * highlights + SHADOW_COST * shadows)
    return max(0.0, balance) * (1.0 - clipping)


def resolution_from(width: int, height: int) -> float:
    megapixels = width * height / 1e6
    if megapixels <= RESOLUTION_ZERO_MP:
        return 0.0
    value = math.log(megapixels / RESOLUTION_ZERO_MP) / math.log(RESOLUTION_FULL_MP / RESOLUTION_ZERO_MP)
    return min(1.0, value)


def technical_measures(image: Image.Image, original_size: tuple[int, int] | None = None) -> TechnicalMeasures:
    """Sharpness, exposure, noise and resolution of an image (see the module docstring).

    ``original_size``: the size of the photo as uploaded, when ``image`` is a reduced copy of it (the
    pipeline measures the display rendition, decoded at reduced scale); resolution is a property of
    the photo, not of the copy we look at."""
    width, height = original_size or image.size
    grey = _grey(image)
    sigma = noise_sigma(grey)
    return TechnicalMeasures(
        sharpness=round(sharpness_from(laplacian_variance(grey), sigma), 4),
        exposure=round(exposure_from(grey), 4),
        noise=round(noise_from(sigma), 4),
        resolution=round(resolution_from(width, height), 4),
    )


def technical_score(technical: TechnicalMeasures) -> float:
    """Weighted geometric mean of the measures, floored at MEASURE_FLOOR each."""
    total = sum(TECHNICAL_WEIGHTS.values())
    log_sum = sum(
        weight * math.log(max(float(getattr(technical, name)), MEASURE_FLOOR))
        for name, weight in TECHNICAL_WEIGHTS.items()
    )
    return math.exp(log_sum / total)


def combine_quality(aesthetic: float, technical: TechnicalMeasures) -> Quality:
    """``0.4 * aesthetic + 0.6 * technical_score(technical)``, with the parts kept for display."""
    aesthetic = min(1.0, max(0.0, float(aesthetic)))
    score = AESTHETIC_WEIGHT * aesthetic + TECHNICAL_WEIGHT * technical_score(technical)
    return Quality(
        score=round(min(1.0, max(0.0, score)), 4),
        aesthetic=round(aesthetic, 4),
        sharpness=technical.sharpness,
        exposure=technical.exposure,
        noise=technical.noise,
        resolution=technical.resolution,
    )


# --- CLIP-IQA --------------------------------------------------------------------------------------


class ClipIqa:
    """CLIP-IQA aesthetic score from antonym prompt pairs. Text embeddings are computed once, lazily."""

    def __init__(self, embedder: Embedder, prompt_pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS) -> None:
        if not prompt_pairs:
            raise ValueError("ClipIqa needs at least one (positive, negative) prompt pair")
        self._embedder = embedder
        self._pairs = tuple((str(p), str(n)) for p, n in prompt_pairs)
        self._texts: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()

    def _text_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        texts = self._texts
        if texts is None:
            vectors = self._embedder.embed_texts([t for pair in self._pairs for t in pair])
            texts = (vectors[0::2], vectors[1::2])
            with self._lock:
                self._texts = texts
        return texts

    def scores(self, image_vectors: np.ndarray) -> np.ndarray:
        """(n,) in [0, 1]: mean over pairs of P(positive) under a two-way softmax at logit scale 100."""
        images = np.asarray(image_vectors, dtype=np.float32)
        if images.ndim == 1:
            images = images[None, :]
        positive, negative = self._text_vectors()
        margin = images @ positive.T - images @ negative.T  # (n, pairs)
        probability = 0.5 * (1.0 + np.tanh(0.5 * 100.0 * margin))  # softmax over two = sigmoid of the gap
        return np.asarray(probability.mean(axis=1), dtype=np.float32)
