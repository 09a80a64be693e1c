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
# What HTTP answers carry in Retry-After when the database is unavailable.
RETRY_AFTER_SECONDS = 2


class ApiError(GraphQLError):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": self.code, **extensions})


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    code = "FORBIDDEN"


class NotFound(ApiError):
    code = "NOT_FOUND"


class BadUserInput(ApiError):
    code = "BAD_USER_INPUT"


class DuelExpired(ApiError):
    code = "DUEL_EXPIRED"


class AlreadyVoted(ApiError):
    code = "ALREADY_VOTED"


class RateLimited(ApiError):
    code = "RATE_LIMITED"


class Unavailable(ApiError):
    code = "UNAVAILABLE"


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
