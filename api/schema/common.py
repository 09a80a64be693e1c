"""Relay connection types shared by every paginated field."""

from __future__ import annotations

from typing import Generic, TypeVar

import strawberry

from api.errors import BadUserInput

T = TypeVar("T")

DEFAULT_PAGE = 20


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


def page_size(first: int | None, maximum: int) -> int:
    """`first` checked up front: a client asking for 10,000 rows gets told, not silently truncated."""
    if first is None:
        return min(DEFAULT_PAGE, maximum)
    if first < 1 or first > maximum:
        raise BadUserInput(f"`first` must be between 1 and {maximum}", argument="first")
    return first
