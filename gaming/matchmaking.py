"""Which two photos to show next: pure scoring for pair choice (no I/O; the rng is passed in).

A vote is worth most where it removes uncertainty that matters. Two things matter: the whole ranking
(every score should be right: votes spread like random pairs) and the featured set (the top 10% of a
category: extra votes on photos whose belief straddles its boundary). One currency serves both, the
expected reduction of rating variance, weighted by what a unit of it is worth for that photo:

* weight of photo x = ``crowding_x + boundary_weight * straddle_x``. ``straddle = 4 p (1 - p)`` with
  ``p = Phi((|mu - boundary| + margin) / sigma_r)`` (sigma_r: the part of sigma votes can still remove
  above the tau floor): ~1 while the belief straddles the featured boundary, -> 0 once the photo is
  surely in, surely out or surely *on* it (within the margin, where more votes would only sort
  equally good photos). ``crowding`` (in (0, 1]) is the
  density of photos around its mu relative to the middle: rank error is sigma times that density, so
  a sigma in the thin tails costs little rank (without it the surely-worst photo, whose every duel is
  a foregone conclusion, keeps its sigma and is anchored again and again).
* expected variance reduction of photo x in a duel with y: ``sigma_x**4 / c**2 * F(t)``,
  ``c**2 = 2 beta**2 + sigma_x**2 + sigma_y**2``, ``t = (mu_x - mu_y) / c``,
  ``F(t) = phi(t)**2 / (Phi(t) Phi(-t))`` (the Fisher information of one probit vote, 0.64 when even).
* anchor: the photo with the highest weighted reduction against an ideal opponent
  (:func:`anchor_priority`), except with probability ``explore`` a photo drawn uniformly, so no photo
  starves whatever the ratings say.
* opponent: drawn among the anchor's visual neighbours with probability ~ (pair value *
  similarity ** similarity_power) ** (1 / temperature), pair value = both photos' weighted reductions.
  Stochastic on purpose: ties and near-ties are shared instead of one photo taking every duel.
* placement: a photo's first ``placement_first`` duels (and a ``placement`` share of later ones)
  draw candidates from random photos of the category instead of the neighbour list
  (:func:`wants_placement`). Duels inside a visual cluster say nothing about the cluster's level
  (the likelihood depends only on the two photos' difference), so when quality clusters in embedding
  space neighbour-only duels cannot rank across clusters; the simulation found (1) unreachable within
  60 votes/photo that way. A few placement duels per photo, while its sigma is still wide, fix it.
* boundary duels: while the anchor straddles the featured boundary, with probability
  ``boundary_duels * straddle`` its candidates are the photos nearest the cut (half from each side)
  instead of its neighbours (:func:`wants_boundary_duel`). The featured list compares photos across
  the whole category, so its cut is settled best by duels between the contenders for it, whatever
  they show; an anchor's neighbours are mostly far from the cut, so each neighbour duel informs one
  contender, a duel between two contenders informs both. In the simulation it cut the votes to a
  trustworthy featured set by 7-32% at N = 200 and 13-53% at N = 1000 in every world measured, at no
  cost to the whole ranking; neighbour duels fall from ~91% to ~85% of a long run's duels
  (BENCHMARKS.md). The straddle factor makes these duels fade once the cut is settled.

Why not TrueSkill match quality? It rewards *certain* photos (its ``sqrt(2 beta**2 / c**2)`` factor
grows as sigma shrinks), so always taking the best-quality neighbour feeds the same few established
photos again and again (one photo took 9,000 of 60,000 duels in the first simulation). Variance
reduction does the opposite: a photo's value falls as it gets votes, which spreads duels by itself.
``bench/ranking_sim.py`` chose the defaults of :class:`MatchPolicy` and measures them.

The service works on :class:`RatedPhoto` lists (:func:`choose_anchor`, :func:`choose_opponent`); the
simulation calls the array forms (:func:`anchor_priorities`, :func:`choose_anchors`) and the same
:func:`choose_opponent`; both run the same formulas.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from gaming.featured import TOP_FRACTION, featured_boundary_array
from gaming.ratings import Rating, RatingEnv

__all__ = [
    "DEFAULT_POLICY",
    "MatchPolicy",
    "Neighbour",
    "RatedPhoto",
    "anchor_priorities",
    "anchor_priority",
    "candidate_scores",
    "choose_anchor",
    "choose_anchors",
    "choose_opponent",
    "featured_boundary",
    "opponent_score",
    "opponent_scores",
    "sample_by_score",
    "wants_boundary_duel",
    "wants_placement",
]


@dataclass(frozen=True)
class RatedPhoto:
    """What pair choice needs to know about a photo (no owner is ever shown to players)."""

    id: str
    rating: Rating
    duels: int
    owner: str
    category: str | None


@dataclass(frozen=True)
class Neighbour:
    """An entry of a photo's nearest-neighbour list, kept at ingest."""

    id: str
    similarity: float


@dataclass(frozen=True)
class MatchPolicy:
    """The knobs of pair choice; the defaults are the ones ``bench/ranking_sim.py`` measured best."""

    #: extra weight on photos straddling the featured boundary (0: only the global ranking counts).
    boundary_weight: float = 30.0
    #: photos within this many beta of the boundary count as on it: once their sigma is well below
    #: the margin, more votes would only sort photos that are equally good, so their weight fades.
    #: (0.1 measured a little better on the featured target with noisy voters, but then a photo
    #: sitting on the boundary near the tau floor kept its weight and took 17% of a long run's duels.)
    boundary_margin: float = 0.25
    #: how much a photo's place on the skill scale matters: 0 values every photo's variance alike,
    #: 1 weights it by the density of photos around it (a sigma in the thin tails costs little rank).
    crowding_power: float = 1.0
    #: share of anchors drawn uniformly at random instead of by priority.
    explore: float = 0.15
    #: softmax temperature on the log of the pair value; 0 takes the best pair, 1 samples in proportion.
    temperature: float = 0.5
    #: how strongly closer neighbours are preferred: value * similarity ** power.
    similarity_power: float = 1.0
    #: share of duels whose opponent is drawn from random photos of the category instead of the
    #: anchor's neighbours (the same scoring picks among them): places photos across visual clusters.
    placement: float = 0.0
    #: a photo's first duels are always placement duels: they place it on the global scale.
    placement_first: int = 6
    #: chance, times the anchor's straddle, that its candidates are the photos nearest the featured
    #: boundary rather than its neighbours (boundary duels; see the module docstring).
    boundary_duels: float = 1.0
    #: how many photos nearest the cut a boundary duel draws from, half from each side.
    boundary_pool: int = 24
    #: the featured set's share of a category (`gaming.featured`).
    top_fraction: float = TOP_FRACTION

    def __post_init__(self) -> None:
        if self.boundary_weight < 0 or not 0 <= self.explore <= 1 or self.temperature < 0:
            raise ValueError(f"invalid MatchPolicy: {self!r}")
        if not 0 <= self.placement <= 1 or not 0 < self.top_fraction < 1 or not 0 <= self.boundary_duels <= 1:
            raise ValueError(f"invalid MatchPolicy: {self!r}")
        if self.boundary_pool < 2:
            raise ValueError(f"invalid MatchPolicy: {self!r}")


DEFAULT_POLICY = MatchPolicy()


# --- numpy normal helpers (numpy has no erf; this is Numerical Recipes' erfc, |rel err| < 1.2e-7) -------


def _erfc(x: np.ndarray) -> np.ndarray:
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    # fmt: off
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
    ))))
    # fmt: on
    r = t * np.exp(poly)
    result: np.ndarray = np.where(x >= 0, r, 2.0 - r)
    return result


def _cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * _erfc(-x / math.sqrt(2.0))


def _pdf(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return result


_F0 = 2.0 / math.pi  # _fisher(0) = phi(0)^2 / (1/4)


def _fisher(t: np.ndarray) -> np.ndarray:
    """phi(t)^2 / (Phi(t) Phi(-t)): expected W of one vote; its tails (~|t| phi(t)) stay finite."""
    t = np.clip(t, -30.0, 30.0)  # beyond, a vote tells nothing new (and Phi(-30) underflows)
    # Phi(t) * Phi(-t) from two erfc calls: "1 - Phi(t)" would cancel to 0 in the far tail.
    result: np.ndarray = _pdf(t) ** 2 / np.maximum(_cdf(t) * _cdf(-t), 1e-300)
    return result


def _information(mu_a: float | np.ndarray, var_a: float | np.ndarray, mu_b: np.ndarray, var_b: np.ndarray,
                 env: RatingEnv) -> np.ndarray:
    """``F(t) / c**2`` of a duel a-vs-b (``c**2 = 2 beta**2 + var_a + var_b``, ``t = (mu_a - mu_b) / c``): a
    photo's expected variance reduction from it is its ``var**2`` times this (module docstring)."""
    c2 = 2.0 * env.beta**2 + var_a + var_b
    result: np.ndarray = _fisher((mu_a - mu_b) / np.sqrt(c2)) / c2
    return result


# --- the boundary ----------------------------------------------------------------------------------------


def featured_boundary(ratings: Sequence[Rating], env: RatingEnv, top_fraction: float = TOP_FRACTION) -> float:
    """The skill (mu) at the featured cut (`gaming.featured`) among these ratings.

    Taken on mu, not on the conservative skill the featured list sorts by, because the question a vote
    answers is "is this photo's true skill above the cut?"; mu is the best guess of the cut's skill.
    ``env`` is accepted for symmetry with the other functions (and future cuts on other scales).
    """
    if not ratings:
        return env.mu
    return featured_boundary_array(np.fromiter((r.mu for r in ratings), dtype=float, count=len(ratings)), top_fraction)



def _sigma_floor(env: RatingEnv) -> float:
    """The sigma at which one even duel removes as much variance as tau adds back: votes cannot push a
    photo's sigma much below it, so uncertainty down there is not worth anchoring for (~0.78)."""
    return math.sqrt(env.tau * math.sqrt(2.0) * env.beta / math.sqrt(_F0))


def _removable(sigma: np.ndarray, floor: float) -> np.ndarray:
    """The part of each sigma that votes can still remove, above the tau ``floor`` (:func:`_sigma_floor`)."""
    result: np.ndarray = np.sqrt(np.maximum(sigma * sigma - floor * floor, 1e-6))
    return result


def _straddle(mu: np.ndarray, sigma: np.ndarray, boundary: float, margin: float, floor: float) -> np.ndarray:
    """4 p (1 - p) with p = Phi((|mu - boundary| + margin) / sigma_r), how sure we are of the photo's
    side of the boundary (within the margin either side will do), where sigma_r counts only the
    uncertainty votes can still remove (above the tau floor): ~1 when the belief straddles the
    boundary, -> 0 when the photo is surely in, surely out, or surely on it. Without the floor a photo
    sitting on the boundary would keep its weight forever and be anchored again and again."""
    p = _cdf((np.abs(mu - boundary) + margin) / _removable(sigma, floor))
    return 4.0 * p * (1.0 - p)


def _crowding(mu: np.ndarray, sigma: np.ndarray, boundary: float, env: RatingEnv, policy: MatchPolicy) -> np.ndarray:
    """How crowded a photo's neighbourhood on the skill scale is, relative to the middle (in (0, 1]).

    A photo's rank error is its sigma times the density of photos around its mu, so a sigma in the
    thin tails costs little rank and a vote there is worth less; without this a surely-worst photo
    keeps its sigma (every duel is a foregone conclusion) and gets anchored again and again. The
    density is read off what the caller already has: TrueSkill keeps the mean mu at ``env.mu``
    (updates are zero-sum and priors centre there) and the boundary sits ``z_top`` spreads above it.
    """
    if policy.crowding_power == 0:
        return np.ones_like(mu)
    z_top = NormalDist().inv_cdf(1.0 - policy.top_fraction)
    spread = max((boundary - env.mu) / z_top, 0.5 * env.beta)
    z2 = (mu - env.mu) ** 2 / (spread**2 + sigma * sigma)
    result: np.ndarray = np.exp(-0.5 * policy.crowding_power * z2)
    return result


def _weights(mu: np.ndarray, sigma: np.ndarray, boundary: float, env: RatingEnv, policy: MatchPolicy) -> np.ndarray:
    """What a unit of variance removed from each photo is worth: the whole ranking's share (crowding)
    plus the featured boundary's share (straddling)."""
    straddle = _straddle(mu, sigma, boundary, policy.boundary_margin * env.beta, _sigma_floor(env))
    return _crowding(mu, sigma, boundary, env, policy) + policy.boundary_weight * straddle


# --- anchors ---------------------------------------------------------------------------------------------


def anchor_priorities(
    mu: np.ndarray, sigma: np.ndarray, boundary: float, env: RatingEnv, policy: MatchPolicy = DEFAULT_POLICY
) -> np.ndarray:
    """Array form of :func:`anchor_priority`: the weighted variance a duel could remove."""
    weight = _weights(mu, sigma, boundary, env, policy)
    var = sigma * sigma
    # The best possible duel (an even one against an equally uncertain photo) removes var^2 / c^2 * F(0).
    result: np.ndarray = weight * var * var / (2.0 * env.beta**2 + 2.0 * var)
    return result


def anchor_priority(photo: RatedPhoto, boundary: float, env: RatingEnv, policy: MatchPolicy = DEFAULT_POLICY) -> float:
    """How much a photo needs a vote: high sigma, and above all straddling the featured boundary.

    Few duels show up as high sigma (sigma only falls with votes), so the duel count needs no term of
    its own; exploration in :func:`choose_anchor` keeps every photo in play.
    """
    return float(
        anchor_priorities(np.array([photo.rating.mu]), np.array([photo.rating.sigma]), boundary, env, policy)[0]
    )


def choose_anchors(
    priorities: np.ndarray, count: int, rng: random.Random, *, explore: float = DEFAULT_POLICY.explore
) -> list[int]:
    """Indices of up to ``count`` distinct anchors: each slot explores with probability ``explore``
    (uniform over the rest), else takes the highest remaining priority. For serving many tickets at once.
    """
    n = len(priorities)
    order = [int(i) for i in np.argsort(-np.asarray(priorities), kind="stable")]
    taken: set[int] = set()
    chosen: list[int] = []
    cursor = 0
    while len(chosen) < min(count, n):
        if rng.random() < explore:
            free = n - len(taken)
            pick = rng.randrange(free)
            # the pick-th index not yet taken (taken is small: skip over it)
            for i in sorted(taken):
                if i <= pick:
                    pick += 1
            idx = pick
        else:
            while order[cursor] in taken:
                cursor += 1
            idx = order[cursor]
        taken.add(idx)
        chosen.append(idx)
    return chosen


def choose_anchor(
    photos: Sequence[RatedPhoto],
    boundary: float,
    env: RatingEnv,
    rng: random.Random,
    *,
    explore: float | None = None,
    policy: MatchPolicy = DEFAULT_POLICY,
) -> RatedPhoto | None:
    """The photo whose rating most needs a vote, or a uniform one with probability ``explore``
    (default: the policy's). ``photos`` may be a sample of the category (e.g. the highest-sigma photos
    plus a random few); the boundary should come from the whole category."""
    if not photos:
        return None
    mu = np.fromiter((p.rating.mu for p in photos), dtype=float, count=len(photos))
    sigma = np.fromiter((p.rating.sigma for p in photos), dtype=float, count=len(photos))
    share = policy.explore if explore is None else explore
    return photos[choose_anchors(anchor_priorities(mu, sigma, boundary, env, policy), 1, rng, explore=share)[0]]


# --- opponents -------------------------------------------------------------------------------------------


def opponent_scores(
    anchor_mu: float,
    anchor_sigma: float,
    mu: np.ndarray,
    sigma: np.ndarray,
    similarity: np.ndarray,
    boundary: float,
    env: RatingEnv,
    policy: MatchPolicy = DEFAULT_POLICY,
) -> np.ndarray:
    """Array form of :func:`opponent_score` for one anchor and many candidates."""
    var_a = anchor_sigma**2
    var = sigma * sigma
    info = _information(anchor_mu, var_a, mu, var, env)
    w_a = _weights(np.array([anchor_mu]), np.array([anchor_sigma]), boundary, env, policy)[0]
    w = _weights(mu, sigma, boundary, env, policy)
    value = (w_a * var_a * var_a + w * var * var) * info
    result: np.ndarray = value * np.clip(similarity, 1e-6, 1.0) ** policy.similarity_power
    return result


def opponent_score(
    anchor: RatedPhoto,
    candidate: RatedPhoto,
    similarity: float,
    boundary: float,
    env: RatingEnv,
    policy: MatchPolicy = DEFAULT_POLICY,
) -> float:
    """The value of the duel anchor-vs-candidate: both photos' expected (boundary-weighted) variance
    reduction, times ``similarity ** similarity_power`` so duels stay between look-alikes.
    """
    return float(
        opponent_scores(
            anchor.rating.mu,
            anchor.rating.sigma,
            np.array([candidate.rating.mu]),
            np.array([candidate.rating.sigma]),
            np.array([similarity]),
            boundary,
            env,
            policy,
        )[0]
    )


def wants_placement(anchor: RatedPhoto, rng: random.Random, policy: MatchPolicy = DEFAULT_POLICY) -> bool:
    """Whether this duel's opponent should come from random photos of the category rather than from the
    anchor's neighbours. Neighbour duels cannot tell visual clusters apart (a duel inside a cluster
    says nothing about the cluster's level), so some duels must cross clusters.
    """
    return anchor.duels < policy.placement_first or rng.random() < policy.placement


def wants_boundary_duel(
    anchor: RatedPhoto, boundary: float, env: RatingEnv, rng: random.Random, policy: MatchPolicy = DEFAULT_POLICY
) -> bool:
    """Whether this duel's opponent should come from the photos nearest the featured boundary: the
    likelier the more the anchor's belief straddles it, so these duels stop once the cut is settled."""
    if policy.boundary_duels <= 0:
        return False
    mu, sigma = np.array([anchor.rating.mu]), np.array([anchor.rating.sigma])
    straddle = float(_straddle(mu, sigma, boundary, policy.boundary_margin * env.beta, _sigma_floor(env))[0])
    return rng.random() < policy.boundary_duels * straddle


def sample_by_score(scores: np.ndarray, rng: random.Random, temperature: float) -> int:
    """Index drawn with probability ~ score ** (1 / temperature); temperature 0 takes the best."""
    if temperature <= 0:
        return int(np.argmax(scores))
    logits = np.log(np.maximum(scores, 1e-300)) / temperature
    weights = np.exp(logits - logits.max())
    return int(rng.choices(range(len(scores)), weights=weights.tolist())[0])


def candidate_scores(
    anchor: RatedPhoto,
    candidates: Sequence[tuple[RatedPhoto, float]],
    boundary: float,
    env: RatingEnv,
    policy: MatchPolicy = DEFAULT_POLICY,
) -> np.ndarray:
    """:func:`opponent_scores` of ``(photo, similarity)`` candidates against the anchor: what an opponent
    (or, without replacement, a series' opponents: `gaming.contenders.choose_opponents`) is drawn by."""
    return opponent_scores(
        anchor.rating.mu,
        anchor.rating.sigma,
        np.fromiter((p.rating.mu for p, _ in candidates), dtype=float, count=len(candidates)),
        np.fromiter((p.rating.sigma for p, _ in candidates), dtype=float, count=len(candidates)),
        np.fromiter((s for _, s in candidates), dtype=float, count=len(candidates)),
        boundary,
        env,
        policy,
    )


def choose_opponent(
    anchor: RatedPhoto,
    candidates: Sequence[tuple[RatedPhoto, float]],
    boundary: float,
    env: RatingEnv,
    rng: random.Random,
    *,
    policy: MatchPolicy = DEFAULT_POLICY,
) -> RatedPhoto | None:
    """Draw the opponent among ``(photo, similarity)`` candidates the caller already filtered (own
    photos, the anchor's owner, near-duplicates, pairs this player judged). Stochastic on purpose:
    a softmax over the pair values keeps a few photos from taking every duel. None only if empty.
    """
    if not candidates:
        return None
    scores = candidate_scores(anchor, candidates, boundary, env, policy)
    return candidates[sample_by_score(scores, rng, policy.temperature)][0]
