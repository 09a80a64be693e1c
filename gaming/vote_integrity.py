"""Screening voters against the consensus: sequential tests that flag ballot stuffers. Pure.

Each of a voter's votes is seen as a :class:`VoteView`: the choice, the probability the *settled*
ratings (every voter's votes so far) give the left photo, and the two photos' owners. Three tests run
over the voter's votes in the order cast, each a likelihood ratio of "stuffer" against the most a
legitimate voter could do, multiplied vote by vote:

* **agreement far below chance**: H1 "picks the photo the consensus rates worse, as reliably as the
  consensus would pick the better one" (P(agree) = 1 - q, q the consensus' confidence) against H0
  "agrees at least as often as a coin" (P(agree) >= 1/2). An honest voter, however noisy, agrees with
  the consensus at least as often as chance; a voter who mostly picks the worse photo does not.
* **always one side**: H1 "answers LEFT (or RIGHT) ``side_alt`` of the time" against H0 "at most
  ``side_null``". The service shows the anchor photo on a random side, so a voter's taste cannot make
  them prefer a side; a human's position bias is a few points, well inside ``side_null``.
* **always one owner**: per owner O, on the votes where exactly one photo is O's: H1 "picks O's photo
  ``owner_alt`` of the time" against H0 "picks it at most ``owner_margin`` more often than the
  consensus says it deserves, or than a coin would" (a fan of a style is allowed a lean, not a rule;
  a voter who answers at random is careless, not a stuffer). The consensus here is, where known, how
  often the *other* voters picked O's photos (``owner_rates``): matchmaking pairs photos of close
  ratings, so that rate is near 1/2 for every owner, and unlike the ratings it does not move with the
  stuffer's own votes.

Why these are safe to run again and again on a growing history: under its H0 each likelihood ratio
is a non-negative supermartingale (the H0 bound is what makes each vote's expected factor <= 1), so by
Ville's inequality the chance it *ever* reaches 1/a is at most a. The voter's overall false-positive
rate is split (Bonferroni) between the tests: alpha/3 for agreement, alpha/6 for each side, and
alpha/(3 K) for each of the K owners the voter met. So an honest voter is flagged with probability at
most ``alpha`` over their whole life, however often the chore runs, as long as the settled ratings are
a fair consensus (they include the voter's own votes, which only raise agreement). ``bench/ballot_
stuffing.py`` measures the power and the false positives (bench/results/ballot_stuffing.md).

:func:`agreement` (how often a player's votes match the settled ratings) is the same comparison as a
plain statistic, for player progress.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gaming.ratings import Outcome

__all__ = [
    "DETECTOR_VERSION",
    "Agreement",
    "Finding",
    "Screening",
    "ScreeningPolicy",
    "VoteView",
    "agreement",
    "screen_voter",
]

# Recorded with every flag: which tests (and which defaults) decided it.
DETECTOR_VERSION = "vote-integrity/1"
# The consensus' confidence is capped: a rating gap can be over-confident, and q = 1 would make one
# dissenting vote an infinite piece of evidence.
MAX_CONFIDENCE = 0.95


@dataclass(frozen=True)
class VoteView:
    """One vote as the screening sees it. ``p_left``: P(left beats right) from the settled ratings."""

    choice: Outcome
    p_left: float
    left_owner: str | None = None
    right_owner: str | None = None


@dataclass(frozen=True)
class ScreeningPolicy:
    alpha: float = 1e-3  # a legitimate voter's chance of ever being flagged, all tests together
    side_null: float = 0.6
    side_alt: float = 0.9
    owner_margin: float = 0.2
    owner_alt: float = 0.95
    min_votes: int = 10  # fewer decided votes: not screened (nothing could cross anyway)

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError("ScreeningPolicy.alpha must lie in (0, 1)")
        if not 0.5 <= self.side_null < self.side_alt < 1:
            raise ValueError("ScreeningPolicy needs 0.5 <= side_null < side_alt < 1")
        if not 0 <= self.owner_margin < 0.5 or not 0.5 < self.owner_alt < 1:
            raise ValueError("ScreeningPolicy needs 0 <= owner_margin < 0.5 < owner_alt < 1")


@dataclass(frozen=True)
class Finding:
    """One test that crossed: its log likelihood ratio (the highest it reached) and the threshold."""

    test: str  # "agreement" | "side" | "owner"
    statistic: float
    threshold: float
    votes: int  # the votes the test looked at
    detail: str | None = None  # the side (LEFT/RIGHT) or the owner


@dataclass(frozen=True)
class Screening:
    votes: int
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def flagged(self) -> bool:
        return bool(self.findings)


@dataclass(frozen=True)
class Agreement:
    """How often a player picked the photo the settled ratings favour, on votes that were not draws
    and where the ratings favour one side; ``expected`` is what a voter who votes like the consensus
    would score on the same duels (the mean of the consensus' confidence)."""

    votes: int
    agreed: int
    expected: float

    @property
    def rate(self) -> float | None:
        return self.agreed / self.votes if self.votes else None


def _confidence(p_left: float) -> float:
    return min(MAX_CONFIDENCE, max(p_left, 1.0 - p_left))


def _decided(views: Iterable[VoteView]) -> list[VoteView]:
    return [v for v in views if Outcome(v.choice) is not Outcome.DRAW]


def agreement(views: Iterable[VoteView]) -> Agreement:
    votes = agreed = 0
    expected = 0.0
    for view in _decided(views):
        if view.p_left == 0.5:
            continue
        votes += 1
        agreed += (Outcome(view.choice) is Outcome.LEFT) == (view.p_left > 0.5)
        expected += _confidence(view.p_left)
    return Agreement(votes=votes, agreed=agreed, expected=expected / votes if votes else 0.0)


def _peak(steps: Iterable[float]) -> float:
    """The highest the running sum of log factors reached (0 before any vote)."""
    total = peak = 0.0
    for step in steps:
        total += step
        peak = max(peak, total)
    return peak


def _agreement_steps(decided: Sequence[VoteView]) -> list[float]:
    steps = []
    for view in decided:
        q = _confidence(view.p_left)
        agreed = (Outcome(view.choice) is Outcome.LEFT) == (view.p_left >= 0.5)
        steps.append(math.log(2 * (1 - q)) if agreed else math.log(2 * q))
    return steps


def _side_steps(decided: Sequence[VoteView], side: Outcome, policy: ScreeningPolicy) -> list[float]:
    hit = math.log(policy.side_alt / policy.side_null)
    miss = math.log((1 - policy.side_alt) / (1 - policy.side_null))
    return [hit if Outcome(v.choice) is side else miss for v in decided]


def _owner_steps(decided: Sequence[VoteView], policy: ScreeningPolicy,
                 owner_rates: Mapping[str, float]) -> dict[str, list[float]]:
    steps: dict[str, list[float]] = defaultdict(list)
    for view in decided:
        if view.left_owner == view.right_owner:
            continue
        for owner, p_owner, owner_side in ((view.left_owner, view.p_left, Outcome.LEFT),
                                           (view.right_owner, 1.0 - view.p_left, Outcome.RIGHT)):
            if owner is None:
                continue
            null = max(owner_rates.get(owner, p_owner), 0.5) + policy.owner_margin
            if null >= policy.owner_alt:  # the consensus already expects this: no evidence either way
                steps[owner].append(0.0)
            elif Outcome(view.choice) is owner_side:
                steps[owner].append(math.log(policy.owner_alt / null))
            else:
                steps[owner].append(math.log((1 - policy.owner_alt) / (1 - null)))
    return steps


def screen_voter(views: Sequence[VoteView], policy: ScreeningPolicy = ScreeningPolicy(),
                 owner_rates: Mapping[str, float] | None = None) -> Screening:
    """Run the three tests over one voter's votes (in the order cast); a finding per test that crossed.

    ``owner_rates``: for an owner, how often the *other* voters picked that owner's photos in their duels
    against other owners' photos; where given, it replaces the ratings' prediction in the owner test.
    The settled ratings include the voter's own votes, and a stuffer who has already lifted an owner's
    photos would otherwise look like a voter agreeing with the ratings they made."""
    decided = _decided(views)
    if len(decided) < policy.min_votes:
        return Screening(votes=len(decided))
    findings: list[Finding] = []
    threshold = math.log(3 / policy.alpha)
    peak = _peak(_agreement_steps(decided))
    if peak >= threshold:
        findings.append(Finding("agreement", peak, threshold, len(decided)))
    side_threshold = math.log(6 / policy.alpha)
    for side in (Outcome.LEFT, Outcome.RIGHT):
        peak = _peak(_side_steps(decided, side, policy))
        if peak >= side_threshold:
            findings.append(Finding("side", peak, side_threshold, len(decided), side.value))
    by_owner = _owner_steps(decided, policy, owner_rates or {})
    owner_threshold = math.log(3 * max(1, len(by_owner)) / policy.alpha)
    for owner, steps in sorted(by_owner.items()):
        peak = _peak(steps)
        if peak >= owner_threshold:
            findings.append(Finding("owner", peak, owner_threshold, len(steps), owner))
    return Screening(votes=len(decided), findings=tuple(findings))
