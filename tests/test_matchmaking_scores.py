"""gaming.matchmaking: the pure pair-choice scores the duel service and the simulation share."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import numpy as np
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from gaming.duels.catalogue import DuelCatalogue
from gaming.featured import TOP_FRACTION, featured_count
from gaming.matchmaking import (
    DEFAULT_POLICY,
    MatchPolicy,
    RatedPhoto,
    anchor_priorities,
    anchor_priority,
    choose_anchor,
    choose_anchors,
    choose_opponent,
    featured_boundary,
    opponent_score,
    opponent_scores,
    wants_boundary_duel,
    wants_placement,
)
from gaming.ratings import Outcome, Rating, RatingEnv, rate_duel
from storage.photos import PhotoRepository

ENV = RatingEnv()


def photo(pid: str, mu: float, sigma: float, duels: int = 10, owner: str | None = None) -> RatedPhoto:
    return RatedPhoto(pid, Rating(mu, sigma), duels, owner or f"owner-{pid}", None)


def test_featured_boundary_is_the_skill_at_the_top_fraction_cut() -> None:
    ratings = [Rating(float(m), 2.0) for m in range(100)]
    assert featured_boundary(ratings, ENV) == pytest.approx(89.1)
    assert featured_boundary(ratings, ENV, top_fraction=0.5) == pytest.approx(49.5)
    assert featured_boundary([], ENV) == ENV.mu


def test_the_featured_set_is_the_photos_above_the_cut_matchmaking_aims_at() -> None:
    """Promotion features `featured_count` photos; matchmaking spends boundary duels on the cut at
    `featured_boundary`. Were they two definitions, votes would settle a line nobody is featured by."""
    rng = random.Random(11)
    for count in range(2, 400):
        mus = [float(m) for m in rng.sample(range(100_000), count)]
        cut = featured_boundary([Rating(m, 2.0) for m in mus], ENV)
        assert sum(m > cut for m in mus) == featured_count(count), count
    assert (featured_count(0), featured_count(1), featured_count(100), featured_count(1000)) == (0, 1, 10, 100)
    assert MatchPolicy().top_fraction == TOP_FRACTION


def test_the_catalogues_featured_sets_are_above_its_cut() -> None:
    """The announcer's featured sets and matchmaking's cut, both read from the in-memory catalogue (fed
    here as the loader and the projector would: it never reads the database in this test)."""
    catalogue = DuelCatalogue(PhotoRepository(AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)["x"]), ENV)
    rng = random.Random(12)
    for category, count in (("small", 7), ("mid", 45), ("large", 333)):
        for mu in rng.sample(range(10_000), count):
            catalogue.add({"_id": ObjectId(), "owner": f"o{mu}", "category": category,
                           "rating": {"mu": mu / 100, "sigma": 2.0, "votes": 20}})
    featured = catalogue.featured(min_votes=10, max_sigma=3.0)
    for category in ("small", "mid", "large"):
        above = {catalogue.ids[i] for i in catalogue.scope(category) if catalogue.mu[i] > catalogue.cut(category)}
        assert set(featured[category]) == above, category


def test_anchor_priority_prefers_high_sigma() -> None:
    boundary = 30.0
    far = 10.0  # far below the boundary: only sigma speaks
    assert anchor_priority(photo("a", far, 6.0), boundary, ENV) > anchor_priority(photo("b", far, 3.0), boundary, ENV)


def test_anchor_priority_prefers_photos_straddling_the_boundary() -> None:
    boundary = 30.0
    on = anchor_priority(photo("on", 29.0, 3.0), boundary, ENV)
    below = anchor_priority(photo("below", 15.0, 3.0), boundary, ENV)
    above = anchor_priority(photo("above", 45.0, 3.0), boundary, ENV)
    assert on > 3 * below and on > 3 * above
    # straddling beats a little more sigma far from the boundary, and a certain photo on the
    # boundary (sigma far below the margin) has nothing left to gain
    assert on > anchor_priority(photo("unsure-far", 12.0, 4.0), boundary, ENV)
    assert anchor_priority(photo("settled", 30.0, 0.3), boundary, ENV) < anchor_priority(
        photo("new-far", 10.0, 5.0), boundary, ENV
    )


def test_scalar_and_array_forms_agree() -> None:
    rng = random.Random(0)
    photos = [photo(str(i), rng.uniform(10, 40), rng.uniform(0.5, 8)) for i in range(50)]
    mu = np.array([p.rating.mu for p in photos])
    sigma = np.array([p.rating.sigma for p in photos])
    arr = anchor_priorities(mu, sigma, 30.0, ENV)
    assert [anchor_priority(p, 30.0, ENV) for p in photos] == pytest.approx(arr.tolist())
    anchor = photos[0]
    sims = np.linspace(0.5, 0.9, 49)
    arr = opponent_scores(anchor.rating.mu, anchor.rating.sigma, mu[1:], sigma[1:], sims, 30.0, ENV)
    assert [opponent_score(anchor, p, s, 30.0, ENV) for p, s in zip(photos[1:], sims, strict=True)] == pytest.approx(
        arr.tolist()
    )


def test_opponent_score_prefers_close_uncertain_and_similar_opponents() -> None:
    anchor = photo("a", 25.0, 4.0)
    close = opponent_score(anchor, photo("c", 26.0, 4.0), 0.8, 40.0, ENV)
    assert close > opponent_score(anchor, photo("far", 45.0, 4.0), 0.8, 40.0, ENV)
    assert close > opponent_score(anchor, photo("sure", 26.0, 1.0), 0.8, 40.0, ENV)
    assert close > opponent_score(anchor, photo("c", 26.0, 4.0), 0.5, 40.0, ENV)


def test_opponent_score_does_not_reward_certainty_like_match_quality_does() -> None:
    # TrueSkill match quality prefers the *surer* opponent; pair value must not (that is what let a
    # few established photos take most duels in the first simulation).
    from gaming.ratings import match_quality

    anchor = photo("a", 25.0, 3.0)
    sure, unsure = photo("s", 25.0, 1.0), photo("u", 25.0, 5.0)
    assert match_quality(anchor.rating, sure.rating, ENV) > match_quality(anchor.rating, unsure.rating, ENV)
    assert opponent_score(anchor, unsure, 0.8, 40.0, ENV) > opponent_score(anchor, sure, 0.8, 40.0, ENV)


def test_choose_opponent_returns_a_candidate_whenever_there_is_one() -> None:
    rng = random.Random(1)
    anchor = photo("a", 25.0, 3.0)
    assert choose_opponent(anchor, [], 30.0, ENV, rng) is None
    for trial in range(300):
        count = rng.randint(1, 24)
        cands = [
            (photo(f"{trial}-{i}", rng.choice([rng.uniform(-500, 500), 25.0]), rng.uniform(0.01, 9)), rng.random())
            for i in range(count)
        ]
        chosen = choose_opponent(anchor, cands, rng.uniform(0, 50), ENV, rng)
        assert chosen is not None and chosen in [p for p, _ in cands]
    # even when every value underflows
    far = [(photo("x", 1e6, 0.01), 0.0), (photo("y", -1e6, 0.01), 0.0)]
    assert choose_opponent(anchor, far, 30.0, ENV, rng) in [p for p, _ in far]


def test_choose_opponent_is_stochastic_but_favours_the_most_informative() -> None:
    rng = random.Random(2)
    anchor = photo("a", 30.0, 3.0)
    good = photo("good", 30.5, 4.0)
    poor = photo("poor", 10.0, 1.0)
    picks = Counter(choose_opponent(anchor, [(good, 0.8), (poor, 0.8)], 30.0, ENV, rng).id for _ in range(2000))
    assert picks["good"] > 1800
    greedy = dataclasses.replace(DEFAULT_POLICY, temperature=0.0)
    assert choose_opponent(anchor, [(poor, 0.8), (good, 0.8)], 30.0, ENV, rng, policy=greedy) is good
    # two equal candidates are shared, not one always taken
    twin = photo("twin", 30.5, 4.0)
    picks = Counter(choose_opponent(anchor, [(good, 0.8), (twin, 0.8)], 30.0, ENV, rng).id for _ in range(2000))
    assert 800 < picks["good"] < 1200


def test_choose_anchor_takes_the_top_priority_unless_exploring() -> None:
    rng = random.Random(3)
    photos = [photo("low", 10.0, 2.0), photo("top", 30.0, 5.0), photo("mid", 20.0, 3.0)]
    assert choose_anchor([], 30.0, ENV, rng) is None
    assert all(choose_anchor(photos, 30.0, ENV, rng, explore=0.0).id == "top" for _ in range(50))
    seen = Counter(choose_anchor(photos, 30.0, ENV, rng, explore=1.0).id for _ in range(3000))
    assert all(900 < seen[p.id] < 1100 for p in photos)  # exploring is uniform


def test_choose_anchors_returns_distinct_indices_in_priority_order() -> None:
    rng = random.Random(4)
    priorities = np.array([0.1, 5.0, 3.0, 0.2, 4.0])
    assert choose_anchors(priorities, 3, rng, explore=0.0) == [1, 4, 2]
    for _ in range(200):
        picked = choose_anchors(priorities, 5, rng, explore=0.5)
        assert sorted(picked) == [0, 1, 2, 3, 4]
    assert len(choose_anchors(priorities, 99, rng)) == 5


def test_placement_duels_first_then_a_placement_share() -> None:
    rng = random.Random(5)
    policy = MatchPolicy(placement=0.0, placement_first=4)
    assert wants_placement(photo("new", 25, 5, duels=0), rng, policy)
    assert wants_placement(photo("new", 25, 5, duels=3), rng, policy)
    assert not any(wants_placement(photo("old", 25, 2, duels=4), rng, policy) for _ in range(100))
    share = MatchPolicy(placement=0.25, placement_first=0)
    hits = sum(wants_placement(photo("old", 25, 2, duels=50), rng, share) for _ in range(4000))
    assert 900 < hits < 1100


def test_boundary_duels_go_to_anchors_straddling_the_cut_and_fade_once_it_is_settled() -> None:
    rng = random.Random(8)
    boundary = 30.0

    def share(p: RatedPhoto, policy: MatchPolicy = DEFAULT_POLICY) -> float:
        return sum(wants_boundary_duel(p, boundary, ENV, rng, policy) for _ in range(2000)) / 2000

    straddling = photo("contender", 30.5, 3.0)
    assert 0.75 < share(straddling) <= 1.0  # straddle 0.84 here
    assert 0.35 < share(straddling, MatchPolicy(boundary_duels=0.5)) < 0.5
    assert share(straddling, MatchPolicy(boundary_duels=0.0)) == 0.0
    assert share(photo("surely-out", 12.0, 2.0)) < 0.01
    assert share(photo("surely-in", 45.0, 2.0)) < 0.01
    assert share(photo("settled-on-the-cut", 30.0, 0.8)) < 0.05


def test_policy_rejects_impossible_settings() -> None:
    for bad in (
        {"explore": 1.5},
        {"temperature": -1},
        {"boundary_weight": -1},
        {"placement": 2},
        {"boundary_duels": 1.5},
        {"top_fraction": 0},
    ):
        with pytest.raises(ValueError):
            MatchPolicy(**bad)


def test_a_simulated_run_gives_every_photo_duels_and_no_photo_hogs_them() -> None:
    """60 photos in 6 visual groups, 3,000 votes through the real functions and rate_duel."""
    rng = random.Random(6)
    nprng = np.random.default_rng(6)
    n, k = 60, 12
    truth = nprng.normal(size=n)
    group = np.arange(n) % 6
    ratings = [Rating(ENV.mu, ENV.sigma) for _ in range(n)]
    duels = [0] * n
    for _ in range(3000):
        photos = [RatedPhoto(str(i), ratings[i], duels[i], f"o{i}", None) for i in range(n)]
        boundary = featured_boundary(ratings, ENV)
        anchor = choose_anchor(photos, boundary, ENV, rng)
        a = int(anchor.id)
        if wants_placement(anchor, rng):
            pool = rng.sample([j for j in range(n) if j != a], k)
            cands = [(photos[j], 1.0) for j in pool]
        else:  # same group first, then the next group: a k-NN list with a few bridges
            same = [j for j in range(n) if group[j] == group[a] and j != a]
            other = [j for j in range(n) if group[j] == (group[a] + 1) % 6][: k - len(same)]
            cands = [(photos[j], 0.9 if j in same else 0.6) for j in same + other]
        opp = int(choose_opponent(anchor, cands, boundary, ENV, rng).id)
        p_a = 1 / (1 + np.exp(-1.7 * (truth[a] - truth[opp])))
        outcome = Outcome.LEFT if rng.random() < p_a else Outcome.RIGHT
        ratings[a], ratings[opp] = rate_duel(ratings[a], ratings[opp], outcome, ENV)
        duels[a] += 1
        duels[opp] += 1
    assert min(duels) >= 20  # every photo keeps getting duels
    assert max(duels) / 3000 < 0.08  # no photo takes more than 8% of all duels (fair share: 3.3%)
    mus = np.array([r.mu for r in ratings])
    assert np.corrcoef(mus, truth)[0, 1] > 0.8  # and the ratings learned something
