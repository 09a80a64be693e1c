"""How a rating is stored on the photo document: the belief plus what is derived from it.

`conservative` and `score` are stored (not computed on read) so leaderboards sort on an index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gaming.ratings import Rating, RatingEnv, conservative_skill, prior_rating, score_1_to_10


def rating_fields(rating: Rating, env: RatingEnv, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
    counts = counts or {}
    return {
        "mu": rating.mu,
        "sigma": rating.sigma,
        "conservative": conservative_skill(rating, env),
        "score": score_1_to_10(rating, env),
        "votes": int(counts.get("votes", 0)),
        "wins": int(counts.get("wins", 0)),
        "losses": int(counts.get("losses", 0)),
        "draws": int(counts.get("draws", 0)),
    }


def initial_rating_fields(quality: float | None, env: RatingEnv) -> dict[str, Any]:
    """A new photo's rating: the model prior, no votes yet."""
    return rating_fields(prior_rating(quality, env), env)


def rating_from_fields(fields: Mapping[str, Any]) -> Rating:
    return Rating(mu=float(fields["mu"]), sigma=float(fields["sigma"]))
