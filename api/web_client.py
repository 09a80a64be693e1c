"""The reference web client at `/app`: static files from `api/web/`, no build step, and its one dynamic
answer, `/app/config.json`, which tells the page how it may sign in.

The page is served from the service's own origin, so it calls `/graphql` (HTTP and websocket) and loads
`/images/...` without CORS. Its Content-Security-Policy is its own, set here on every `/app` response
(the security headers middleware keeps a policy a response already has): scripts, styles, images and
connections from this origin only, plus `blob:` images (a photo previewed before it is uploaded, and the
owner's not-yet-public renditions, fetched with the token). The API's own policy stays `default-src
'none'`.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photoduel.settings import Settings

WEB_ROOT = Path(__file__).resolve().parent / "web"
APP_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
           "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Revalidated on every load (an ETag answer is a 304): a deployment's new client is picked up at once,
# and no module of one version is run with another's.
CACHE = "no-cache"


class _AppHeaders:
    """Adds the page's policy and cache rule to every response under `/app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"content-security-policy", b"cache-control")]
                headers += [(b"content-security-policy", APP_CSP.encode()), (b"cache-control", CACHE.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def web_routes(settings: Settings) -> list[BaseRoute]:
    """`/app` (redirected to `/app/`), `/app/config.json` and the static files."""
    config = {
        # Dev with the Auth emulator convention: the page makes its own unsigned emulator token for a name
        # the player picks. Otherwise it needs a real Firebase ID token.
        "authEmulator": settings.is_dev and bool(settings.firebase_auth_emulator_host),
        "projectId": settings.firebase_project_id,
    }

    async def app_config(request: Request) -> Response:
        return JSONResponse(config)

    async def to_app(request: Request) -> Response:
        return RedirectResponse("/app/", status_code=308)

    return [
        Route("/app", to_app, methods=["GET", "HEAD"]),
        Route("/app/config.json", app_config, methods=["GET"]),
        Mount("/app", app=_AppHeaders(StaticFiles(directory=WEB_ROOT, html=True)), name="app"),
    ]
