"""The celebrity discount against gaming.ratings' DuelAdjustment protocol (pure math, no I/O)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from bench.partial_play import PartialPlayDiscount
from gaming.celebrity import CelebrityOffset, fit_celebrity_offset, logit_to_skill
from gaming.ratings import Outcome, PreparedDuel, Rating, RatingEnv, rate_duel

ENV = RatingEnv()
CELEBRITY_BONUS = 1.0  # voters' fame bonus, log-odds: an even match is won 73 % of the time instead of 50 %


def _scripted_outcomes(win_share: float, n: int, seed: int) -> list[Outcome]:
    """Exactly round(win_share * n) celebrity wins, in a fixed shuffled order."""
    wins = round(win_share * n)
    outcomes = [Outcome.LEFT] * wins + [Outcome.RIGHT] * (n - wins)
    order = np.random.default_rng(seed).permutation(n)
    return [outcomes[i] for i in order]


def _celebrity_after(outcomes: list[Outcome], adjustment: object | None) -> Rating:
    """A new celebrity photo (left) against a stream of established photos of exactly its quality."""
    celebrity = Rating(ENV.mu, ENV.sigma)
    for outcome in outcomes:
        opponent = Rating(ENV.mu, 1.0)
        celebrity, _ = rate_duel(
            celebrity, opponent, outcome, ENV, left_celebrity=True, right_celebrity=False, adjustment=adjustment
        )
    return celebrity


def test_biased_votes_leave_the_celebrity_closer_to_its_unbiased_rating_with_the_offset() -> None:
    n, seed = 200, 7
    unbiased = _celebrity_after(_scripted_outcomes(0.5, n, seed), None)
    biased_votes = _scripted_outcomes(1 / (1 + math.exp(-CELEBRITY_BONUS)), n, seed)
    no_discount = _celebrity_after(biased_votes, None)
    offset = _celebrity_after(biased_votes, CelebrityOffset(logit_to_skill(CELEBRITY_BONUS, ENV)))
    partial = _celebrity_after(biased_votes, PartialPlayDiscount(0.5))

    assert unbiased.mu == pytest.approx(ENV.mu, abs=1.0)  # the reference is where quality says
    assert no_discount.mu - unbiased.mu > 2.5  # fame inflated it by roughly the fame effect
    assert abs(offset.mu - unbiased.mu) < 0.25 * abs(no_discount.mu - unbiased.mu)
    # Partial play only damps the steps; with many votes it drifts to the same inflated rating.
    assert abs(partial.mu - unbiased.mu) > 0.5 * abs(no_discount.mu - unbiased.mu)


def test_offset_fitted_from_the_votes_also_brings_the_celebrity_back() -> None:
    votes, _truth = _simulated_votes(bonus=CELEBRITY_BONUS, seed=11)
    fitted = CelebrityOffset(fit_celebrity_offset(votes, ENV))
    n = 200
    unbiased = _celebrity_after(_scripted_outcomes(0.5, n, 3), None)
    biased_votes = _scripted_outcomes(1 / (1 + math.exp(-CELEBRITY_BONUS)), n, 3)
    no_discount = _celebrity_after(biased_votes, None)
    with_fit = _celebrity_after(biased_votes, fitted)
    assert abs(with_fit.mu - unbiased.mu) < 0.35 * abs(no_discount.mu - unbiased.mu)


def _simulated_votes(
    *, bonus: float, seed: int, n: int = 300, votes_per_photo: int = 30, share: float = 0.1
) -> tuple[list[tuple[str, str, Outcome, bool, bool]], np.ndarray]:
    """Bradley-Terry voters with a fame term and 10 % draws on even pairs, random pairs.

    Celebrities are every 10th photo by quality, so their mean quality equals everyone's: what the
    fit must find is then exactly the planted fame effect, not this sample's luck.
    """
    rng = np.random.default_rng(seed)
    q = rng.normal(size=n)
    celebrity = np.zeros(n, dtype=bool)
    celebrity[np.argsort(q)[5 :: round(1 / share)]] = True
    m = n * votes_per_photo
    left = rng.integers(n, size=m)
    right = (left + rng.integers(1, n, size=m)) % n
    p = 1 / (1 + np.exp(-(q[left] - q[right] + bonus * (celebrity[left].astype(float) - celebrity[right]))))
    p_draw = 0.1 * (1 - np.abs(2 * p - 1))
    u = rng.random(m)
    outcome = np.where(u < p_draw, 2, np.where(u < p_draw + (1 - p_draw) * p, 0, 1))
    names = (Outcome.LEFT, Outcome.RIGHT, Outcome.DRAW)
    votes = [
        (f"p{i}", f"p{j}", names[o], bool(celebrity[i]), bool(celebrity[j]))
        for i, j, o in zip(left.tolist(), right.tolist(), outcome.tolist(), strict=True)
    ]
    return votes, q


@pytest.mark.parametrize("bonus", [0.0, 1.0, -0.5])
def test_fit_recovers_a_planted_offset(bonus: float) -> None:
    # One catalogue's estimate has a standard error of ~0.35 skill units (30 celebrity photos); the
    # mean of three independent catalogues ~0.2, so 0.6 is a 3-sigma tolerance, not a tuned seed.
    fits = [fit_celebrity_offset(_simulated_votes(bonus=bonus, seed=seed)[0], ENV) for seed in (1, 2, 3)]
    planted = logit_to_skill(bonus, ENV)
    assert float(np.mean(fits)) == pytest.approx(planted, abs=0.6)
    assert all(math.copysign(1, f) == math.copysign(1, planted) for f in fits if bonus != 0.0)


def test_fit_returns_zero_until_enough_celebrity_votes() -> None:
    votes = [("a", "b", Outcome.LEFT, True, False)] * 29 + [("b", "c", Outcome.LEFT, False, False)] * 100
    assert fit_celebrity_offset(votes, ENV) == 0.0
    assert fit_celebrity_offset(votes, ENV, min_celebrity_votes=10) > 0.0


def test_logit_to_skill_matches_the_win_probability_of_an_even_match() -> None:
    assert logit_to_skill(0.0, ENV) == 0.0
    for gamma in (-2.0, -0.3, 0.5, 1.0, 2.0):
        skill = logit_to_skill(gamma, ENV)
        assert NormalDist().cdf(skill / (math.sqrt(2) * ENV.beta)) == pytest.approx(1 / (1 + math.exp(-gamma)))
        assert logit_to_skill(-gamma, ENV) == pytest.approx(-skill)


@pytest.mark.parametrize("adjustment", [CelebrityOffset(3.0), PartialPlayDiscount(0.4)])
@pytest.mark.parametrize("flags", [(False, False), (True, True)])
@pytest.mark.parametrize("outcome", list(Outcome))
def test_non_celebrity_and_both_celebrity_duels_are_unaffected(
    adjustment: CelebrityOffset | PartialPlayDiscount, flags: tuple[bool, bool], outcome: Outcome
) -> None:
    left, right = Rating(27.0, 4.0), Rating(23.5, 2.5)
    left_celebrity, right_celebrity = flags
    assert adjustment.prepare(
        left, right, left_celebrity=left_celebrity, right_celebrity=right_celebrity
    ) == PreparedDuel(left, right)
    plain = rate_duel(left, right, outcome, ENV)
    adjusted = rate_duel(
        left, right, outcome, ENV, left_celebrity=left_celebrity, right_celebrity=right_celebrity, adjustment=adjustment
    )
    assert adjusted == plain


@pytest.mark.parametrize("celebrity_left", [True, False])
def test_offset_makes_celebrity_wins_cheap_and_losses_to_celebrities_mild(celebrity_left: bool) -> None:
    celebrity, other = Rating(25.0, 5.0), Rating(25.0, 5.0)
    offset = CelebrityOffset(logit_to_skill(CELEBRITY_BONUS, ENV))

    def rate(celebrity_wins: bool, adjustment: CelebrityOffset | None) -> tuple[Rating, Rating]:
        if celebrity_left:
            outcome = Outcome.LEFT if celebrity_wins else Outcome.RIGHT
            return rate_duel(celebrity, other, outcome, ENV, left_celebrity=True, adjustment=adjustment)
        outcome = Outcome.RIGHT if celebrity_wins else Outcome.LEFT
        new_other, new_celebrity = rate_duel(
            other, celebrity, outcome, ENV, right_celebrity=True, adjustment=adjustment
        )
        return new_celebrity, new_other

    plain_win, adjusted_win = rate(True, None), rate(True, offset)
    assert adjusted_win[0].mu - 25 < plain_win[0].mu - 25  # an expected win is worth less
    assert 25 - adjusted_win[1].mu < 25 - plain_win[1].mu  # losing to fame costs the other photo less
    plain_loss, adjusted_loss = rate(False, None), rate(False, offset)
    assert 25 - adjusted_loss[0].mu > 25 - plain_loss[0].mu  # losing despite fame is news
    assert adjusted_win[0].sigma < celebrity.sigma  # the vote still counts as information


def test_partial_play_damps_the_celebrity_in_both_directions() -> None:
    celebrity, other = Rating(25.0, 5.0), Rating(25.0, 5.0)
    discount = PartialPlayDiscount(0.5)
    for outcome in (Outcome.LEFT, Outcome.RIGHT):
        plain, _ = rate_duel(celebrity, other, outcome, ENV)
        damped, _ = rate_duel(celebrity, other, outcome, ENV, left_celebrity=True, adjustment=discount)
        assert 0 < abs(damped.mu - 25) < 0.75 * abs(plain.mu - 25)
        assert plain.sigma < damped.sigma < celebrity.sigma
    # Outcome-aware: only a celebrity win is damped.
    loss_only = discount.wins_only(Outcome.RIGHT, left_celebrity=True, right_celebrity=False)
    assert loss_only.prepare(celebrity, other, left_celebrity=True, right_celebrity=False) == PreparedDuel(
        celebrity, other
    )
    assert discount.wins_only(Outcome.LEFT, left_celebrity=True, right_celebrity=False) is discount


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        PartialPlayDiscount(0.0)
    with pytest.raises(ValueError):
        PartialPlayDiscount(1.5)
    with pytest.raises(ValueError):
        CelebrityOffset(float("nan"))
    with pytest.raises(ValueError):
        fit_celebrity_offset([], ENV, l2=0.0)
