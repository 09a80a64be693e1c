"""Errors a client must act on, each with `extensions.code`.

They subclass GraphQLError so graphql-core passes them through unchanged, and `should_mask_error`
lets exactly these through: any other exception is masked as "Unexpected error." (code
INTERNAL_SERVER_ERROR) and logged, except a database that is down or past its deadline, which the
client sees as UNAVAILABLE ("retry") - see `is_unavailable` and `api.error_handling`.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError

UNAVAILABLE_MESSAGE = "the service is briefly unavailable: retry"
UNEXPECTED_MESSAGE = "Unexpected error."
# Every request of an account being erased (403, FORBIDDEN); once the erasure is done nothing of the account
# is left, and a sign-in with the same uid starts a new, empty one.
ACCOUNT_ERASED_MESSAGE = "this account has been deleted: sign out"
# What HTTP answers carry in Retry-After when the database is unavailable.
RETRY_AFTER_SECONDS = 2


class ApiError(GraphQLError):
    """An error the client acts on, by its `extensions.code`; each subclass names its code."""

    code = "INTERNAL_SERVER_ERROR"

    def __init_subclass__(cls, *, code: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = code

    def __init__(self, message: str, *, code: str | None = None, **extensions: Any) -> None:
        """`code`: one decided below the API (a refused duel's), instead of the class's."""
        if code is not None:
            self.code = code
        super().__init__(message, extensions={"code": self.code, **extensions})


class Unauthenticated(ApiError, code="UNAUTHENTICATED"):
    """No valid ID token: sign in (again)."""


class Forbidden(ApiError, code="FORBIDDEN"):
    """Signed in, but not the owner (or an admin) of what was asked for."""


class NotFound(ApiError, code="NOT_FOUND"):
    """No such thing; `argument` names the id that found nothing."""


class BadUserInput(ApiError, code="BAD_USER_INPUT"):
    """An argument the client must change; `argument` names it."""


class DisplayNameTaken(ApiError, code="DISPLAY_NAME_TAKEN"):
    """Another user has this display name (compared regardless of case): choose another."""


class RateLimited(ApiError, code="RATE_LIMITED"):
    """Too many at once (subscriptions, marks): wait and try again."""


class Unavailable(ApiError, code="UNAVAILABLE"):
    """A part of the service is not ready (the model loading, push off): retry later."""


def should_mask_error(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None:
        # Syntax and validation errors, and ApiErrors raised as-is: meant for the client.
        return False
    return not isinstance(original, GraphQLError)


def is_unavailable(exc: BaseException | None) -> bool:
    """A database that cannot answer now (down, unreachable, stalled past the deadline), anywhere in the
    exception's cause chain: the request may succeed if retried, so the client is told to retry.

    PyMongo raises ConnectionFailure (AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError,
    WaitQueueTimeoutError, NotPrimaryError) for an unreachable server; ExecutionTimeout and WTimeoutError
    for a server-side deadline; any PyMongoError with `timeout` True for the client-side deadline (CSOT).
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, PyMongoError) and (
            exc.timeout or isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError)
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
