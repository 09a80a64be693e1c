"""Tag and category suggestions: zero-shot CLIP plus votes from visually similar photos.

Zero-shot tag score (multi-label, per tag, in [0, 1])::

    tag_score(t) = sigmoid(100 * (cos(image, text(t)) - cos(image, text(neutral))))

``text(t)`` is the prompt ensemble for tag ``t`` (each template filled with the tag, embeddings averaged
and renormalised); ``text(neutral)`` is the same ensemble filled with a generic word ("thing"). This is
CLIP's own two-way softmax at its trained logit scale (100), against a neutral prompt rather than against
the other tags: a photo can be "beach" *and* "sunset", so tags must not compete for one unit of
probability, and a score must not shrink when an admin adds tags. 0.5 means "as much this tag as a photo
of anything"; the template structure is the same on both sides, so its bias cancels.

Category score (single label): ``softmax(100 * cos(image, text(c)))`` over the categories, where
``text(c)`` averages hand-written prompts per category. Categories compete, so a softmax is right.

With real ViT-B/32 weights, tags that clearly match saturate near 1.0 (a 0.05 cosine margin is already
0.993), so suggestions are ranked by the exact scores, never by rounded ones. The thresholds in settings
are to be checked against those weights on real photos (the test suite runs a tiny random CLIP).

Neighbour votes and the final blend are pure functions (``neighbour_tag_votes``, ``combine_suggestions``,
``choose_category``) with their weights documented next to them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .embedder import Embedder
from .vocabulary import Vocabulary

__all__ = [
    "CATEGORY_CLIP_WEIGHT",
    "CATEGORY_NEIGHBOUR_WEIGHT",
    "CLIP_WEIGHT",
    "DEFAULT_TEMPLATES",
    "LOGIT_SCALE",
    "NEIGHBOUR_WEIGHT",
    "TagSuggestion",
    "ZeroShotTagger",
    "choose_category",
    "combine_suggestions",
    "neighbour_tag_votes",
]

# CLIP's trained temperature (exp(4.6052) = 100 in the released checkpoints).
LOGIT_SCALE = 100.0

# Prompt ensemble from the CLIP paper's ImageNet set, reduced to templates that suit photos.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a close-up photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "a cropped photo of a {}.",
    "a good photo of a {}.",
    "a photo of the {}.",
)

NEUTRAL_CONCEPT = "thing"

# Blend of the two evidence sources for tags. CLIP sees this photo; neighbours are other photos whose
# owners confirmed tags, so they are strong evidence when present but only as good as the similarity.
CLIP_WEIGHT = 0.6
NEIGHBOUR_WEIGHT = 0.4
# A source "supports" a tag when its own score clears this: for CLIP, more this tag than a generic
# photo; for neighbours, more than half of the similarity-weighted neighbours accepted it.
SUPPORT_THRESHOLD = 0.5

CATEGORY_CLIP_WEIGHT = 0.6
CATEGORY_NEIGHBOUR_WEIGHT = 0.4


@dataclass(frozen=True)
class TagSuggestion:
    """One suggested tag. ``source``: "clip", "neighbours" or "clip+neighbours"."""

    tag: str
    score: float
    source: str


def prompt_ensembles(embedder: Embedder, prompt_sets: Sequence[Sequence[str]]) -> np.ndarray:
    """One unit vector per prompt set: mean of the unit prompt embeddings, renormalised."""
    flat = [p for prompts in prompt_sets for p in prompts]
    if not flat:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    vectors = embedder.embed_texts(flat)
    out = np.empty((len(prompt_sets), vectors.shape[1]), dtype=np.float32)
    start = 0
    for i, prompts in enumerate(prompt_sets):
        mean = vectors[start : start + len(prompts)].mean(axis=0)
        out[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        start += len(prompts)
    return out


def _as_matrix(image_vectors: np.ndarray) -> np.ndarray:
    m = np.asarray(image_vectors, dtype=np.float32)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2:
        raise ValueError(f"image_vectors must be (n, dim), got shape {m.shape}")
    return m


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form


class ZeroShotTagger:
    """Scores image embeddings against the tag and category prompts of a vocabulary.

    Text embeddings are computed on first use and cached per vocabulary; replacing ``vocabulary``
    invalidates the cache. Safe to share between threads (a race computes the same matrix twice).
    """

    def __init__(
        self,
        embedder: Embedder,
        vocabulary: Vocabulary,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        *,
        category_prompts: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if not templates or any("{}" not in t for t in templates):
            raise ValueError("every template needs a '{}' placeholder for the concept")
        self._embedder = embedder
        self._templates = tuple(templates)
        self._category_prompt_overrides = category_prompts
        self._vocabulary = vocabulary
        self._lock = threading.Lock()
        self._tag_cache: tuple[tuple[str, ...], np.ndarray, np.ndarray] | None = None
        self._category_cache: tuple[tuple[str, ...], np.ndarray] | None = None

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    @vocabulary.setter
    def vocabulary(self, vocabulary: Vocabulary) -> None:
        self._vocabulary = vocabulary  # caches are keyed by content, so they refresh on next use

    @property
    def tags(self) -> tuple[str, ...]:
        return self._vocabulary.tags

    @property
    def categories(self) -> tuple[str, ...]:
        return self._vocabulary.categories

    def prepare(self) -> None:
        """Compute the prompt embeddings now (e.g. at start-up) instead of on the first photo.

        With ViT-B/32 on a CPU the default vocabulary (356 tags x 8 templates) takes seconds.
        """
        self._tag_matrices()
        self._category_matrix()

    def _tag_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        tags = self._vocabulary.tags
        cache = self._tag_cache
        if cache is None or cache[0] != tags:
            prompt_sets = [[t.format(tag) for t in self._templates] for tag in tags]
            neutral = [[t.format(NEUTRAL_CONCEPT) for t in self._templates]]
            both = prompt_ensembles(self._embedder, [*prompt_sets, *neutral])
            cache = (tags, both[:-1], both[-1])
            with self._lock:
                self._tag_cache = cache
        return cache[1], cache[2]

    def _category_matrix(self) -> np.ndarray:
        categories = self._vocabulary.categories
        cache = self._category_cache
        if cache is None or cache[0] != categories:
            prompts = self._vocabulary.category_prompts(self._category_prompt_overrides)
            cache = (categories, prompt_ensembles(self._embedder, [prompts[c] for c in categories]))
            with self._lock:
                self._category_cache = cache
        return cache[1]

    def tag_scores(self, image_vectors: np.ndarray) -> np.ndarray:
        """(n, n_tags) in [0, 1]; column order is ``self.tags``. See the module docstring."""
        images = _as_matrix(image_vectors)
        tag_matrix, neutral = self._tag_matrices()
        if tag_matrix.shape[0] == 0:
            return np.zeros((images.shape[0], 0), dtype=np.float32)
        margin = images @ tag_matrix.T - (images @ neutral)[:, None]
        return _sigmoid(LOGIT_SCALE * margin).astype(np.float32)

    def category_scores(self, image_vectors: np.ndarray) -> np.ndarray:
        """(n, n_categories), each row a probability distribution; column order is ``self.categories``."""
        images = _as_matrix(image_vectors)
        return _softmax(LOGIT_SCALE * (images @ self._category_matrix().T)).astype(np.float32)

    def tag_score_maps(self, image_vectors: np.ndarray) -> list[dict[str, float]]:
        """``tag_scores`` as one {tag: score} dict per image, ready for ``combine_suggestions``."""
        return [dict(zip(self.tags, map(float, row), strict=True)) for row in self.tag_scores(image_vectors)]

    def category_score_maps(self, image_vectors: np.ndarray) -> list[dict[str, float]]:
        """``category_scores`` as one {category: probability} dict per image, for ``choose_category``."""
        return [dict(zip(self.categories, map(float, row), strict=True)) for row in self.category_scores(image_vectors)]


def neighbour_tag_votes(
    neighbours: Sequence[tuple[float, Sequence[str]]], *, min_similarity: float = 0.0
) -> dict[str, float]:
    """Similarity-weighted share of neighbours whose owner accepted each tag, in [0, 1].

    Each neighbour is (cosine similarity to the new photo, tags its owner accepted). Weight = cosine,
    so a near-twin counts more than a loose match. Neighbours below ``min_similarity`` and neighbours
    with no accepted tags are left out entirely: an owner who never reviewed tags says nothing about
    which tags are wrong. A tag accepted by every weighted neighbour scores 1.0.
    """
    totals: dict[str, float] = {}
    weight_sum = 0.0
    for similarity, tags in neighbours:
        weight = float(similarity)
        if not np.isfinite(weight) or weight <= 0.0 or weight < min_similarity:
            continue
        distinct = {t for t in tags if t}
        if not distinct:
            continue
        weight_sum += weight
        for tag in distinct:
            totals[tag] = totals.get(tag, 0.0) + weight
    if weight_sum <= 0.0:
        return {}
    return {tag: min(1.0, total / weight_sum) for tag, total in totals.items()}


def combine_suggestions(
    zero_shot: Mapping[str, float],
    neighbour_votes: Mapping[str, float],
    *,
    limit: int,
    min_score: float = 0.3,
) -> list[TagSuggestion]:
    """Blend both sources into at most ``limit`` suggestions, best first.

    ``score = CLIP_WEIGHT * clip + NEIGHBOUR_WEIGHT * votes`` (0.6 / 0.4), a tag missing from a source
    counting 0 there. With no neighbour votes at all (a new photo with no tagged look-alikes) the CLIP
    score is used alone, so early photos are not capped at 0.6. With the default ``min_score`` 0.3, a tag
    only CLIP sees needs a CLIP score of 0.5 (above the neutral prompt); a tag only neighbours carry
    needs 75% of the neighbour weight. Up to a third of the ``limit`` seats are kept for tags the
    neighbours support (``_with_neighbour_seats``). ``source`` names the sources whose own score reached 0.5, or, if
    neither did, the one that contributed more.
    """
    if limit <= 0:
        return []
    has_votes = bool(neighbour_votes)
    ranked: list[tuple[float, str, str]] = []
    for tag in set(zero_shot) | set(neighbour_votes):
        clip = float(np.clip(zero_shot.get(tag, 0.0), 0.0, 1.0))
        votes = float(np.clip(neighbour_votes.get(tag, 0.0), 0.0, 1.0))
        score = CLIP_WEIGHT * clip + NEIGHBOUR_WEIGHT * votes if has_votes else clip
        if score < min_score:
            continue
        supporters = [name for name, s in (("clip", clip), ("neighbours", votes)) if s >= SUPPORT_THRESHOLD]
        if not supporters:
            supporters = ["clip" if CLIP_WEIGHT * clip >= NEIGHBOUR_WEIGHT * votes else "neighbours"]
        ranked.append((score, tag, "+".join(supporters)))
    # Rank on the exact score (CLIP's scale saturates strong matches near 1.0), show it rounded.
    ranked.sort(key=lambda item: (-item[0], item[1]))
    suggestions = [TagSuggestion(tag=tag, score=round(score, 4), source=source) for score, tag, source in ranked]
    return _with_neighbour_seats(suggestions, limit)


def _with_neighbour_seats(ranked: list[TagSuggestion], limit: int) -> list[TagSuggestion]:
    """The top ``limit`` of ``ranked``, but with up to a third of the seats kept for tags the
    neighbours support.

    Zero-shot scores saturate (a strong CLIP match scores ~0.99 for many tags at once), while a tag the
    owner of a near-identical photo accepted is the best evidence there is; without reserved seats a
    dozen saturated CLIP tags would push every confirmed tag off the list.
    """
    top = ranked[:limit]
    backed = [s for s in ranked if "neighbours" in s.source][: max(1, limit // 3)]
    missing = [s for s in backed if s not in top]
    if not missing:
        return top
    keep = [s for s in top if "neighbours" in s.source]
    others = [s for s in top if "neighbours" not in s.source][: max(0, limit - len(keep) - len(missing))]
    order = {id(s): i for i, s in enumerate(ranked)}
    return sorted([*keep, *missing, *others], key=lambda s: order[id(s)])


def choose_category(
    category_scores: Mapping[str, float], neighbour_categories: Sequence[tuple[float, str]] = ()
) -> tuple[str, float]:
    """The category and its blended confidence in [0, 1].

    ``confidence(c) = 0.6 * clip_probability(c) + 0.4 * similarity-weighted share of neighbours in c``;
    with no usable neighbours, the CLIP probability alone. Neighbours (cosine, category) come from
    photos already categorised, so a series shot in one place settles on one category. Ties go to the
    category listed first in ``category_scores``.
    """
    if not category_scores:
        raise ValueError("choose_category needs at least one category score")
    shares: dict[str, float] = {}
    weight_sum = 0.0
    for similarity, category in neighbour_categories:
        weight = float(similarity)
        if not np.isfinite(weight) or weight <= 0.0 or not category:
            continue
        weight_sum += weight
        shares[category] = shares.get(category, 0.0) + weight
    best, best_score = "", -1.0
    for category, probability in category_scores.items():
        clip = float(np.clip(probability, 0.0, 1.0))
        if weight_sum > 0.0:
            score = CATEGORY_CLIP_WEIGHT * clip + CATEGORY_NEIGHBOUR_WEIGHT * shares.get(category, 0.0) / weight_sum
        else:
            score = clip
        if score > best_score:
            best, best_score = category, score
    return best, round(best_score, 4)
