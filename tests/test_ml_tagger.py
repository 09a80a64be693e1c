"""Vocabulary, zero-shot tagging on the tiny CLIP, and the pure blending functions.

A random CLIP knows no concepts, so the zero-shot tests check the arithmetic through the real model:
an "image" vector placed exactly on a tag's prompt ensemble must rank that tag first, one on the
neutral prompt must score no tag above 0.5, and so on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from ml.embedder import ClipEmbedder
from ml.tagger import (
    DEFAULT_TEMPLATES,
    NEUTRAL_CONCEPT,
    TagSuggestion,
    ZeroShotTagger,
    choose_category,
    combine_suggestions,
    neighbour_tag_votes,
)
from ml.vocabulary import MAX_TAG_LENGTH, Vocabulary, normalise_tag


class CountingEmbedder(ClipEmbedder):
    """The real embedder, counting text calls so caching is observable."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.text_calls = 0

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += 1
        return super().embed_texts(texts)


@pytest.fixture(scope="module")
def embedder(tiny_clip: Path) -> CountingEmbedder:
    """The session's tiny CLIP (tests/conftest.py builds it once; torch is on one thread there)."""
    model = CountingEmbedder(str(tiny_clip))
    model.load()
    return model


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return Vocabulary.load_default()


@pytest.fixture(scope="module")
def tagger(embedder: CountingEmbedder, vocabulary: Vocabulary) -> ZeroShotTagger:
    shared = ZeroShotTagger(embedder, vocabulary)
    shared.prepare()
    return shared


def ensemble(embedder: ClipEmbedder, prompts: Sequence[str]) -> np.ndarray:
    mean = embedder.embed_texts(prompts).mean(axis=0)
    return mean / np.linalg.norm(mean)


# --- vocabulary -------------------------------------------------------------------------------------


def test_default_vocabulary(vocabulary: Vocabulary) -> None:
    assert 300 <= len(vocabulary.tags) <= 600
    assert 18 <= len(vocabulary.categories) <= 30
    for required in ("landscape", "portrait", "street", "food", "black-and-white", "still-life", "wildlife"):
        assert required in vocabulary.categories
    for tag in ("cat", "beach", "sunset", "golden hour", "street art"):
        assert tag in vocabulary.tags
    for name in (*vocabulary.tags, *vocabulary.categories):
        assert normalise_tag(name) == name
    assert len(set(vocabulary.tags)) == len(vocabulary.tags)


def test_every_default_category_has_hand_written_prompts(vocabulary: Vocabulary) -> None:
    shipped = json.loads(resources.files("ml").joinpath("data", "category_prompts.json").read_text("utf-8"))
    assert set(shipped) == set(vocabulary.categories)
    prompts = vocabulary.category_prompts()
    assert all(len(prompts[c]) >= 2 for c in vocabulary.categories)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("  Golden   Hour ", "golden hour"), ("CAT", "cat"), ("street\tart\n", "street art"), ("x" * 64, "x" * 64)],
)
def test_normalise_tag(raw: str, expected: str) -> None:
    assert normalise_tag(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "\t\n", "y" * (MAX_TAG_LENGTH + 1)])
def test_normalise_tag_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_tag(raw)


def test_with_tags_returns_a_new_normalised_deduplicated_vocabulary(vocabulary: Vocabulary) -> None:
    extended = vocabulary.with_tags(["Zebra  Crossing", "zebra crossing", "CAT", " Rooftop "])
    assert extended.tags[: len(vocabulary.tags)] == vocabulary.tags
    assert extended.tags[len(vocabulary.tags) :] == ("zebra crossing", "rooftop")
    assert extended.categories == vocabulary.categories
    assert "zebra crossing" not in vocabulary.tags  # the original is untouched
    with pytest.raises(ValueError):
        vocabulary.with_tags(["   "])


# --- zero-shot on the tiny CLIP ---------------------------------------------------------------------


def test_tag_and_category_scores_on_photos(
    embedder: CountingEmbedder, vocabulary: Vocabulary, tagger: ZeroShotTagger
) -> None:
    images = embedder.embed_images([Image.fromarray(skdata.astronaut()), Image.fromarray(skdata.coffee())])
    tags = tagger.tag_scores(images)
    assert tags.shape == (2, len(vocabulary.tags)) and tags.dtype == np.float32
    assert np.all((tags >= 0) & (tags <= 1))
    categories = tagger.category_scores(images)
    assert categories.shape == (2, len(vocabulary.categories))
    np.testing.assert_allclose(categories.sum(axis=1), 1.0, atol=1e-5)
    maps = tagger.tag_score_maps(images)
    assert maps[0]["cat"] == pytest.approx(float(tags[0, vocabulary.tags.index("cat")]))
    assert set(tagger.category_score_maps(images)[1]) == set(vocabulary.categories)


def test_text_embeddings_are_cached_until_the_vocabulary_changes(
    embedder: CountingEmbedder, vocabulary: Vocabulary
) -> None:
    tagger = ZeroShotTagger(embedder, vocabulary)
    images = embedder.embed_images([Image.fromarray(skdata.chelsea())])
    before = embedder.text_calls
    first = tagger.tag_scores(images)
    tagger.tag_scores(images)
    tagger.category_scores(images)
    tagger.category_scores(images)
    assert embedder.text_calls - before == 2  # one batch for tags (+neutral), one for categories

    tagger.vocabulary = vocabulary.with_tags(["zebra crossing"])
    extended = tagger.tag_scores(images)
    assert embedder.text_calls - before == 3
    assert extended.shape[1] == first.shape[1] + 1
    np.testing.assert_allclose(extended[:, :-1], first, atol=1e-5)  # existing tags score the same


def test_an_image_on_a_tags_prompts_ranks_that_tag_first(
    embedder: CountingEmbedder, vocabulary: Vocabulary, tagger: ZeroShotTagger
) -> None:
    for tag in ("sunset", "dog", "street art"):
        image = ensemble(embedder, [t.format(tag) for t in DEFAULT_TEMPLATES])
        scores = tagger.tag_scores(image)[0]
        assert vocabulary.tags[int(np.argmax(scores))] == tag
        assert scores[vocabulary.tags.index(tag)] > 0.99


def test_an_image_on_the_neutral_prompt_gets_no_tag_above_one_half(
    embedder: CountingEmbedder, tagger: ZeroShotTagger
) -> None:
    neutral = ensemble(embedder, [t.format(NEUTRAL_CONCEPT) for t in DEFAULT_TEMPLATES])
    assert tagger.tag_scores(neutral).max() <= 0.5 + 1e-4


def test_an_image_on_a_categorys_prompts_gets_that_category(
    embedder: CountingEmbedder, vocabulary: Vocabulary, tagger: ZeroShotTagger
) -> None:
    prompts = vocabulary.category_prompts()
    for category in ("food", "night", "black-and-white"):
        probabilities = tagger.category_scores(ensemble(embedder, prompts[category]))[0]
        assert vocabulary.categories[int(np.argmax(probabilities))] == category


def test_templates_need_a_placeholder(embedder: CountingEmbedder, vocabulary: Vocabulary) -> None:
    with pytest.raises(ValueError):
        ZeroShotTagger(embedder, vocabulary, templates=("a photo.",))


# --- neighbour votes --------------------------------------------------------------------------------


def test_neighbour_votes_are_similarity_weighted_shares() -> None:
    votes = neighbour_tag_votes([(0.9, ["beach", "sunset"]), (0.6, ["beach", "beach"]), (0.3, [])])
    assert votes == pytest.approx({"beach": 1.0, "sunset": 0.6})


def test_neighbour_votes_ignore_useless_neighbours() -> None:
    assert neighbour_tag_votes([]) == {}
    assert neighbour_tag_votes([(0.8, [])]) == {}
    assert neighbour_tag_votes([(-0.2, ["cat"]), (0.0, ["cat"])]) == {}
    assert neighbour_tag_votes([(float("nan"), ["cat"]), (0.5, ["dog"])]) == {"dog": 1.0}
    votes = neighbour_tag_votes([(0.9, ["dog"]), (0.2, ["cat"])], min_similarity=0.5)
    assert votes == {"dog": 1.0}


# --- combining --------------------------------------------------------------------------------------


def test_combine_blends_sources_and_labels_them() -> None:
    zero_shot = {"beach": 0.9, "sunset": 0.8, "dog": 0.1, "car": 0.55}
    votes = {"beach": 1.0, "sea": 0.9, "dog": 0.2}
    out = combine_suggestions(zero_shot, votes, limit=10)
    by_tag = {s.tag: s for s in out}
    assert by_tag["beach"] == TagSuggestion("beach", pytest.approx(0.94), "clip+neighbours")  # type: ignore[arg-type]
    assert by_tag["sunset"].source == "clip" and by_tag["sunset"].score == pytest.approx(0.48)
    assert by_tag["sea"].source == "neighbours" and by_tag["sea"].score == pytest.approx(0.36)
    assert by_tag["car"].score == pytest.approx(0.33) and by_tag["car"].source == "clip"
    assert "dog" not in by_tag  # 0.06 + 0.08 < 0.3
    assert [s.tag for s in out] == ["beach", "sunset", "sea", "car"]


def test_combine_without_neighbours_uses_clip_alone() -> None:
    out = combine_suggestions({"beach": 0.9, "sunset": 0.6, "dog": 0.2}, {}, limit=10)
    assert [(s.tag, s.score, s.source) for s in out] == [("beach", 0.9, "clip"), ("sunset", 0.6, "clip")]


def test_combine_respects_limit_min_score_and_sorting() -> None:
    zero_shot = {f"tag{i:02d}": 0.5 + i / 100 for i in range(30)}
    out = combine_suggestions(zero_shot, {}, limit=5)
    assert [s.tag for s in out] == ["tag29", "tag28", "tag27", "tag26", "tag25"]
    assert combine_suggestions(zero_shot, {}, limit=0) == []
    assert combine_suggestions(zero_shot, {}, limit=50, min_score=0.75) == [
        TagSuggestion("tag29", 0.79, "clip"),
        TagSuggestion("tag28", 0.78, "clip"),
        TagSuggestion("tag27", 0.77, "clip"),
        TagSuggestion("tag26", 0.76, "clip"),
        TagSuggestion("tag25", 0.75, "clip"),
    ]
    ties = combine_suggestions({"b": 0.7, "a": 0.7}, {}, limit=2)
    assert [s.tag for s in ties] == ["a", "b"]
    # Ranked on the exact score even where the shown (rounded) scores are equal.
    close = combine_suggestions({"aa": 0.99991, "zz": 0.99994}, {}, limit=1)
    assert close == [TagSuggestion("zz", 0.9999, "clip")]


def test_choose_category() -> None:
    scores = {"landscape": 0.5, "travel": 0.3, "night": 0.2}
    assert choose_category(scores) == ("landscape", 0.5)
    # Look-alikes already filed under travel tip a close call.
    category, confidence = choose_category(scores, [(0.95, "travel"), (0.9, "travel"), (0.4, "landscape")])
    assert category == "travel"
    assert confidence == pytest.approx(0.6 * 0.3 + 0.4 * 1.85 / 2.25, abs=1e-4)
    # Neighbours with no usable similarity change nothing.
    assert choose_category(scores, [(-0.5, "night"), (0.0, "night")]) == ("landscape", 0.5)
    with pytest.raises(ValueError):
        choose_category({})


def test_neighbour_backed_tags_keep_seats_among_saturated_clip_scores() -> None:
    zero_shot = {f"clip{i:02d}": 0.99 for i in range(20)}
    out = combine_suggestions(zero_shot, {"astronaut": 1.0}, limit=10)
    assert len(out) == 10
    assert "astronaut" in [s.tag for s in out]
    assert next(s for s in out if s.tag == "astronaut").source == "neighbours"
    assert [s.score for s in out] == sorted((s.score for s in out), reverse=True)
