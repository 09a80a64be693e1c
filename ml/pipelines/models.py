"""The process's CLIP model: loaded once, in the background, retried until it works.

Why in the background: loading takes seconds to minutes (and on a machine without the weights it
fails). The API must answer meanwhile, so `/readyz` reports the model's state and reason, ingest jobs
are deferred (not failed) until it is ready, and a failed load is retried with a log line saying how
to fix it. Inference runs on one dedicated thread: one forward pass at a time is what a CPU (or one
GPU) does best, and it keeps torch off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from ml.embedder import ClipEmbedder
from storage.background import BackgroundTask, raise_if_cancelled

log = structlog.get_logger(__name__)
T = TypeVar("T")

LOADING, READY, UNAVAILABLE = "loading", "ready", "unavailable"


class ModelNotReady(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelStatus:
    state: str
    model: str
    reason: str | None = None
    dim: int | None = None


class ModelRegistry:
    def __init__(
        self,
        name_or_path: str,
        *,
        device: str = "auto",
        batch_size: int = 16,
        retry_seconds: float = 30.0,
        torch_threads: int = 0,
        blas_threads: int = 0,
        on_run: Callable[[str, float], None] | None = None,
    ) -> None:
        """`on_run(work, seconds)`: told after each call on the model thread how long it ran (the metrics'
        model batch latency), `work` being the function's name."""
        self.name_or_path = name_or_path
        self._on_run = on_run
        self._embedder = ClipEmbedder(name_or_path, device=device, batch_size=batch_size)
        self._retry_seconds = retry_seconds
        self._torch_threads = torch_threads
        self._blas_threads = blas_threads
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._state = LOADING
        self._reason: str | None = None
        self._ready = asyncio.Event()
        self._task = BackgroundTask("model loader")

    def start(self) -> None:
        self._task.start(self._load_until_ready())

    async def stop(self) -> None:
        await self._task.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _load(self) -> None:
        if self._torch_threads:
            import torch

            torch.set_num_threads(self._torch_threads)
        self._embedder.load()

    def _limit_blas(self) -> None:
        """numpy's BLAS threads, once the model's imports have loaded every BLAS (numpy's, scipy's).

        The service's numpy products are small (a batch against the tag vocabulary): BLAS threads gain
        nothing on them, then spin-wait after each call on the cores torch needs (BENCHMARKS.md). Called
        on the event loop's thread: once the main thread has set a limit, OpenBLAS ignores one set from another.
        """
        if self._blas_threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(self._blas_threads, user_api="blas")

    async def _load_until_ready(self) -> None:
        while True:
            try:
                await self.run(self._load)
            except Exception as exc:
                raise_if_cancelled()
                self._state, self._reason = UNAVAILABLE, f"{type(exc).__name__}: {exc}"
                log.error(
                    "model.unavailable", model=self.name_or_path, reason=self._reason,
                    fix="set PHOTODUEL_CLIP_MODEL to a local sentence-transformers CLIP folder, or allow "
                        "network access once so clip-ViT-B-32 can be downloaded into the cache",
                    retry_in_s=self._retry_seconds,
                )
                await asyncio.sleep(self._retry_seconds)
                continue
            self._limit_blas()
            self._state, self._reason = READY, None
            self._ready.set()
            log.info("model.ready", model=self.name_or_path, dim=self._embedder.dim)
            return

    def status(self) -> ModelStatus:
        dim = self._embedder.dim if self._state == READY else None
        return ModelStatus(state=self._state, model=self.name_or_path, reason=self._reason, dim=dim)

    @property
    def ready(self) -> bool:
        return self._state == READY

    def embedder(self) -> ClipEmbedder:
        if self._state != READY:
            raise ModelNotReady(self._reason or "the model is still loading")
        return self._embedder

    async def wait_ready(self, timeout: float | None = None) -> ClipEmbedder:
        await asyncio.wait_for(self._ready.wait(), timeout)
        return self._embedder

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking model work on the model thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._timed, fn, args)

    def _timed(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """On the model thread: the time of the work itself, not of the wait for the thread."""
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            if self._on_run is not None:
                self._on_run(getattr(fn, "__name__", "call").strip("_"), time.perf_counter() - started)
