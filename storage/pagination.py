"""Keyset pagination for Relay connections: every paginated list (photos, leaderboards, notifications)
reads its pages with `read_page`.

A cursor encodes the sort key of the last row seen, never an offset: pages stay stable while photos
are uploaded or re-rated, and the query uses the index instead of skipping rows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from storage.base import Doc


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Page:
    docs: list[Doc]
    cursors: list[str]
    has_next: bool


@dataclass(frozen=True)
class SortKey:
    """Fields and directions, e.g. [("created_at", -1), ("_id", -1)]; `_id` must come last."""

    fields: tuple[tuple[str, int], ...]


def _get(doc: Mapping[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _encode_value(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return {"$oid": str(value)}
    if isinstance(value, datetime):
        return {"$date": value.isoformat()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "$oid" in value:
        return ObjectId(value["$oid"])
    if isinstance(value, dict) and "$date" in value:
        return datetime.fromisoformat(value["$date"])
    return value


def encode_cursor(doc: Mapping[str, Any], sort: SortKey) -> str:
    values = [_encode_value(_get(doc, name)) for name, _ in sort.fields]
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, sort: SortKey) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("`after` is not a cursor this API issued") from exc
    if not isinstance(values, list) or len(values) != len(sort.fields):
        raise InvalidCursor("`after` is not a cursor for this ordering")
    try:
        return [_decode_value(v) for v in values]
    except Exception as exc:
        raise InvalidCursor("`after` is not a cursor this API issued") from exc


def after_filter(values: Sequence[Any], sort: SortKey) -> dict[str, Any]:
    """The filter for rows strictly after `values` in `sort` order (lexicographic on the fields)."""
    clauses: list[dict[str, Any]] = []
    for i, (name, direction) in enumerate(sort.fields):
        clause = {prev: values[j] for j, (prev, _) in enumerate(sort.fields[:i])}
        clause[name] = {"$lt" if direction < 0 else "$gt": values[i]}
        clauses.append(clause)
    return {"$or": clauses}


async def read_page(
    collection: AsyncCollection[Doc], query: Doc, sort: SortKey, *, first: int, after: str | None
) -> Page:
    """One Relay page: `first` rows strictly after the cursor, plus whether more follow (one extra row is
    read to know). Raises `InvalidCursor`."""
    if after:
        query = {"$and": [query, after_filter(decode_cursor(after, sort), sort)]}
    docs = await collection.find(query).sort(list(sort.fields)).limit(first + 1).to_list(None)
    page = docs[:first]
    return Page(docs=page, cursors=[encode_cursor(d, sort) for d in page], has_next=len(docs) > first)
