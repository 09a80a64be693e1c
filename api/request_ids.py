"""A request id per HTTP request and websocket: the client's `X-Request-ID` when it is a short token of
safe characters, else a new one. It is echoed in the response header, bound into every structured log
line of the request (structlog's contextvars, merged by photoduel/logging.py), and put in the
`extensions` of a masked error, so a user's report of "Unexpected error." leads to its log lines.

A hostile value (too long, or with characters that could forge log lines or headers) is not echoed:
it is replaced by a generated id.
"""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SAFE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def accepted_request_id(value: str | None) -> str:
    if value is not None and _SAFE.fullmatch(value):
        return value
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value) if value is not None else None


class RequestIdMiddleware:
    """Outermost, so that every other middleware's log lines and answers already carry the id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k.lower() == HEADER), None)
        request_id = accepted_request_id(given.decode("latin-1") if given is not None else None)
        scope.setdefault("state", {})["request_id"] = request_id
        start = "http.response.start" if scope["type"] == "http" else "websocket.accept"

        async def send_with_id(message: Message) -> None:
            if message["type"] == start:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, request_id.encode())]}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)
