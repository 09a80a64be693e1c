"""How much one vote counts: new and anonymous accounts less, screened-out voters not at all. Pure.

**The weight.** A vote's weight in [0, 1] comes only from what was recorded when it was cast (the
account was anonymous or not, and how many votes the voter had cast before) and from the screening
decision in force for the voter (`gaming.vote_integrity`, stored in `storage.voter_flags`): so the
rating projector and a replay of the log compute the same weight. A registered account's first vote
counts ``new_weight`` and its weight rises linearly to 1 over its first ``full_after`` votes; an
anonymous Firebase account (``firebase.sign_in_provider == "anonymous"``: free, unlimited, no identity)
starts at ``anonymous_weight`` and needs ``anonymous_full_after`` votes. A flagged or confirmed ballot
stuffer's votes weigh ``flagged_weight`` (0: left out). A vote recorded without these facts (cast before
they were recorded) counts fully, as it did when it was applied.

**The weighted update.** TrueSkill's own partial-play weight is the wrong tool: it scales the photo's
*performance*, mean included, so a weight of 0.5 on the default scale makes the photo look like an
underdog and its win earns more, not less (see `gaming.ratings.PreparedDuel`, bench/partial_play.py).
Here the update is computed in full and then only part of it is taken: the posterior mean and variance
are interpolated towards the prior, ``mu' = mu + w (mu_post - mu)``, ``sigma'^2 = sigma^2 + w
(sigma_post^2 - sigma^2)``. At w = 1 this is the update itself (bit for bit), at w = 0 nothing moves,
and in between a vote moves a photo w times as far and removes w of the certainty it would have
added: k votes of weight 1/k are about one vote. Direction and size keep TrueSkill's logic (an upset
moves more), which a scaled K-factor would not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from gaming.ratings import DuelAdjustment, Outcome, Rating, RatingEnv, rate_duel

__all__ = ["EXCLUDED", "VoteWeighting", "partial_update", "rate_weighted"]

# Screening statuses whose votes are weighed with `flagged_weight` (see storage.voter_flags).
EXCLUDED = frozenset({"flagged", "confirmed"})


@dataclass(frozen=True)
class VoteWeighting:
    new_weight: float = 0.5
    full_after: int = 20
    anonymous_weight: float = 0.25
    anonymous_full_after: int = 50
    flagged_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("new_weight", "anonymous_weight", "flagged_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"VoteWeighting.{name} must lie in [0, 1], got {getattr(self, name)!r}")
        for name in ("full_after", "anonymous_full_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"VoteWeighting.{name} must be >= 0")

    @property
    def history_needed(self) -> int:
        """How many earlier votes the service needs to count: beyond this every account weighs 1."""
        return max(self.full_after, self.anonymous_full_after)

    def weight(self, *, anonymous: bool | None, history: int | None, status: str | None = None) -> float:
        """The weight of one vote. ``history`` None: cast before it was recorded, counts fully."""
        if status in EXCLUDED:
            return self.flagged_weight
        if history is None:
            return 1.0
        start, full = ((self.anonymous_weight, self.anonymous_full_after) if anonymous
                       else (self.new_weight, self.full_after))
        if full == 0 or history >= full:
            return 1.0
        return start + (1.0 - start) * max(0, history) / full

    def weight_of(self, vote: Mapping[str, Any], status: str | None = None) -> float:
        """The weight of a vote (or batch entry) from the fields it was recorded with."""
        history = vote.get("history")
        return self.weight(anonymous=bool(vote.get("anonymous")), history=None if history is None else int(history),
                           status=status)

    def to_params(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> VoteWeighting:
        return cls(**dict(params)) if params else cls()


def partial_update(prior: Rating, posterior: Rating, weight: float) -> Rating:
    """``weight`` of the step from prior to posterior (mean linearly, variance linearly)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight!r}")
    if weight == 1.0:
        return posterior
    if weight == 0.0:
        return prior
    variance = prior.sigma**2 + weight * (posterior.sigma**2 - prior.sigma**2)
    return Rating(prior.mu + weight * (posterior.mu - prior.mu), math.sqrt(variance))


def rate_weighted(left: Rating, right: Rating, outcome: Outcome, env: RatingEnv, weight: float, *,
                  left_celebrity: bool = False, right_celebrity: bool = False,
                  adjustment: DuelAdjustment | None = None) -> tuple[Rating, Rating]:
    """`gaming.ratings.rate_duel`, then ``weight`` of its step for each photo (1: the plain update)."""
    if weight == 0.0:
        return left, right
    new_left, new_right = rate_duel(left, right, outcome, env, left_celebrity=left_celebrity,
                                    right_celebrity=right_celebrity, adjustment=adjustment)
    return partial_update(left, new_left, weight), partial_update(right, new_right, weight)
