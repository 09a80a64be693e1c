"""The service's public origin for absolute links (image URLs, share pages, feeds): the configured
`PHOTODUEL_PUBLIC_URL` when set (behind a proxy that rewrites host or scheme), else the request's own."""

from __future__ import annotations

from starlette.requests import HTTPConnection


def public_base_url(connection: HTTPConnection) -> str:
    configured = connection.app.state.services.settings.public_url
    return (configured or str(connection.base_url)).rstrip("/")
