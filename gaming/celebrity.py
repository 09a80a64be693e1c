"""The celebrity discount: famous faces must not win duels on fame.

Voters prefer a photo of a famous person over an equally good photo of a stranger. If the rating
update takes those votes at face value, celebrity photos climb the leaderboards for who is in them,
not for the photography. :class:`CelebrityOffset` implements ``gaming.ratings.DuelAdjustment`` (pure:
ratings in, a :class:`~gaming.ratings.PreparedDuel` out) and only acts when *exactly one* side shows
a recognised celebrity -- two celebrities, or none, is an ordinary duel: the fame advantage in skill
units, fitted from the vote log by :func:`fit_celebrity_offset`, is added to the celebrity's
performance for the update and removed from the stored rating.

Why an offset and not partial-play weights (``bench/partial_play.py``; ``bench/celebrity_sim.py``
compares the two, bench/results/celebrity_sim.md): with voters giving celebrity photos +1 logit (73 %
wins against an equal photo), celebrity photos end ~85 ranks (of 400) too high without a discount; the
offset re-fitted from the log leaves +3 ± 8 and keeps Spearman within 0.003 of an unbiased electorate,
and at no fame it fits ~0 and changes nothing. Weights damp the steps but not where they lead: the vote
outcomes, not the step size, set the fixed point, so symmetric damping removes only 5-16 % of the bias.
Damping only celebrity wins does move the fixed point, but by an amount set by the weight, not by the
data: a weight that cancels one fame level over- or under-corrects every other (w = 0.25: -80 ranks at
no fame, +76 at +2 logits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from gaming.ratings import Outcome, PreparedDuel, Rating, RatingEnv

__all__ = [
    "CelebrityOffset",
    "fit_celebrity_offset",
    "logit_to_skill",
]


def _one_sided(left_celebrity: bool, right_celebrity: bool) -> bool:
    return left_celebrity != right_celebrity


@dataclass(frozen=True)
class CelebrityOffset:
    """Remove a fitted fame advantage ``offset`` (skill units) from celebrity photos' ratings.

    Model: a voter compares performances, and a celebrity photo performs like ``skill + offset``.
    The stored mu is meant to be the photo's skill *without* fame, so the update sees the celebrity
    at ``mu + offset`` (a win it owes to fame is then expected, and moves it little; a loss despite
    fame is news) and the result is shifted back by ``-offset``. Sigma is untouched: the vote is as
    informative as any other once the fame term is accounted for. ``offset`` comes from
    :func:`fit_celebrity_offset` over the vote log, re-estimated periodically by the service.
    """

    offset: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.offset):
            raise ValueError(f"CelebrityOffset.offset must be finite, got {self.offset!r}")

    def prepare(self, left: Rating, right: Rating, *, left_celebrity: bool, right_celebrity: bool) -> PreparedDuel:
        if not _one_sided(left_celebrity, right_celebrity) or self.offset == 0.0:
            return PreparedDuel(left, right)
        if left_celebrity:
            return PreparedDuel(Rating(left.mu + self.offset, left.sigma), right, left_shift=-self.offset)
        return PreparedDuel(left, Rating(right.mu + self.offset, right.sigma), right_shift=-self.offset)


def logit_to_skill(gamma: float, env: RatingEnv) -> float:
    """A Bradley-Terry log-odds advantage in TrueSkill skill units.

    Between two photos of equal skill, TrueSkill predicts ``P(win) = Phi(d / (sqrt(2) * beta))`` for a
    skill gap ``d`` (performance noise beta on each side). The skill gap that gives the same win
    probability the voters showed, ``sigmoid(gamma)``, is ``sqrt(2) * beta * Phi^-1(sigmoid(gamma))``
    (about ``gamma * sqrt(2) * beta / 1.7`` for small gamma; 3.6 skill units per logit with the
    default beta = 25/6). Exact at the even match-up, where most duels are.
    """
    p = float(expit(gamma))
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return math.sqrt(2.0) * env.beta * NormalDist().inv_cdf(p)


def fit_celebrity_offset(
    votes: Sequence[tuple[str, str, Outcome, bool, bool]],
    env: RatingEnv | None = None,
    *,
    l2: float = 0.2,
    offset_l2: float = 1e-3,
    min_celebrity_votes: int = 30,
) -> float:
    """The celebrity advantage in skill units, fitted from a vote log.

    Each vote is ``(left_photo, right_photo, outcome, left_celebrity, right_celebrity)``. Like
    LMArena's "style control" (which removes answer-length bias), a Bradley-Terry model gets a
    covariate next to the per-photo strengths:

        logit P(left wins) = theta[left] - theta[right] + gamma * (left_celebrity - right_celebrity)

    fitted by L2-regularised maximum likelihood (L-BFGS) on the *decisive* votes. DRAWs are left
    out: under the usual Bradley-Terry models with ties (Davidson's, or voters who call close pairs
    a draw) the odds of LEFT versus RIGHT among decisive votes are exactly the Bradley-Terry odds,
    whereas counting a draw as half a win pulls every logit towards zero and under-estimates the
    fame effect (about 6 % at a 10 % draw rate in bench/celebrity_sim.py).
    ``gamma`` is returned converted by :func:`logit_to_skill`, ready for :class:`CelebrityOffset`.

    Why it is identifiable at all: a photo always shows the same person, so ``theta`` of a
    celebrity photo and ``gamma`` are confounded photo by photo. The ridge penalty ``l2`` on theta
    (a N(0, 1/l2) prior on photo strength, logit units) is the assumption that separates them:
    *celebrity photos are, a priori, as good as the others*, so a systematic excess of celebrity
    wins is fame. If celebrity photos are in fact better on average (professional shoots), part of
    their real quality is discounted as fame; feed the fit only one kind of catalogue and watch the
    estimate. ``gamma`` itself gets only a tiny ``offset_l2`` so it is not shrunk towards zero.
    The default ``l2 = 0.2`` (prior sd ~2.2 logits, wider than plausible photo-quality spreads) is
    weak on purpose: a tighter prior under-fits the photo strengths and, logistic regression not
    being collapsible, attenuates gamma (-9 % at l2 = 0.5 with a quality sd of 1.7 logits); at 0.2 the
    simulated estimates were within -1 % / +4 % of the planted effect across the scenarios tried.

    Returns 0.0 (no discount) while fewer than ``min_celebrity_votes`` decisive votes put a celebrity
    against a non-celebrity: a handful of votes would give a noisy offset that moves every
    celebrity photo. The sign is kept: a negative value means voters disfavour the celebrities
    (the offset then removes that penalty too).
    """
    env = env or RatingEnv()
    if l2 <= 0 or offset_l2 < 0:
        raise ValueError("l2 must be > 0 and offset_l2 >= 0")
    index: dict[str, int] = {}
    lefts: list[int] = []
    rights: list[int] = []
    covariate: list[float] = []
    target: list[float] = []
    for left, right, outcome, left_celebrity, right_celebrity in votes:
        outcome = Outcome(outcome)
        if outcome is Outcome.DRAW:
            continue
        lefts.append(index.setdefault(left, len(index)))
        rights.append(index.setdefault(right, len(index)))
        covariate.append(float(bool(left_celebrity)) - float(bool(right_celebrity)))
        target.append(1.0 if outcome is Outcome.LEFT else 0.0)
    left_idx = np.asarray(lefts, dtype=np.int64)
    right_idx = np.asarray(rights, dtype=np.int64)
    z = np.asarray(covariate)
    y = np.asarray(target)
    if int(np.count_nonzero(z)) < min_celebrity_votes:
        return 0.0
    n = len(index)

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        theta, gamma = params[:n], params[n]
        s = theta[left_idx] - theta[right_idx] + gamma * z
        # Cross-entropy; log_expit is stable for large |s|.
        nll = -float(np.sum(y * log_expit(s) + (1.0 - y) * log_expit(-s)))
        residual = expit(s) - y  # d nll / d s
        grad_theta = np.bincount(left_idx, residual, n) - np.bincount(right_idx, residual, n)
        loss = nll + 0.5 * l2 * float(theta @ theta) + 0.5 * offset_l2 * gamma * gamma
        grad = np.empty(n + 1)
        grad[:n] = grad_theta + l2 * theta
        grad[n] = float(residual @ z) + offset_l2 * gamma
        return loss, grad

    result = minimize(loss_and_grad, np.zeros(n + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return logit_to_skill(float(result.x[n]), env)
