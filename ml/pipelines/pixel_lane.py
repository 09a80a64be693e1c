"""One thread for the ingest's pixel work (JPEG decode, technical quality measures), at lower priority.

On a CPU-only machine the forward pass and the pixel work share the same cores, and the forward pass
is what the pipeline must keep busy. So the pixel work gets one thread per process, not one per photo
(a burst of a dozen threads would take the cores from the model's threads in big slices), and on Linux
that thread runs at a higher nice value than the rest of the process: when both are runnable the
model's threads win, and the lane fills the gaps the forward pass leaves. With two batches in flight
(`worker_concurrency`) the next batch is decoded while the current one is in the model, so the lane
is rarely on the critical path. On a GPU machine the model is fast and the lane becomes one of the
limits: about 40 photos/s per process on an H200 box (BENCHMARKS.md); scale there with more worker
processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# CFS weight of nice 5 is about a third of nice 0: the lane still gets a fair share of a free core.
LANE_NICE = 5

_lane: ThreadPoolExecutor | None = None
_lane_lock = threading.Lock()


def _lower_priority() -> None:
    """Per-thread nice (Linux: setpriority on the thread id). Elsewhere the lane keeps normal priority."""
    with contextlib.suppress(AttributeError, OSError):
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(current, LANE_NICE))


def _executor() -> ThreadPoolExecutor:
    global _lane
    with _lane_lock:
        if _lane is None:
            _lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixels", initializer=_lower_priority)
        return _lane


async def run_in_pixel_lane(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(_executor(), fn)
