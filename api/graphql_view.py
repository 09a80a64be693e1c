"""strawberry's ASGI view with our context, auth on websockets, and the upload CSRF guard; persisted
queries and the GraphQL-over-HTTP media type come from `api.graphql_http`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from cross_web import HTTPException
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET

from accounts.seen import AccountErased
from accounts.tokens import AuthError, AuthUnavailable, bearer_token
from api.context import Context
from api.errors import ACCOUNT_ERASED_MESSAGE, UNAVAILABLE_MESSAGE, UNEXPECTED_MESSAGE, is_unavailable
from api.graphql_http import GraphQLOverHttp

log = structlog.get_logger(__name__)

# A browser form can POST multipart/form-data cross-site without a CORS preflight; these headers
# cannot be set by a form, so requiring one of them makes uploads preflighted (Apollo's CSRF rule).
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")

# graphql-transport-ws's "Forbidden", what a refused connection_init gets: graphql-ws clients take it as
# "refresh the token, then reconnect".
TOKEN_EXPIRED_CLOSE_CODE = 4403


class PhotoDuelGraphQL(GraphQLOverHttp, GraphQL[Context, None]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._expiries: dict[int, asyncio.Task[None]] = {}  # by id() of the open WebSocket

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        open_sockets = request.app.state.services.metrics.websockets if isinstance(request, WebSocket) else None
        if open_sockets is not None:
            open_sockets.inc()
        try:
            return await super().run(request, context, root_value)
        finally:
            if open_sockets is not None:
                open_sockets.dec()
            expiry = self._expiries.pop(id(request), None) if isinstance(request, WebSocket) else None
            if expiry is not None:
                expiry.cancel()

    async def _close_at_expiry(self, websocket: WebSocket, expires_at: float) -> None:
        """A token is checked at connect; the socket must not outlive it (nor a revocation past it)."""
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        log.info("ws.token_expired", path=websocket.url.path)
        with contextlib.suppress(RuntimeError, OSError):  # closed meanwhile
            await websocket.close(code=TOKEN_EXPIRED_CLOSE_CODE, reason="token expired: refresh it and reconnect")

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        services = request.app.state.services
        principal = getattr(request.state, "principal", None)
        context = Context(services=services, request=request, response=response)
        if principal is not None:
            context.principal = principal
        return context

    async def on_ws_connect(self, context: Context) -> Any:
        """Websockets carry the token in connection_init's payload: {"Authorization": "Bearer ..."}."""
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        if not header and params.get("authToken"):
            header = f"Bearer {params['authToken']}"
        try:
            token = bearer_token(header)
            if token is not None:
                context.principal = await context.services.auth.verify(token)
                await context.services.seen_users.seen(context.principal)
        except AuthError as exc:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED", "message": str(exc)}) from None
        except AccountErased:
            raise ConnectionRejectionError({"code": "FORBIDDEN", "message": ACCOUNT_ERASED_MESSAGE}) from None
        except AuthUnavailable as exc:
            log.warning("ws.auth_unavailable", error=str(exc))
            raise ConnectionRejectionError({"code": "UNAVAILABLE", "message": UNAVAILABLE_MESSAGE}) from None
        except Exception as exc:  # recording the user failed: refuse the connection, the app reconnects
            log.warning("ws.connect_failed", exc_info=exc)
            if is_unavailable(exc):
                raise ConnectionRejectionError({"code": "UNAVAILABLE", "message": UNAVAILABLE_MESSAGE}) from None
            raise ConnectionRejectionError(
                {"code": "INTERNAL_SERVER_ERROR", "message": UNEXPECTED_MESSAGE}) from None
        expires_at = context.principal.expires_at
        websocket = context.request
        if expires_at is not None and isinstance(websocket, WebSocket):
            self._expiries[id(websocket)] = asyncio.create_task(self._close_at_expiry(websocket, expires_at))
        return None

    async def parse_multipart(self, request: Any) -> dict[str, str]:
        if not any(request.headers.get(name) for name in PREFLIGHT_HEADERS):
            raise HTTPException(
                400, "multipart uploads need an 'Apollo-Require-Preflight: true' header (CSRF protection)"
            )
        return await super().parse_multipart(request)
