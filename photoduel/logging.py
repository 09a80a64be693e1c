"""Structured logs: one JSON object per line for machines, readable key=value lines for a person.

Which one: the setting (`PHOTODUEL_LOG_JSON`, the CLI's `--log-format`) when given, else by where the
lines go: JSON into a file, a pipe or a log collector, readable lines on a terminal.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO

import structlog

from photoduel.progress_bars import BarSafeHandler, is_terminal


class UnimplementedRpcFilter(logging.Filter):
    """Drops gRPC's "Method not implemented!" tracebacks: milvus-lite's in-process server lacks
    AllocTimestamp, which pymilvus calls while waiting for an index build and then does without. Left
    in, every first start would log an ERROR with a traceback that needs no action."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], NotImplementedError))


def wants_json(setting: bool | None, stream: IO[str] | None = None) -> bool:
    """JSON unless told otherwise or the lines go to a terminal."""
    return setting if setting is not None else not is_terminal(stream if stream is not None else sys.stderr)


def quiet_library_bars() -> None:
    """Hugging Face's own bars (the model's "Loading weights") off where the logs are not for a person (a
    pipe, or JSON asked for): there they would land between the log lines. Read by huggingface_hub when
    imported; an operator's own HF_HUB_DISABLE_PROGRESS_BARS wins."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1":
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def configure_logging(level: str = "INFO", *, json: bool | None = True) -> None:
    """`json=None`: decided by where stderr goes (`wants_json`)."""
    terminal = is_terminal(sys.stderr)
    json = wants_json(json)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json
        else structlog.dev.ConsoleRenderer(colors=terminal and "NO_COLOR" not in os.environ)
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
    for_a_person = terminal and not json  # progress as bars (`photoduel.progress_bars`), not log lines
    if not for_a_person:
        quiet_library_bars()
    handler = BarSafeHandler(sys.stderr) if for_a_person else logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("pymongo", "httpx", "httpcore", "urllib3", "filelock", "PIL", "faiss"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    grpc_server = logging.getLogger("grpc._server")
    if not any(isinstance(f, UnimplementedRpcFilter) for f in grpc_server.filters):
        grpc_server.addFilter(UnimplementedRpcFilter())
