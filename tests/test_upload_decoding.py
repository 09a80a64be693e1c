"""Large and 16-bit uploads: decoded without float64 copies, and on a pool of their own.

A 50 MP 16-bit PNG is 100 MB decoded; scaled to 8 bits through float64 it took over a gigabyte. Its
renditions must come out right (scaled, not clipped) with the peak well under 600 MB. And a burst of
such uploads decodes on the upload service's own bounded pool, so a sign-in (token verification runs
on the event loop's default pool) is answered while they run.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from bson import ObjectId
from PIL import Image

from ml.images import render_variants
from photoduel.settings import Settings
from photos.upload_rules import UploadRules
from tests.servers import LiveServer
from tests.tokens import auth_header
from tests.uploads import upload

WIDTH, HEIGHT = 8192, 6100  # 49.97 MP, just under the 50 MP limit
PEAK_LIMIT_BYTES = 600 * 1024 * 1024


def sixteen_bit_png(width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A vertical ramp over the whole 16-bit range (0 at the top, 65535 at the bottom)."""
    ramp = np.linspace(0, 65535, height).round().astype(np.uint16)
    image = Image.fromarray(np.ascontiguousarray(np.broadcast_to(ramp[:, None], (height, width))))
    assert image.mode == "I;16"
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def png16() -> bytes:
    return sixteen_bit_png()


def decode_and_render(rules: UploadRules, data: bytes) -> tuple[object, dict[str, object]]:
    """What `UploadService` runs on its decode pool: the upload rules' decode, then the renditions."""
    decoded = rules.decode(data, "image/png")
    return decoded, render_variants(decoded.image, display_max_side=2048, thumbnail_max_side=400)


def test_a_50_mp_16_bit_png_decodes_under_600_mb_into_the_right_renditions(
    make_settings: Callable[..., Settings], png16: bytes
) -> None:
    rules = UploadRules.from_settings(make_settings())
    tracemalloc.start()
    try:
        decoded, renditions = decode_and_render(rules, png16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT_BYTES, f"peak {peak / 2**20:.0f} MiB"
    print(f"50 MP 16-bit PNG: traced peak {peak / 2**20:.0f} MiB")

    assert (decoded.width, decoded.height, decoded.format) == (WIDTH, HEIGHT, "PNG")  # type: ignore[attr-defined]
    sizes = {name: (r.width, r.height) for name, r in renditions.items()}  # type: ignore[attr-defined]
    assert sizes == {"original": (WIDTH, HEIGHT), "display": (2048, 1525), "thumbnail": (400, 298)}
    display = np.asarray(Image.open(io.BytesIO(renditions["display"].data)).convert("L"), dtype=int)  # type: ignore[attr-defined]
    column = display[:, 1024]
    # scaled, not clipped: black at the top, white at the bottom, mid grey half way, monotone between
    assert column[2] <= 3 and column[-3] >= 252, (column[:5], column[-5:])
    assert abs(int(column[len(column) // 2]) - 128) <= 3
    assert np.all(np.diff(column[2:-2]) >= -2)


def test_the_whole_process_peak_stays_under_600_mb(png16: bytes, tmp_path: Path) -> None:
    """tracemalloc sees numpy's buffers but not Pillow's own: the process's peak RSS says the rest."""
    path = tmp_path / "big16.png"
    path.write_bytes(png16)
    # VmHWM (the peak RSS of this process image) reset just before: ru_maxrss would carry pytest's own
    # peak into the child across the fork.
    script = f"""
import json, re
from ml.images import decode_upload, render_variants
def status(key):
    return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
data = open({str(path)!r}, "rb").read()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
before = status("VmRSS")
decoded = decode_upload(data, max_bytes=25 * 2**20, max_pixels=50_000_000, declared_type="image/png")
render_variants(decoded.image, display_max_side=2048, thumbnail_max_side=400)
print(json.dumps({{"before_kib": before, "after_kib": status("VmHWM")}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    grown = (rss["after_kib"] - rss["before_kib"]) * 1024
    print(f"50 MP 16-bit PNG: peak RSS grew by {grown / 2**20:.0f} MiB")
    assert grown < PEAK_LIMIT_BYTES, rss


def test_sign_in_is_answered_while_eight_large_uploads_decode(
    make_settings: Callable[..., Settings], png16: bytes
) -> None:
    settings = make_settings(upload_decode_threads=2)
    with LiveServer(settings, run_worker=False) as server:
        answers: list[tuple[float, httpx.Response]] = []

        def send(owner: str) -> None:
            with httpx.Client(base_url=server.url, timeout=300) as client:
                response = upload(client, png16, auth_header(owner), filename="big16.png", content_type="image/png")
                answers.append((time.monotonic(), response))

        uploads = [threading.Thread(target=send, args=(f"uploader{i}",)) for i in range(8)]
        for thread in uploads:
            thread.start()
        time.sleep(0.5)  # the bodies are on the server (4 MB each, loopback): the decodes are running

        started = time.monotonic()
        response = httpx.post(f"{server.url}/graphql", json={"query": "{ me { id } }"},
                              headers=auth_header("signing-in"), timeout=60)
        latency = time.monotonic() - started
        uploads_done_then = len(answers)
        for thread in uploads:
            thread.join(300)

        print(f"`me` answered in {latency * 1000:.0f} ms with {8 - uploads_done_then} of 8 uploads in flight")
        assert response.status_code == 200 and response.json()["data"]["me"]["id"] == "signing-in", response.text
        assert uploads_done_then < 8, "the uploads finished before `me` was asked: nothing was measured"
        # A starved default pool makes `me` wait for three 50 MP decodes (several seconds on 2 cores);
        # on the decode pool's side of the wall it is a few milliseconds of work.
        assert latency < 2.0, f"`me` took {latency:.2f} s while uploads decoded"
        assert len(answers) == 8
        ids = []
        for _, answer in answers:
            body = answer.json()
            assert answer.status_code == 200 and "errors" not in body, body
            ids.append(body["data"]["uploadPhoto"]["id"])
        photo = server.run(server.services.photos.get(ObjectId(ids[0])))
        assert (photo["width"], photo["height"]) == (WIDTH, HEIGHT)
        assert photo["renditions"]["display"]["width"] == 2048
