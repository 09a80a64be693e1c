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


@strawberry.type(description="Where a page of a connection ends and whether another follows")
class PageInfo:
    has_next_page: bool = strawberry.field(description="true when asking again with `after: endCursor` gives more")
    end_cursor: str | None = strawberry.field(description="The last edge's cursor: the next page's `after`; null "
                                                          "for an empty page")


@strawberry.type(description="One item of a connection's page with its cursor")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Opaque: pass it as `after` to read on from this item")
    node: T = strawberry.field(description="The item")


@strawberry.type(description="A page of a list that can grow (Relay connection): read on with `first` and "
                             "`after: pageInfo.endCursor` while `pageInfo.hasNextPage`")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The page's items with their cursors, in the list's order")
    page_info: PageInfo = strawberry.field(description="Where this page ends and whether another follows")

    @strawberry.field(description="The page's items without cursors: a shortcut for `edges { node }`")
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
