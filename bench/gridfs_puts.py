"""GridFS writes per second as the store grows, through `storage.blobs.BlobStore` on the embedded server.

    .venv/bin/python bench/gridfs_puts.py [--blobs 256] [--size 1000000] [--in-flight 4] [--pymongo-check]

Each group of 32 blobs reports its rate. With ``--pymongo-check`` the store lets PyMongo check for the
bucket's indexes before every blob (the behaviour before the service created them at start): on
SecantusDB that check decodes every stored chunk, so the rate falls as the store grows. Without it the
rate should stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.blobs import BlobStore  # noqa: E402
from storage.embedded_mongo import EmbeddedMongo  # noqa: E402
from storage.mongo import create_client, ensure_indexes  # noqa: E402

GROUP = 32


async def run(blobs: int, size: int, in_flight: int, pymongo_check: bool) -> list[float]:
    rates = []
    with tempfile.TemporaryDirectory(prefix="photoduel-bench-gridfs-") as tmp:
        server = EmbeddedMongo(Path(tmp) / "mongodb")
        uri = await asyncio.to_thread(server.start)
        client = create_client(uri)
        try:
            db = client["bench_gridfs"]
            if not pymongo_check:
                await ensure_indexes(db)
            store = BlobStore(db, indexes_ensured=not pymongo_check)
            payload = os.urandom(size)
            gate = asyncio.Semaphore(in_flight)

            async def put(i: int) -> None:
                async with gate:
                    await store.put(payload[:-8] + i.to_bytes(8, "big"), filename=f"blob-{i}",
                                    content_type="image/jpeg", metadata={"i": i})

            for start in range(0, blobs, GROUP):
                began = time.perf_counter()
                await asyncio.gather(*(put(i) for i in range(start, start + GROUP)))
                rates.append(GROUP / (time.perf_counter() - began))
                print(f"{start + GROUP:5d} blobs stored: {rates[-1]:7.1f} puts/s", flush=True)
        finally:
            await client.close()
            await asyncio.to_thread(server.stop)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--blobs", type=int, default=256, help="blobs to write (a multiple of 32)")
    parser.add_argument("--size", type=int, default=1_000_000, help="bytes per blob")
    parser.add_argument("--in-flight", type=int, default=4, help="puts in flight at once")
    parser.add_argument("--pymongo-check", action="store_true",
                        help="let PyMongo check for the bucket's indexes before every blob")
    args = parser.parse_args()
    if args.blobs < GROUP or args.blobs % GROUP:
        parser.error(f"--blobs must be a positive multiple of {GROUP}")
    rates = asyncio.run(run(args.blobs, args.size, args.in_flight, args.pymongo_check))
    print(f"first {GROUP}: {rates[0]:.1f} puts/s, last {GROUP}: {rates[-1]:.1f} puts/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
