"""The featured cut: the one definition of "the top 10% of a category".

Matchmaking aims votes at the photos whose skill straddles the cut (`featured_boundary_array`), and
promotion features the photos above it (`featured_count`); both come from `featured_cut_ranks`, so the
photos matchmaking treats as above the line are the ones that get featured. The line sits where numpy's
linear quantile puts the (1 - top_fraction) quantile of the category's skills: between two ranks, so a
photo is above it, or on it (then not featured), never ambiguous. At least one photo of a category with
any settled photo is featured, so a small category still has a front page.
"""

from __future__ import annotations

import math

import numpy as np

#: The featured set's share of a category.
TOP_FRACTION = 0.10


def featured_cut_ranks(count: int, top_fraction: float = TOP_FRACTION) -> tuple[int, int, float]:
    """Where the cut falls among `count` values sorted ascending: the two ranks it interpolates between
    and the weight of the upper one.

    So a store can read the cut as two values off an index on mu instead of every photo's mu.
    """
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    position = (1.0 - top_fraction) * (count - 1)
    lower = min(math.floor(position), count - 1)
    return lower, min(lower + 1, count - 1), position - lower


def featured_count(count: int, top_fraction: float = TOP_FRACTION) -> int:
    """How many of `count` photos are featured: those ranked above the cut, at least one."""
    if count < 1:
        return 0
    lower, _, _ = featured_cut_ranks(count, top_fraction)
    return max(1, count - 1 - lower)


def featured_boundary_array(mu: np.ndarray, top_fraction: float = TOP_FRACTION) -> float:
    """The skill at the cut among these skills (not empty)."""
    lower, upper, weight = featured_cut_ranks(len(mu), top_fraction)
    part = np.partition(np.asarray(mu, dtype=float), [lower, upper])
    return float(part[lower] + weight * (part[upper] - part[lower]))
