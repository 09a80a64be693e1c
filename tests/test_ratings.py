"""gaming.ratings: the TrueSkill update, the model prior, the celebrity hook and the 1-10 score."""

from __future__ import annotations

import dataclasses
import itertools
import math
import pickle
import random

import numpy as np
import pytest
import trueskill

from bench.sim_core import DRAW, LEFT, RIGHT, ts_update
from gaming.ratings import (
    Outcome,
    PreparedDuel,
    Rating,
    RatingEnv,
    conservative_skill,
    match_quality,
    prior_rating,
    rate_duel,
    score_1_to_10,
    win_probability,
)

ENV = RatingEnv()
# trueskill with exact normal functions: the reference for the closed forms (its default backend
# approximates erfc to ~1e-7, which shows up as ~1e-5 in mu).
EXACT = trueskill.TrueSkill(
    mu=ENV.mu, sigma=ENV.sigma, beta=ENV.beta, tau=ENV.tau, draw_probability=ENV.draw_probability, backend="scipy"
)


def _random_ratings(seed: int, count: int) -> list[tuple[Rating, Rating, Outcome]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        a = Rating(rng.uniform(5, 45), rng.uniform(0.5, ENV.sigma))
        b = Rating(rng.uniform(5, 45), rng.uniform(0.5, ENV.sigma))
        out.append((a, b, rng.choice(list(Outcome))))
    return out


# --- environment and prior -----------------------------------------------------------------------------


def test_env_defaults_follow_trueskill_and_build_their_own_trueskill_object() -> None:
    ts = ENV.trueskill()
    assert (ts.mu, ts.sigma, ts.beta, ts.tau, ts.draw_probability) == (25.0, 25 / 3, 25 / 6, 25 / 300, 0.10)
    assert ENV.k == 3.0
    assert RatingEnv().trueskill() is not ts  # per environment, never the global one
    assert ENV.trueskill() is ts  # cached
    # the draw margin is trueskill's epsilon for a 1-vs-1
    assert ENV.draw_margin == pytest.approx(trueskill.calc_draw_margin(0.10, 2, EXACT), abs=1e-9)


def test_env_pickles_and_rejects_impossible_settings() -> None:
    env = RatingEnv(draw_probability=0.2, prior_sigma=4.0)
    again = pickle.loads(pickle.dumps(env))
    assert again == env and again.trueskill().draw_probability == 0.2
    for bad in ({"sigma": 0.0}, {"beta": -1.0}, {"draw_probability": 1.0}, {"prior_sigma": 0.0}, {"score_scale": 0}):
        with pytest.raises(ValueError):
            RatingEnv(**bad)


def test_prior_without_model_score_is_the_uninformed_prior() -> None:
    assert prior_rating(None, ENV) == Rating(ENV.mu, ENV.sigma)


def test_prior_is_monotonic_in_quality_centred_and_trusts_the_model_by_prior_sigma() -> None:
    mus = [prior_rating(q, ENV).mu for q in np.linspace(0, 1, 101)]
    assert all(b > a for a, b in itertools.pairwise(mus))
    assert prior_rating(0.5, ENV) == Rating(ENV.mu, ENV.prior_sigma)
    assert prior_rating(1.0, ENV).mu - prior_rating(0.0, ENV).mu == pytest.approx(ENV.prior_mu_span)
    assert prior_rating(1.0 + 1e-12, ENV) == prior_rating(1.0, ENV)  # float noise is clamped
    with pytest.raises(ValueError):
        prior_rating(math.nan, ENV)


# --- the update ----------------------------------------------------------------------------------------


def test_left_win_moves_left_up_and_right_down_and_both_become_surer() -> None:
    a, b = Rating(25, 8), Rating(27, 6)
    new_a, new_b = rate_duel(a, b, Outcome.LEFT, ENV)
    assert new_a.mu > a.mu and new_b.mu < b.mu
    assert new_a.sigma < a.sigma and new_b.sigma < b.sigma


def test_right_win_is_the_mirror_of_left_win() -> None:
    a, b = Rating(22, 4), Rating(30, 7)
    l_win = rate_duel(b, a, Outcome.LEFT, ENV)
    r_win = rate_duel(a, b, Outcome.RIGHT, ENV)
    assert r_win == (l_win[1], l_win[0])
    assert r_win[0].mu < a.mu and r_win[1].mu > b.mu


def test_draw_pulls_the_two_together_and_is_symmetric() -> None:
    low, high = Rating(20, 5), Rating(30, 5)
    new_low, new_high = rate_duel(low, high, Outcome.DRAW, ENV)
    assert new_low.mu > low.mu and new_high.mu < high.mu
    assert rate_duel(high, low, Outcome.DRAW, ENV) == (new_high, new_low)
    # between equals, a draw moves nobody's mu
    eq = rate_duel(Rating(25, 5), Rating(25, 5), "DRAW", ENV)  # plain strings are accepted too
    assert eq[0].mu == pytest.approx(25) and eq[1].mu == pytest.approx(25)


def test_upset_moves_more_than_the_expected_result() -> None:
    fav, dog = Rating(30, 4), Rating(20, 4)
    expected = rate_duel(fav, dog, Outcome.LEFT, ENV)
    upset = rate_duel(fav, dog, Outcome.RIGHT, ENV)
    assert abs(upset[0].mu - fav.mu) > 3 * abs(expected[0].mu - fav.mu)


def test_inputs_are_not_mutated_and_results_are_new_objects() -> None:
    a, b = Rating(25, 8), Rating(26, 7)
    before = (dataclasses.replace(a), dataclasses.replace(b))
    new_a, new_b = rate_duel(a, b, Outcome.LEFT, ENV)
    assert (a, b) == before
    assert new_a is not a and new_b is not b
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.mu = 0.0  # type: ignore[misc]


def test_plain_update_is_trueskill_rate_1vs1() -> None:
    ts = ENV.trueskill()
    for a, b, outcome in _random_ratings(1, 200):
        got = rate_duel(a, b, outcome, ENV)
        ra, rb = ts.create_rating(a.mu, a.sigma), ts.create_rating(b.mu, b.sigma)
        if outcome is Outcome.RIGHT:
            wb, wa = trueskill.rate_1vs1(rb, ra, env=ts)
        else:
            wa, wb = trueskill.rate_1vs1(ra, rb, drawn=outcome is Outcome.DRAW, env=ts)
        assert got[0].mu == pytest.approx(wa.mu, abs=1e-9) and got[0].sigma == pytest.approx(wa.sigma, abs=1e-9)
        assert got[1].mu == pytest.approx(wb.mu, abs=1e-9) and got[1].sigma == pytest.approx(wb.sigma, abs=1e-9)


def test_extreme_upset_draw_falls_back_to_the_closed_form() -> None:
    # trueskill's default backend raises FloatingPointError on this draw; the update must not.
    low, high = Rating(-110.0, 0.4), Rating(147.0, 0.4)
    ts = ENV.trueskill()
    with pytest.raises(FloatingPointError):
        trueskill.rate_1vs1(ts.create_rating(-110.0, 0.4), ts.create_rating(147.0, 0.4), drawn=True, env=ts)
    new_low, new_high = rate_duel(low, high, Outcome.DRAW, ENV)
    assert math.isfinite(new_low.mu) and math.isfinite(new_high.mu)
    assert new_low.mu > low.mu and new_high.mu < high.mu
    assert 0 < new_low.sigma <= math.hypot(low.sigma, ENV.tau)


# --- the closed forms (the simulation's vector update and the fallback) match trueskill ---------------


def test_vectorised_closed_form_matches_trueskill_rate_1vs1() -> None:
    cases = _random_ratings(2, 300)
    mu = np.array([x for a, b, _ in cases for x in (a.mu, b.mu)])
    sigma = np.array([x for a, b, _ in cases for x in (a.sigma, b.sigma)])
    left, right = np.arange(0, 2 * len(cases), 2), np.arange(1, 2 * len(cases), 2)
    code = {Outcome.LEFT: LEFT, Outcome.RIGHT: RIGHT, Outcome.DRAW: DRAW}
    outcome = np.array([code[o] for _, _, o in cases])
    new_mu, new_sigma = ts_update(mu, sigma, left, right, outcome, ENV)
    for i, (a, b, o) in enumerate(cases):
        ra, rb = EXACT.create_rating(a.mu, a.sigma), EXACT.create_rating(b.mu, b.sigma)
        if o is Outcome.RIGHT:
            wb, wa = trueskill.rate_1vs1(rb, ra, env=EXACT)
        else:
            wa, wb = trueskill.rate_1vs1(ra, rb, drawn=o is Outcome.DRAW, env=EXACT)
        assert new_mu[2 * i] == pytest.approx(wa.mu, abs=1e-6)
        assert new_sigma[2 * i] == pytest.approx(wa.sigma, abs=1e-6)
        assert new_mu[2 * i + 1] == pytest.approx(wb.mu, abs=1e-6)
        assert new_sigma[2 * i + 1] == pytest.approx(wb.sigma, abs=1e-6)


def test_scalar_closed_form_matches_trueskill_with_partial_play_weights() -> None:
    from gaming.ratings import _rate_closed_form

    rng = random.Random(3)
    ranks = {Outcome.LEFT: [0, 1], Outcome.RIGHT: [1, 0], Outcome.DRAW: [0, 0]}
    for a, b, o in _random_ratings(4, 300):
        wl, wr = rng.choice([1.0, rng.uniform(0.05, 1)]), rng.choice([1.0, rng.uniform(0.05, 1)])
        (ra,), (rb,) = EXACT.rate(
            [(EXACT.create_rating(a.mu, a.sigma),), (EXACT.create_rating(b.mu, b.sigma),)],
            ranks=ranks[o],
            weights=[(wl,), (wr,)],
        )
        got = _rate_closed_form(PreparedDuel(a, b, wl, wr), o, ENV)
        assert got == pytest.approx((ra.mu, ra.sigma, rb.mu, rb.sigma), abs=1e-6)


# --- the celebrity hook --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OffsetAndWeight:
    """A small DuelAdjustment: rate a celebrity photo as mu - offset with a partial-play weight."""

    offset: float
    weight: float
    calls: list[tuple[bool, bool]] = dataclasses.field(default_factory=list)

    def prepare(self, left: Rating, right: Rating, *, left_celebrity: bool, right_celebrity: bool) -> PreparedDuel:
        self.calls.append((left_celebrity, right_celebrity))
        return PreparedDuel(
            left=Rating(left.mu - self.offset, left.sigma) if left_celebrity else left,
            right=Rating(right.mu - self.offset, right.sigma) if right_celebrity else right,
            left_weight=self.weight if left_celebrity else 1.0,
            right_weight=self.weight if right_celebrity else 1.0,
            left_shift=self.offset if left_celebrity else 0.0,
            right_shift=self.offset if right_celebrity else 0.0,
        )


def test_adjustment_sees_the_flags_and_a_neutral_one_changes_nothing() -> None:
    a, b = Rating(28, 5), Rating(24, 6)
    neutral = OffsetAndWeight(offset=0.0, weight=1.0)
    assert rate_duel(a, b, Outcome.LEFT, ENV, left_celebrity=True, adjustment=neutral) == rate_duel(
        a, b, Outcome.LEFT, ENV
    )
    assert neutral.calls == [(True, False)]


def test_adjustment_weights_and_shift_are_applied_as_specified() -> None:
    celeb, other = Rating(30, 5), Rating(26, 5)
    adj = OffsetAndWeight(offset=4.0, weight=0.5)
    new_celeb, new_other = rate_duel(celeb, other, Outcome.LEFT, ENV, left_celebrity=True, adjustment=adj)
    (ref_l,), (ref_r,) = ENV.trueskill().rate(
        [(ENV.trueskill().create_rating(26.0, 5),), (ENV.trueskill().create_rating(26.0, 5),)],
        ranks=[0, 1],
        weights=[(0.5,), (1.0,)],
    )
    assert new_celeb.mu == pytest.approx(ref_l.mu + 4.0) and new_celeb.sigma == pytest.approx(ref_l.sigma)
    assert new_other.mu == pytest.approx(ref_r.mu) and new_other.sigma == pytest.approx(ref_r.sigma)
    # trueskill's partial-play weight scales the photo's performance, mean included: on the default
    # scale (mu ~ 25) a weight of 0.5 makes the photo look like an underdog, so its win earns *more*
    # than a plain win. Adjustments must centre the pair to shrink only the update (see PreparedDuel).
    plain_celeb, _ = rate_duel(celeb, other, Outcome.LEFT, ENV)
    assert new_celeb.mu - celeb.mu > plain_celeb.mu - celeb.mu


def test_a_centred_partial_play_weight_shrinks_the_weighted_photos_update() -> None:
    class Centred:
        def prepare(self, left: Rating, right: Rating, *, left_celebrity: bool, right_celebrity: bool) -> PreparedDuel:
            mid = (left.mu + right.mu) / 2
            return PreparedDuel(
                Rating(left.mu - mid, left.sigma),
                Rating(right.mu - mid, right.sigma),
                left_weight=0.5 if left_celebrity else 1.0,
                right_weight=0.5 if right_celebrity else 1.0,
                left_shift=mid,
                right_shift=mid,
            )

    celeb, other = Rating(30, 5), Rating(26, 5)
    for outcome in Outcome:
        plain, _ = rate_duel(celeb, other, outcome, ENV)
        weighted, _ = rate_duel(celeb, other, outcome, ENV, left_celebrity=True, adjustment=Centred())
        assert abs(weighted.mu - celeb.mu) < 0.8 * abs(plain.mu - celeb.mu)
    assert celeb == Rating(30, 5)  # not mutated


def test_prepared_duel_rejects_weights_outside_zero_one() -> None:
    with pytest.raises(ValueError):
        PreparedDuel(Rating(25, 5), Rating(25, 5), left_weight=1.5)


# --- quality, win probability, conservative skill ------------------------------------------------------


def test_match_quality_is_trueskills_and_win_probability_is_consistent() -> None:
    ts = ENV.trueskill()
    for a, b, _ in _random_ratings(5, 50):
        ref = trueskill.quality_1vs1(ts.create_rating(a.mu, a.sigma), ts.create_rating(b.mu, b.sigma), env=ts)
        assert match_quality(a, b, ENV) == pytest.approx(ref, rel=1e-9)
        assert win_probability(a, b, ENV) + win_probability(b, a, ENV) == pytest.approx(1.0)
        assert (win_probability(a, b, ENV) > 0.5) == (a.mu > b.mu)
    # a skill gap of beta between certain photos: Phi(1 / sqrt 2) = 0.760
    assert win_probability(Rating(25 + ENV.beta, 1e-9), Rating(25, 1e-9), ENV) == pytest.approx(0.7602, abs=1e-4)


def test_conservative_skill_is_mu_minus_k_sigma() -> None:
    assert conservative_skill(Rating(25, 25 / 3), ENV) == pytest.approx(0.0)
    assert conservative_skill(Rating(30, 2), dataclasses.replace(ENV, k=2.0)) == 26.0


# --- the 1-10 score ------------------------------------------------------------------------------------


def _score_at(c: float, sigma: float = 1.0) -> float:
    return score_1_to_10(Rating(c + ENV.k * sigma, sigma), ENV)


@pytest.mark.parametrize(
    ("conservative", "documented"), [(0, 1.2), (10, 2.1), (20, 5.5), (25, 7.6), (30, 8.9), (35, 9.6)]
)
def test_score_documented_points(conservative: float, documented: float) -> None:
    assert _score_at(conservative) == documented
    assert _score_at(conservative, sigma=4.0) == documented  # only the conservative skill matters


def test_score_documented_states() -> None:
    assert score_1_to_10(prior_rating(None, ENV), ENV) == 1.2  # new photo, no model score
    assert score_1_to_10(prior_rating(0.5, ENV), ENV) == 2.1  # new photo, median model score


def test_score_is_monotonic_bounded_and_one_decimal() -> None:
    cs = np.linspace(-200, 250, 9001)
    scores = [_score_at(float(c)) for c in cs]
    assert all(b >= a for a, b in itertools.pairwise(scores))
    assert min(scores) == 1.0 and max(scores) == 10.0
    assert all(abs(s * 10 - round(s * 10)) < 1e-9 for s in scores)
    # strictly increasing where it matters: 0.1 of c never loses more than one rounding step
    assert len(set(scores)) == 91  # every value 1.0, 1.1, ..., 10.0 is used
    assert _score_at(1e6) == 10.0 and _score_at(-1e6) == 1.0


# Documented stability (module docstring of gaming.ratings): the largest score change one vote can
# cause, by the photo's sigma before the vote, over photos and opponents with mu in 10..40, opponents
# of any sigma up to the uninformed prior's, all outcomes. The bounds were found on a 1-point mu grid;
# this checks a coarser grid quickly (every point must stay within the bound).
STABILITY = [(1.0, 0.3), (1.5, 0.6), (2.0, 1.0), (3.0, 2.0), (5.0, 4.2), (ENV.sigma, 5.7)]


@pytest.mark.parametrize(("sigma", "bound"), STABILITY)
def test_one_vote_moves_the_score_by_at_most_the_documented_bound(sigma: float, bound: float) -> None:
    mus = np.arange(10.0, 40.01, 5.0)
    opponent_sigmas = [0.5, 2.0, 5.0, ENV.sigma]
    worst = 0.0
    for m, om, osd in itertools.product(mus, mus, opponent_sigmas):
        photo, opponent = Rating(float(m), sigma), Rating(float(om), osd)
        before = score_1_to_10(photo, ENV)
        for outcome in Outcome:
            after = score_1_to_10(rate_duel(photo, opponent, outcome, ENV)[0], ENV)
            worst = max(worst, abs(after - before))
    assert worst <= bound + 1e-9
    assert worst >= 0.5 * bound  # the bound is not a vacuous number


def test_one_vote_between_close_photos_moves_an_established_score_little() -> None:
    # matchmaking pairs photos of close mu; there an established photo (sigma <= 2) moves <= 0.7
    worst = 0.0
    for m, dm, osd in itertools.product(np.arange(10.0, 40.01, 2.5), (-8.0, -4.0, 0.0, 4.0, 8.0), (0.5, 2.0, 5.0)):
        photo, opponent = Rating(float(m), 2.0), Rating(float(m + dm), osd)
        for outcome in Outcome:
            delta = score_1_to_10(rate_duel(photo, opponent, outcome, ENV)[0], ENV) - score_1_to_10(photo, ENV)
            worst = max(worst, abs(delta))
    assert worst <= 0.7 + 1e-9
