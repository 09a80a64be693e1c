"""Browser-facing hardening: security headers on every HTTP response, and CORS for the origins the
settings allow.

The API answers JSON and images, never a page, so its Content-Security-Policy allows nothing at all;
the one page is the GraphiQL IDE in dev (HTML, loading its scripts from a CDN), which gets only
`frame-ancestors`. No response may be framed (clickjacking). HSTS is sent only when the settings say
the service is reached over HTTPS: sent over plain HTTP it would be ignored, and sent from a host that
later loses its TLS it would lock browsers out.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.graphql_view import PREFLIGHT_HEADERS

API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PAGE_CSP = b"frame-ancestors 'none'"
HSTS = b"max-age=31536000; includeSubDomains"
_COMMON = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY"))


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": self._headers(list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        present = {k.lower() for k, _ in headers}
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        added = [*_COMMON, (b"content-security-policy",
                            PAGE_CSP if content_type.lower().startswith(b"text/html") else API_CSP)]
        if self.hsts:
            added.append((b"strict-transport-security", HSTS))
        return headers + [(k, v) for k, v in added if k not in present]


def cors(origins: list[str]) -> Middleware:
    """Cross-origin calls from the listed origins only. Bearer tokens, not cookies: no credentials. The
    request id and Retry-After are readable by the page."""
    return Middleware(
        CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
        allow_headers=["authorization", "content-type", "x-request-id", *PREFLIGHT_HEADERS],
        expose_headers=["x-request-id", "retry-after"], allow_credentials=False, max_age=600,
    )
