"""Apollo's automatic persisted queries (APQ) and the allow-list mode, before an operation runs.

The protocol (`extensions.persistedQuery = {version: 1, sha256Hash}`):

* hash only: the stored text runs; an unknown hash answers `PersistedQueryNotFound` (code
  PERSISTED_QUERY_NOT_FOUND, HTTP 200), on which Apollo clients resend with the text;
* text and hash: the hash must be the text's sha256 (else PERSISTED_QUERY_HASH_MISMATCH); the text runs
  and, once it parsed and validated, is stored, so the next request can send the hash alone, also as a
  GET (queries only: the view refuses a mutation over GET, stored or not).

Allow-list mode (PHOTODUEL_PERSISTED_QUERIES_ONLY): only operations on the allow-list run, by hash or by
text (code OPERATION_NOT_ALLOWED otherwise); clients no longer register anything. Operations are put on
it by `photoduel register-operations FILE...`, or by an admin, whose operations run and are registered.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from strawberry.http import GraphQLRequestData

from storage.persisted_queries import PersistedQueryRepository, Source, sha256_hex

NOT_FOUND = "PersistedQueryNotFound"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class Refused(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Prepared:
    """The request to run (its text filled in from the store) and what to store once it validated."""

    request: GraphQLRequestData
    register: tuple[str, Source, bool] | None = None  # (hash, source, on the allow-list)


async def prepare(store: PersistedQueryRepository, request: GraphQLRequestData, *, allow_list: bool,
                  admin: bool) -> Prepared:
    """Raises Refused for a request that must not run."""
    sha = _requested_hash(request.extensions)
    trusted = admin or not allow_list  # may run any text
    if sha is None:
        return await _text_only(store, request, allow_list=allow_list, trusted=trusted)
    if request.query is None:
        return await _hash_only(store, request, sha, trusted=trusted)
    if sha256_hex(request.query) != sha:
        raise Refused(f"the persistedQuery sha256Hash is not the sha256 of the query text (that is "
                      f"{sha256_hex(request.query)})", "PERSISTED_QUERY_HASH_MISMATCH")
    if trusted:
        return Prepared(request, _registration(sha, allow_list))
    if await store.lookup(sha, registered=True) is None:
        raise _not_allowed()
    return Prepared(request)


async def _text_only(store: PersistedQueryRepository, request: GraphQLRequestData, *, allow_list: bool,
                     trusted: bool) -> Prepared:
    text = request.query
    if text is None or not allow_list:
        return Prepared(request)
    if trusted:
        return Prepared(request, _registration(sha256_hex(text), allow_list))
    if await store.lookup(sha256_hex(text), registered=True) is None:
        raise _not_allowed()
    return Prepared(request)


async def _hash_only(store: PersistedQueryRepository, request: GraphQLRequestData, sha: str, *,
                     trusted: bool) -> Prepared:
    found = await store.lookup(sha, registered=not trusted)
    if found is None:
        if not trusted and await store.lookup(sha) is not None:
            raise _not_allowed()
        raise Refused(NOT_FOUND, "PERSISTED_QUERY_NOT_FOUND")
    return Prepared(dataclasses.replace(request, query=found.text))


def _registration(sha: str, allow_list: bool) -> tuple[str, Source, bool]:
    return (sha, "admin", True) if allow_list else (sha, "apq", False)


def _not_allowed() -> Refused:
    return Refused("this operation is not on the server's allow-list (PHOTODUEL_PERSISTED_QUERIES_ONLY): "
                   "register it with `photoduel register-operations`", "OPERATION_NOT_ALLOWED")


def _requested_hash(extensions: dict[str, Any] | None) -> str | None:
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise Refused("extensions.persistedQuery must be {version: 1, sha256Hash}", "PERSISTED_QUERY_NOT_SUPPORTED")
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise Refused("extensions.persistedQuery.sha256Hash must be 64 hex digits", "PERSISTED_QUERY_NOT_SUPPORTED")
    return sha.lower()
