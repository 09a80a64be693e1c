"""Relay connections: the types and the two helpers every paginated field uses (`paged` around the
read, `connection` to shape the page), so that every list pages, and fails on a bad cursor, alike."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import strawberry

from api.errors import BadUserInput
from storage.pagination import InvalidCursor, Page

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


def capped(values: list[T], argument: str, cap: int) -> list[T]:
    """A list argument checked against its cap before any work: told, not truncated."""
    if len(values) > cap:
        raise BadUserInput(f"`{argument}` takes at most {cap} items (got {len(values)})", argument=argument, max=cap)
    return values


@contextlib.contextmanager
def paged() -> Iterator[None]:
    """Around a page read: an `after` that is not a cursor of this list is the client's error."""
    try:
        yield
    except InvalidCursor as exc:
        raise BadUserInput(str(exc), argument="after") from None


def connection(page: Page, node: Callable[[dict[str, Any]], T]) -> Connection[T]:
    """A page of documents as a Relay connection, each document shaped by `node`."""
    edges = [Edge(cursor=c, node=node(d)) for d, c in zip(page.docs, page.cursors, strict=True)]
    end = page.cursors[-1] if page.cursors else None
    return Connection(edges=edges, page_info=PageInfo(has_next_page=page.has_next, end_cursor=end))
