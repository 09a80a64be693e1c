"""ASGI middleware: errors as JSON answers, who is calling (for HTTP), and a cap on request bodies before
anything is parsed."""

from __future__ import annotations

import json
from typing import Any

import structlog
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accounts.seen import AccountErased
from accounts.tokens import AuthError, AuthUnavailable, bearer_token
from api.errors import (
    ACCOUNT_ERASED_MESSAGE,
    RETRY_AFTER_SECONDS,
    UNAVAILABLE_MESSAGE,
    UNEXPECTED_MESSAGE,
    is_unavailable,
)
from api.http_middleware import HttpMiddleware
from api.metrics import METRICS_PATH
from api.request_ids import current_request_id
from photos.upload_rules import UploadRules

log = structlog.get_logger(__name__)

OWN_TOKEN_PATHS = frozenset({METRICS_PATH})


async def _send_json(send: Send, status: int, body: dict[str, Any],
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


def graphql_error(message: str, code: str) -> dict[str, Any]:
    return {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}


def _masked(message: str, code: str) -> dict[str, Any]:
    """A masked answer names its request (api/request_ids.py), so a client's report finds its log lines."""
    body = graphql_error(message, code)
    request_id = current_request_id()
    if request_id is not None:
        body["errors"][0]["extensions"]["requestId"] = request_id
    return body


async def send_exception(send: Send, exc: BaseException) -> None:
    """The answer to an exception no handler took: 503 UNAVAILABLE (with Retry-After) for a database that
    is down or past its deadline, else a masked 500. Both in the shape of a GraphQL response."""
    if is_unavailable(exc):
        await _send_json(send, 503, graphql_error(UNAVAILABLE_MESSAGE, "UNAVAILABLE"),
                         [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
    else:
        await _send_json(send, 500, _masked(UNEXPECTED_MESSAGE, "INTERNAL_SERVER_ERROR"))


def log_exception(event: str, scope: Scope, exc: BaseException) -> None:
    where = {"method": scope.get("method"), "path": scope.get("path")}
    if is_unavailable(exc):
        log.warning(event, **where, unavailable=True, error=f"{type(exc).__name__}: {exc}")
    else:
        log.error(event, **where, exc_info=exc)


class _StartedSend:
    """A `send` that remembers whether the response has started: after that nothing else may be sent."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class ErrorMiddleware(HttpMiddleware):
    """Outermost: an exception from any middleware or route becomes a JSON answer (503 or a masked 500)
    and one structured log line, instead of a plain-text 500 and "Exception in ASGI application".

    Once a response has started nothing else can be said: the exception is logged and the response ends
    (the server closes the connection, as it must for a body it cannot finish).
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracked = _StartedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            log.info("request.client_disconnected", method=scope.get("method"), path=scope.get("path"))
        except Exception as exc:
            log_exception("request.failed", scope, exc)
            if tracked.started:
                return
            try:
                await send_exception(send, exc)
            except OSError:
                pass  # the client is gone


class AuthMiddleware(HttpMiddleware):
    """Verifies `Authorization: Bearer` on HTTP requests. A bad token is a 401, never anonymous.

    Recording the user (`SeenUsers`) writes to the database: when that fails the request is answered
    here (503 UNAVAILABLE for an outage, a masked 500 otherwise) rather than served without it. Paths
    with a bearer token of their own (`/metrics`: Prometheus's) are left to their route.
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("path") in OWN_TOKEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        services = scope["app"].state.services
        try:
            token = bearer_token(headers.get("authorization"))
            if token is not None:
                principal = await services.auth.verify(token)
                await services.seen_users.seen(principal)
                scope.setdefault("state", {})["principal"] = principal
        except AuthError as exc:
            await _send_json(send, 401, graphql_error(str(exc), "UNAUTHENTICATED"))
            return
        except AccountErased:  # not a 401: a fresh token of the same account is refused the same way
            await _send_json(send, 403, graphql_error(ACCOUNT_ERASED_MESSAGE, "FORBIDDEN"))
            return
        except AuthUnavailable as exc:  # Google's keys or the Auth API: a 401 would make clients refresh in a loop
            log.warning("request.auth_unavailable", method=scope.get("method"), path=scope.get("path"),
                        error=str(exc))
            await _send_json(send, 503, graphql_error(UNAVAILABLE_MESSAGE, "UNAVAILABLE"),
                             [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
            return
        except Exception as exc:
            log_exception("request.auth_failed", scope, exc)
            await send_exception(send, exc)
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware(HttpMiddleware):
    """The upload rules' first step: bodies over their cap get a 413 before anything parses them, whether
    or not Content-Length is declared. A multipart body (an upload) may reach
    `UploadRules.max_request_bytes`; any other (a JSON operation) only `max_json_bytes`, so a client cannot
    make the server parse megabytes of JSON."""

    def __init__(self, app: ASGIApp, *, rules: UploadRules, max_json_bytes: int) -> None:
        super().__init__(app)
        self.upload_cap = (rules.max_request_bytes, rules.request_too_large)
        self.json_cap = (max_json_bytes, f"request body over the limit of {max_json_bytes} bytes for requests that "
                                         "are not uploads (PHOTODUEL_MAX_JSON_BODY_BYTES; uploads use multipart)")

    def _cap(self, headers: dict[bytes, bytes]) -> tuple[int, str]:
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
        return self.upload_cap if multipart else self.json_cap

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {key.lower(): value for key, value in scope["headers"]}
        max_bytes, message = self._cap(headers)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > max_bytes:
            await _send_json(send, 413, graphql_error(message, "PAYLOAD_TOO_LARGE"))
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > max_bytes:
                    raise _TooLarge
            return msg

        tracked = _StartedSend(send)
        try:
            await self.app(scope, limited_receive, tracked)
        except _TooLarge:
            if not tracked.started:
                await _send_json(send, 413, graphql_error(message, "PAYLOAD_TOO_LARGE"))


class _TooLarge(Exception):
    pass
