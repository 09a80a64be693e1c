"""`/metrics` for Prometheus, and what the requests feed into it (the series are `photoduel.metrics`).

A request is timed by `RequestMetricsMiddleware`, outermost, from the first byte in to the response sent;
the GraphQL operation it ran is named by `OperationMetrics`, a schema extension, which leaves its name and
type in the request's state for the middleware. Errors are counted by their `extensions.code` where the
schema reports them (`count_graphql_errors`), and a request refused before any operation ran (a bad
token, a body over the cap, the per-address limit) by the code its status stands for.

Who may read `/metrics`: with `PHOTODUEL_METRICS_TOKEN`, only a bearer of it; without one, anyone when
`PHOTODUEL_METRICS_PUBLIC` (default: in dev only), and otherwise nobody (404, as if there were none).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

import structlog
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from api.error_handling import answered_code
from api.http_middleware import HttpMiddleware
from photoduel.metrics import CONTENT_TYPE_LATEST

log = structlog.get_logger(__name__)

METRICS_PATH = "/metrics"
# Keys of the request's state (`scope["state"]`) through which the schema tells the middleware.
OPERATION = "metrics.operation"
ERRORS_COUNTED = "metrics.errors_counted"
UNMATCHED = "(unmatched)"
CLIENT_GONE = 499  # nginx's status for a request whose client closed the connection before the answer
# The code a request refused before any GraphQL ran stands for (api/middleware.py, api/throttle.py).
STATUS_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 429: "RATE_LIMITED", 500: "INTERNAL_SERVER_ERROR",
    503: "UNAVAILABLE",
}


def _metrics(scope: Scope) -> Any:
    app = scope.get("app")
    services = getattr(getattr(app, "state", None), "services", None)
    return getattr(services, "metrics", None)


def _route_of(scope: Scope) -> str:
    """The template of the route the request was for (a bounded label), also for a request a middleware
    answered before routing (a 401, a 413, a 429)."""
    route = scope.get("route")
    if route is None:
        routes = getattr(getattr(scope.get("app"), "router", None), "routes", [])
        route = next((r for r in routes if r.matches(scope)[0] != Match.NONE), None)
    return str(getattr(route, "path", None) or UNMATCHED)


def count_graphql_errors(errors: list[GraphQLError], execution_context: ExecutionContext | None) -> None:
    """From the schema's `process_errors`: every error of a response, by its code."""
    context = execution_context.context if execution_context is not None else None
    metrics = getattr(getattr(context, "services", None), "metrics", None)
    if metrics is None:
        return
    for error in errors:
        metrics.error_answered(answered_code(error))
    request = getattr(context, "request", None)
    if isinstance(request, Request):
        request.scope.setdefault("state", {})[ERRORS_COUNTED] = True


class OperationMetrics(SchemaExtension):
    """Leaves the operation's name and type in an HTTP request's state for `RequestMetricsMiddleware`
    (websocket operations are not timed: a subscription lasts as long as the client likes)."""

    def on_operation(self) -> Iterator[None]:
        yield
        request = getattr(self.execution_context.context, "request", None)
        if not isinstance(request, Request):
            return
        try:
            kind = self.execution_context.operation_type.value
        except Exception:  # a document that did not parse has no operation
            kind = "unknown"
        request.scope.setdefault("state", {})[OPERATION] = (self.execution_context.operation_name, kind)


class RequestMetricsMiddleware(HttpMiddleware):
    """Times every HTTP request and counts its response by route template and status."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = CLIENT_GONE  # nothing sent: the client left first (ErrorMiddleware answers everything else)

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except BaseException:
            status = 500 if status == CLIENT_GONE else status  # the server answers an escaped exception so
            raise
        finally:
            self._record(scope, state, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        metrics = _metrics(scope)
        if metrics is None:  # before the lifespan built the services
            return
        route = _route_of(scope)
        operation = state.get(OPERATION) if route == "/graphql" else None
        metrics.request_done(route, status, seconds, operation)
        if route == "/graphql" and status >= 400 and not state.get(ERRORS_COUNTED):
            metrics.error_answered(STATUS_CODES.get(status, f"HTTP_{status}"))


def _allowed(request: Request) -> bool | None:
    """True: serve; False: a token is needed and was not given; None: not served here at all."""
    settings = request.app.state.services.settings
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, expected)
    return True if settings.metrics_open else None


async def metrics_endpoint(request: Request) -> Response:
    """The process's series, with the database's read now (under their deadline)."""
    allowed = _allowed(request)
    if allowed is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    if not allowed:
        return JSONResponse({"error": "metrics need 'Authorization: Bearer <PHOTODUEL_METRICS_TOKEN>'"},
                            status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    services = request.app.state.services
    await services.metric_reads.refresh()
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


def metrics_route() -> Route:
    return Route(METRICS_PATH, metrics_endpoint, methods=["GET"])


def metrics_app(services: Any) -> Starlette:
    """`/metrics` alone, for a process without the API (`photoduel worker` on PHOTODUEL_METRICS_PORT)."""
    app = Starlette(routes=[metrics_route()])
    app.state.services = services
    return app
