"""Connections over lists computed per request: text search, similar photos, a user's devices.

Their order is computed per request (a vector search's scores, a kept neighbour list), not an indexed
sort key, so keyset cursors do not apply: a cursor here is the position after the page. A ranking that
changes between two pages (a photo uploaded or deleted) can repeat or skip one item at the seam; the
lists are short and bounded (`MAX_RANKED_POSITION`), which is why this is acceptable here and nowhere
else (every indexed list uses `storage.pagination`'s keyset cursors).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import TypeVar

from api.errors import BadUserInput
from api.schema.common import Connection, Edge, PageInfo

T = TypeVar("T")
S = TypeVar("S")

#: How deep a ranked list pages: a search's 500th hit is noise, and the vector search is asked for
#: `position + first + 1` hits each page.
MAX_RANKED_POSITION = 500
_PREFIX = "rank:"


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode()


def ranked_position(after: str | None) -> int:
    """Where the page after `after` starts; a cursor that is not ours is the client's error."""
    if after is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(after.encode()).decode()
        position = int(text.removeprefix(_PREFIX)) if text.startswith(_PREFIX) else -1
    except (ValueError, UnicodeDecodeError):
        position = -1
    if position < 0 or position > MAX_RANKED_POSITION:
        raise BadUserInput("`after` is not a cursor of this list", argument="after")
    return position


def ranked_window(start: int, size: int) -> int:
    """How many ranked items to compute for a page: through the page plus one, to know if more follow."""
    return min(start + size, MAX_RANKED_POSITION) + 1


def ranked_connection(ranked: Sequence[S], start: int, size: int, node: Callable[[S], T]) -> Connection[T]:
    """The page `ranked[start:start + size]` of a list computed through at least one item past it."""
    end = min(start + size, MAX_RANKED_POSITION)
    window = ranked[start:end]
    edges = [Edge(cursor=_cursor(start + i + 1), node=node(item)) for i, item in enumerate(window)]
    has_next = len(ranked) > end and end < MAX_RANKED_POSITION
    return Connection(edges=edges, page_info=PageInfo(has_next_page=has_next,
                                                      end_cursor=edges[-1].cursor if edges else None))
