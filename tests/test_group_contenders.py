"""gaming.contenders: a similarity group's leader, when it is settled, and who duels whom meanwhile."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from gaming.contenders import (
    DEFAULT_GROUP_POLICY,
    GroupPolicy,
    choose_opponents,
    contender_pair,
    contender_series,
    contention,
    group_leader,
    leader_confidence,
    leader_settled,
    pair_values,
    wants_group_duel,
)
from gaming.matchmaking import MatchPolicy, RatedPhoto, _fisher, _sigma_floor, opponent_scores
from gaming.ratings import Outcome, Rating, RatingEnv, rate_duel

ENV = RatingEnv()
MARGIN = DEFAULT_GROUP_POLICY.margin * ENV.beta


def arrays(*ratings: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([m for m, _ in ratings]), np.array([s for _, s in ratings])


# --- the leader and its confidence --------------------------------------------------------------------------


def test_the_leader_is_the_highest_conservative_skill_not_the_highest_mu() -> None:
    mu, sigma = arrays((30.0, 1.0), (33.0, 3.0), (20.0, 0.5))
    assert group_leader(mu, sigma, ENV) == 0  # 27 against 24
    assert group_leader(*arrays((25.0, 2.0), (25.0, 2.0)), ENV) == 0  # the first of equals
    with pytest.raises(ValueError):
        group_leader(np.array([]), np.array([]), ENV)


def test_confidence_is_near_one_for_a_clear_leader_and_low_for_a_close_race() -> None:
    assert leader_confidence(*arrays((35.0, 1.0), (25.0, 1.0), (20.0, 1.0)), ENV) > 0.999
    close = leader_confidence(*arrays((26.0, 2.0), (25.5, 2.0)), ENV)
    assert 0.3 < close < 0.9
    # no lower than the gap allows: within the indifference margin, equals at a small sigma count as found
    assert leader_confidence(*arrays((25.0, 0.3), (25.0, 0.3)), ENV) > 0.99


def test_confidence_is_at_most_the_runner_ups_and_falls_with_every_contender() -> None:
    two = leader_confidence(*arrays((28.0, 1.5), (26.0, 1.5)), ENV)
    three = leader_confidence(*arrays((28.0, 1.5), (26.0, 1.5), (26.0, 1.5)), ENV)
    assert three == pytest.approx(two * two)
    assert three < two


def test_settled_needs_the_leaders_votes_its_sigma_and_the_confidence() -> None:
    mu, sigma = arrays((35.0, 1.5), (25.0, 1.5))
    assert leader_settled(mu, sigma, np.array([10, 10]), ENV)
    assert not leader_settled(mu, sigma, np.array([9, 30]), ENV)  # the leader itself is short of votes
    assert not leader_settled(*arrays((35.0, 3.5), (15.0, 1.5)), np.array([20, 20]), ENV)  # sigma too high
    assert not leader_settled(*arrays((27.0, 1.5), (26.0, 1.5)), np.array([20, 20]), ENV)  # a close race
    assert leader_settled(*arrays((25.0, 2.0)), np.array([10]), ENV)  # a group of one: its photo is settled
    strict = GroupPolicy(confidence=0.999)
    assert not leader_settled(*arrays((30.0, 1.5), (25.0, 1.5)), np.array([20, 20]), ENV, strict)
    assert leader_settled(*arrays((30.0, 1.5), (25.0, 1.5)), np.array([20, 20]), ENV)


def test_policy_rejects_impossible_settings() -> None:
    for bad in ({"confidence": 1.0}, {"confidence": 0.4}, {"margin": -1.0}, {"group_duels": 1.5},
                {"temperature": -1.0}, {"max_sigma": 0.0}):
        with pytest.raises(ValueError):
            GroupPolicy(**bad)  # type: ignore[arg-type]


# --- contention ---------------------------------------------------------------------------------------------


def test_contention_is_high_for_a_close_rival_and_vanishes_for_a_hopeless_one() -> None:
    weight = contention(*arrays((28.0, 3.0), (28.5, 3.0), (10.0, 1.0)), ENV)
    leader, rival = 1, 0  # conservative 19.5 against 19.0
    assert weight[rival] > 0.5
    assert weight[2] < 1e-6
    assert weight[leader] == pytest.approx(weight[rival])  # the leader's is its most contested member's
    assert np.all((weight >= 0) & (weight <= 1))


def test_contention_fades_at_the_tau_floor_where_votes_cannot_separate_equals() -> None:
    floor = _sigma_floor(ENV)
    fresh = contention(*arrays((25.0, 3.0), (25.0, 3.0)), ENV)
    worn = contention(*arrays((25.0, floor * 1.01), (25.0, floor * 1.01)), ENV)
    assert fresh[1] > 0.3 and worn[1] < 1e-3


def test_a_single_photo_has_no_contention_and_no_pair() -> None:
    mu, sigma = arrays((25.0, 4.0))
    assert contention(mu, sigma, ENV).tolist() == [0.0]
    assert contender_pair(mu, sigma, ENV, random.Random(1)) is None
    assert contender_series(mu, sigma, 4, ENV, random.Random(1)) is None


def test_pair_values_are_matchmakings_pair_values_with_contention_as_the_weight() -> None:
    mu, sigma = arrays((28.0, 3.0), (26.0, 2.0), (20.0, 4.0))
    weight = np.array([0.7, 0.4, 0.1])
    values = pair_values(mu, sigma, weight, ENV)
    assert np.allclose(values, values.T) and np.all(np.diag(values) == 0)
    var, c2 = sigma**2, 2 * ENV.beta**2 + sigma[0] ** 2 + sigma[1] ** 2
    t = (mu[0] - mu[1]) / np.sqrt(c2)
    expected = (weight[0] * var[0] ** 2 + weight[1] * var[1] ** 2) * _fisher(np.array([t]))[0] / c2
    assert values[0, 1] == pytest.approx(expected)


# --- who duels whom -----------------------------------------------------------------------------------------


def test_contender_pairs_are_mostly_between_the_leader_and_its_close_rivals() -> None:
    mu, sigma = arrays((28.0, 2.5), (27.0, 2.5), (26.5, 3.0), (15.0, 2.0), (12.0, 2.0))
    rng = random.Random(3)
    counts = Counter(contender_pair(mu, sigma, ENV, rng) for _ in range(2000))
    top = sum(n for pair, n in counts.items() if pair is not None and set(pair) <= {0, 1, 2})
    assert top / 2000 > 0.95
    assert all(pair is not None and pair[0] < pair[1] for pair in counts)


def test_a_group_with_nothing_left_to_learn_gives_no_pair() -> None:
    floor = _sigma_floor(ENV)
    mu, sigma = arrays((40.0, floor), (20.0, floor), (10.0, floor))
    assert contender_pair(mu, sigma, ENV, random.Random(0)) is None


def test_a_contender_series_is_distinct_members_up_to_its_size() -> None:
    mu, sigma = arrays((28.0, 2.5), (27.0, 2.5), (26.5, 3.0), (15.0, 2.0), (12.0, 2.0), (26.0, 4.0))
    rng = random.Random(4)
    for size in (2, 3, 4, 8):
        for _ in range(50):
            series = contender_series(mu, sigma, size, ENV, rng)
            assert series is not None and len(series) == min(size, 6) and len(set(series)) == len(series)
    firsts = Counter(frozenset(contender_series(mu, sigma, 3, ENV, rng) or []) for _ in range(500))
    assert firsts.most_common(1)[0][0] <= {0, 1, 2, 5}


def test_contender_duels_find_the_best_faster_than_random_pairs() -> None:
    """The point of the scoring, in miniature (bench/ranking_sim.py --groups measures it): six photos, the
    best clearly ahead of one rival and the rest far behind; votes by the true skills."""
    true = np.array([30.0, 28.0, 20.0, 19.0, 18.0, 17.0])

    def votes_to_settle(choose: str, seed: int) -> tuple[int, bool]:
        rng, vote_rng = random.Random(seed), np.random.default_rng(seed)
        mu, sigma, votes = np.full(6, 25.0), np.full(6, 5.0), np.zeros(6, dtype=int)
        for n in range(2000):
            if leader_settled(mu, sigma, votes, ENV):
                return n, group_leader(mu, sigma, ENV) == 0
            pair = contender_pair(mu, sigma, ENV, rng) if choose == "contender" else tuple(rng.sample(range(6), 2))
            assert pair is not None
            i, j = pair
            p = 1 / (1 + np.exp(-(true[i] - true[j]) / (np.sqrt(2) * ENV.beta) * 1.7))
            outcome = Outcome.LEFT if vote_rng.random() < p else Outcome.RIGHT
            a, b = rate_duel(Rating(mu[i], sigma[i]), Rating(mu[j], sigma[j]), outcome, ENV)
            mu[[i, j]], sigma[[i, j]] = [a.mu, b.mu], [a.sigma, b.sigma]
            votes[[i, j]] += 1
        return 2000, False

    contender = sorted(votes_to_settle("contender", s) for s in range(12))
    uniform = sorted(votes_to_settle("random", s) for s in range(12))
    assert contender[6][0] < uniform[6][0]
    # 90% sure each time: right in most groups (2 wrong of 12 each with these seeds; medians 25 and 58 votes)
    assert sum(right for _, right in contender) >= 10 and sum(right for _, right in uniform) >= 10


def test_group_duels_follow_the_anchors_contention() -> None:
    rng = random.Random(5)
    assert not any(wants_group_duel(0.0, rng) for _ in range(500))
    assert all(wants_group_duel(1.0, rng) for _ in range(500))
    share = sum(wants_group_duel(0.3, rng) for _ in range(4000)) / 4000
    assert share == pytest.approx(0.3, abs=0.03)
    assert not any(wants_group_duel(1.0, rng, GroupPolicy(group_duels=0.0)) for _ in range(100))


def test_series_opponents_are_distinct_and_drawn_by_the_duel_scores() -> None:
    anchor = RatedPhoto("a", Rating(25.0, 4.0), 10, "o-a", None)
    cands = [(RatedPhoto(str(i), Rating(25.0 + i, 3.0 + i % 3), 10, f"o{i}", None), 0.9) for i in range(8)]
    rng = random.Random(6)
    for count in (1, 3, 8, 12):
        got = choose_opponents(anchor, cands, count, 25.0, ENV, rng)
        assert len(got) == min(count, 8) and len({p.id for p in got}) == len(got)
    assert choose_opponents(anchor, [], 3, 25.0, ENV, rng) == []
    # with temperature 0 the series is the best duels in order of their scores
    greedy = MatchPolicy(temperature=0.0)
    scores = opponent_scores(25.0, 4.0, np.array([p.rating.mu for p, _ in cands]),
                             np.array([p.rating.sigma for p, _ in cands]), np.full(8, 0.9), 25.0, ENV, greedy)
    best = [cands[i][0].id for i in np.argsort(-scores)[:3]]
    assert [p.id for p in choose_opponents(anchor, cands, 3, 25.0, ENV, rng, policy=greedy)] == best
