"""The featured cut read two ways: every photo's mu shipped to Python (the old read), or a count and the
two mus the cut lies between, off the (category, status, rating.mu) index (gaming/duels/matchmaker.py).

On the embedded test server both scan (its planner does not serve sorts from an index), so this shows
what the index read costs where nothing is index-backed; on real MongoDB the new read touches only index
keys. Both must give the same cut.

    .venv/bin/python bench/featured_cut.py --n 2000 20000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gaming.duels.matchmaker import Matchmaker
from gaming.featured import featured_boundary_array
from gaming.ratings import RatingEnv
from storage.embedded_mongo import EmbeddedMongo
from storage.mongo import ensure_indexes
from storage.photos import PhotoRepository
from storage.votes import VoteRepository

REPEATS = 5


async def measure(uri: str, n: int) -> tuple[float, float, bool]:
    client: AsyncMongoClient = AsyncMongoClient(uri)
    db = client[f"cut_{n}"]
    try:
        await ensure_indexes(db)
        rng = random.Random(n)
        docs = [{"status": "READY", "category": "c", "owner": f"o{i}", "sha256": str(i),
                 "rating": {"mu": rng.gauss(25, 4), "sigma": 2.0}} for i in range(n)]
        for start in range(0, n, 5000):
            await db.photos.insert_many(docs[start:start + 5000])
        started = time.perf_counter()
        for _ in range(REPEATS):
            query = {"status": "READY", "rating": {"$exists": True}, "category": "c"}
            mus = [d["rating"]["mu"] async for d in db.photos.find(query, {"rating.mu": 1})]
            every_mu = featured_boundary_array(np.array(mus))
        old = (time.perf_counter() - started) / REPEATS
        matchmaker = Matchmaker(PhotoRepository(db), VoteRepository(db), RatingEnv(), near_duplicate_cosine=0.95)
        started = time.perf_counter()
        for _ in range(REPEATS):
            matchmaker._boundaries.clear()  # no cache: measure the read
            indexed = await matchmaker.boundary("c")
        new = (time.perf_counter() - started) / REPEATS
        return old, new, abs(every_mu - indexed) < 1e-9
    finally:
        await client.drop_database(db.name)
        await client.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 20000])
    args = ap.parse_args(argv)
    server = EmbeddedMongo(Path(tempfile.mkdtemp(prefix="cutbench")))
    server.start()
    try:
        print("| photos in the category | every mu read (ms) | index read (ms) | same cut |")
        print("|---:|---:|---:|---|")
        for n in args.n:
            old, new, same = asyncio.run(measure(server.uri, n))
            print(f"| {n} | {old * 1000:.0f} | {new * 1000:.0f} | {same} |")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
