"""The pure rules around series: signed tickets, what an answer means, and the private series' ranking."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import numpy as np
import pytest
from bson import ObjectId

from gaming.duels.series_rounds import InvalidAnswer, answer_ranks
from gaming.duels.series_tickets import InvalidSeriesTicket, SeriesKind, SeriesTicket, SeriesTicketSigner
from gaming.duels.tickets import InvalidTicket, Ticket, TicketSigner
from gaming.private_series import private_pair, ranks, replay
from gaming.ratings import Outcome, Rating, RatingEnv, rate_duel

ENV = RatingEnv()
SECRET = b"a test secret of enough bytes"
EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)


def ticket(kind: SeriesKind = SeriesKind.ROUND, count: int = 4, **kwargs: object) -> SeriesTicket:
    fields: dict[str, object] = {"kind": kind, "nonce": ObjectId(), "player": "ann",
                                 "photos": tuple(ObjectId() for _ in range(count)), "expires_at": EXPIRY}
    return SeriesTicket(**{**fields, **kwargs})  # type: ignore[arg-type]


# --- tickets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SeriesKind))
@pytest.mark.parametrize("count", [2, 3, 8])
def test_a_ticket_signed_is_the_ticket_verified(kind: SeriesKind, count: int) -> None:
    signer = SeriesTicketSigner(SECRET)
    for extra in ({}, {"group": ObjectId(), "category": "nature"}, {"player": "é" * 100}):
        original = ticket(kind, count, **extra)
        assert signer.verify(signer.sign(original)) == original


def test_series_and_duel_tickets_never_pass_for_each_other_and_tampering_is_caught() -> None:
    series, duels = SeriesTicketSigner(SECRET), TicketSigner(SECRET)
    round_id = series.sign(ticket(SeriesKind.PRIVATE, 2))
    duel_id = duels.sign(Ticket(nonce=ObjectId(), player="ann", left=ObjectId(), right=ObjectId(), expires_at=EXPIRY,
                                anchor_left=True, similarity=None, category=None))
    with pytest.raises(InvalidTicket):
        duels.verify(round_id)
    with pytest.raises(InvalidSeriesTicket):
        series.verify(duel_id)
    with pytest.raises(InvalidSeriesTicket):
        SeriesTicketSigner(b"another secret of enough bytes").verify(round_id)
    for bad in ("", "AAAA", round_id[:-2], round_id[:10] + ("A" if round_id[10] != "A" else "B") + round_id[11:]):
        with pytest.raises(InvalidSeriesTicket):
            series.verify(bad)
    with pytest.raises(ValueError):
        series.sign(ticket(count=1))
    with pytest.raises(ValueError):
        series.sign(ticket(count=9))
    with pytest.raises(ValueError):
        SeriesTicketSigner(b"short")


# --- answers ------------------------------------------------------------------------------------------------


def test_an_answer_is_a_pick_or_a_full_order_best_first() -> None:
    a, b, c, d = (ObjectId() for _ in range(4))
    assert answer_ranks([a, b, c, d], c, None) == ("PICK", [1, 1, 0, 1])
    assert answer_ranks([a, b, c, d], c, [c, a, d, b]) == ("ORDER", [1, 3, 0, 2])
    for best, order in ((ObjectId(), None), (a, [a, b, c]), (a, [a, b, c, c]), (a, [b, a, c, d]),
                        (a, [a, b, c, ObjectId()])):
        with pytest.raises(InvalidAnswer):
            answer_ranks([a, b, c, d], best, order)


# --- the private series -------------------------------------------------------------------------------------


def test_the_private_ranking_is_the_replay_of_the_verdicts_from_the_model_prior() -> None:
    priors = {"a": Rating(30.0, 4.0), "b": Rating(25.0, 4.0), "c": Rating(20.0, 4.0)}
    assert ranks(priors, ENV) == {"a": 1, "b": 2, "c": 3}  # no verdict yet: the model's order
    verdicts = [("c", "a", Outcome.LEFT), ("c", "b", Outcome.LEFT), ("b", "a", Outcome.DRAW), ("x", "a", Outcome.LEFT)]
    after = replay(priors, verdicts, ENV)
    expected = dict(priors)
    for left, right, outcome in verdicts[:3]:  # the verdict about a photo not in the series is passed over
        expected[left], expected[right] = rate_duel(expected[left], expected[right], outcome, ENV)
    assert after == expected and set(after) == set(priors)
    assert ranks(after, ENV)["c"] < 3  # it beat both: no longer last


def test_equal_photos_rank_in_their_listing_order() -> None:
    assert ranks({"x": Rating(25.0, 3.0), "y": Rating(25.0, 3.0), "z": Rating(25.0, 3.0)}, ENV) == \
        {"x": 1, "y": 2, "z": 3}


def test_the_next_private_pair_is_an_open_one_until_none_is_left() -> None:
    rng = random.Random(1)
    mu, sigma = np.array([27.0, 26.0, 18.0, 17.0]), np.array([3.0, 3.0, 3.0, 3.0])
    open_pairs = ~np.eye(4, dtype=bool)
    drawn = {private_pair(mu, sigma, open_pairs, ENV, rng) for _ in range(300)}
    assert drawn <= set(itertools.combinations(range(4), 2))
    counts = [private_pair(mu, sigma, open_pairs, ENV, rng) for _ in range(500)]
    assert counts.count((0, 1)) > counts.count((2, 3))  # the race for the best comes first
    open_pairs[:] = False
    open_pairs[2, 3] = open_pairs[3, 2] = True
    assert private_pair(mu, sigma, open_pairs, ENV, rng) == (2, 3)  # still offered: the owner asked
    open_pairs[:] = False
    assert private_pair(mu, sigma, open_pairs, ENV, rng) is None
