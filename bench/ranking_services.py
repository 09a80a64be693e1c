"""The ranking simulation run through the real services: MongoDB (the embedded SecantusDB), Milvus
(milvus-lite), the duel service's matchmaker, signed tickets, the vote log and the rating projector.

bench/ranking_sim.py measures the policy in memory over many seeds; this run checks that the service,
with its I/O, filters and tickets, gets the same behaviour: same simulated world (bench/sim_core.py:
clusters, hidden quality, Bradley-Terry voters), but every pair comes from `DuelService.next_duel`
and every vote goes through `DuelService.vote`. Neighbour lists are found with a real Milvus search
over the world's embeddings, as ingest does.

    .venv/bin/python bench/ranking_services.py --n 200 --slope 1.7 --r 0.7 --max-votes 30
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from bson import ObjectId

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sim_core import make_world, spearman, top_recall, vote
from gaming.duels.records import initial_rating_fields
from gaming.ratings import Outcome
from photoduel.logging import configure_logging
from photoduel.services import open_services
from photoduel.settings import Settings
from storage.photos import READY
from storage.vectors import ScalarField

OUTCOMES = {0: Outcome.LEFT, 1: Outcome.RIGHT, 2: Outcome.DRAW}
COLLECTION = "photos__ranking_bench_16"


async def seed_catalogue(services, world, emb: np.ndarray, r: float) -> list[ObjectId]:  # type: ignore[no-untyped-def]
    """Photos as ingest leaves them: READY, a prior from the model score, neighbours from Milvus."""
    ids = [ObjectId() for _ in range(world.n)]
    quality = world.model_quality(r)
    await services.vectors.ensure_collection(COLLECTION, emb.shape[1], (ScalarField("owner", 64),))
    await services.vectors.upsert(COLLECTION, [{"id": str(i), "vector": v, "owner": str(world.owner[n])}
                                               for n, (i, v) in enumerate(zip(ids, emb, strict=True))])
    hits = await services.vectors.search(COLLECTION, emb, limit=25)
    now = datetime.now(UTC)
    docs = []
    for n, photo_id in enumerate(ids):
        neighbours = [{"id": ObjectId(h.id), "similarity": round(h.similarity, 5)} for h in hits[n]
                      if h.id != str(photo_id)][:24]
        docs.append({
            "_id": photo_id, "owner": f"owner{world.owner[n]}", "status": READY, "category": "bench",
            "sha256": f"bench-{n}", "created_at": now, "updated_at": now, "neighbours": neighbours,
            "rating": initial_rating_fields(float(quality[n]), services.rating_env), "ready_at": now,
            "quality": {"score": float(quality[n])}, "tags": [],
        })
    await services.photos.collection.insert_many(docs)
    return ids


async def run(args: argparse.Namespace) -> dict[str, object]:
    world = make_world(args.n, args.variant, args.seed)
    # sim_core keeps the embeddings implicit (knn lists); rebuild cluster embeddings the same way for Milvus.
    rng_np = np.random.default_rng(args.seed + 1)
    centres = rng_np.normal(size=(world.cluster.max() + 1, 16))
    emb = centres[world.cluster] + 0.6 * rng_np.normal(size=(world.n, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), log_level="WARNING", log_json=False, worker_enabled=False,
                            duel_ttl_seconds=3600)
        async with open_services(settings, run_worker=False, run_projector=True, load_model=False) as services:
            ids = await seed_catalogue(services, world, emb, args.r)
            index = {pid: n for n, pid in enumerate(ids)}
            rng = np.random.default_rng(args.seed + 2)
            votes = 0
            neighbour_pairs = 0
            reached: dict[str, float | None] = {"rho": None, "top": None}
            trace = []
            started = time.perf_counter()
            while votes / world.n < args.max_votes:
                for _ in range(world.n // 10):
                    player = f"player{random.randrange(10_000_000)}"  # a large anonymous crowd
                    picked = await services.duels.next_duel(player, None)
                    if picked is None:
                        continue
                    li, ri = index[picked.left["_id"]], index[picked.right["_id"]]
                    outcome = int(vote(world.q, np.array([li]), np.array([ri]), args.slope, rng)[0])
                    result = await services.duels.vote(picked.id, player, OUTCOMES[outcome])
                    if not result.applied:  # the next pair must see this vote, as in the simulation
                        await services.projector.drain()
                    votes += 1
                    neighbour_pairs += picked.ticket.similarity is not None
                docs = {d["_id"]: d async for d in services.photos.collection.find({}, {"rating": 1})}
                score = np.array([docs[pid]["rating"]["conservative"] for pid in ids])
                rho, top = spearman(score, world.q), top_recall(score, world.q)
                per_photo = votes / world.n
                trace.append((round(per_photo, 2), round(rho, 3), round(top, 3)))
                if reached["rho"] is None and rho >= 0.9:
                    reached["rho"] = per_photo
                if reached["top"] is None and top >= 0.8:
                    reached["top"] = per_photo
                if all(v is not None for v in reached.values()) and per_photo >= args.min_votes:
                    break
            elapsed = time.perf_counter() - started
            await services.projector.drain(settle=True)
            replay = await services.projector.replay()
            stored = {d["_id"]: d["rating"] async for d in services.photos.collection.find({}, {"rating": 1})}
            exact = all(stored[pid] == replay[pid] for pid in ids)
            duels = np.array([stored[pid]["votes"] for pid in ids])
    return {"reached": reached, "votes": votes, "seconds": elapsed, "neighbour_fraction": neighbour_pairs / votes,
            "max_share": float(duels.max() / votes), "replay_exact": exact, "trace": trace}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--variant", choices=["indep", "corr"], default="indep")
    parser.add_argument("--slope", type=float, default=1.7)
    parser.add_argument("--r", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-votes", type=float, default=30.0, help="cap, in votes per photo")
    parser.add_argument("--min-votes", type=float, default=0.0, help="keep voting at least this long")
    args = parser.parse_args(argv)
    configure_logging("WARNING", json=False)
    result = asyncio.run(run(args))
    fmt = (lambda v: "—" if v is None else f"{v:.1f}")  # noqa: E731
    print(f"ranking through the services: N={args.n} {args.variant} slope={args.slope} r={args.r} seed={args.seed}")
    print(f"machine: {platform.machine()}, {platform.python_version()}, date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print("| votes/photo to Spearman 0.9 | to featured recall 0.8 | votes | s/vote (next+vote) | "
          "neighbour duels | max duel share | replay == stored |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    reached = result["reached"]
    print(f"| {fmt(reached['rho'])} | {fmt(reached['top'])} | {result['votes']} | "  # type: ignore[index]
          f"{result['seconds'] / max(1, result['votes']):.4f} | {result['neighbour_fraction']:.0%} | "  # type: ignore[operator]
          f"{result['max_share']:.2%} | {result['replay_exact']} |")
    print("trace (votes/photo, Spearman, featured recall):", result["trace"][:: max(1, len(result["trace"]) // 12)])
    return 0 if not math.isnan(result["neighbour_fraction"]) else 1  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
