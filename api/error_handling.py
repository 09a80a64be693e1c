"""What a client sees of an exception in a resolver, and what the log keeps of it.

* an ApiError, a syntax or validation error: as raised (the client must act on it);
* the database down, unreachable or past its deadline (`api.errors.is_unavailable`): UNAVAILABLE,
  "retry", and on HTTP a `Retry-After` header; the HTTP status stays 200 as for every field error
  (other fields may have data);
* anything else: "Unexpected error." with code INTERNAL_SERVER_ERROR; the log has the traceback.
"""

from __future__ import annotations

from typing import Any

import structlog
from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from api.errors import (
    RETRY_AFTER_SECONDS,
    UNAVAILABLE_MESSAGE,
    UNEXPECTED_MESSAGE,
    Unavailable,
    is_unavailable,
    should_mask_error,
)
from api.request_ids import current_request_id

log = structlog.get_logger(__name__)


class ApiErrorMasking(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=should_mask_error, error_message=UNEXPECTED_MESSAGE)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        unavailable = is_unavailable(error.original_error)
        if unavailable:
            self._ask_for_retry()
        return GraphQLError(
            message=UNAVAILABLE_MESSAGE if unavailable else self.error_message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions={"code": Unavailable.code} if unavailable else with_request_id(
                {"code": "INTERNAL_SERVER_ERROR"}),
        )

    def _ask_for_retry(self) -> None:
        response = getattr(self.execution_context.context, "response", None)
        headers = getattr(response, "headers", None)  # None on websockets
        if headers is not None:
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)


def with_request_id(extensions: dict[str, Any]) -> dict[str, Any]:
    """A masked error's extensions name the request, so a client's report finds its log lines."""
    request_id = current_request_id()
    return {**extensions, "requestId": request_id} if request_id is not None else extensions


def answered_code(error: GraphQLError) -> str:
    """The code the client saw for this error, as the masking decides it: its own for an expected error
    (an ApiError's, a validation rule's), else UNAVAILABLE or, masked, INTERNAL_SERVER_ERROR."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return str((error.extensions or {}).get("code") or "GRAPHQL_VALIDATION_FAILED")
    return "UNAVAILABLE" if is_unavailable(original) else "INTERNAL_SERVER_ERROR"


def log_graphql_errors(errors: list[GraphQLError], operation: str | None) -> None:
    """Strawberry's `Schema.process_errors`, structured, so that error-level lines are the ones an operator
    acts on: the client's own mistakes (syntax, validation, every ApiError's code) at info without a
    traceback, an unavailable database as a warning without one (one per failed field while it lasts),
    and only the unexpected at error, with the traceback."""
    for error in errors:
        original = error.original_error
        fields: dict[str, Any] = {"operation": operation, "path": error.path, "message": error.message}
        if original is None or isinstance(original, GraphQLError):
            log.info("graphql.client_error", code=answered_code(error), **fields)
        elif is_unavailable(original):
            log.warning("graphql.unavailable", **fields, error=f"{type(original).__name__}: {original}")
        else:
            log.error("graphql.unexpected_error", **fields, exc_info=original)
