"""Errors a client must act on, each with `extensions.code`.

They subclass GraphQLError so graphql-core passes them through unchanged, and `should_mask_error`
lets exactly these through: any other exception is masked as "Unexpected error." and logged.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError


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
