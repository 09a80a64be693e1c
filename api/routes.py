"""Plain HTTP routes: liveness, readiness, and image renditions."""

from __future__ import annotations

import asyncio

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.errors import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE, is_unavailable
from photos.queries import Viewer, visible
from storage.base import parse_object_id
from storage.blobs import BlobNotFound
from storage.mongo import ping
from storage.photos import READY

VARIANTS = ("original", "display", "thumbnail")

log = structlog.get_logger(__name__)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when MongoDB and Milvus answer; the model's state is reported but does not gate readiness:
    the API serves browsing and voting while the model loads, and ingest jobs wait for it."""
    services = request.app.state.services
    checks: dict[str, dict[str, object]] = {}
    for name, probe in (("mongodb", ping(services.mongo)), ("milvus", services.vectors.ping())):
        try:
            await asyncio.wait_for(probe, 5.0)
            checks[name] = {"status": "up"}
        except Exception as exc:
            checks[name] = {"status": "down", "reason": f"{type(exc).__name__}: {exc}"}
    model = services.models.status()
    checks["model"] = {"status": model.state, "name": model.model, "reason": model.reason}
    ready = all(checks[n]["status"] == "up" for n in ("mongodb", "milvus"))
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)


def _not_found() -> Response:
    return JSONResponse({"error": "not found"}, status_code=404)


async def image(request: Request) -> Response:
    """An image rendition; 503 with Retry-After while the database cannot answer (any other error goes to
    `ErrorMiddleware`: a logged, masked 500)."""
    try:
        return await _image(request)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("image.unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return JSONResponse({"error": UNAVAILABLE_MESSAGE}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"})


async def _image(request: Request) -> Response:
    variant = request.path_params["variant"]
    oid = parse_object_id(request.path_params["photo_id"])
    if oid is None or variant not in VARIANTS:
        return _not_found()
    services = request.app.state.services
    doc = await services.photos.get(oid)
    principal = getattr(request.state, "principal", None)
    viewer = Viewer(uid=principal.uid, admin=principal.admin) if principal else Viewer(uid=None)
    if doc is None or not visible(doc, viewer):
        return _not_found()
    public = doc["status"] == READY
    rendition = (doc.get("renditions") or {}).get(variant)
    blob_id = (doc.get("blobs") or {}).get(variant)
    if not rendition or blob_id is None:
        return _not_found()
    etag = f'"{rendition["etag"]}"'
    cache = "public, max-age=86400" if public else "private, no-cache"
    headers = {"ETag": etag, "Cache-Control": cache}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    try:
        data = await services.blobs.get(blob_id)
    except BlobNotFound:
        return _not_found()
    return Response(data, media_type=rendition.get("mime", "image/jpeg"), headers=headers)
