"""Structured logs: one JSON object per line in production, readable key=value in a terminal."""

from __future__ import annotations

import logging
import sys

import structlog


class UnimplementedRpcFilter(logging.Filter):
    """Drops gRPC's "Method not implemented!" tracebacks: milvus-lite's in-process server lacks
    AllocTimestamp, which pymilvus calls while waiting for an index build and then does without. Left
    in, every first start would log an ERROR with a traceback that needs no action."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], NotImplementedError))


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("pymongo", "httpx", "httpcore", "urllib3", "filelock", "PIL", "faiss"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    grpc_server = logging.getLogger("grpc._server")
    if not any(isinstance(f, UnimplementedRpcFilter) for f in grpc_server.filters):
        grpc_server.addFilter(UnimplementedRpcFilter())
