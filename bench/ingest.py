"""Ingest throughput: photos per second through the whole pipeline against the bare model, in one run.

    .venv/bin/python bench/ingest.py [--photos 96] [--batch-size 16] [--threads N] [--workers 1]
        [--device cpu] [--photo-cache DIR] [--only-ingest] [--model-dir bench/.models/clip-vit-b32-random]
        [--out PATH] [--autogroup-nice -10] [--profile PATH]

Goal (BENCHMARKS.md): the pipeline reaches at least 85% of the bare model's throughput on the same photos.

The model is a CLIP with ViT-B/32's shapes and random weights (``tests.tiny_clip.build_clip_b32``):
the same compute as the released ``clip-ViT-B-32``, built once into ``--model-dir`` (git-ignored,
~480 MB). Photos are a mix of sizes (1-12 MP: scikit-image photos upscaled and cropped, plus
generated scenes, all with sensor-like grain), JPEG-encoded once up front. In one process:

1. **bare model**: ``ClipEmbedder.embed_images`` on the display renditions (longest side 2048, made by
   the upload code itself, ``ml.images.render_variants``), decoded to RGB beforehand, in batches of
   ``--batch-size`` after one warm-up batch. That is what the pipeline feeds the model; the time
   includes the model's own preprocessing (the reducing resize, the CLIP processor) and the forward
   pass. The model is then freed.
2. **pipeline**: ``open_services`` on a temp data dir (SecantusDB child process, milvus-lite file, the
   b32 folder as ``clip_model``), every photo through ``UploadService.upload`` (timed: upload
   throughput), then the one-time warm-ups (model load, the zero-shot vocabulary's text embeddings,
   the Milvus collection), then the bare model again on the pipeline's own embedder and model thread,
   then a ``photoduel.worker.Worker`` with ``photoduel.features.job_handlers(services)`` (every job kind, as ``photoduel
   serve`` runs them; ``--only-ingest`` for the ingest jobs alone), timed from its start until the last
   ingest job is settled: every photo READY. Per batch that covers leasing the jobs, reading each photo
   document and its display rendition from GridFS, JPEG decode, the model pass (embedding, zero-shot
   tag/category and CLIP-IQA text-side scoring), the technical quality measures (in the pixel thread, during
   the model pass), Milvus search + upsert + flush, neighbour reads, the READY write, neighbour-list
   offers, the outbox record and the job completion; and the batches of other kinds (faces) the worker
   runs in between. The time until every job of every kind is settled is reported too.
3. **bare model again**, right after the ingest, to show drift.

The ratio is pipeline photos/s over the mean of the two bare measurements around the ingest. Peak
memory: the process's ``ru_maxrss``, and per phase the kernel's VmHWM, reset at each phase start
(``/proc/self/clear_refs``); the SecantusDB child's peak is read from its /proc entry. Every phase
also reports the cores other processes used meanwhile: on a shared machine, ``--autogroup-nice -10``
keeps them from distorting the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import gc
import io
import os
import platform
import pstats
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.embedder import ClipEmbedder  # noqa: E402
from ml.images import decode_upload, render_variants  # noqa: E402
from photoduel.settings import Settings  # noqa: E402

DEFAULT_MODEL_DIR = ROOT / "bench" / ".models" / "clip-vit-b32-random"
DEFAULT_OUT = ROOT / "bench" / "out" / "ingest.md"
GOAL = 0.85

# (width, height): phone and camera sizes from 1 to 12 MP, landscape, portrait, square, panoramic.
SIZES: tuple[tuple[int, int], ...] = (
    (4032, 3024), (1152, 864), (2592, 1944), (1600, 1200), (3024, 4032), (2048, 1536),
    (3840, 2160), (2000, 2000), (3000, 2000), (1080, 1350), (3264, 2448), (4000, 1800),
)
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field",
                  "immunohistochemistry", "retina", "cat", "brick", "grass", "gravel", "coins", "moon")


# --- memory and CPU -------------------------------------------------------------------------------


def _status_kib(pid: int | str, key: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0), so the next read is a phase peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mib() -> float | None:
    kib = _status_kib("self", "VmHWM")
    return kib / 1024 if kib is not None else None


def rss_mib() -> float:
    return (_status_kib("self", "VmRSS") or 0) / 1024


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids() -> list[int]:
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    return sorted(set(pids))


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds per thread of this process, by role: Python threads by name (numbered suffixes
    merged), the main thread as the event loop, threads Python does not know (torch's OpenMP workers,
    gRPC, milvus-lite) as native."""
    named = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    totals: dict[str, float] = defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        tid = int(task.name)
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            if tid == os.getpid():
                role = "event loop (main thread)"
            elif tid in named:
                role = re.sub(r"[-_]\d+$", "", named[tid])
            else:
                role = "native threads (torch OpenMP workers, gRPC, ...)"
            totals[role] += seconds
    return dict(totals)


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have been busy (every core), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_busy_seconds() -> float:
    """This process and its child processes (SecantusDB), as far as /proc shows them."""
    return cpu_seconds() + sum(child_cpu_seconds(pid) for pid in child_pids())


def wait_for_quiet(max_wait: float, *, threshold: float = 0.25, settle: int = 3) -> float:
    """Wait until other processes use under ``threshold`` cores for ``settle`` seconds in a row.

    Benchmarks on a shared machine: a neighbour's test run halves the cores we measure on. Returns the
    cores others used in the last second (reported, so a noisy run is visible in the results).
    """
    deadline = time.monotonic() + max_wait
    quiet = 0
    others = 0.0
    while True:
        busy, own = machine_busy_seconds(), own_busy_seconds()
        time.sleep(1.0)
        others = max(0.0, (machine_busy_seconds() - busy) - (own_busy_seconds() - own))
        quiet = quiet + 1 if others < threshold else 0
        if quiet >= settle or time.monotonic() > deadline:
            return others


def favour(pid: int | str, nice: int | None) -> str:
    """Give a process's scheduler autogroup this nice value (Linux; needs CAP_SYS_NICE for < 0).

    On a shared machine other sessions' jobs take cores from the measurement; with autogroups, a plain
    ``nice`` only ranks threads within one session, so the group's own nice value is what counts.
    """
    if nice is None:
        return "not set"
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        return Path(f"/proc/{pid}/autogroup").read_text().strip()
    except OSError as exc:
        return f"failed: {exc}"


@dataclass
class Phase:
    name: str
    wall: float = 0.0
    cpu: float = 0.0
    others: float = 0.0  # CPU seconds other processes used meanwhile
    peak: float | None = None
    note: str = ""


@contextlib.contextmanager
def phase(phases: list[Phase], name: str) -> Iterator[Phase]:
    record = Phase(name)
    gc.collect()
    reset_peak()
    start, cpu = time.perf_counter(), cpu_seconds()
    busy, own = machine_busy_seconds(), own_busy_seconds()
    try:
        yield record
    finally:
        record.wall = record.wall or time.perf_counter() - start
        record.cpu = cpu_seconds() - cpu
        record.others = max(0.0, (machine_busy_seconds() - busy) - (own_busy_seconds() - own))
        record.peak = peak_mib()
        phases.append(record)


# --- timing of pipeline steps (wrappers on instances, nothing changed in the code under test) -----------

# The job kind whose batch is running (asyncio.to_thread copies it into threads; the model thread sees "").
BATCH_KIND: contextvars.ContextVar[str] = contextvars.ContextVar("bench_batch_kind", default="")


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)
    wrapped: list[tuple[Any, str, bool, Any]] = field(default_factory=list)

    def add(self, label: str, seconds: float, *, always: bool = False) -> None:
        if not always and BATCH_KIND.get() not in ("", "ingest"):
            return  # a step of another job kind's batch (faces read photos and blobs too)
        with self.lock:
            self.seconds[label] += seconds
            self.calls[label] += 1

    def snapshot(self) -> Timings:
        with self.lock:
            return Timings(defaultdict(float, self.seconds), defaultdict(int, self.calls))

    def _remember(self, owner: Any, name: str) -> None:
        self.wrapped.append((owner, name, name in vars(owner), vars(owner).get(name)))

    def restore(self) -> None:
        """Undo every wrapper, newest first."""
        for owner, name, had_own, original in reversed(self.wrapped):
            if had_own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
        self.wrapped.clear()

    def wrap_async(self, owner: Any, name: str, label: str) -> None:
        self._remember(owner, name)
        inner: Callable[..., Awaitable[Any]] = getattr(owner, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await inner(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - start)

        setattr(owner, name, timed)

    def wrap_sync(self, owner: Any, name: str, label: str) -> None:
        self._remember(owner, name)
        inner: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - start)

        setattr(owner, name, timed)


# --- photos -----------------------------------------------------------------------------------------


def _skimage_photo(name: str) -> Image.Image:
    from skimage import data

    array = getattr(data, name)()
    image = Image.fromarray(array)
    return image.convert("RGB")


def _generated_scene(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Sky-to-ground gradient with shapes, lines and a blurred region: edges, flat areas and texture."""
    width, height = size
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    base = (top * (1 - y) + bottom * y).astype(np.uint8) * np.ones((1, width, 1), dtype=np.uint8)
    image = Image.fromarray(base)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(20, 60))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1 = x0 + int(rng.integers(width // 40, width // 3))
        y1 = y0 + int(rng.integers(height // 40, height // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=max(1, width // 300))
    if rng.random() < 0.5:  # a shallow depth of field somewhere
        box = (0, height // 2, width, height)
        image.paste(image.crop(box).filter(ImageFilter.GaussianBlur(radius=width / 400)), box)
    return image


def _cover(image: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Upscale to cover ``size`` (with a little extra zoom), then crop at a random offset."""
    width, height = size
    scale = max(width / image.width, height / image.height) * float(rng.uniform(1.0, 1.3))
    scaled = image.resize((round(image.width * scale) + 1, round(image.height * scale) + 1),
                          Image.Resampling.BICUBIC)
    left = int(rng.integers(0, scaled.width - width + 1))
    upper = int(rng.integers(0, scaled.height - height + 1))
    return scaled.crop((left, upper, left + width, upper + height))


def _grain(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Sensor-like grain; also makes every photo's bytes unique (uploads are de-duplicated by hash)."""
    array = np.asarray(image, dtype=np.int16)
    noise = rng.normal(0.0, sigma, size=(array.shape[0], array.shape[1], 1)).astype(np.int16)
    return Image.fromarray(np.clip(array + noise, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_photos(count: int, seed: int) -> list[bytes]:
    """``count`` JPEGs (quality 90), two in three from scikit-image photos, one in three generated.

    The random draws stay in one sequence (the same photos for a seed on any machine); the JPEG encodes
    run in threads (Pillow releases the GIL), a few behind the generator so memory stays bounded."""
    rng = np.random.default_rng(seed)
    sources = {name: _skimage_photo(name) for name in SKIMAGE_PHOTOS}
    workers = len(os.sched_getaffinity(0))
    pending: list[Future[bytes]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i in range(count):
            size = SIZES[i % len(SIZES)]
            if i % 3 == 2:
                image = _generated_scene(size, rng)
            else:
                image = _cover(sources[SKIMAGE_PHOTOS[i % len(SKIMAGE_PHOTOS)]], size, rng)
            image = _grain(image, float(rng.uniform(1.5, 4.0)), rng)
            pending.append(pool.submit(_jpeg, image))
            if len(pending) - sum(f.done() for f in pending) > 2 * workers:
                next(f for f in pending if not f.done()).result()
        return [f.result() for f in pending]


def display_renditions(photos: Sequence[bytes], settings: Settings) -> list[bytes]:
    """The display JPEG of each photo, made by the same code the upload runs (in threads, in order)."""

    def display(data: bytes) -> bytes:
        decoded = decode_upload(data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels)
        renditions = render_variants(decoded.image, display_max_side=settings.display_max_side,
                                     thumbnail_max_side=settings.thumbnail_max_side)
        return renditions["display"].data

    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        return list(pool.map(display, photos))


def photo_set(count: int, seed: int, settings: Settings, cache: Path | None) -> tuple[list[bytes], list[bytes]]:
    """The photos and their display renditions; with ``cache``, made once per (count, seed) and kept there,
    so runs that compare settings skip the minute it takes to make them."""
    path = cache / f"photos-{count}-{seed}.npz" if cache is not None else None
    if path is not None and path.exists():
        with np.load(path) as stored:
            return ([stored[f"photo{i}"].tobytes() for i in range(count)],
                    [stored[f"display{i}"].tobytes() for i in range(count)])
    photos = make_photos(count, seed)
    displays = display_renditions(photos, settings)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"photo{i}": np.frombuffer(p, np.uint8) for i, p in enumerate(photos)}
        arrays |= {f"display{i}": np.frombuffer(d, np.uint8) for i, d in enumerate(displays)}
        np.savez(path, **arrays)
    return photos, displays


def decode_rgb(data: bytes) -> Image.Image:
    """The pipeline's own decode (``decode_for_analysis``): the bare model gets exactly the pixels the
    pipeline feeds it, so the ratio measures the pipeline's overhead, not a cheaper input."""
    from ml.pipelines.display_image import decode_for_analysis

    return decode_for_analysis(data)


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- the model ----------------------------------------------------------------------------------------


def ensure_model(model_dir: Path) -> tuple[Path, float]:
    """The b32 folder, built on first use (into a staging folder, renamed when complete)."""
    if (model_dir / "modules.json").exists() and (model_dir / "model.safetensors").exists():
        return model_dir, 0.0
    from tests.tiny_clip import build_clip_b32

    print(f"building a random ViT-B/32-size CLIP into {model_dir} (once, ~30 s, ~480 MB) ...", flush=True)
    start = time.perf_counter()
    staging = model_dir.with_name(model_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    build_clip_b32(staging)
    shutil.rmtree(model_dir, ignore_errors=True)
    staging.rename(model_dir)
    return model_dir, time.perf_counter() - start


@dataclass
class BareResult:
    seconds: float
    photos: int
    cpu_seconds: float  # process CPU during the timed calls (all torch threads)
    decode_seconds: float
    others: float = 0.0  # cores other processes used meanwhile

    @property
    def rate(self) -> float:
        return self.photos / self.seconds


def bare_model(embed: Callable[[Sequence[Image.Image]], np.ndarray], displays: Sequence[bytes],
               batch_size: int, *, warm_up: bool = True) -> BareResult:
    """``embed`` over every batch of display renditions; their JPEG decode runs before each timed call."""
    if warm_up:
        embed([decode_rgb(d) for d in displays[:batch_size]])
    total = decode_total = cpu_total = 0.0
    busy, own = machine_busy_seconds(), own_busy_seconds()
    for chunk in batches(displays, batch_size):
        start = time.perf_counter()
        images = [decode_rgb(d) for d in chunk]
        decoded, cpu = time.perf_counter(), cpu_seconds()
        embed(images)
        done = time.perf_counter()
        cpu_total += cpu_seconds() - cpu
        decode_total += decoded - start
        total += done - decoded
        del images
    wall = decode_total + total
    others = max(0.0, (machine_busy_seconds() - busy) - (own_busy_seconds() - own)) / wall
    return BareResult(total, len(displays), cpu_total, decode_total, others)


# --- the pipeline ----------------------------------------------------------------------------------------


@dataclass
class PipelineResult:
    upload_seconds: float = 0.0
    model_wait_seconds: float = 0.0
    vocabulary_seconds: float = 0.0
    vocabulary_prompts: int = 0
    warm_batch_seconds: float = 0.0
    collection_seconds: float = 0.0
    ready_seconds: float = 0.0  # worker start -> last ingest job settled (every photo READY)
    all_seconds: float = 0.0  # worker start -> last job of any kind settled (faces too)
    ready_cpu: float = 0.0
    ready_others: float = 0.0
    mongo_cpu_ready: float = 0.0
    kinds: tuple[str, ...] = ()
    ready: int = 0
    jobs_done: dict[str, int] = field(default_factory=dict)
    announced: int = 0
    vectors: int = 0
    bare_before: BareResult | None = None
    bare_after: BareResult | None = None
    timings: Timings = field(default_factory=Timings)
    mongo_pid: int | None = None
    mongo_peak: float | None = None
    children: dict[int, float | None] = field(default_factory=dict)
    profile_text: str = ""
    threads_bare: dict[str, float] = field(default_factory=dict)  # CPU s per thread role, bare (before)
    threads_ready: dict[str, float] = field(default_factory=dict)  # the same, worker start -> all READY
    others_cpu_ready: float = 0.0  # child processes other than SecantusDB (milvus-lite), during the ingest


def vocabulary_prompt_count(analyzer: Any) -> int:
    from ml.quality import DEFAULT_PAIRS
    from ml.tagger import DEFAULT_TEMPLATES

    vocabulary = analyzer.vocabulary
    category_prompts = sum(len(p) for p in vocabulary.category_prompts().values())
    return (len(vocabulary.tags) + 1) * len(DEFAULT_TEMPLATES) + category_prompts + 2 * len(DEFAULT_PAIRS)


def instrument(services: Any, handlers: Sequence[Any], timings: Timings) -> None:
    """Wall time per step, on the objects the ingest handlers hold (the upload phase is over by now)."""
    import ml.pipelines.analysis as analysis_module
    import ml.pipelines.ingest as ingest_module

    handler = handlers[0]  # the stores, the analyzer and the model are shared by every worker's handler
    timings.wrap_async(ingest_module, "load_analysis_images", "read blobs + decode display JPEGs (per batch)")
    timings.wrap_async(handler.blobs, "get", "read display blob (GridFS)")
    timings.wrap_async(services.analyzer, "analyze", "analyze (model pass || technical measures)")
    timings.wrap_sync(services.analyzer, "_model_pass", "model pass (model thread)")
    timings.wrap_sync(services.models.embedder(), "embed_images", "embed_images (prep + forward)")
    timings.wrap_sync(analysis_module, "technical_measures", "technical measures (pixel thread)")
    timings.wrap_async(handler.vectors, "upsert", "Milvus upsert + flush")
    timings.wrap_async(ingest_module, "announce_suggestions_ready", "outbox record")
    timings.wrap_async(services.jobs, "complete_many", "settle jobs (one bulk write per batch)")
    timings.wrap_async(handler.photos, "offer_neighbours", "offer to neighbours' lists (per batch)")
    timings.wrap_async(handler.photos, "mark_ready", "READY writes (one bulk write per batch)")
    for each in handlers:
        timings.wrap_async(each, "_read_photos", "read photo documents (per batch)")
        timings.wrap_async(each.search, "_reached", "Milvus search (+ in-batch similarities)")
        timings.wrap_async(each.search, "_usable", "read neighbour documents (per batch)")
        timings.wrap_sync(each, "_decide", "decide (suggestions, duplicates)")
        timings.wrap_async(each, "_after_ready", "announce + hand on (outbox, face-check jobs)")


async def run_pipeline(args: argparse.Namespace, model_dir: Path, photos: Sequence[bytes],
                       displays: Sequence[bytes], phases: list[Phase]) -> PipelineResult:
    from photoduel.services import open_services
    from storage.embedded_mongo import EmbeddedMongo

    result = PipelineResult()
    with tempfile.TemporaryDirectory(prefix="photoduel-bench-ingest-") as tmp:
        data_dir = Path(tmp)
        mongo = EmbeddedMongo(data_dir / "mongodb")
        uri = await asyncio.to_thread(mongo.start)
        result.mongo_pid = mongo.server_pid
        if result.mongo_pid is not None:  # its own session, so its own autogroup
            favour(result.mongo_pid, args.autogroup_nice if args.db_autogroup_nice is None else args.db_autogroup_nice)
        settings = Settings(
            data_dir=data_dir, mongodb_uri=uri, mongodb_database="bench_ingest", clip_model=str(model_dir),
            clip_device=args.device, clip_batch_size=args.batch_size, worker_batch_size=args.batch_size,
            worker_concurrency=args.concurrency,
            torch_threads=args.threads, log_json=False,
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                with phase(phases, "pipeline: open services + model load") as record:
                    services = await stack.enter_async_context(open_services(settings, run_worker=False))
                    start = time.perf_counter()
                    await services.models.wait_ready(timeout=600)
                    result.model_wait_seconds = time.perf_counter() - start
                    record.note = f"model ready {result.model_wait_seconds:.1f} s after open"
                await _pipeline_body(args, services, photos, displays, phases, result)
        finally:
            if result.mongo_pid is not None:
                peak = _status_kib(result.mongo_pid, "VmHWM")
                result.mongo_peak = peak / 1024 if peak is not None else None
            await asyncio.to_thread(mongo.stop)
    return result


def _since(before: dict[str, float]) -> dict[str, float]:
    return {role: seconds - before.get(role, 0.0) for role, seconds in thread_cpu_seconds().items()}


async def _bare_in_situ(services: Any, displays: Sequence[bytes], batch_size: int) -> BareResult:
    """The bare model with the pipeline's own embedder, on its model thread (warm already)."""
    embedder = services.models.embedder()
    return await services.models.run(
        lambda: bare_model(embedder.embed_images, displays, batch_size, warm_up=False))


async def _pipeline_body(args: argparse.Namespace, services: Any, photos: Sequence[bytes],
                         displays: Sequence[bytes], phases: list[Phase], result: PipelineResult) -> None:
    """The phases in order, each timed into `phases` and `result`."""
    await _upload_phase(args, services, photos, phases, result)
    await _warm_up_phase(args, services, displays, phases, result)
    # --- bare model right before the ingest, same process state ---
    await asyncio.to_thread(wait_for_quiet, args.quiet_wait)
    with phase(phases, "bare model, pipeline's embedder (before ingest)") as record:
        threads = thread_cpu_seconds()
        result.bare_before = await _bare_in_situ(services, displays, args.batch_size)
        result.threads_bare = _since(threads)
        record.note = f"{result.bare_before.rate:.2f} photos/s"
    kinds = await _worker_phase(args, services, len(photos), phases, result)
    # --- bare model right after the ingest ---
    with phase(phases, "bare model, pipeline's embedder (after ingest)") as record:
        result.bare_after = await _bare_in_situ(services, displays, args.batch_size)
        record.note = f"{result.bare_after.rate:.2f} photos/s"

    await _leftovers(services, kinds, result)


async def _upload_phase(args: argparse.Namespace, services: Any, photos: Sequence[bytes], phases: list[Phase],
                        result: PipelineResult) -> None:
    n = len(photos)
    # --- uploads: the API's work per request, minus HTTP ---
    with phase(phases, "pipeline: upload") as record:
        start = time.perf_counter()
        semaphore = asyncio.Semaphore(args.upload_concurrency)

        async def upload(i: int, data: bytes) -> None:
            async with semaphore:
                outcome = await services.uploads.upload(f"bench-owner-{i % 8}", data, declared_type="image/jpeg",
                                                        filename=f"photo-{i}.jpg", title=None)
                assert outcome.created, f"photo {i} was a duplicate"

        await asyncio.gather(*(upload(i, data) for i, data in enumerate(photos)))
        result.upload_seconds = time.perf_counter() - start
        record.note = f"{n / result.upload_seconds:.2f} photos/s, {args.upload_concurrency} concurrent"


async def _warm_up_phase(args: argparse.Namespace, services: Any, displays: Sequence[bytes], phases: list[Phase],
                         result: PipelineResult) -> None:
    from ml.pipelines.photo_vectors import PHOTO_SCALARS, photo_collection

    # --- one-time warm-ups: vocabulary text embeddings, a full image batch, the Milvus collection ---
    with phase(phases, "pipeline: one-time warm-up") as record:
        result.vocabulary_prompts = vocabulary_prompt_count(services.analyzer)
        start = time.perf_counter()
        await services.analyzer.analyze([Image.new("RGB", (64, 64), (120, 130, 140))])
        result.vocabulary_seconds = time.perf_counter() - start
        start = time.perf_counter()
        await services.analyzer.analyze([decode_rgb(d) for d in displays[: args.batch_size]])
        result.warm_batch_seconds = time.perf_counter() - start
        embedder = services.models.embedder()
        start = time.perf_counter()
        await services.vectors.ensure_collection(photo_collection(embedder.model_id, embedder.dim),
                                                 embedder.dim, PHOTO_SCALARS)
        result.collection_seconds = time.perf_counter() - start
        record.note = (f"vocabulary {result.vocabulary_seconds:.1f} s, warm batch {result.warm_batch_seconds:.1f} s, "
                       f"collection {result.collection_seconds:.1f} s")


def _timed_worker(timings: Any, n: int, expected: dict[str, int], ready_event: asyncio.Event,
                  all_event: asyncio.Event) -> Any:
    """A Worker that times each batch until every photo is READY and sets the events as kinds settle."""
    from photoduel.worker import Worker
    from storage.job_kinds import INGEST

    settled: dict[str, int] = defaultdict(int)

    class TimedWorker(Worker):
        async def _process(self, handler: Any, jobs: list[Any], loop: int = 0) -> None:
            kind = jobs[0].kind if jobs else "?"
            label = f"{kind} batches (lease excluded)" if not ready_event.is_set() else None
            token = BATCH_KIND.set(kind)
            start = time.perf_counter()
            try:
                await super()._process(handler, jobs, loop)
            finally:
                BATCH_KIND.reset(token)
            if label:
                timings.add(label, time.perf_counter() - start, always=True)
            settled[kind] += len(jobs)  # _process returns once every job of the batch is settled
            if settled[INGEST] >= n:
                ready_event.set()
            if all(settled[k] >= v for k, v in expected.items()):
                all_event.set()



    return TimedWorker


async def _worker_phase(args: argparse.Namespace, services: Any, n: int, phases: list[Phase],
                        result: PipelineResult) -> tuple[str, ...]:
    """Workers timed from their start until the last ingest job is settled, then until all are; returns
    the job kinds they ran."""
    from photoduel.features import job_handlers
    from storage.job_kinds import INGEST

    settings = services.settings
    # --- the worker, timed from its start until the last ingest job is settled, then until all are ---
    handler_sets = []
    for _ in range(args.workers):  # each worker its own handlers, as each `photoduel worker` process has
        handlers = job_handlers(services)
        handler_sets.append({INGEST: handlers[INGEST]} if args.only_ingest else handlers)
    result.kinds = tuple(handler_sets[0])
    timings = result.timings
    instrument(services, [h[INGEST] for h in handler_sets], timings)
    ready_event, all_event = asyncio.Event(), asyncio.Event()
    expected = {kind: n for kind in handler_sets[0]}

    timed_worker = _timed_worker(timings, n, expected, ready_event, all_event)
    workers = [timed_worker(services.jobs, handlers, lease_seconds=settings.job_lease_seconds,
                           max_attempts=settings.job_max_attempts, retry_base_seconds=settings.job_retry_base_seconds,
                           poll_seconds=settings.worker_poll_seconds, concurrency=settings.worker_concurrency)
               for handlers in handler_sets]
    await asyncio.to_thread(wait_for_quiet, args.quiet_wait)
    profiler = cProfile.Profile() if args.profile else None
    with phase(phases, "pipeline: ingest (worker start -> all READY)") as record:
        mongo_cpu = child_cpu_seconds(result.mongo_pid) if result.mongo_pid else 0.0
        threads = thread_cpu_seconds()
        other_children = [pid for pid in child_pids() if pid != result.mongo_pid]
        others_cpu = sum(child_cpu_seconds(pid) for pid in other_children)
        busy, own = machine_busy_seconds(), own_busy_seconds()
        cpu = cpu_seconds()
        if profiler is not None:
            profiler.enable()
        print(f"ingest: {len(workers)} worker(s) starting (pid {os.getpid()}, SecantusDB pid {result.mongo_pid})",
              flush=True)
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        await asyncio.wait_for(ready_event.wait(), timeout=1800)
        result.ready_seconds = record.wall = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
        result.ready_cpu = cpu_seconds() - cpu
        result.mongo_cpu_ready = (child_cpu_seconds(result.mongo_pid) if result.mongo_pid else 0.0) - mongo_cpu
        result.threads_ready = _since(threads)
        result.others_cpu_ready = sum(child_cpu_seconds(pid) for pid in other_children) - others_cpu
        result.ready_others = max(0.0, (machine_busy_seconds() - busy) - (own_busy_seconds() - own))
        record.note = f"{n / result.ready_seconds:.2f} photos/s"
    timings.restore()
    result.timings = timings.snapshot()
    others = ", ".join(kind for kind in expected if kind != INGEST)
    if others:
        with phase(phases, f"pipeline: remaining jobs ({others})") as record:
            await asyncio.wait_for(all_event.wait(), timeout=1800)
            result.all_seconds = time.perf_counter() - start
            record.note = f"all kinds settled {result.all_seconds:.1f} s after worker start"
    for worker in workers:
        await worker.stop()
    if profiler is not None:
        profiler.dump_stats(args.profile)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        result.profile_text = text.getvalue()
    return tuple(expected)


async def _leftovers(services: Any, kinds: Sequence[str], result: PipelineResult) -> None:
    # --- what the run left behind: every photo READY, every job done, announced, indexed once ---
    db = services.db
    result.ready = await db.photos.count_documents({"status": "READY"})
    for kind in kinds:
        result.jobs_done[kind] = await db.jobs.count_documents({"kind": kind, "state": "done"})
    result.announced = await db.outbox.count_documents({"key": {"$regex": "^suggestions:"}})
    ready_docs = await db.photos.find({"status": "READY"}, {"vector_collection": 1}).to_list(None)
    if ready_docs:  # milvus-lite has no collection stats: fetch the rows by id
        rows = await services.vectors.get_vectors(ready_docs[0]["vector_collection"],
                                                  [str(d["_id"]) for d in ready_docs])
        result.vectors = len(rows)
    result.children = {pid: (_status_kib(pid, "VmHWM") or 0) / 1024 for pid in child_pids()}




# --- report ------------------------------------------------------------------------------------------


def machine() -> str:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        found = re.search(r"^Model name:\s+(.+)$", out, re.MULTILINE)
        if found:
            model = found.group(1).strip()
    cores = len(os.sched_getaffinity(0))
    found = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    mem = int(found.group(1)) / 1024 / 1024 if found else 0.0
    return f"{model}, {cores} cores, {mem:.0f} GiB RAM, Linux {platform.release()}"


def accelerator(device: str) -> str:
    """The model's device in words: the GPU's name where it runs on one."""
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return "the CPU"
    return f"{device} ({torch.cuda.get_device_name(torch.device(device if device != 'auto' else 'cuda'))})"


def gpu_peak(device: str) -> str:
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return ""
    return f" GPU memory peak {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB (torch's allocator, whole run)."


def fmt_mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} MiB"


BREAKDOWN: tuple[tuple[str, int], ...] = (
    ("ingest batches (lease excluded)", 0),
    ("read photo documents (per batch)", 1),
    ("read blobs + decode display JPEGs (per batch)", 1), ("read display blob (GridFS)", 2),
    ("analyze (model pass || technical measures)", 1), ("model pass (model thread)", 2),
    ("embed_images (prep + forward)", 3), ("technical measures (pixel thread)", 2),
    ("Milvus search (+ in-batch similarities)", 1), ("read neighbour documents (per batch)", 1),
    ("decide (suggestions, duplicates, offers)", 1), ("Milvus upsert + flush", 1),
    ("offer to neighbours' lists (per batch)", 1), ("READY writes (one bulk write per batch)", 1),
    ("announce + hand on (outbox, face-check jobs)", 1), ("outbox record", 2),
    ("settle jobs (one bulk write per batch)", 1),
    ("faces batches (lease excluded)", 0),
)


def report(args: argparse.Namespace, photos: Sequence[bytes], megapixels: Sequence[float],
           displays: Sequence[bytes], standalone: BareResult, pipe: PipelineResult, phases: list[Phase],
           command: str, build_seconds: float, total_seconds: float) -> str:
    import torch

    n = len(photos)
    assert pipe.bare_before is not None and pipe.bare_after is not None
    bare_rate = statistics.fmean([pipe.bare_before.rate, pipe.bare_after.rate])
    ready_rate = n / pipe.ready_seconds
    ratio = ready_rate / bare_rate
    met = "met" if ratio >= GOAL else "NOT met"
    bare_cpu = statistics.fmean([pipe.bare_before.cpu_seconds, pipe.bare_after.cpu_seconds]) / n
    pipe_cpu = (pipe.ready_cpu + pipe.mongo_cpu_ready) / n
    others = max(pipe.ready_others / pipe.ready_seconds, pipe.bare_before.others, pipe.bare_after.others)
    kinds = " + ".join(pipe.kinds)
    lines = [
        args.heading,
        "",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}. "
        f"Python {platform.python_version()}, torch {torch.__version__}, {args.threads} torch threads, "
        f"{Settings().blas_threads or 'default'} BLAS thread(s) in the service, "
        f"model on {accelerator(args.device)}.{gpu_peak(args.device)} "
        f"Scheduler autogroup: {args.priority}.",
        "",
        f"Command: `{command}`",
        "",
        f"Photos: {n} JPEGs (q90), {statistics.fmean(megapixels):.1f} MP mean "
        f"({min(megapixels):.1f}-{max(megapixels):.1f} MP), {sum(map(len, photos)) / 1e6:.0f} MB in all; "
        f"display renditions {statistics.fmean(map(len, displays)) / 1e3:.0f} KB mean, decoded at reduced "
        f"scale for the model (``decode_for_analysis``, bare and pipeline alike). "
        f"Model: random-weight CLIP with ViT-B/32 shapes (the compute of clip-ViT-B-32). "
        f"Batch size {args.batch_size} (model and worker). "
        f"{args.workers} worker(s) x {args.concurrency} batches in flight, job kinds: {kinds}.",
        "",
        f"**Pipeline / bare model = {ratio:.2f}** (goal >= {GOAL:.2f}: {met}). "
        f"Other processes on the machine used up to {others:.2f} cores during the measurements"
        f"{' (a shared machine: treat the numbers with care)' if others > 0.25 else ''}.",
        "",
        "| measure | photos/s | seconds | CPU s per photo | notes |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| bare model, fresh process state: `ClipEmbedder.embed_images` on display renditions | "
        f"{standalone.rate:.2f} | {standalone.seconds:.1f} | {standalone.cpu_seconds / n:.2f} | "
        f"reference; others {standalone.others:.2f} cores |",
        f"| bare model, pipeline's embedder on its model thread, right before the ingest | "
        f"{pipe.bare_before.rate:.2f} | {pipe.bare_before.seconds:.1f} | {pipe.bare_before.cpu_seconds / n:.2f} | "
        f"others {pipe.bare_before.others:.2f} cores |",
        f"| bare model, the same, right after the ingest | {pipe.bare_after.rate:.2f} | "
        f"{pipe.bare_after.seconds:.1f} | {pipe.bare_after.cpu_seconds / n:.2f} | "
        f"others {pipe.bare_after.others:.2f} cores |",
        f"| **bare model** (mean of the two around the ingest) | **{bare_rate:.2f}** | | {bare_cpu:.2f} | "
        f"prep + forward; display JPEG decode excluded |",
        f"| **pipeline**: worker start -> all {n} photos READY (every ingest job settled) | **{ready_rate:.2f}** | "
        f"{pipe.ready_seconds:.1f} | {pipe_cpu:.2f} | process {pipe.ready_cpu / pipe.ready_seconds:.2f} cores "
        f"+ SecantusDB {pipe.mongo_cpu_ready / pipe.ready_seconds:.2f} cores; others "
        f"{pipe.ready_others / pipe.ready_seconds:.2f} cores |",
    ]
    if len(pipe.kinds) > 1:
        lines.append(f"| pipeline incl. the faces jobs: worker start -> every job of every kind settled | "
                     f"{n / pipe.all_seconds:.2f} | {pipe.all_seconds:.1f} | | faces run as their own job kind "
                     f"after READY |")
    lines += [
        f"| upload (`UploadService.upload`: hash, decode, 3 renditions, GridFS, photo doc, job) | "
        f"{n / pipe.upload_seconds:.2f} | {pipe.upload_seconds:.1f} | | {args.upload_concurrency} concurrent |",
        "",
        "One-time costs, excluded from the steady-state figures above:",
        "",
        "| one-time step | seconds |",
        "| --- | ---: |",
        f"| build the b32 folder (first run only; cached in --model-dir) | {build_seconds:.1f} |",
        f"| model load (open_services -> model ready) | {pipe.model_wait_seconds:.1f} |",
        f"| zero-shot vocabulary + CLIP-IQA text embeddings ({pipe.vocabulary_prompts:,} prompts; once per process"
        f" and per vocabulary change) | {pipe.vocabulary_seconds:.1f} |",
        f"| first full image batch through `PhotoAnalyzer.analyze` | {pipe.warm_batch_seconds:.1f} |",
        f"| Milvus collection create + load | {pipe.collection_seconds:.1f} |",
        "",
        "Phases and peak memory (resident set; per phase: VmHWM reset at the phase start):",
        "",
        "| phase | wall s | CPU cores (this process) | others' cores | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for p in phases:
        note = f" ({p.note})" if p.note else ""
        wall = p.wall or 1e-9
        lines.append(f"| {p.name}{note} | {p.wall:.1f} | {p.cpu / wall:.2f} | {p.others / wall:.2f} | "
                     f"{fmt_mib(p.peak)} |")
    pipeline_peak = max((p.peak or 0.0) for p in phases if p.name.startswith("pipeline"))
    children = ", ".join(f"pid {pid}: {fmt_mib(mib)}" for pid, mib in pipe.children.items() if pid != pipe.mongo_pid)
    lines += [
        f"| **whole run, process peak** (`ru_maxrss`) | {total_seconds:.1f} | | | **{fmt_mib(maxrss_mib())}** |",
        f"| pipeline phases' peak | | | | {fmt_mib(pipeline_peak)} |",
        f"| SecantusDB child process peak | | | | {fmt_mib(pipe.mongo_peak)} |",
    ]
    if children:
        lines.append(f"| other child processes | | | | {children} |")
    t = pipe.timings
    lines += [
        "",
        f"Where the time goes, worker start -> all READY ({pipe.ready_seconds:.1f} s): wall seconds summed; "
        "nested rows are inside the row above; the technical measures run in the pixel thread during the model pass, "
        "so their sum overlaps it; time in no row is leasing jobs and the event loop.",
        "",
        "| step | calls | seconds | ms per photo |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, depth in BREAKDOWN:
        if label in t.seconds:
            indent = "&nbsp;&nbsp;" * depth
            lines.append(f"| {indent}{label} | {t.calls[label]} | {t.seconds[label]:.2f} | "
                         f"{1000 * t.seconds[label] / n:.1f} |")
    model_pass = t.seconds.get("model pass (model thread)", 0.0)
    lines += [
        "",
        f"The model thread was busy {model_pass:.1f} s of the {pipe.ready_seconds:.1f} s "
        f"({model_pass / pipe.ready_seconds:.0%}); the bare model needs {n / bare_rate:.1f} s for the same photos.",
        "",
        "CPU by thread (this process; core-seconds, from /proc/self/task) and by process, for the bare model "
        "right before the ingest and for the ingest:",
        "",
        "| thread or process | bare model s | ingest s | ingest ms per photo |",
        "| --- | ---: | ---: | ---: |",
    ]
    roles = sorted(set(pipe.threads_bare) | set(pipe.threads_ready), key=lambda r: -pipe.threads_ready.get(r, 0.0))
    for role in roles:
        bare_s, ready_s = pipe.threads_bare.get(role, 0.0), pipe.threads_ready.get(role, 0.0)
        if max(bare_s, ready_s) >= 0.01:
            lines.append(f"| {role} | {bare_s:.2f} | {ready_s:.2f} | {1000 * ready_s / n:.1f} |")
    for role, seconds in (("SecantusDB (child process)", pipe.mongo_cpu_ready),
                          ("other child processes (milvus-lite)", pipe.others_cpu_ready)):
        lines.append(f"| {role} | | {seconds:.2f} | {1000 * seconds / n:.1f} |")
    lines.append("")
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    cores = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--photos", type=int, default=96, help="photos to push through both measurements")
    parser.add_argument("--batch-size", type=int, default=16, help="model batch = worker batch")
    parser.add_argument("--threads", type=int, default=cores, help="torch threads")
    parser.add_argument("--device", default="cpu",
                        help="the model's device, bare and pipeline alike (cpu, cuda, cuda:N, auto)")
    parser.add_argument("--upload-concurrency", type=int, default=cores, help="uploads in flight at once")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR,
                        help="cache folder for the random b32 CLIP (git-ignored; built if missing)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown report")
    parser.add_argument("--heading", default="## Ingest throughput (bench/ingest.py)", help="report heading")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photo-cache", type=Path, default=None,
                        help="folder to keep the generated photos in, per (--photos, --seed), across runs "
                             "(empty it when the photo generator or the display size changes)")
    parser.add_argument("--concurrency", type=int, default=Settings().worker_concurrency,
                        help="batches in flight per worker (PHOTODUEL_WORKER_CONCURRENCY)")
    parser.add_argument("--workers", type=int, default=1,
                        help="Worker instances in this process, sharing the model thread (1 = photoduel serve)")
    parser.add_argument("--only-ingest", action="store_true",
                        help="run the worker with the ingest handler alone (no faces jobs)")
    parser.add_argument("--quiet-wait", type=float, default=20.0,
                        help="before each measurement, wait up to this many seconds for other processes to "
                             "leave the CPUs idle")
    parser.add_argument("--autogroup-nice", type=int, default=None,
                        help="on a shared machine, give this process and its SecantusDB child this scheduler "
                             "autogroup nice value (e.g. -10; needs root or CAP_SYS_NICE)")
    parser.add_argument("--db-autogroup-nice", type=int, default=None,
                        help="SecantusDB's own autogroup nice value, when it should differ from --autogroup-nice")
    parser.add_argument("--profile", type=Path, default=None,
                        help="cProfile the event-loop thread during the ingest; stats to this file")
    args = parser.parse_args(argv)
    if args.photos < args.batch_size:
        parser.error("--photos must be at least --batch-size")
    if min(args.threads, args.batch_size, args.upload_concurrency, args.workers) < 1:
        parser.error("--threads, --batch-size, --upload-concurrency and --workers must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/ingest.py", *(argv if argv is not None else sys.argv[1:])])
    import torch

    from photoduel.logging import configure_logging

    configure_logging("WARNING", json=False)
    torch.set_num_threads(args.threads)
    run_start = time.perf_counter()
    args.priority = favour("self", args.autogroup_nice)
    phases: list[Phase] = []
    model_dir, build_seconds = ensure_model(args.model_dir.resolve())
    settings = Settings(data_dir=Path(tempfile.gettempdir()))  # only the upload limits are read here

    with phase(phases, "setup: make photos + display renditions") as record:
        photos, displays = photo_set(args.photos, args.seed, settings, args.photo_cache)
        megapixels = [float(np.prod(Image.open(io.BytesIO(p)).size)) / 1e6 for p in photos]
        record.note = f"{len(photos)} photos"
    print(f"{len(photos)} photos ready ({sum(map(len, photos)) / 1e6:.0f} MB)", flush=True)

    wait_for_quiet(args.quiet_wait)
    with phase(phases, "bare model, fresh process state (model loaded here, then freed)") as record:
        embedder = ClipEmbedder(str(model_dir), device=args.device, batch_size=args.batch_size)
        embedder.load()
        standalone = bare_model(embedder.embed_images, displays, args.batch_size)
        record.note = f"{standalone.rate:.2f} photos/s"
        del embedder
    print(f"bare model: {standalone.rate:.2f} photos/s", flush=True)

    pipe = asyncio.run(run_pipeline(args, model_dir, photos, displays, phases))
    print(f"pipeline: {args.photos / pipe.ready_seconds:.2f} photos/s", flush=True)
    checks = [("READY", pipe.ready), ("announced", pipe.announced),
              *((f"{kind} jobs done", done) for kind, done in pipe.jobs_done.items())]
    problems = [f"{name} {got} != {args.photos}" for name, got in checks if got != args.photos]
    if pipe.vectors != args.photos:
        problems.append(f"Milvus rows {pipe.vectors} != {args.photos}")
    text = report(args, photos, megapixels, displays, standalone, pipe, phases, command, build_seconds,
                  time.perf_counter() - run_start)
    if problems:
        text += "\n**Run incomplete:** " + "; ".join(problems) + "\n"
    if pipe.profile_text:
        print(pipe.profile_text)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
