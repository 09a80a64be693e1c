"""A photographer's private series: their own photos of one similarity group, ranked by their own duels.

Pure math, no I/O. The owner's verdicts are kept in a log of their own (`storage.series_votes`), never in
the public vote log, so they cannot move a public rating. Their ranking is a projection of that log,
computed when it is read: each photo starts at the model's prior (`gaming.ratings.prior_rating` of its
quality score, so with no verdict yet the ranking is the model's), then every verdict in log order is the
duel's TrueSkill update (:func:`replay`). A series is a handful of photos and a person's verdicts on them,
so replaying them costs milliseconds and needs no writer of its own. The rank is by conservative skill,
as every public list of photos is (:func:`ranks`).

Which two photos to compare next: the pair whose verdict does most for "which is my best?", by the
public groups' rule (`gaming.contenders.pair_values` with contention weights), among pairs the owner has
not judged yet (one verdict per pair, as for public duels); when no pair has anything left to learn the
most uncertain open pair still serves, since the owner asked (:func:`private_pair`).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

import numpy as np

from gaming.contenders import DEFAULT_GROUP_POLICY, GroupPolicy, contention, pair_values
from gaming.matchmaking import sample_by_score
from gaming.ratings import Outcome, Rating, RatingEnv, conservative_skill, rate_duel

__all__ = ["private_pair", "ranks", "replay"]

K = TypeVar("K", bound=Hashable)


def replay(priors: Mapping[K, Rating], verdicts: Iterable[tuple[K, K, Outcome]], env: RatingEnv) -> dict[K, Rating]:
    """Each photo's private rating after the owner's verdicts ``(left, right, outcome)`` in order; a
    verdict about a photo no longer in the series is passed over."""
    ratings = dict(priors)
    for left, right, outcome in verdicts:
        if left in ratings and right in ratings:
            ratings[left], ratings[right] = rate_duel(ratings[left], ratings[right], outcome, env)
    return ratings


def ranks(ratings: Mapping[K, Rating], env: RatingEnv) -> dict[K, int]:
    """Each photo's place in the series, 1 the best, by conservative skill (then mu; the listing order of
    ``ratings`` breaks exact ties)."""
    order = sorted(enumerate(ratings.items()),
                   key=lambda item: (-conservative_skill(item[1][1], env), -item[1][1].mu, item[0]))
    return {key: place for place, (_, (key, _)) in enumerate(order, start=1)}


def private_pair(
    mu: np.ndarray,
    sigma: np.ndarray,
    open_pairs: np.ndarray,
    env: RatingEnv,
    rng: random.Random,
    policy: GroupPolicy = DEFAULT_GROUP_POLICY,
) -> tuple[int, int] | None:
    """The next two photos to compare (i < j), drawn among ``open_pairs`` (an (m, m) boolean matrix, the
    pairs not judged yet) by the softmax over the pair values; when every open pair's value is nil, the
    open pair with the largest summed variance. None when no pair is open."""
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    upper = np.triu_indices(len(mu), k=1)
    allowed = np.asarray(open_pairs, dtype=bool)[upper]
    if not allowed.any():
        return None
    values = pair_values(mu, sigma, contention(mu, sigma, env, policy), env)[upper][allowed]
    lefts, rights = upper[0][allowed], upper[1][allowed]
    if np.any(values > 0):
        pick = sample_by_score(values, rng, policy.temperature)
    else:
        pick = int(np.argmax(sigma[lefts] ** 2 + sigma[rights] ** 2))
    return int(lefts[pick]), int(rights[pick])
