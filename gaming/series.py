"""Series rounds: several photos of one group side by side, one answer. Pure TrueSkill math, no I/O.

A player shown ``k`` photos either **picks the best** or, where the client lets them, **orders** them
(ties allowed). Both are rated on the same TrueSkill model a duel vote is (`gaming.ratings`): every
photo performs ``skill + N(0, beta**2)``, the dynamics add ``tau**2`` to each variance first, and a
"better than" is a performance gap beyond the draw margin of a 1-vs-1.

**A pick is one winner above each of the others, and nothing about the others.** :func:`rate_pick`
puts one factor ``p_winner - p_j > eps`` on each other photo, all sharing the winner's performance.
The obvious alternative, trueskill's free-for-all with the others tied at rank 1, tells TrueSkill that
the others *drew* with each other (trueskill chains adjacent ranks, and a tie is a draw within the draw
margin): it pulls them together and shrinks their sigmas on evidence the player never gave.
`bench/ranking_sim.py --series` measures both (BENCHMARKS.md, "Series rounds").

**An order** (:func:`rate_order`) is trueskill's free-for-all: ``ranks[i]`` is photo i's place, 0 best,
equal places a tie (a draw, as a DRAW vote is); photos sorted by place, one factor between neighbours.

Both run expectation propagation on those factors (:func:`_ep`), the factor graph trueskill builds for
one-photo teams, with two differences: it iterates until no message moves (trueskill stops after ten
sweeps, which leaves tied photos a few hundredths apart depending on the order they were listed in) and
it uses `gaming.ratings`' normal tails, stable far into an upset where trueskill raises
``FloatingPointError``. For two photos both are the duel update (`tests/test_series_ratings.py` checks
them against `gaming.ratings.rate_duel` and longer orders against trueskill).

**The conventions of a duel vote hold.** A vote's ``weight`` (`gaming.vote_weights`: new, anonymous
and screened-out voters) takes that share of each photo's step (`gaming.vote_weights.partial_update`);
weight 0 changes nothing. The celebrity offset (`gaming.celebrity.CelebrityOffset`) acts as in a duel:
only when the series mixes celebrity and other photos, each celebrity photo is rated as ``mu + offset``
and the offset is taken off again afterwards, so between any two photos of the series the discount is
the duel's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from gaming.ratings import Rating, RatingEnv, _v_w_draw, _v_w_win
from gaming.vote_weights import partial_update

__all__ = ["MAX_SERIES", "pick_ranks", "rate_order", "rate_pick"]

#: The most photos one series may show (the update's cost grows with it; the client shows up to 5).
MAX_SERIES = 8

_EP_ROUNDS = 50
_EP_TOLERANCE = 1e-10

_Natural = tuple[float, float]  # a Gaussian message as (precision, precision * mean)


def pick_ranks(size: int, winner: int) -> tuple[int, ...]:
    """A pick as places: the winner 0, every other photo 1 (tied)."""
    _check_size(size)
    if not 0 <= winner < size:
        raise ValueError(f"winner {winner!r} is not one of {size} photos")
    return tuple(0 if i == winner else 1 for i in range(size))


def rate_pick(
    ratings: Sequence[Rating],
    winner: int,
    env: RatingEnv,
    *,
    weight: float = 1.0,
    celebrity: Sequence[bool] | None = None,
    celebrity_offset: float = 0.0,
) -> tuple[Rating, ...]:
    """New ratings after a player picked ``ratings[winner]`` as the best of the series."""
    pick_ranks(len(ratings), winner)
    if weight == 0.0:
        return tuple(ratings)
    shifts = _celebrity_shifts(len(ratings), celebrity, celebrity_offset)
    shown = [Rating(r.mu + s, r.sigma) for r, s in zip(ratings, shifts, strict=True)]
    return _finish(ratings, _ep(shown, _factors_pick(len(shown), winner), env), shifts, weight)


def rate_order(
    ratings: Sequence[Rating],
    ranks: Sequence[int],
    env: RatingEnv,
    *,
    weight: float = 1.0,
    celebrity: Sequence[bool] | None = None,
    celebrity_offset: float = 0.0,
) -> tuple[Rating, ...]:
    """New ratings after a player ordered the series: ``ranks[i]`` is photo i's place (0 best, equal
    places tied). Places need not be consecutive; only their order counts."""
    _check_size(len(ratings))
    if len(ranks) != len(ratings) or any(not isinstance(r, int) or r < 0 for r in ranks):
        raise ValueError(f"ranks must be one non-negative int per photo, got {list(ranks)!r}")
    if weight == 0.0:
        return tuple(ratings)
    shifts = _celebrity_shifts(len(ratings), celebrity, celebrity_offset)
    shown = [Rating(r.mu + s, r.sigma) for r, s in zip(ratings, shifts, strict=True)]
    return _finish(ratings, _ep(shown, _factors_order(shown, ranks), env), shifts, weight)


# --- helpers ---------------------------------------------------------------------------------------------


def _check_size(size: int) -> None:
    if not 2 <= size <= MAX_SERIES:
        raise ValueError(f"a series shows 2 to {MAX_SERIES} photos, got {size}")


def _celebrity_shifts(size: int, celebrity: Sequence[bool] | None, offset: float) -> list[float]:
    """How far each photo's mu is moved for the update: +offset for celebrities in a mixed series."""
    if not math.isfinite(offset):
        raise ValueError(f"celebrity_offset must be finite, got {offset!r}")
    if celebrity is None or offset == 0.0:
        return [0.0] * size
    if len(celebrity) != size:
        raise ValueError("celebrity needs one flag per photo")
    if all(celebrity) or not any(celebrity):
        return [0.0] * size
    return [offset if c else 0.0 for c in celebrity]


def _finish(before: Sequence[Rating], rated: Sequence[Rating], shifts: Sequence[float], weight: float) -> tuple[
        Rating, ...]:
    """Take the shifts off again and ``weight`` of each photo's step."""
    return tuple(
        partial_update(old, Rating(new.mu - shift, new.sigma), weight)
        for old, new, shift in zip(before, rated, shifts, strict=True)
    )


def _factors_pick(size: int, winner: int) -> list[tuple[int, int, bool]]:
    """The winner above each other photo: ``(better, worse, drawn=False)`` factors."""
    return [(winner, j, False) for j in range(size) if j != winner]


def _factors_order(ratings: Sequence[Rating], ranks: Sequence[int]) -> list[tuple[int, int, bool]]:
    """trueskill's free-for-all: photos sorted by place, a factor between neighbours (a draw when tied).
    Inside a tie the photos are chained by mu, so the result does not depend on the order they were
    listed in (trueskill keeps the listing order, and a chain of draws is not symmetric)."""
    order = sorted(range(len(ranks)), key=lambda i: (ranks[i], ratings[i].mu, ratings[i].sigma, i))
    return [(a, b, ranks[a] == ranks[b]) for a, b in itertools.pairwise(order)]


def _ep(ratings: Sequence[Rating], factors: Sequence[tuple[int, int, bool]], env: RatingEnv) -> list[Rating]:
    """Expectation propagation over performance-difference factors, TrueSkill's factor graph.

    Each photo performs ``N(mu, sigma**2 + tau**2 + beta**2)``; a factor ``(i, j, drawn)`` says
    ``p_i - p_j > eps`` (or ``|p_i - p_j| <= eps``). Every factor keeps its message to each of its two
    performances in natural parameters (precision, precision * mean) and is refined against their beliefs
    without its own messages (the cavities), forwards then backwards as trueskill schedules a chain, until
    no message moves. Messages go back to the skills through the beta noise at the end.
    """
    var = [r.sigma**2 + env.tau**2 for r in ratings]
    prior = [(1.0 / (v + env.beta**2), r.mu / (v + env.beta**2)) for r, v in zip(ratings, var, strict=True)]
    msgs: list[tuple[_Natural, _Natural]] = [((0.0, 0.0), (0.0, 0.0)) for _ in factors]
    sweep = list(range(len(factors))) + list(range(len(factors) - 2, 0, -1))
    for _ in range(_EP_ROUNDS):
        moved = 0.0
        for f in sweep:
            i, j, drawn = factors[f]
            new = _difference_factor(_cavity(prior, msgs, factors, i, f), _cavity(prior, msgs, factors, j, f),
                                     drawn, env)
            moved = max(moved, *(abs(a - b) for n, o in zip(new, msgs[f], strict=True) for a, b in zip(n, o,
                                                                                                    strict=True)))
            msgs[f] = new
        if moved < _EP_TOLERANCE:
            break
    out = []
    for v, (r, variance) in enumerate(zip(ratings, var, strict=True)):
        pi, tau = _incoming(msgs, factors, v)
        out.append(_skill_posterior(r.mu, variance, tau / pi, 1.0 / pi, env) if pi > 0.0 else
                   Rating(r.mu, math.sqrt(variance)))
    return out


def _incoming(msgs: Sequence[tuple[_Natural, _Natural]], factors: Sequence[tuple[int, int, bool]], v: int,
              skip: int = -1) -> _Natural:
    """The product of the factors' messages to performance v, but factor ``skip``'s."""
    pi = tau = 0.0
    for f, fac in enumerate(factors):
        for side in (0, 1):
            if f != skip and fac[side] == v:
                pi, tau = pi + msgs[f][side][0], tau + msgs[f][side][1]
    return pi, tau


def _cavity(prior: Sequence[_Natural], msgs: Sequence[tuple[_Natural, _Natural]],
            factors: Sequence[tuple[int, int, bool]], v: int, skip: int) -> tuple[float, float]:
    """Performance v's belief without factor ``skip``'s message: (mean, variance)."""
    pi, tau = _incoming(msgs, factors, v, skip)
    pi, tau = pi + prior[v][0], tau + prior[v][1]
    return tau / pi, 1.0 / pi


def _difference_factor(
    better: tuple[float, float], worse: tuple[float, float], drawn: bool, env: RatingEnv
) -> tuple[_Natural, _Natural]:
    """One factor on ``d = p_better - p_worse`` given both cavities (mean, variance): its messages to
    the two performances in natural parameters."""
    d_mean, d_var = better[0] - worse[0], better[1] + worse[1]
    c = math.sqrt(d_var)
    v, w = (_v_w_draw if drawn else _v_w_win)(d_mean / c, env.draw_margin / c)
    post_mean, post_var = d_mean + c * v, d_var * (1.0 - w)
    # the factor's message on the difference: posterior over cavity, a Gaussian of positive precision
    m_pi = 1.0 / post_var - 1.0 / d_var
    m_mean, m_var = (post_mean / post_var - d_mean / d_var) / m_pi, 1.0 / m_pi
    to_better = (m_mean + worse[0], m_var + worse[1])
    to_worse = (better[0] - m_mean, better[1] + m_var)
    return (1.0 / to_better[1], to_better[0] / to_better[1]), (1.0 / to_worse[1], to_worse[0] / to_worse[1])


def _skill_posterior(mu: float, var: float, perf_mean: float, perf_var: float, env: RatingEnv) -> Rating:
    """The skill belief N(mu, var) times a message on the performance, carried back through the beta noise."""
    msg_var = perf_var + env.beta**2
    post_var = 1.0 / (1.0 / var + 1.0 / msg_var)
    return Rating(post_var * (mu / var + perf_mean / msg_var), math.sqrt(post_var))
