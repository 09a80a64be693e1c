"""Quality: the technical measures on real photos and their damaged copies, the formula, CLIP-IQA.

Each damage test compares a scikit-image photo with a copy that is worse in exactly one way, and
asserts both the matching measure and the overall technical score drop, by a margin a broken formula
(wrong sign, no saturation, noise counted as detail) would not meet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data as skdata

from ml.embedder import ClipEmbedder
from ml.quality import (
    DEFAULT_PAIRS,
    ClipIqa,
    Quality,
    TechnicalMeasures,
    combine_quality,
    technical_measures,
    technical_score,
)

PHOTOS = ("astronaut", "coffee", "chelsea", "camera", "coins")


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def overexposed(img: Image.Image, gain: float = 2.5) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float64) * gain, 0, 255).astype(np.uint8))


def noisy(img: Image.Image, sigma: float = 20.0, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = np.asarray(img, dtype=np.float64)
    return Image.fromarray(np.clip(pixels + rng.normal(0.0, sigma, pixels.shape), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def embedder(tiny_clip: Path) -> ClipEmbedder:
    """The session's tiny CLIP (tests/conftest.py builds it once; torch is on one thread there)."""
    model = ClipEmbedder(str(tiny_clip))
    model.load()
    return model


@pytest.mark.parametrize("name", PHOTOS)
def test_blur_lowers_sharpness_and_technical_quality(name: str) -> None:
    sharp = technical_measures(photo(name))
    blurred = technical_measures(photo(name).filter(ImageFilter.GaussianBlur(2.5)))
    assert sharp.sharpness > 0.6
    assert blurred.sharpness < 0.1
    assert technical_score(blurred) < 0.6 * technical_score(sharp)
    assert combine_quality(0.5, blurred).score < combine_quality(0.5, sharp).score - 0.1


@pytest.mark.parametrize("name", PHOTOS)
def test_overexposure_lowers_exposure_and_technical_quality(name: str) -> None:
    normal = technical_measures(photo(name))
    blown = technical_measures(overexposed(photo(name)))
    assert blown.exposure < normal.exposure - 0.4
    assert blown.exposure < 0.4
    assert technical_score(blown) < 0.8 * technical_score(normal)
    assert combine_quality(0.5, blown).score < combine_quality(0.5, normal).score


@pytest.mark.parametrize("name", PHOTOS)
def test_noise_lowers_noise_score_and_technical_quality(name: str) -> None:
    clean = technical_measures(photo(name))
    grainy = technical_measures(noisy(photo(name)))
    assert clean.noise > 0.7
    assert grainy.noise < 0.25
    assert technical_score(grainy) < 0.85 * technical_score(clean)


def test_noise_does_not_pass_for_sharpness() -> None:
    # A blurred photo with grain added is still blurred: the noise's Laplacian energy is discounted.
    blurred = photo("astronaut").filter(ImageFilter.GaussianBlur(3))
    assert technical_measures(noisy(blurred, sigma=15)).sharpness < 0.35


def test_underexposure_lowers_exposure() -> None:
    dark = Image.fromarray((np.asarray(photo("coffee"), dtype=np.float64) * 0.2).astype(np.uint8))
    assert technical_measures(dark).exposure < 0.5 * technical_measures(photo("coffee")).exposure


def test_resolution_uses_the_real_size() -> None:
    big = photo("astronaut").resize((4000, 3000), Image.Resampling.BILINEAR)  # 12 MP, measured on a 1024 px copy
    measures = technical_measures(big)
    assert measures.resolution == 1.0
    assert technical_measures(photo("astronaut")).resolution == pytest.approx(0.2, abs=0.02)  # 0.26 MP
    assert technical_measures(Image.new("RGB", (300, 300), (128, 128, 128))).resolution == 0.0  # 0.09 MP


def test_a_reduced_copy_is_measured_with_the_original_size() -> None:
    """The pipeline measures the display rendition decoded small; resolution is the upload's."""
    original = photo("astronaut").resize((4000, 3000), Image.Resampling.BILINEAR)
    copy = original.resize((1024, 768), Image.Resampling.BOX)
    assert technical_measures(copy).resolution < 0.6
    assert technical_measures(copy, original.size).resolution == 1.0
    assert technical_measures(copy, original.size).sharpness == technical_measures(copy).sharpness


def test_flat_grey_has_no_sharpness_and_no_noise() -> None:
    measures = technical_measures(Image.new("RGB", (640, 480), (128, 128, 128)))
    assert measures.sharpness == 0.0
    assert measures.noise == 1.0
    assert measures.exposure == pytest.approx(1.0, abs=0.01)


def test_technical_score_is_a_weighted_geometric_mean() -> None:
    perfect = TechnicalMeasures(sharpness=1.0, exposure=1.0, noise=1.0, resolution=1.0)
    assert technical_score(perfect) == pytest.approx(1.0)
    # One ruined measure drags the score down far more than an average would (0.76 here).
    assert technical_score(TechnicalMeasures(sharpness=0.05, exposure=1.0, noise=1.0, resolution=1.0)) < 0.4
    assert technical_score(TechnicalMeasures(0.0, 0.0, 0.0, 0.0)) == pytest.approx(0.01)
    uniform = TechnicalMeasures(0.5, 0.5, 0.5, 0.5)
    assert technical_score(uniform) == pytest.approx(0.5)


def test_combine_quality_keeps_its_parts() -> None:
    measures = TechnicalMeasures(sharpness=0.9, exposure=0.8, noise=0.7, resolution=0.6)
    quality = combine_quality(0.75, measures)
    assert isinstance(quality, Quality)
    assert quality.score == pytest.approx(0.4 * 0.75 + 0.6 * technical_score(measures), abs=1e-4)
    assert (quality.aesthetic, quality.sharpness, quality.exposure, quality.noise, quality.resolution) == (
        0.75,
        0.9,
        0.8,
        0.7,
        0.6,
    )
    assert combine_quality(1.7, measures).aesthetic == 1.0
    assert 0.0 <= combine_quality(-1.0, TechnicalMeasures(0, 0, 0, 0)).score <= 0.01


def test_clip_iqa_scores_are_probabilities(embedder: ClipEmbedder) -> None:
    iqa = ClipIqa(embedder)
    vectors = embedder.embed_images([photo(n) for n in PHOTOS])
    scores = iqa.scores(vectors)
    assert scores.shape == (len(PHOTOS),) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))
    assert iqa.scores(vectors[0]).shape == (1,)


def test_clip_iqa_follows_the_prompt_pairs(embedder: ClipEmbedder) -> None:
    # An "image" embedded exactly where the positive prompt is must win its pair, and lose when the
    # pair is flipped: the scorer reads the pair the right way round.
    positive, negative = DEFAULT_PAIRS[1]
    on_positive = embedder.embed_texts([positive])
    assert ClipIqa(embedder, [(positive, negative)]).scores(on_positive)[0] > 0.9
    assert ClipIqa(embedder, [(negative, positive)]).scores(on_positive)[0] < 0.1
    with pytest.raises(ValueError):
        ClipIqa(embedder, [])
