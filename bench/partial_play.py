"""Candidate (a) of the celebrity discount, kept for the benchmark that rejected it.

``bench/celebrity_sim.py`` compares it with :class:`gaming.celebrity.CelebrityOffset`, the discount the
service uses; ``gaming/celebrity.py`` says why the offset won. Like the offset, it only acts when
*exactly one* side shows a recognised celebrity.
"""

from __future__ import annotations

from dataclasses import dataclass

from gaming.ratings import Outcome, PreparedDuel, Rating


@dataclass(frozen=True)
class PartialPlayDiscount:
    """Candidate (a): a celebrity photo's duels against non-celebrities count ``weight`` of a duel.

    TrueSkill's partial-play weight multiplies a player's *skill* in the team performance
    (``perf = weight * skill + noise``), which in a 1-vs-1 duel would also make the celebrity look
    weaker than it is and turn every celebrity win into an "upset" with a *larger* update. So the
    celebrity's mu is presented as ``mu / weight`` (the performance mean stays ``mu``) and shifted
    back by ``mu - mu / weight`` afterwards: what remains is the intended effect, the celebrity's
    mu and sigma moving about ``weight`` times as far as usual, in both directions. (The opponent's
    update grows slightly, because the celebrity side's performance noise is also scaled by weight.)

    Symmetric damping slows a celebrity photo's drift towards its fame-inflated rating but does not
    change where the drift ends. :meth:`wins_only` gives the outcome-aware variant (damp only the
    celebrity's wins), which does move the fixed point, but by an amount that depends on the fame
    effect it was tuned for. Both are measured by bench/celebrity_sim.py (bench/results/celebrity_sim.md).
    """

    weight: float

    def __post_init__(self) -> None:
        # Below ~0.05, mu / weight leaves trueskill's comfortable numeric range for little gain.
        if not 0.05 <= self.weight <= 1.0:
            raise ValueError(f"PartialPlayDiscount.weight must lie in [0.05, 1], got {self.weight!r}")

    def prepare(self, left: Rating, right: Rating, *, left_celebrity: bool, right_celebrity: bool) -> PreparedDuel:
        if left_celebrity == right_celebrity or self.weight == 1.0:
            return PreparedDuel(left, right)
        w = self.weight
        if left_celebrity:
            return PreparedDuel(Rating(left.mu / w, left.sigma), right, left_weight=w, left_shift=left.mu - left.mu / w)
        return PreparedDuel(
            left, Rating(right.mu / w, right.sigma), right_weight=w, right_shift=right.mu - right.mu / w
        )

    def wins_only(self, outcome: Outcome, *, left_celebrity: bool, right_celebrity: bool) -> PartialPlayDiscount:
        """The adjustment for one vote that damps the celebrity only when the celebrity won.

        ``DuelAdjustment.prepare`` is not told the outcome, so the caller binds it per vote:
        ``rate_duel(..., adjustment=disc.wins_only(outcome, left_celebrity=.., right_celebrity=..))``.
        """
        outcome = Outcome(outcome)
        celebrity_won = (left_celebrity and not right_celebrity and outcome is Outcome.LEFT) or (
            right_celebrity and not left_celebrity and outcome is Outcome.RIGHT
        )
        return self if celebrity_won else PartialPlayDiscount(1.0)
