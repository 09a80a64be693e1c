"""Who plays whom inside a similarity group, and which photos make a series: pure scoring, no I/O.

A group (near-duplicates and shots of one subject, kept at ingest) has one question of its own: which
of its photos is the best. Its **leader** is the member with the highest conservative skill (what the
group lists sort by), and it is **settled** once the leader has enough votes and a low sigma (the
featured rules) and we are ``confidence`` sure that no other member beats it by more than an
indifference ``margin`` (Bechhofer's indifference zone: two photos closer than the margin are equally
good answers, and without it two equal near-duplicates would need votes forever, since tau keeps sigma
above ~0.8). The confidence is ``prod_j P(s_leader + margin > s_j)`` over the other members, skills
independent Gaussians: the events share the leader's skill and are positively correlated, so the
product is a lower bound on the chance that the leader beats them all, and at most the runner-up's.

While a group is unsettled its contenders should duel each other (they are visual neighbours by
construction). The value of a vote is `gaming.matchmaking`'s currency, the expected reduction of
rating variance weighted by what it is worth, with the weight of a member its **contention**:
``4 p (1 - p)`` with ``p = P(s_j > s_leader + margin)`` on the uncertainty votes can still remove
(above the tau floor, as `gaming.matchmaking`'s straddle), ~1 while the member may well beat the
leader, -> 0 once it surely does not or surely does (then it becomes the leader). The leader's
contention is its most contested member's. How often an anchor's opponent comes from its group is
``group_duels * contention``, as boundary duels go by straddle (:func:`wants_group_duel`), and the
opponent is drawn from the anchor's row of the pair values (:func:`contender_opponent`).

A **series** (`gaming.series`) shows several photos at once: :func:`contender_series` fills one from a
group greedily by the same pair values, :func:`choose_opponents` picks an anchor's ``count`` opponents
from any candidate list by `gaming.matchmaking.opponent_scores` without replacement.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gaming.matchmaking import (
    DEFAULT_POLICY,
    MatchPolicy,
    RatedPhoto,
    _cdf,
    _information,
    _removable,
    _sigma_floor,
    candidate_scores,
    sample_by_score,
)
from gaming.ratings import RatingEnv

__all__ = [
    "DEFAULT_GROUP_POLICY",
    "GroupPolicy",
    "choose_opponent_positions",
    "choose_opponents",
    "contender_opponent",
    "contender_pair",
    "contender_series",
    "contender_values",
    "contention",
    "group_leader",
    "leader_confidence",
    "leader_settled",
    "next_contender",
    "pair_values",
    "wants_group_duel",
]


@dataclass(frozen=True)
class GroupPolicy:
    """When a group's best photo counts as found, and how group duels are drawn."""

    #: how sure we must be that no member beats the leader by more than the margin.
    confidence: float = 0.9
    #: the indifference zone, in beta: members closer than this to the leader are equally good answers
    #: (0.25: 57:43 duel odds, the featured boundary's margin; bench/results/group_settling.md measured
    #: 0.1 at 1.3-2.1x the votes and under 90% within its zone, 0.5 at 0.55-0.79x for a 64:36 zone).
    margin: float = 0.25
    #: the leader's own evidence, as for featuring a photo (`PHOTODUEL_FEATURED_MIN_VOTES` / `_MAX_SIGMA`).
    min_votes: int = 10
    max_sigma: float = 3.0
    #: chance, times the anchor's contention, that its opponent comes from its group.
    group_duels: float = 1.0
    #: softmax temperature on the log of the pair value (as `MatchPolicy.temperature`).
    temperature: float = 0.5

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1 or self.margin < 0 or self.min_votes < 0 or self.max_sigma <= 0:
            raise ValueError(f"invalid GroupPolicy: {self!r}")
        if not 0 <= self.group_duels <= 1 or self.temperature < 0:
            raise ValueError(f"invalid GroupPolicy: {self!r}")


DEFAULT_GROUP_POLICY = GroupPolicy()


def group_leader(mu: np.ndarray, sigma: np.ndarray, env: RatingEnv) -> int:
    """Index of the member with the highest conservative skill (the first of equals)."""
    if len(mu) == 0:
        raise ValueError("a group has members")
    return int(np.argmax(np.asarray(mu) - env.k * np.asarray(sigma)))


def _beaten_by(mu: np.ndarray, sigma: np.ndarray, leader: int, margin: float) -> np.ndarray:
    """P(s_j > s_leader + margin) for each member (0 for the leader itself)."""
    spread = np.sqrt(sigma * sigma + sigma[leader] ** 2)
    p: np.ndarray = _cdf((mu - mu[leader] - margin) / spread)
    p[leader] = 0.0
    return p


def leader_confidence(
    mu: np.ndarray, sigma: np.ndarray, env: RatingEnv, policy: GroupPolicy = DEFAULT_GROUP_POLICY
) -> float:
    """The lower bound ``prod_j P(s_leader + margin > s_j)`` that the leader is the group's best."""
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    leader = group_leader(mu, sigma, env)
    return float(np.prod(1.0 - _beaten_by(mu, sigma, leader, policy.margin * env.beta)))


def leader_settled(
    mu: np.ndarray,
    sigma: np.ndarray,
    votes: np.ndarray,
    env: RatingEnv,
    policy: GroupPolicy = DEFAULT_GROUP_POLICY,
) -> bool:
    """Whether the group's best is found: the leader rated enough, and the confidence reached.
    A group of one is settled as soon as its photo is."""
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    leader = group_leader(mu, sigma, env)
    if votes[leader] < policy.min_votes or sigma[leader] > policy.max_sigma:
        return False
    return leader_confidence(mu, sigma, env, policy) >= policy.confidence


def contention(
    mu: np.ndarray, sigma: np.ndarray, env: RatingEnv, policy: GroupPolicy = DEFAULT_GROUP_POLICY
) -> np.ndarray:
    """Each member's weight in [0, 1] for the question "is the leader the best?" (module docstring)."""
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    leader = group_leader(mu, sigma, env)
    p = _beaten_by(mu, _removable(sigma, _sigma_floor(env)), leader, policy.margin * env.beta)
    weight: np.ndarray = 4.0 * p * (1.0 - p)
    weight[leader] = float(weight.max()) if len(weight) > 1 else 0.0
    return weight


def pair_values(mu: np.ndarray, sigma: np.ndarray, weight: np.ndarray, env: RatingEnv) -> np.ndarray:
    """The (m, m) matrix of duel values between members: both photos' weighted expected variance
    reduction, ``(w_i var_i**2 + w_j var_j**2) * F(t) / c**2`` as in `gaming.matchmaking`; 0 on the diagonal."""
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    var = sigma * sigma
    info = _information(mu[:, None], var[:, None], mu[None, :], var[None, :], env)
    own = weight * var * var
    values: np.ndarray = (own[:, None] + own[None, :]) * info
    np.fill_diagonal(values, 0.0)
    return values


def contender_values(mu: np.ndarray, sigma: np.ndarray, env: RatingEnv, policy: GroupPolicy = DEFAULT_GROUP_POLICY
                     ) -> np.ndarray:
    """A group's :func:`pair_values` weighted by :func:`contention`: what every group draw is by. Computed
    once per group and draw, as it is (m, m)."""
    return pair_values(mu, sigma, contention(mu, sigma, env, policy), env)


def contender_pair(
    mu: np.ndarray, sigma: np.ndarray, env: RatingEnv, rng: random.Random, policy: GroupPolicy = DEFAULT_GROUP_POLICY
) -> tuple[int, int] | None:
    """The duel inside the group that does most for its open question, drawn by a softmax over pair
    values; None when the group has fewer than two members or nothing left to learn."""
    if len(mu) < 2:
        return None
    values = contender_values(mu, sigma, env, policy)
    upper = np.triu_indices(len(mu), k=1)
    flat = values[upper]
    if not np.any(flat > 0):
        return None
    pick = sample_by_score(flat, rng, policy.temperature)
    return int(upper[0][pick]), int(upper[1][pick])


def contender_opponent(
    mu: np.ndarray,
    sigma: np.ndarray,
    anchor: int,
    eligible: np.ndarray,
    env: RatingEnv,
    rng: random.Random,
    policy: GroupPolicy = DEFAULT_GROUP_POLICY,
) -> int | None:
    """The anchor's opponent inside its group: a member where ``eligible`` (the caller's duel rules: other
    owners, not a near-duplicate, not judged by this player), drawn by the softmax over the anchor's row
    of :func:`pair_values`, i.e. :func:`contender_pair`'s draw given that the anchor is in the pair. None
    when no eligible member has anything left to learn against it."""
    eligible = np.asarray(eligible, dtype=bool).copy()
    eligible[anchor] = False
    if len(mu) < 2 or not eligible.any():
        return None
    row = contender_values(mu, sigma, env, policy)[anchor]
    members = np.flatnonzero(eligible & (row > 0))
    if not len(members):
        return None
    return int(members[sample_by_score(row[members], rng, policy.temperature)])


def next_contender(
    values: np.ndarray,
    chosen: Sequence[int],
    eligible: np.ndarray,
    rng: random.Random,
    policy: GroupPolicy = DEFAULT_GROUP_POLICY,
) -> int | None:
    """One more member for a series that holds ``chosen``: among ``eligible`` members not in it, drawn by
    the softmax over each one's summed pair values with those already in. ``values``: the group's
    :func:`contender_values`, which the caller computes once for all the members it adds (the ratings do
    not change while a series is drawn). None when none is eligible."""
    rest = [i for i in np.flatnonzero(np.asarray(eligible, dtype=bool)).tolist() if i not in chosen]
    if not rest or not chosen:
        return None
    gain = values[np.ix_(rest, list(chosen))].sum(axis=1)
    return int(rest[sample_by_score(np.maximum(gain, 1e-300), rng, policy.temperature)])


def contender_series(
    mu: np.ndarray,
    sigma: np.ndarray,
    size: int,
    env: RatingEnv,
    rng: random.Random,
    policy: GroupPolicy = DEFAULT_GROUP_POLICY,
) -> list[int] | None:
    """Up to ``size`` members for a series: the best pair (:func:`contender_pair`), then one member at a
    time by :func:`next_contender`."""
    pair = contender_pair(mu, sigma, env, rng, policy)
    if pair is None:
        return None
    chosen = list(pair)
    everyone = np.ones(len(mu), dtype=bool)
    values = contender_values(mu, sigma, env, policy)
    while len(chosen) < min(size, len(mu)):
        member = next_contender(values, chosen, everyone, rng, policy)
        assert member is not None  # members are left while the series is smaller than the group
        chosen.append(member)
    return chosen


def wants_group_duel(anchor_contention: float, rng: random.Random, policy: GroupPolicy = DEFAULT_GROUP_POLICY) -> bool:
    """Whether the anchor's opponent should come from its own unsettled group: the likelier the more
    the anchor is in contention, so group duels fade as the group settles (the caller skips settled
    groups and groups of one)."""
    return policy.group_duels > 0 and rng.random() < policy.group_duels * min(max(anchor_contention, 0.0), 1.0)


def choose_opponent_positions(
    anchor: RatedPhoto,
    candidates: Sequence[tuple[RatedPhoto, float]],
    count: int,
    boundary: float,
    env: RatingEnv,
    rng: random.Random,
    *,
    policy: MatchPolicy = DEFAULT_POLICY,
) -> list[int]:
    """Up to ``count`` distinct opponents for a series around ``anchor``, drawn one by one without
    replacement from ``(photo, similarity)`` candidates by `gaming.matchmaking.candidate_scores`
    (the caller filters as for a duel): their positions in ``candidates``, in the order drawn, so a
    caller that keeps its own index per candidate needs no lookup back from the photo."""
    if count < 1 or not candidates:
        return []
    scores = candidate_scores(anchor, candidates, boundary, env, policy)
    left = list(range(len(candidates)))
    chosen: list[int] = []
    while left and len(chosen) < count:
        at = sample_by_score(scores[left], rng, policy.temperature)
        chosen.append(left.pop(at))
    return chosen


def choose_opponents(
    anchor: RatedPhoto,
    candidates: Sequence[tuple[RatedPhoto, float]],
    count: int,
    boundary: float,
    env: RatingEnv,
    rng: random.Random,
    *,
    policy: MatchPolicy = DEFAULT_POLICY,
) -> list[RatedPhoto]:
    """:func:`choose_opponent_positions`' draw, as the photos themselves."""
    positions = choose_opponent_positions(anchor, candidates, count, boundary, env, rng, policy=policy)
    return [candidates[k][0] for k in positions]

