"""The tag and category vocabulary the zero-shot tagger scores against.

The default ships in ``ml/data`` (``tags.txt``, ``categories.txt``: one entry a line, ``#`` comments),
so a deployment without a database still suggests sensible tags. Admins add tags at run time; the
result is a new ``Vocabulary`` (it is a frozen value, so a tagger can cache text embeddings per
vocabulary and notice when it changes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources

__all__ = ["MAX_TAG_LENGTH", "Vocabulary", "load_category_prompts", "normalise_tag"]

MAX_TAG_LENGTH = 64
_SPACES = re.compile(r"\s+")


def normalise_tag(s: str) -> str:
    """Canonical form of a tag: stripped, lower-case, inner whitespace collapsed to one space.

    Raises ValueError for an empty tag or one longer than MAX_TAG_LENGTH characters, because a tag is
    shown on a phone screen and used as a filter key.
    """
    tag = _SPACES.sub(" ", s.strip()).lower()
    if not tag:
        raise ValueError("a tag cannot be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"a tag is at most {MAX_TAG_LENGTH} characters, got {len(tag)}: {tag[:20]!r}...")
    return tag


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    """Normalised, first occurrence wins, order kept (so the shipped file's order is the display order)."""
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(normalise_tag(item), None)
    return tuple(seen)


def _read_lines(name: str) -> list[str]:
    text = resources.files("ml").joinpath("data", name).read_text(encoding="utf-8")
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def load_category_prompts() -> dict[str, tuple[str, ...]]:
    """Hand-written prompts per category (``ml/data/category_prompts.json``).

    Category names such as "still-life" or "macro" are poor prompts on their own; a few descriptive
    sentences per category give CLIP something to match.
    """
    raw = json.loads(resources.files("ml").joinpath("data", "category_prompts.json").read_text(encoding="utf-8"))
    return {normalise_tag(k): tuple(str(p) for p in v) for k, v in raw.items()}


@dataclass(frozen=True)
class Vocabulary:
    """Tags (many may apply to one photo) and categories (exactly one per photo)."""

    tags: tuple[str, ...]
    categories: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.categories:
            raise ValueError("a vocabulary needs at least one category")

    @classmethod
    def load_default(cls) -> Vocabulary:
        """The vocabulary shipped with the package."""
        return cls(tags=_dedupe(_read_lines("tags.txt")), categories=_dedupe(_read_lines("categories.txt")))

    @classmethod
    def from_lists(cls, tags: Iterable[str], categories: Iterable[str]) -> Vocabulary:
        """Build from arbitrary strings, normalising and de-duplicating them."""
        return cls(tags=_dedupe(tags), categories=_dedupe(categories))

    def with_tags(self, extra: Iterable[str]) -> Vocabulary:
        """A new vocabulary with admin-added tags appended (normalised; existing ones are not repeated)."""
        return Vocabulary(tags=_dedupe((*self.tags, *extra)), categories=self.categories)

    def category_prompts(self, overrides: Mapping[str, Iterable[str]] | None = None) -> dict[str, tuple[str, ...]]:
        """Prompts for each category: the shipped hand-written ones, else built from the name."""
        shipped = (
            load_category_prompts() if overrides is None else {normalise_tag(k): tuple(v) for k, v in overrides.items()}
        )
        out: dict[str, tuple[str, ...]] = {}
        for category in self.categories:
            words = category.replace("-", " ")
            out[category] = shipped.get(category) or (f"a {words} photo.", f"a photo of {words}.")
        return out
