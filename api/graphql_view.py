"""strawberry's ASGI view with our context, auth on websockets, and the upload CSRF guard."""

from __future__ import annotations

from typing import Any

import structlog
from cross_web import HTTPException
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from accounts.tokens import AuthError, bearer_token
from api.context import Context
from api.errors import UNAVAILABLE_MESSAGE, UNEXPECTED_MESSAGE, is_unavailable

log = structlog.get_logger(__name__)

# A browser form can POST multipart/form-data cross-site without a CORS preflight; these headers
# cannot be set by a form, so requiring one of them makes uploads preflighted (Apollo's CSRF rule).
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")


class PhotoDuelGraphQL(GraphQL[Context, None]):
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
        except Exception as exc:  # recording the user failed: refuse the connection, the app reconnects
            log.warning("ws.connect_failed", exc_info=exc)
            if is_unavailable(exc):
                raise ConnectionRejectionError({"code": "UNAVAILABLE", "message": UNAVAILABLE_MESSAGE}) from None
            raise ConnectionRejectionError(
                {"code": "INTERNAL_SERVER_ERROR", "message": UNEXPECTED_MESSAGE}) from None
        return None

    async def parse_multipart(self, request: Any) -> dict[str, str]:
        if not any(request.headers.get(name) for name in PREFLIGHT_HEADERS):
            raise HTTPException(
                400, "multipart uploads need an 'Apollo-Require-Preflight: true' header (CSRF protection)"
            )
        return await super().parse_multipart(request)
