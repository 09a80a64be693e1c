"""Vote weights and the voter screening as pure functions: many simulated voters, many seeds, no database.

The simulation: photos with a hidden quality q ~ N(0, 1), four per owner; an honest voter prefers i to j
with P = sigmoid(1.7 (q_i - q_j)) (bench/sim_core.py's Bradley-Terry voters); the service shows the
anchor on a random side. The "settled ratings" the screening compares with are the truth seen through
noise (a consensus is an estimate), or, in the full-loop test, the TrueSkill ratings the votes produced.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable

import pytest

from accounts.tokens import Principal
from gaming.ratings import Outcome, Rating, RatingEnv, rate_duel, win_probability
from gaming.vote_integrity import ScreeningPolicy, VoteView, agreement, screen_voter
from gaming.vote_weights import VoteWeighting, partial_update, rate_weighted

ENV = RatingEnv()
SLOPE = 1.7


# --- weights ---------------------------------------------------------------------------------------------

def test_a_full_weight_is_the_plain_update_and_zero_changes_nothing() -> None:
    a, b = Rating(27.0, 4.0), Rating(24.0, 3.0)
    for outcome in Outcome:
        assert rate_weighted(a, b, outcome, ENV, 1.0) == rate_duel(a, b, outcome, ENV)
        assert rate_weighted(a, b, outcome, ENV, 0.0) == (a, b)


@pytest.mark.parametrize("weight", [0.1, 0.25, 0.5, 0.9])
def test_a_partial_vote_moves_mu_by_its_share_and_keeps_more_uncertainty(weight: float) -> None:
    a, b = Rating(25.0, 5.0), Rating(25.0, 5.0)
    full_a, full_b = rate_duel(a, b, Outcome.LEFT, ENV)
    part_a, part_b = rate_weighted(a, b, Outcome.LEFT, ENV, weight)
    assert part_a.mu - a.mu == pytest.approx(weight * (full_a.mu - a.mu))
    assert part_b.mu - b.mu == pytest.approx(weight * (full_b.mu - b.mu))
    assert full_a.sigma < part_a.sigma < a.sigma
    # k votes of weight 1/k land about where one vote does (the point of interpolating variance too)
    k = round(1 / weight)
    x, y = a, b
    for _ in range(k):
        x, y = rate_weighted(x, y, Outcome.LEFT, ENV, 1 / k)
    assert x.mu - a.mu == pytest.approx(full_a.mu - a.mu, rel=0.25)
    assert x.sigma == pytest.approx(full_a.sigma, rel=0.1)


def test_partial_update_refuses_weights_outside_0_1() -> None:
    with pytest.raises(ValueError):
        partial_update(Rating(25, 5), Rating(26, 4), 1.5)


def test_new_and_anonymous_accounts_weigh_less_until_they_have_a_history() -> None:
    w = VoteWeighting()
    assert w.weight(anonymous=False, history=0) == 0.5
    assert w.weight(anonymous=True, history=0) == 0.25
    assert w.weight(anonymous=False, history=10) == pytest.approx(0.75)
    assert w.weight(anonymous=False, history=20) == w.weight(anonymous=True, history=50) == 1.0
    assert w.weight(anonymous=True, history=20) < 1.0  # anonymous accounts need a longer history
    ramp = [w.weight(anonymous=True, history=h) for h in range(60)]
    assert ramp == sorted(ramp)
    assert w.weight(anonymous=False, history=None) == 1.0  # votes logged before weights: as applied then
    assert w.weight(anonymous=False, history=500, status="flagged") == 0.0
    assert w.weight(anonymous=False, history=500, status="confirmed") == 0.0
    assert w.weight(anonymous=False, history=500, status="cleared") == 1.0
    assert w.weight_of({"anonymous": True, "history": 0}) == 0.25
    assert VoteWeighting.from_params(w.to_params()) == w


def test_a_new_or_anonymous_accounts_vote_moves_ratings_less() -> None:
    w = VoteWeighting()
    a, b = Rating(25.0, 3.0), Rating(25.0, 3.0)
    gains = {}
    for name, anonymous, history in (("seasoned", False, 100), ("new", False, 0), ("anonymous", True, 0)):
        new_a, _ = rate_weighted(a, b, Outcome.LEFT, ENV, w.weight(anonymous=anonymous, history=history))
        gains[name] = new_a.mu - a.mu
    assert gains["seasoned"] > gains["new"] > gains["anonymous"] > 0


def test_the_anonymous_sign_in_claim_marks_an_anonymous_account() -> None:
    anonymous = Principal(uid="a", claims={"firebase": {"sign_in_provider": "anonymous", "identities": {}}})
    assert anonymous.anonymous_account
    assert not Principal(uid="g", claims={"firebase": {"sign_in_provider": "google.com"}}).anonymous_account
    assert not Principal(uid="c", claims={}).anonymous_account


# --- the screening on simulated voters -------------------------------------------------------------------

Picker = Callable[[random.Random, float], bool]  # P(anchor beats opponent) -> the voter picks the anchor


def honest(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def noisy(rng: random.Random, p: float) -> bool:  # 30% of answers at random
    return rng.random() < 0.5 if rng.random() < 0.3 else rng.random() < p


def coin(rng: random.Random, p: float) -> bool:
    return rng.random() < 0.5


def contrarian(rng: random.Random, p: float) -> bool:
    return rng.random() >= p


def _voter(kind: str, seed: int, votes: int, photos: int = 120) -> list[VoteView]:
    """One voter's votes; the consensus is the truth seen through noise (sd 0.3 in quality units)."""
    rng = random.Random(seed)
    q = [rng.gauss(0, 1) for _ in range(photos)]
    owner = [f"owner{i // 4}" for i in range(photos)]
    pickers: dict[str, Picker] = {"honest": honest, "noisy": noisy, "coin": coin, "contrarian": contrarian,
                                  "stuffer": lambda r, p: True, "side": honest, "fan": honest}
    views = []
    for _ in range(votes):
        # a stuffer redraws duels until one of owner0's photos is in it, then always picks it
        anchor = rng.randrange(4) if kind == "stuffer" else rng.randrange(photos)
        opponent = rng.randrange(4, photos) if kind == "stuffer" else rng.randrange(photos)
        while opponent == anchor:
            opponent = rng.randrange(photos)
        gap = q[anchor] - q[opponent]
        p = 1 / (1 + math.exp(-SLOPE * gap))
        if kind == "fan" and owner[anchor] == "owner0":
            p = min(1.0, p + 0.15)  # likes owner0's style a little more than everyone else does
        consensus = 1 / (1 + math.exp(-SLOPE * (gap + rng.gauss(0, 0.3))))
        picks_anchor = pickers[kind](rng, p)
        anchor_left = rng.random() < 0.5
        left, right = (anchor, opponent) if anchor_left else (opponent, anchor)
        if kind == "side":
            choice = Outcome.LEFT if rng.random() < 0.95 else Outcome.RIGHT
        else:
            choice = Outcome.LEFT if picks_anchor == anchor_left else Outcome.RIGHT
        views.append(VoteView(choice, consensus if anchor_left else 1 - consensus, owner[left], owner[right]))
    return views


def _flag_rate(kind: str, votes: int, seeds: int = 300) -> tuple[float, Counter[str]]:
    tests: Counter[str] = Counter()
    flagged = 0
    for seed in range(seeds):
        result = screen_voter(_voter(kind, seed, votes))
        flagged += result.flagged
        tests.update(f.test for f in result.findings)
    return flagged / seeds, tests


@pytest.mark.parametrize("kind", ["honest", "noisy", "coin", "fan"])
def test_legitimate_voters_are_not_flagged(kind: str) -> None:
    """Honest, 30% random, entirely random, and a fan of one owner's style: none flagged in 300 voters of
    300 votes (the stated bound is alpha = 0.1% each)."""
    rate, tests = _flag_rate(kind, 300)
    assert rate == 0.0, tests


def test_a_ballot_stuffer_for_one_owner_is_flagged_for_that_owner() -> None:
    rate, tests = _flag_rate("stuffer", 150, seeds=100)
    assert rate >= 0.95 and tests["owner"] >= 95
    finding = next(f for f in screen_voter(_voter("stuffer", 1, 150)).findings if f.test == "owner")
    assert finding.detail == "owner0" and finding.statistic >= finding.threshold


def test_always_one_side_is_flagged() -> None:
    rate, tests = _flag_rate("side", 60, seeds=100)
    assert rate >= 0.95 and tests["side"] >= 95
    assert {f.detail for f in screen_voter(_voter("side", 2, 60)).findings if f.test == "side"} == {"LEFT"}


def test_agreement_far_below_chance_is_flagged() -> None:
    rate, tests = _flag_rate("contrarian", 150, seeds=100)
    assert rate >= 0.95 and tests["agreement"] >= 95


def test_too_few_votes_are_not_screened() -> None:
    views = [VoteView(Outcome.LEFT, 0.5, "a", "b")] * 9
    assert screen_voter(views, ScreeningPolicy(min_votes=10)).findings == ()


def test_agreement_is_how_often_a_player_picks_the_photo_the_ratings_favour() -> None:
    views = [VoteView(Outcome.LEFT, 0.8), VoteView(Outcome.RIGHT, 0.7), VoteView(Outcome.RIGHT, 0.2),
             VoteView(Outcome.DRAW, 0.9), VoteView(Outcome.LEFT, 0.5)]
    stat = agreement(views)
    assert (stat.votes, stat.agreed) == (3, 2)  # the draw and the even duel say nothing
    assert stat.rate == pytest.approx(2 / 3) and stat.expected == pytest.approx((0.8 + 0.7 + 0.8) / 3)
    honest_rates = [agreement(_voter("honest", s, 200)).rate or 0 for s in range(20)]
    contrarian_rates = [agreement(_voter("contrarian", s, 200)).rate or 0 for s in range(20)]
    assert min(honest_rates) > 0.6 and max(contrarian_rates) < 0.4
    assert agreement([]).rate is None


# --- the whole loop: ratings from the votes, the screening against them, a rebuild -----------------------

def _world(seed: int, stuffer_votes: int, detect: bool) -> tuple[list[float], list[Rating], set[str]]:
    """40 photos of 10 owners, 30 honest voters (40 votes each) and a stuffer for owner0's photos, in
    random order; TrueSkill through `rate_weighted`. With `detect`, the screening runs every 100 votes
    against the ratings so far (the chore); a flagged voter's later votes weigh 0, and at the end every
    vote is weighed again by the decisions (`ratings rebuild`). Returns (quality, ratings, flagged)."""
    rng = random.Random(seed)
    n = 40
    q = [rng.gauss(0, 1) for _ in range(n)]
    owner = [f"owner{i // 4}" for i in range(n)]
    weighting = VoteWeighting()
    log: list[tuple[str, int, int, Outcome, int]] = []  # player, left, right, choice, history
    turns = [f"h{v}" for v in range(30) for _ in range(40)] + ["stuffer"] * stuffer_votes
    rng.shuffle(turns)
    cast: Counter[str] = Counter()
    ratings = [Rating(25.0, 25 / 3) for _ in range(n)]
    flagged: set[str] = set()

    def apply(entry: tuple[str, int, int, Outcome, int], excluded: set[str]) -> None:
        player, left, right, choice, history = entry
        status = "flagged" if player in excluded else None
        weight = weighting.weight(anonymous=False, history=history, status=status)
        ratings[left], ratings[right] = rate_weighted(ratings[left], ratings[right], choice, ENV, weight)

    for turn, player in enumerate(turns):
        # matchmaking pairs photos of close ratings; the stuffer redraws until owner0's photo is the anchor
        anchor = rng.randrange(4) if player == "stuffer" else rng.randrange(n)
        near = [j for j in sorted(range(n), key=lambda j: abs(ratings[j].mu - ratings[anchor].mu))
                if owner[j] != owner[anchor]][:8]
        opponent = rng.choice(near)
        picks_anchor = player == "stuffer" or rng.random() < 1 / (1 + math.exp(-SLOPE * (q[anchor] - q[opponent])))
        anchor_left = rng.random() < 0.5
        left, right = (anchor, opponent) if anchor_left else (opponent, anchor)
        entry = (player, left, right, Outcome.LEFT if picks_anchor == anchor_left else Outcome.RIGHT, cast[player])
        cast[player] += 1
        log.append(entry)
        apply(entry, flagged)
        if detect and turn % 100 == 99:
            for voter in {p for p, *_ in log} - flagged:
                views = [VoteView(c, win_probability(ratings[lt], ratings[rt], ENV), owner[lt], owner[rt])
                         for p, lt, rt, c, _ in log if p == voter]
                if screen_voter(views).flagged:
                    flagged.add(voter)
    if detect:  # the rebuild: every vote weighed by the decisions now
        ratings = [Rating(25.0, 25 / 3) for _ in range(n)]
        for entry in log:
            apply(entry, flagged)
    return q, ratings, flagged


def test_with_the_detector_a_stuffed_owners_photos_end_within_noise_of_their_unbiased_ratings() -> None:
    shifts: dict[str, list[float]] = {"off": [], "on": []}
    for seed in range(6):
        _, unbiased, clean_flags = _world(seed, 0, detect=True)
        _, stuffed, _ = _world(seed, 120, detect=False)
        _, screened, flagged = _world(seed, 120, detect=True)
        assert flagged == {"stuffer"}, flagged  # and no honest voter
        assert clean_flags == set()
        base = sum(r.mu for r in unbiased[:4]) / 4
        noise = sum(r.sigma for r in unbiased[:4]) / 4
        shifts["off"].append((sum(r.mu for r in stuffed[:4]) / 4 - base) / noise)
        shifts["on"].append((sum(r.mu for r in screened[:4]) / 4 - base) / noise)
    # Shifts of the owner's mean mu from a run without the stuffer, in units of the photos' sigma. Two
    # runs differ in every draw after the first stuffed vote (matchmaking follows the ratings), so even
    # two clean runs differ by about 0.85 sigma (the mean of 4 photos): "within noise" is within 2 of
    # those, and on average about 0. Without the detector the photos sit 2-6 sigma too high.
    assert min(shifts["off"]) > 1.5 and sum(shifts["off"]) / len(shifts["off"]) > 2.5, shifts
    assert max(abs(s) for s in shifts["on"]) < 1.7, shifts
    assert abs(sum(shifts["on"]) / len(shifts["on"])) < 0.6, shifts


def test_the_other_voters_rate_catches_a_stuffer_who_already_lifted_the_ratings() -> None:
    """Once the stuffer's votes have lifted owner0's photos, the ratings favour them (p = 0.8) and the
    stuffer looks like a voter who agrees; what the other voters picked (about half) does not move."""
    views = [VoteView(Outcome.LEFT, 0.8, "owner0", f"owner{1 + n % 5}") if n % 2 else
             VoteView(Outcome.RIGHT, 0.2, f"owner{1 + n % 5}", "owner0") for n in range(80)]
    assert not screen_voter(views).flagged
    result = screen_voter(views, owner_rates={"owner0": 0.5})
    assert [(f.test, f.detail) for f in result.findings] == [("owner", "owner0")]
