"""The Starlette application factory.

Everything the requests use is built in the lifespan (stores, model, worker) and handed to them through
`app.state.services`; nothing is created at import time, so tests build as many apps as they like.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from api.graphql_view import PhotoDuelGraphQL
from api.metrics import RequestMetricsMiddleware, metrics_route
from api.middleware import AuthMiddleware, BodyLimitMiddleware, ErrorMiddleware
from api.request_ids import RequestIdMiddleware
from api.routes import healthz, image, readyz
from api.schema import build_schema
from api.schema.limits import QueryLimits
from api.security_headers import SecurityHeadersMiddleware, cors
from api.share import featured_feed, share_page
from api.throttle import IpRateLimitMiddleware
from api.web_client import web_routes
from photoduel.services import open_services
from photoduel.settings import Settings, load_settings
from photos.upload_rules import UploadRules

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None, *, run_worker: bool | None = None) -> Starlette:
    settings = settings or load_settings()
    worker = settings.worker_enabled if run_worker is None else run_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings, run_worker=worker, run_projector=settings.projector_enabled) as services:
            services.catalogue.start_loading()  # matchmaking's view, read before the first player asks
            app.state.services = services
            log.info("api.started", env=settings.env, worker=worker, milvus=settings.resolved_milvus_uri,
                     mongodb="configured" if settings.mongodb_uri else "embedded")
            yield
        log.info("api.stopped")

    graphql = PhotoDuelGraphQL(
        build_schema(max_depth=settings.max_query_depth, limits=QueryLimits.from_settings(settings)),
        graphql_ide="graphiql" if settings.is_dev else None,
        allow_queries_via_get=True,
        multipart_uploads_enabled=True,
        keep_alive=True,
        keep_alive_interval=15,
    )
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        metrics_route(),
        Route("/images/{photo_id}/{variant}", image, methods=["GET", "HEAD"]),
        Route("/p/{photo_id}", share_page, methods=["GET", "HEAD"]),
        Route("/feeds/featured.atom", featured_feed, methods=["GET", "HEAD"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        *web_routes(settings),
    ]
    middleware = [  # outermost first
        Middleware(RequestMetricsMiddleware),
        Middleware(RequestIdMiddleware),
        Middleware(SecurityHeadersMiddleware, hsts=settings.behind_tls),
        cors(settings.cors_origin_list),
        Middleware(ErrorMiddleware),
        Middleware(IpRateLimitMiddleware),
        Middleware(BodyLimitMiddleware, rules=UploadRules.from_settings(settings),
                   max_json_bytes=settings.max_json_body_bytes),
        Middleware(AuthMiddleware),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
