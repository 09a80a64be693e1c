"""TrueSkill ratings for photo duels: pure math, no I/O.

A photo's rating is a Gaussian belief ``N(mu, sigma**2)`` about its skill (how often players prefer it).
Everything here follows the TrueSkill paper's names (mu, sigma, beta, tau, draw_probability) and
trueskill/openskill's habits: the environment is passed explicitly, functions return new objects and
never mutate their inputs, and there is no module-level mutable state (``trueskill.setup()`` is never
called; each :class:`RatingEnv` carries its own ``trueskill.TrueSkill``).

**Prior from the model.** A new photo starts at ``prior_rating(quality)``: the model's quality score in
[0, 1] moves mu linearly, ``mu = env.mu + prior_mu_span * (quality - 0.5)``, and ``prior_sigma`` says how
far the model is trusted. For a model whose score correlates r with true quality, the best prior has a
mu spread of ``r * S`` and a sigma of ``S * sqrt(1 - r**2)``, where S is the skill spread the *voters*
produce (how much a quality difference changes who wins: in ``bench/ranking_sim.py`` 3.5 mu per
standard deviation of quality for noisy voters, 5.9 for consistent ones). The defaults, span 10 (mu
spread 2.9 for percentile-like scores: r = 0.65 at the middle S = 4.5) and sigma 5 (at least
``S * sqrt(1 - r**2)`` in every simulated case, so a useless model costs little), were within noise of
the best of spans 8-12 and sigmas 4-6 at r = 0.5 and 0.7; sigma 4 hurt when r = 0. The span assumes
scores spread over [0, 1] like percentiles; a model whose scores bunch up should be calibrated to
percentiles first. No score (``None``): the uninformed ``N(env.mu, env.sigma)``.

**Score 1-10.** The score shown to players is a map of the conservative skill ``c = mu - k * sigma`` (we
are ~99.9% sure the photo is at least this good, for k = 3), so a photo cannot rank high on a lucky
vote or two: it rises as votes confirm it. The map is a logistic,
``score = 1 + 9 / (1 + exp(-(c - score_mid) / score_scale))``, rounded half-up to one decimal. It is
monotonic in c and bounded to [1, 10] by construction, and a logistic (not a clipped line) because it
never saturates: the best photos stay distinguishable instead of piling up at 10. ``score_mid = 20`` is
the conservative skill of an average photo (mu = 25) once about twenty duels have brought sigma to
~1.7, so an established average photo shows 5.5; ``score_scale = 5`` is about the spread of established
photos' skills, so one standard deviation of quality is about two points of score. A new photo starts
low and rises as votes confirm it (that is what "conservative" buys: no photo is featured on the
strength of a lucky vote or a generous model score). Documented points
(default env): a new photo with no model score (c = 0) shows **1.2**; c = 10 shows **2.1**; a new photo
with a median model score (mu 25, sigma 5, c = 10) also shows **2.1**; c = 20 shows **5.5**; c = 25
(average skill known exactly) **7.6**; c = 30 **8.9**; c = 35 **9.6**.

**Stability.** How far one vote moves a score depends on how sure we already are about the photo:
TrueSkill moves uncertain ratings a lot, sure ones a little, and an upset more than an expected
result. Over photos and opponents with mu in [10, 40] (about +-3 spreads of established photos),
opponents of any sigma up to the uninformed prior's, and all three outcomes, one vote changes the
score by at most **0.3** for a photo with sigma <= 1, **0.6** at sigma <= 1.5, **1.0** at sigma <= 2,
**2.0** at sigma <= 3, **4.2** for a new photo at the model prior (sigma 5) and **5.7** for a new photo
without a model score (sigma 8.3). The big moves need an upset against a far-away photo; matchmaking
pairs photos of close mu, and between photos within 2 beta of each other an established photo
(sigma <= 2) moves at most **0.7**. ``tests/test_ratings.py`` checks these bounds.

**Celebrity hook.** :func:`rate_duel` takes an optional :class:`DuelAdjustment`: it may shift a
photo's mu before the update (e.g. subtract a fitted celebrity offset) and give it a partial-play weight,
and the shift is added back afterwards, so the stored rating stays on the same scale as everyone else's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import Enum
from statistics import NormalDist
from typing import Protocol

import trueskill

__all__ = [
    "DuelAdjustment",
    "Outcome",
    "PreparedDuel",
    "Rating",
    "RatingEnv",
    "conservative_skill",
    "match_quality",
    "prior_rating",
    "rate_duel",
    "score_1_to_10",
    "win_probability",
]


@dataclass(frozen=True)
class RatingEnv:
    """The TrueSkill environment plus the settings that turn ratings into what players see.

    TrueSkill parameters keep the paper's names and trueskill's defaults: ``beta`` is the performance
    noise (a skill gap of beta means ~76% wins), ``tau`` the per-duel drift that keeps sigma from
    collapsing, ``draw_probability`` the share of duels that end in DRAW between equal photos. ``k``
    makes the conservative skill ``mu - k * sigma``.
    """

    mu: float = 25.0
    sigma: float = 25.0 / 3.0
    beta: float = 25.0 / 6.0
    tau: float = 25.0 / 300.0
    draw_probability: float = 0.10
    k: float = 3.0
    #: mu(quality = 1) - mu(quality = 0) for the model prior; see the module docstring.
    prior_mu_span: float = 10.0
    #: how far the model is trusted: the prior's sigma.
    prior_sigma: float = 5.0
    #: conservative skill shown as 5.5, and the logistic's scale (see the module docstring).
    score_mid: float = 20.0
    score_scale: float = 5.0
    _ts: trueskill.TrueSkill = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        checks = {
            "sigma": self.sigma > 0,
            "beta": self.beta > 0,
            "tau": self.tau >= 0,
            "draw_probability": 0 <= self.draw_probability < 1,
            "k": self.k >= 0,
            "prior_sigma": self.prior_sigma > 0,
            "score_scale": self.score_scale > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"RatingEnv.{name} out of range: {getattr(self, name)!r}")
        # One trueskill environment per RatingEnv, built once: trueskill.setup() would be global state.
        ts = trueskill.TrueSkill(
            mu=self.mu, sigma=self.sigma, beta=self.beta, tau=self.tau, draw_probability=self.draw_probability
        )
        object.__setattr__(self, "_ts", ts)

    def __reduce__(self) -> tuple[type[RatingEnv], tuple[float, ...]]:
        # Pickle the settings only; the trueskill object (closures inside) is rebuilt on load.
        return (type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init))

    def trueskill(self) -> trueskill.TrueSkill:
        """The ``trueskill.TrueSkill`` object for these parameters (cached; treat it as read-only)."""
        return self._ts

    @property
    def draw_margin(self) -> float:
        """The performance gap that counts as a draw in a 1-vs-1 duel (TrueSkill's epsilon)."""
        return NormalDist().inv_cdf((self.draw_probability + 1) / 2) * math.sqrt(2) * self.beta


@dataclass(frozen=True)
class Rating:
    """A photo's skill belief ``N(mu, sigma**2)``."""

    mu: float
    sigma: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mu) and math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"invalid rating: mu={self.mu!r}, sigma={self.sigma!r}")


class Outcome(str, Enum):
    """A player's answer to "which is better?"."""

    LEFT = "LEFT"
    RIGHT = "RIGHT"
    DRAW = "DRAW"


@dataclass(frozen=True)
class PreparedDuel:
    """What a :class:`DuelAdjustment` hands to the TrueSkill update.

    ``left``/``right`` are the ratings the update sees, the weights are TrueSkill partial-play weights
    (1 = the duel counts fully), and the shifts are added to the updated mu afterwards, so an adjustment
    that rates a photo as ``mu - offset`` sets ``shift = +offset`` and the stored mu keeps its scale.

    Beware: a TrueSkill partial-play weight scales the photo's *performance*, its mean included (the
    duel compares ``w_l * mu_l`` with ``w_r * mu_r``). On the default scale (mu ~ 25) a weight of 0.5
    makes a photo look like an underdog, so its win earns more, not less. To shrink only the update,
    centre the pair first: subtract the pair's mean mu from both ratings and set it as both shifts.
    """

    left: Rating
    right: Rating
    left_weight: float = 1.0
    right_weight: float = 1.0
    left_shift: float = 0.0
    right_shift: float = 0.0

    def __post_init__(self) -> None:
        for name in ("left_weight", "right_weight"):
            weight = getattr(self, name)
            if not (0.0 <= weight <= 1.0):
                raise ValueError(f"PreparedDuel.{name} must lie in [0, 1], got {weight!r}")
        for name in ("left_shift", "right_shift"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"PreparedDuel.{name} must be finite")


class DuelAdjustment(Protocol):
    """Changes how a duel counts before the update (the celebrity discount implements this)."""

    def prepare(self, left: Rating, right: Rating, *, left_celebrity: bool, right_celebrity: bool) -> PreparedDuel: ...


def prior_rating(quality: float | None, env: RatingEnv) -> Rating:
    """The starting rating of a photo from the model's quality score in [0, 1].

    Linear in quality so that equal score gaps mean equal expected win-rate gaps; ``None`` (no score)
    gives the uninformed prior. Scores a hair outside [0, 1] (float noise) are clamped; NaN is refused.
    """
    if quality is None:
        return Rating(env.mu, env.sigma)
    if not math.isfinite(quality):
        raise ValueError(f"quality must be a finite number in [0, 1], got {quality!r}")
    q = min(1.0, max(0.0, float(quality)))
    return Rating(env.mu + env.prior_mu_span * (q - 0.5), env.prior_sigma)


_RANKS = {Outcome.LEFT: [0, 1], Outcome.RIGHT: [1, 0], Outcome.DRAW: [0, 0]}


def rate_duel(
    left: Rating,
    right: Rating,
    outcome: Outcome,
    env: RatingEnv,
    *,
    left_celebrity: bool = False,
    right_celebrity: bool = False,
    adjustment: DuelAdjustment | None = None,
) -> tuple[Rating, Rating]:
    """The TrueSkill 1-vs-1 update for one vote; returns new ``(left, right)`` ratings.

    With an ``adjustment`` the update runs on what ``adjustment.prepare`` returns (shifted ratings,
    partial-play weights) and the shifts are added back to the updated mu. trueskill's own update is
    the reference; for extreme upsets its default backend can raise ``FloatingPointError``, and then
    the same update is computed here in closed form with stable tails.
    """
    outcome = Outcome(outcome)
    if adjustment is None:
        prep = PreparedDuel(left, right)
    else:
        prep = adjustment.prepare(left, right, left_celebrity=left_celebrity, right_celebrity=right_celebrity)
    ts = env.trueskill()
    try:
        (new_l,), (new_r,) = ts.rate(
            [(ts.create_rating(prep.left.mu, prep.left.sigma),), (ts.create_rating(prep.right.mu, prep.right.sigma),)],
            ranks=_RANKS[outcome],
            weights=[(prep.left_weight,), (prep.right_weight,)],
        )
        l_mu, l_sigma, r_mu, r_sigma = new_l.mu, new_l.sigma, new_r.mu, new_r.sigma
    except FloatingPointError:
        l_mu, l_sigma, r_mu, r_sigma = _rate_closed_form(prep, outcome, env)
    return Rating(l_mu + prep.left_shift, l_sigma), Rating(r_mu + prep.right_shift, r_sigma)


def match_quality(a: Rating, b: Rating, env: RatingEnv) -> float:
    """TrueSkill's match quality: the draw probability relative to a draw between equals, in (0, 1].

    High when the two are close *and* both well known; used as a fairness signal, not as the whole
    matchmaking objective (it favours already-certain photos, see gaming/matchmaking.py).
    """
    c2 = 2 * env.beta**2 + a.sigma**2 + b.sigma**2
    return math.sqrt(2 * env.beta**2 / c2) * math.exp(-((a.mu - b.mu) ** 2) / (2 * c2))


def win_probability(a: Rating, b: Rating, env: RatingEnv) -> float:
    """P(a's performance beats b's) under both beliefs, with draws split evenly: Phi(dmu / c)."""
    c = math.sqrt(2 * env.beta**2 + a.sigma**2 + b.sigma**2)
    return _cdf((a.mu - b.mu) / c)


def conservative_skill(r: Rating, env: RatingEnv) -> float:
    """``mu - k * sigma``: a skill the photo very probably has at least; what rankings sort by."""
    return r.mu - env.k * r.sigma


def score_1_to_10(r: Rating, env: RatingEnv) -> float:
    """The score players see: the documented logistic of the conservative skill, one decimal."""
    x = (conservative_skill(r, env) - env.score_mid) / env.score_scale
    # Split by sign so exp never overflows for extreme ratings.
    logistic = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
    raw = 1.0 + 9.0 * logistic
    return min(10.0, max(1.0, math.floor(raw * 10.0 + 0.5) / 10.0))


# --- closed-form 1-vs-1 update (the fallback, and the reference the simulation's vector form follows) ---


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _v_w_win(t: float, eps: float) -> tuple[float, float]:
    """TrueSkill's V and W for a win, stable far into the upset tail (where v -> -x)."""
    x = t - eps
    denom = _cdf(x)
    v = _pdf(x) / denom if denom > 1e-300 else -x
    if x < -30:  # asymptotic series: v = -x - 1/x + 2/x^3, w = 1 - 1/x^2 + ...
        v = -x - 1 / x + 2 / x**3
        w = 1 - 1 / x**2 + 6 / x**4
    else:
        w = v * (v + x)
    return v, min(max(w, 1e-12), 1 - 1e-12)


def _v_w_draw(t: float, eps: float) -> tuple[float, float]:
    """TrueSkill's V and W for a draw (t = winner-minus-loser mean gap over c)."""
    abs_t = abs(t)
    a, b = eps - abs_t, -eps - abs_t
    denom = _cdf(a) - _cdf(b)
    if denom < 1e-300:  # far outside the draw band: the truncated normal hugs its near edge
        v = a
        w = 1 - 1e-12
    else:
        v = (_pdf(b) - _pdf(a)) / denom
        w = v * v + (a * _pdf(a) - b * _pdf(b)) / denom
    return (-v if t < 0 else v), min(max(w, 1e-12), 1 - 1e-12)


def _rate_closed_form(prep: PreparedDuel, outcome: Outcome, env: RatingEnv) -> tuple[float, float, float, float]:
    """The same 1-vs-1 update as ``trueskill.rate`` (weights included), as formulas."""
    if outcome is Outcome.RIGHT:
        w = (prep.right.mu, prep.right.sigma, max(prep.right_weight, 1e-4))
        lo = (prep.left.mu, prep.left.sigma, max(prep.left_weight, 1e-4))
    else:
        w = (prep.left.mu, prep.left.sigma, max(prep.left_weight, 1e-4))
        lo = (prep.right.mu, prep.right.sigma, max(prep.right_weight, 1e-4))
    var_w = w[1] ** 2 + env.tau**2
    var_l = lo[1] ** 2 + env.tau**2
    c2 = w[2] ** 2 * (var_w + env.beta**2) + lo[2] ** 2 * (var_l + env.beta**2)
    c = math.sqrt(c2)
    t = (w[2] * w[0] - lo[2] * lo[0]) / c
    eps = env.draw_margin / c
    v, ww = _v_w_draw(t, eps) if outcome is Outcome.DRAW else _v_w_win(t, eps)
    mu_w = w[0] + w[2] * var_w / c * v
    mu_l = lo[0] - lo[2] * var_l / c * v
    sigma_w = math.sqrt(var_w * (1 - w[2] ** 2 * var_w / c2 * ww))
    sigma_l = math.sqrt(var_l * (1 - lo[2] ** 2 * var_l / c2 * ww))
    if outcome is Outcome.RIGHT:
        return mu_l, sigma_l, mu_w, sigma_w
    return mu_w, sigma_w, mu_l, sigma_l
