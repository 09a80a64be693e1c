"""Content screening's arithmetic and its plug: the pure scores and thresholds, the tiny CLIP through the
real prompt ensembles, and a classifier named by a setting.

The tiny CLIP knows no concepts, so nothing here says the default prompts find nudity: what is checked is
that an image vector placed on an unsafe ensemble scores high and one on a safe concept low, through the
real model's text side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.embedder import ClipEmbedder, Embedder
from ml.screening import ClipScreening, ScreeningPrompts, crossed, label_scores, screening_factory
from tests.uploads import generated_photo


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class FixedScreening:
    """A plug-in classifier: every photo scores `nudity` 0.9 and `spam` 0.1."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    @property
    def model_id(self) -> str:
        return "fixed-test"

    @property
    def labels(self) -> tuple[str, ...]:
        return ("nudity", "spam")

    def scores(self, images: Sequence[Image.Image], vectors: np.ndarray) -> np.ndarray:
        return np.tile([0.9, 0.1], (len(images), 1))


def fixed_screening(embedder: Embedder) -> FixedScreening:
    return FixedScreening(embedder)


@pytest.fixture(scope="module")
def embedder(tiny_clip: Path) -> ClipEmbedder:
    """The session's tiny CLIP (tests/conftest.py builds it once; torch is on one thread there)."""
    model = ClipEmbedder(str(tiny_clip))
    model.load()
    return model


def test_a_label_is_its_softmax_against_the_safe_concepts_alone() -> None:
    rng = np.random.default_rng(0)
    unsafe, safe, images = unit(rng.normal(size=(2, 16))), unit(rng.normal(size=(3, 16))), unit(rng.normal(size=(4, 16)))
    scores = label_scores(images, unsafe, safe)
    for i in range(4):
        for label in range(2):
            logits = 100 * np.concatenate([[images[i] @ unsafe[label]], images[i] @ safe.T])
            expected = np.exp(logits - logits.max())[0] / np.exp(logits - logits.max()).sum()
            assert scores[i, label] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # labels do not compete: one more unsafe label leaves the others' scores as they were
    more = label_scores(images, np.vstack([unsafe, unit(rng.normal(size=(1, 16)))]), safe)
    np.testing.assert_allclose(more[:, :2], scores)
    # a huge margin saturates instead of overflowing
    far = label_scores(unsafe[:1], unsafe, safe, logit_scale=1e6)
    assert far[0, 0] == 1.0 and np.isfinite(far).all()


def test_thresholds_decide_which_labels_hold_a_photo_back() -> None:
    scores = {"nudity": 0.91, "gore": 0.4, "violence": 0.97}
    assert crossed(scores, {"nudity": 0.9, "gore": 0.5, "violence": 0.95}) == ["violence", "nudity"]
    assert crossed(scores, {"nudity": 0.91}) == ["nudity"]  # a threshold is reached, not passed
    assert crossed(scores, {"gore": 0.0}) == ["gore"]
    assert crossed(scores, {}) == []  # labels without a threshold are only recorded


def test_clip_screening_scores_an_image_on_an_unsafe_ensemble_high_and_on_a_safe_one_low(
    embedder: ClipEmbedder,
) -> None:
    prompts = ScreeningPrompts.load_default()
    screening = ClipScreening(embedder, prompts)
    assert screening.labels == ("nudity", "gore", "violence")
    assert screening.model_id.startswith("clip-zero-shot:")
    unsafe = unit(embedder.embed_texts(list(prompts.unsafe["gore"])).mean(axis=0))
    safe = unit(embedder.embed_texts(list(prompts.safe["food"])).mean(axis=0))
    scores = screening.scores([], np.stack([unsafe, safe]))
    gore = screening.labels.index("gore")
    assert scores[0, gore] > 0.9 and scores[1, gore] < 0.1, scores
    photos = [generated_photo(seed) for seed in range(3)]
    real = screening.scores(photos, embedder.embed_images(photos))
    assert real.shape == (3, 3) and ((real >= 0) & (real <= 1)).all()


def test_a_classifier_is_plugged_in_by_name() -> None:
    assert screening_factory("off") is None
    assert screening_factory("clip") is ClipScreening
    factory = screening_factory("tests.test_ml_screening:fixed_screening")
    assert factory is fixed_screening
    for bad in ("tests.test_ml_screening:nothing_here", "no_such_module_x:factory", "not a path", "tests:"):
        with pytest.raises(ValueError):
            screening_factory(bad)


def test_prompts_need_both_sides() -> None:
    with pytest.raises(ValueError):
        ScreeningPrompts({"nudity": ["a nude photo."]}, {})
    with pytest.raises(ValueError):
        ScreeningPrompts({"nudity": []}, {"food": ["a photo of food."]})
