"""GraphQL over HTTP: which media type a client gets, and the status that goes with each answer.

The GraphQL-over-HTTP spec's `application/graphql-response+json` is answered to a client that asks
for it (in `Accept`, at least as preferred as `application/json`): a request that never reached
execution (unparseable, invalid, over a limit) is a 4xx without a `data` entry; anything that executed
is a 200. Every other client (`application/json`, `*/*`, no Accept) gets `application/json` and 200 for
every GraphQL-shaped answer, as legacy clients expect.

`GraphQLOverHttp` is the view's HTTP side: it applies these rules on the way out and the persisted-query
protocol (`api.persisted_queries`) before an operation runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.responses import Response as StarletteResponse
from starlette.types import Receive, Scope, Send
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from api import persisted_queries

if TYPE_CHECKING:
    from strawberry.asgi import GraphQL

    _ViewBase = GraphQL[Any, None]
else:
    _ViewBase = object

log = structlog.get_logger(__name__)

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
#: Answers the client must act on before anything runs, yet with 200 even to graphql-response+json
#: clients: Apollo's persisted-query link resends the text on this answer.
RETRY_CODES = frozenset({"PERSISTED_QUERY_NOT_FOUND"})


def response_media_type(accept: str | None) -> str:
    """`application/graphql-response+json` when the client prefers it (or ranks it equal to
    `application/json`); otherwise `application/json`, the legacy answer, also for `*/*` and no Accept."""
    ranks = _accept_ranks(accept or "")
    new, legacy = ranks.get(GRAPHQL_RESPONSE_JSON, 0.0), ranks.get(JSON, 0.0)
    return GRAPHQL_RESPONSE_JSON if new > 0 and new >= legacy else JSON


def _accept_ranks(accept: str) -> dict[str, float]:
    ranks: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranks[media.lower()] = max(quality, ranks.get(media.lower(), 0.0))
    return ranks


def is_request_error(response: Mapping[str, Any]) -> bool:
    """Execution never started: no data, and every error is about the request, none about a field
    (field errors carry a `path`)."""
    errors = response.get("errors") or []
    return response.get("data") is None and bool(errors) and all(not e.get("path") for e in errors)


def http_answer(response: dict[str, Any], media_type: str) -> tuple[int, dict[str, Any]]:
    """The status and body of one GraphQL response in the negotiated media type."""
    if media_type != GRAPHQL_RESPONSE_JSON or not is_request_error(response):
        return 200, response
    codes = {(e.get("extensions") or {}).get("code") for e in response["errors"]}
    body = {k: v for k, v in response.items() if k != "data"}
    return (200 if codes <= RETRY_CODES else 400), body


def request_error_body(message: str, code: str = "BAD_REQUEST") -> dict[str, Any]:
    """A request refused before it was read as GraphQL (bad JSON, a GET mutation), for graphql-response+json."""
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


class GraphQLOverHttp(_ViewBase):
    """The view's HTTP side: persisted queries before an operation runs, the negotiated media type and
    status on the way out. Mixed in before strawberry's ASGI view."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as exc:  # refused before it was read as GraphQL
            if response_media_type(request.headers.get("accept")) == GRAPHQL_RESPONSE_JSON:
                response = StarletteResponse(self.encode_json(request_error_body(exc.reason)),
                                             status_code=exc.status_code, media_type=GRAPHQL_RESPONSE_JSON)
            else:
                response = PlainTextResponse(exc.reason, status_code=exc.status_code)
        await response(scope, receive, send)

    def should_render_graphql_ide(self, request: Any) -> bool:
        """A GET with no `query` but a persisted query's hash is an operation, not a visit to the IDE."""
        return "extensions" not in request.query_params and super().should_render_graphql_ide(request)

    async def get_sub_response(self, request: Any) -> Any:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = response_media_type(request.headers.get("accept"))
        return sub_response

    def create_response(self, response_data: Any, sub_response: Any) -> Any:
        media_type = sub_response.media_type or JSON
        status, body = (200, response_data) if isinstance(response_data, list) else http_answer(response_data,
                                                                                                  media_type)
        response = StarletteResponse(self.encode_json(body), status_code=status, media_type=media_type)
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    async def execute_single(self, request: Any, request_adapter: Any, sub_response: Any, context: Any,
                             root_value: Any, request_data: GraphQLRequestData) -> ExecutionResult:
        services = context.services
        try:
            prepared = await persisted_queries.prepare(
                services.persisted_queries, request_data, allow_list=services.settings.persisted_queries_only,
                admin=context.principal.admin)
        except persisted_queries.Refused as exc:
            return ExecutionResult(data=None, errors=[GraphQLError(str(exc), extensions={"code": exc.code})])
        result = await super().execute_single(request, request_adapter, sub_response, context, root_value,
                                              prepared.request)
        if prepared.register is not None and prepared.request.query and not _never_ran(result):
            sha, source, allow = prepared.register
            try:
                await services.persisted_queries.register(prepared.request.query, sha, source=source, allow=allow)
            except Exception as exc:  # the answer stands; the client resends the text next time
                log.warning("persisted_query.register_failed", error=f"{type(exc).__name__}: {exc}")
        return result


def _never_ran(result: ExecutionResult) -> bool:
    errors = result.errors or []
    return result.data is None and bool(errors) and all(not e.path for e in errors)
