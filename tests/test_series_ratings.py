"""gaming.series: a pick among several photos and a full order, rated on the duel's TrueSkill model."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import trueskill

from gaming.celebrity import CelebrityOffset
from gaming.ratings import Outcome, Rating, RatingEnv, rate_duel
from gaming.series import MAX_SERIES, pick_ranks, rate_order, rate_pick
from gaming.vote_weights import partial_update

ENV = RatingEnv()
# rate_duel runs trueskill's default normal functions (erfc to ~1e-7, ~1e-5 in mu); gaming.series the exact ones.
CLOSE = 1e-4


def _random_series(rng: random.Random, size: int) -> list[Rating]:
    return [Rating(rng.uniform(10, 40), rng.uniform(0.8, ENV.sigma)) for _ in range(size)]


def _close(a: Rating, b: Rating, tol: float = CLOSE) -> bool:
    return abs(a.mu - b.mu) < tol and abs(a.sigma - b.sigma) < tol


# --- two photos are a duel ----------------------------------------------------------------------------------


def test_a_pick_between_two_is_the_duel_vote_for_the_picked_photo() -> None:
    rng = random.Random(1)
    for _ in range(200):
        left, right = _random_series(rng, 2)
        for winner, outcome in ((0, Outcome.LEFT), (1, Outcome.RIGHT)):
            duel = rate_duel(left, right, outcome, ENV)
            assert all(map(_close, rate_pick([left, right], winner, ENV), duel))
            assert all(map(_close, rate_order([left, right], list(pick_ranks(2, winner)), ENV), duel))


def test_an_order_is_trueskills_free_for_all_iterated_to_convergence() -> None:
    exact = trueskill.TrueSkill(mu=ENV.mu, sigma=ENV.sigma, beta=ENV.beta, tau=ENV.tau,
                                draw_probability=ENV.draw_probability, backend="scipy")
    rng = random.Random(9)
    for _ in range(25):
        before = _random_series(rng, rng.randrange(3, 6))
        ranks = list(range(len(before)))
        rng.shuffle(ranks)
        ref = exact.rate([(exact.create_rating(r.mu, r.sigma),) for r in before], ranks=ranks, min_delta=1e-9)
        assert all(_close(a, Rating(b.mu, b.sigma), 1e-8) for a, (b,) in zip(rate_order(before, ranks, ENV), ref,
                                                                            strict=True))


def test_an_order_of_two_tied_is_a_draw() -> None:
    rng = random.Random(2)
    for _ in range(100):
        left, right = _random_series(rng, 2)
        assert all(map(_close, rate_order([left, right], [0, 0], ENV), rate_duel(left, right, Outcome.DRAW, ENV)))


# --- a pick -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 4, 5, MAX_SERIES])
def test_a_pick_moves_the_winner_up_and_every_other_photo_down(size: int) -> None:
    rng = random.Random(size)
    for _ in range(100):
        before = _random_series(rng, size)
        winner = rng.randrange(size)
        after = rate_pick(before, winner, ENV)
        for i, (old, new) in enumerate(zip(before, after, strict=True)):
            assert (new.mu > old.mu) if i == winner else (new.mu < old.mu)
            assert new.sigma < math.hypot(old.sigma, ENV.tau)  # a vote only ever adds certainty
            assert math.isfinite(new.mu) and new.sigma > 0


def test_a_pick_is_the_posterior_of_one_winner_above_the_others() -> None:
    """Expectation propagation against the exact posterior (Monte Carlo, 400,000 draws): the model is
    "the winner's performance beats each other photo's by the draw margin", nothing about the others."""
    before = [Rating(24.0, 4.0), Rating(27.0, 3.0), Rating(22.0, 6.0), Rating(25.0, 2.0)]
    after = rate_pick(before, 0, ENV)
    rng = np.random.default_rng(7)
    mu = np.array([r.mu for r in before])
    sd = np.sqrt(np.array([r.sigma for r in before]) ** 2 + ENV.tau**2)
    skill = mu + sd * rng.standard_normal((400_000, len(before)))
    perf = skill + ENV.beta * rng.standard_normal(skill.shape)
    kept = skill[np.all(perf[:, :1] - perf[:, 1:] > ENV.draw_margin, axis=1)]
    assert len(kept) > 50_000
    for i, rating in enumerate(after):
        assert rating.mu == pytest.approx(kept[:, i].mean(), abs=0.1)
        assert rating.sigma == pytest.approx(kept[:, i].std(), abs=0.1)


def test_a_pick_says_nothing_about_the_others_but_trueskills_ties_pull_them_together() -> None:
    """Ranks [0, 1, 1, 1] make trueskill chain draws between the others, evidence the player never gave."""
    before = [Rating(25.0, 5.0), Rating(20.0, 5.0), Rating(25.0, 5.0), Rating(30.0, 5.0)]
    pick = rate_pick(before, 0, ENV)
    ties = rate_order(before, list(pick_ranks(4, 0)), ENV)
    # the pick: 10 -> 7.8 (the 30 lost an upset, so it falls most); the ties: 10 -> 4.1
    assert pick[3].mu - pick[1].mu > 0.7 * (before[3].mu - before[1].mu)
    assert ties[3].mu - ties[1].mu < 0.5 * (before[3].mu - before[1].mu)
    for i in (1, 2, 3):
        assert pick[i].sigma > ties[i].sigma


def test_equal_photos_that_were_not_picked_stay_equal() -> None:
    after = rate_pick([Rating(25.0, 4.0)] * 5, 2, ENV)
    others = [after[i] for i in (0, 1, 3, 4)]
    assert all(_close(r, others[0], 1e-9) for r in others)


def test_more_photos_beaten_is_more_evidence_for_the_winner() -> None:
    gains = [rate_pick([Rating(25.0, 5.0)] * size, 0, ENV)[0] for size in range(2, MAX_SERIES + 1)]
    assert all(b.mu > a.mu and b.sigma < a.sigma for a, b in itertools.pairwise(gains))


# --- a full order -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 4, 5])
def test_a_full_order_ranks_equal_photos_in_that_order(size: int) -> None:
    ranks = list(range(size))
    random.Random(size).shuffle(ranks)
    after = rate_order([Rating(25.0, 5.0)] * size, ranks, ENV)
    by_place = [after[ranks.index(place)].mu for place in range(size)]
    assert all(a > b for a, b in itertools.pairwise(by_place))
    assert by_place[0] > 25.0 > by_place[-1]


def test_places_need_not_be_consecutive_only_their_order_counts() -> None:
    before = _random_series(random.Random(3), 4)
    assert rate_order(before, [7, 2, 9, 2], ENV) == rate_order(before, [1, 0, 2, 0], ENV)


def test_tied_photos_end_together_between_their_neighbours_and_all_tied_moves_no_mu() -> None:
    """A tie is trueskill's: a chain of draws, so the tied photo next to the one above sits a hair lower
    than the one next to the one below (here 0.015 apart), but both are far from either neighbour."""
    after = rate_order([Rating(25.0, 5.0)] * 4, [0, 1, 1, 2], ENV)
    assert abs(after[1].mu - after[2].mu) < 0.05 and after[1].sigma == pytest.approx(after[2].sigma)
    assert after[0].mu > max(after[1].mu, after[2].mu) + 2 > min(after[1].mu, after[2].mu) > after[3].mu + 2
    tied = rate_order([Rating(25.0, 5.0)] * 4, [0, 0, 0, 0], ENV)
    assert all(r.mu == pytest.approx(25.0, abs=1e-9) and r.sigma < 5.0 for r in tied)


def test_a_full_order_mirrors_when_skills_and_places_are_mirrored() -> None:
    """Reversing the order of photos whose skills are reflected around the mean reflects the result."""
    rng = random.Random(4)
    for _ in range(50):
        before = _random_series(rng, 4)
        ranks = [rng.randrange(3) for _ in before]
        mirrored = [Rating(2 * ENV.mu - r.mu, r.sigma) for r in before]
        a = rate_order(before, ranks, ENV)
        b = rate_order(mirrored, [max(ranks) - r for r in ranks], ENV)
        for x, y in zip(a, b, strict=True):
            assert x.mu == pytest.approx(2 * ENV.mu - y.mu, abs=1e-6)
            assert x.sigma == pytest.approx(y.sigma, abs=1e-6)


# --- symmetry, weights, celebrities, limits ---------------------------------------------------------------


def test_the_order_the_photos_are_listed_in_does_not_matter() -> None:
    rng = random.Random(5)
    for _ in range(50):
        before = _random_series(rng, 5)
        winner, ranks = rng.randrange(5), [rng.randrange(4) for _ in range(5)]
        perm = list(range(5))
        rng.shuffle(perm)
        pick, order = rate_pick(before, winner, ENV), rate_order(before, ranks, ENV)
        shuffled = [before[i] for i in perm]
        pick_p = rate_pick(shuffled, perm.index(winner), ENV)
        order_p = rate_order(shuffled, [ranks[i] for i in perm], ENV)
        for k, i in enumerate(perm):
            assert _close(pick_p[k], pick[i], 1e-9)
            assert _close(order_p[k], order[i], 1e-9)


def test_weight_zero_changes_nothing_and_a_partial_weight_takes_its_share() -> None:
    before = _random_series(random.Random(6), 4)
    assert rate_pick(before, 1, ENV, weight=0.0) == tuple(before)
    assert rate_order(before, [3, 2, 1, 0], ENV, weight=0.0) == tuple(before)
    full = rate_pick(before, 1, ENV)
    assert rate_pick(before, 1, ENV, weight=1.0) == full
    half = rate_pick(before, 1, ENV, weight=0.5)
    assert half == tuple(partial_update(b, f, 0.5) for b, f in zip(before, full, strict=True))
    with pytest.raises(ValueError):
        rate_pick(before, 1, ENV, weight=1.5)


@pytest.mark.parametrize("winner", [0, 1])
def test_the_celebrity_offset_acts_as_in_a_duel(winner: int) -> None:
    celebrity, other = Rating(27.0, 3.0), Rating(25.0, 4.0)
    outcome = Outcome.LEFT if winner == 0 else Outcome.RIGHT
    duel = rate_duel(celebrity, other, outcome, ENV, left_celebrity=True, adjustment=CelebrityOffset(3.0))
    series = rate_pick([celebrity, other], winner, ENV, celebrity=[True, False], celebrity_offset=3.0)
    assert all(map(_close, series, duel))


def test_the_offset_only_acts_on_a_series_that_mixes_celebrities_and_others() -> None:
    before = _random_series(random.Random(8), 4)
    plain = rate_pick(before, 2, ENV)
    for flags in ([True] * 4, [False] * 4):
        assert rate_pick(before, 2, ENV, celebrity=flags, celebrity_offset=3.0) == plain
    mixed = rate_pick(before, 2, ENV, celebrity=[True, False, False, True], celebrity_offset=3.0)
    assert mixed != plain
    # as if the celebrities were 3 better for the vote, then 3 taken off again
    shown = [Rating(r.mu + (3.0 if c else 0.0), r.sigma) for r, c in zip(before, [1, 0, 0, 1], strict=True)]
    for m, s, c in zip(mixed, rate_pick(shown, 2, ENV), [1, 0, 0, 1], strict=True):
        assert _close(m, Rating(s.mu - (3.0 if c else 0.0), s.sigma), 1e-9)


def test_an_extreme_upset_stays_finite() -> None:
    """Where trueskill's default functions raise FloatingPointError, the series update keeps going."""
    before = [Rating(0.0, 1.0), Rating(60.0, 1.0), Rating(55.0, 0.9), Rating(70.0, 0.8)]
    for after in (rate_pick(before, 0, ENV), rate_order(before, [0, 1, 2, 3], ENV)):
        assert all(math.isfinite(r.mu) and 0 < r.sigma <= 1.01 for r in after)
        assert after[0].mu > before[0].mu and after[3].mu < before[3].mu


def test_bad_series_are_refused() -> None:
    two = [Rating(25.0, 5.0)] * 2
    with pytest.raises(ValueError):
        rate_pick(two[:1], 0, ENV)
    with pytest.raises(ValueError):
        rate_pick([Rating(25.0, 5.0)] * (MAX_SERIES + 1), 0, ENV)
    with pytest.raises(ValueError):
        rate_pick(two, 2, ENV)
    for ranks in ([0], [0, -1], [0, 1.0]):
        with pytest.raises(ValueError):
            rate_order(two, ranks, ENV)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rate_pick(two, 0, ENV, celebrity=[True], celebrity_offset=1.0)
    with pytest.raises(ValueError):
        rate_pick(two, 0, ENV, celebrity_offset=math.nan)
    assert pick_ranks(3, 1) == (1, 0, 1)
