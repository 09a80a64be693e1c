"""The model registry's process-wide compute settings, on the tiny CLIP."""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_info, threadpool_limits

from ml.pipelines.models import READY, ModelRegistry


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


async def test_loading_the_model_limits_numpys_blas_threads(tiny_clip: Path) -> None:
    threadpool_limits(2, user_api="blas")  # as on a 2-core box, whatever this machine's default
    assert blas_threads() == {2}
    registry = ModelRegistry(str(tiny_clip), device="cpu", torch_threads=1, blas_threads=1)
    registry.start()
    try:
        await registry.wait_ready(timeout=120)
        assert registry.status().state == READY
        assert blas_threads() == {1}
    finally:
        await registry.stop()
