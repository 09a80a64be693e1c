"""ASGI middleware: who is calling (for HTTP), and a cap on request bodies before anything is parsed."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import AuthError, bearer_token


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def graphql_error(message: str, code: str) -> dict[str, Any]:
    return {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}


class AuthMiddleware:
    """Verifies `Authorization: Bearer` on HTTP requests. A bad token is a 401, never anonymous."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        services = scope["app"].state.services
        try:
            token = bearer_token(headers.get("authorization"))
            if token is not None:
                principal = await services.auth.verify(token)
                await services.extras["seen_users"].seen(principal)
                scope.setdefault("state", {})["principal"] = principal
        except AuthError as exc:
            await _send_json(send, 401, graphql_error(str(exc), "UNAUTHENTICATED"))
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413, whether or not Content-Length is declared."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = (f"request body over the limit of {self.max_bytes} bytes "
                   f"(uploads are capped by PHOTODUEL_MAX_UPLOAD_BYTES)")
        for key, value in scope["headers"]:
            if key.lower() == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_json(send, 413, graphql_error(message, "PAYLOAD_TOO_LARGE"))
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, graphql_error(message, "PAYLOAD_TOO_LARGE"))


class _TooLarge(Exception):
    pass
