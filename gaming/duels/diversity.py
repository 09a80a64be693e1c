"""At most one photo per similarity group in a promotion list, so it shows the best of each subject.

The list is read in its own order (best conservative skill first) and a photo is kept when it is its
group's first photo under the same filter: the group's best among the photos the list may show. That
is a property of the photo and the filter, not of the page, so pages cut by a cursor stay consistent: a
group shown on one page never comes back on the next. A photo not (yet) in a group stands for itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from bson import ObjectId

from storage.base import Doc
from storage.pagination import Page
from storage.photo_groups import group_of

# Reads a page of the underlying list: (first, after) -> Page.
ReadPage = Callable[[int, str | None], Awaitable[Page]]
# For some groups, each one's first photo under the list's filter: group ids -> {group: photo id}.
GroupTops = Callable[[Sequence[ObjectId]], Awaitable[dict[ObjectId, ObjectId]]]
# Rows read per round trip: some are dropped (their group's better photo came first), so read ahead.
READ_AHEAD = 2


def _keeps(doc: Doc, tops: dict[ObjectId, ObjectId]) -> bool:
    group = group_of(doc)
    return group is None or tops.get(group) == doc["_id"]


async def one_per_group(read: ReadPage, tops_of: GroupTops, *, first: int, after: str | None) -> Page:
    """`first` rows after the cursor, each the best of its group. `has_next` may be true with nothing
    after (the rows left unread may all be dropped), never false with something after."""
    docs: list[Doc] = []
    cursors: list[str] = []
    chunk = max(READ_AHEAD * first, 20)
    while True:
        page = await read(chunk, after)
        groups = [g for d in page.docs if (g := group_of(d)) is not None]
        tops = await tops_of(groups) if groups else {}
        kept = [i for i, d in enumerate(page.docs) if _keeps(d, tops)]
        taken = kept[: first - len(docs)]
        docs += [page.docs[i] for i in taken]
        cursors += [page.cursors[i] for i in taken]
        if len(docs) == first:
            return Page(docs=docs, cursors=cursors, has_next=len(kept) > len(taken) or page.has_next)
        if not page.has_next:
            return Page(docs=docs, cursors=cursors, has_next=False)
        after = page.cursors[-1]
