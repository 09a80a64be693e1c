"""Scale: what grows with the catalogue, and what a second API process buys.

    .venv/bin/python bench/scale.py latency [--photos 10000 100000 1000000] [--milvus file server]
        [--requests 200] [--op-seconds 90] [--clients 1] [--seed 1] [--keep] [--label TEXT]
    .venv/bin/python bench/scale.py votes [--photos 100000] [--apis 1 2] [--players 16] [--seconds 20]

Both modes run the README's multi-process recipe (tests/processes.py `running_cluster`): `photoduel
database` (the embedded SecantusDB as a server), `milvus-lite server`, and `photoduel serve` children
with their worker off, on a random-weight CLIP of ViT-B/32's shapes (bench/ingest.py builds it once,
git-ignored): searchPhotos embeds its text with the real model code, and the vectors are 512-d.

latency, per N: N READY photos written straight into the database (bench/load.py's synthetic catalogue:
clusters of 60, k=24 neighbours drawn at random from the photo's cluster, not from the vectors), built
offline before the database server starts; N random unit vectors (independent of the clusters: a FLAT
search costs the same whatever the data) written through storage/vectors.py with the service's schema
(`PHOTO_SCALARS`) and index (FLAT, cosine), once into a milvus-lite file and once into `milvus-lite
server`. Per Milvus: the bare search from this process (`VectorIndex.search`, limit 24), then one API
process on that Milvus: `searchPhotos` (random text), `similarPhotos` (a random photo), `nextDuel` (half
in a category), sequential by default, p50/p95/p99; RSS and peak RSS (VmHWM) of the API, the database
and the Milvus server; the seeding times; the machine's load average before and after and the share of
the cores others used meanwhile (the box is shared: a busy box makes every number worse).

votes: bench/load.py's players (its seeding, client and checks, imported) against one API process, then
against two sharing the database server (players split evenly), each on a fresh copy of the same seeded
database: votes/s, p99 per operation, lost or doubled votes, and the CPU seconds of each process over the
window (/proc/<pid>/stat before and after), with the process holding the rating projector's lease.

Results: stdout, and bench/results/scale-<mode>-<N>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import DEFAULT_MODEL_DIR, ensure_model  # noqa: E402
from bench.load import (  # noqa: E402
    NEXT,
    Snapshot,
    Stats,
    World,
    build_indexes,
    call,
    check_votes,
    cpu_seconds,
    descendants,
    is_database,
    load_photos,
    machine,
    machine_busy_seconds,
    make_world,
    open_db,
    percentiles,
    run_players,
    wait_drained,
    warm_up,
)
from ml.embedder import model_slug  # noqa: E402
from ml.pipelines.photo_vectors import PHOTO_SCALARS, photo_collection  # noqa: E402
from storage.embedded_mongo import EmbeddedMongo, free_port  # noqa: E402
from storage.photos import READY  # noqa: E402
from storage.vectors import VectorIndex  # noqa: E402
from tests.processes import Child, Cluster, photoduel, running_cluster  # noqa: E402
from tests.tokens import mint_token  # noqa: E402

DIM = 512  # CLIP ViT-B/32's embedding
LIMIT = 24  # results per search and per similarPhotos, as a client's first page
VECTOR_BATCH = 2000
DB_NAME = "photoduel"
SEARCH = f"query($t: String!) {{ searchPhotos(text: $t, first: {LIMIT}) {{ id }} }}"
SIMILAR = f"query($id: ID!) {{ similarPhotos(photoId: $id, first: {LIMIT}) {{ similarity photo {{ id }} }} }}"
WORDS = ("foggy harbour", "red door", "mountain lake", "old car", "street market", "cat asleep", "night sky",
         "bowl of soup", "bridge", "surfer", "tulips", "train station", "lighthouse", "portrait", "desert road")
USERS = 8  # nextDuel and the rest rotate over this many signed-in users


# --- the machine and its processes --------------------------------------------------------------------


def memory_mib(pid: int | None) -> dict[str, float] | None:
    """VmRSS (now) and VmHWM (peak resident since the process started), MiB."""
    if pid is None:
        return None
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    fields = {k: int(v.split()[0]) / 1024 for k, v in (line.split(":", 1) for line in lines)
              if k in ("VmRSS", "VmHWM")}
    return {"rss_mib": round(fields["VmRSS"]), "peak_mib": round(fields["VmHWM"])}


def mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return float("nan")


@dataclass
class Window:
    """The machine around one measurement: load average, and CPU seconds by our processes and by the rest."""

    pids: dict[str, int]
    started: float = field(default_factory=time.monotonic)
    load_before: tuple[float, ...] = field(default_factory=os.getloadavg)
    cpu_before: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cpu_before = self._cpu()

    def _cpu(self) -> dict[str, float]:
        own = os.times()
        cpu = {"bench": own.user + own.system}
        for name, pid in self.pids.items():
            try:
                cpu[name] = cpu_seconds(pid)
            except OSError:
                cpu[name] = 0.0
        cpu["machine"] = machine_busy_seconds()
        return cpu

    def close(self) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        after = self._cpu()
        used = {k: round(after[k] - self.cpu_before[k], 2) for k in after}
        ours = sum(v for k, v in used.items() if k != "machine")
        cores = len(os.sched_getaffinity(0))
        return {
            "wall_s": round(wall, 1), "loadavg_before": [round(x, 2) for x in self.load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "cpu_s": {k: v for k, v in used.items() if k != "machine"},
            "others_cpu_share": round(max(0.0, used["machine"] - ours) / (wall * cores), 2) if wall else None,
            "machine_busy_share": round(used["machine"] / (wall * cores), 2) if wall else None,
        }


def database_pid(cluster: Cluster) -> int | None:
    """SecantusDB itself: `photoduel database` runs it as a guarded descendant."""
    assert cluster.database.pid is not None
    return next((p for p in descendants(cluster.database.pid) if is_database(p)), None)


# --- the catalogue ------------------------------------------------------------------------------------


@dataclass
class Catalogue:
    world: World
    collection: str
    category: list[str]  # per photo, in world.ids order
    owner: list[str]
    timings: dict[str, float]


def model_collection(model_dir: Path) -> str:
    """The collection the API's model searches (its id is made from the folder name and the dimension)."""
    return photo_collection(model_slug(str(model_dir), DIM), DIM)


def seed_database(path: Path, n: int, categories: int, seed: int, collection: str) -> Catalogue:
    """bench/load.py's photos, pointing at the model's vector collection, with the service's indexes."""
    world, chunks = make_world(n, categories, seed)
    category: list[str] = []
    owner: list[str] = []

    def noted() -> Iterator[list[dict[str, Any]]]:
        for chunk in chunks:
            for doc in chunk:
                doc["vector_collection"] = collection
                category.append(doc["category"])
                owner.append(doc["owner"])
            yield chunk

    with EmbeddedMongo(path) as server, MongoClient(server.uri) as client:
        load_s = load_photos(client[DB_NAME], noted())
        index_s = build_indexes(client[DB_NAME])
    return Catalogue(world, collection, category, owner, {"db_load_s": round(load_s, 1),
                                                          "db_index_build_s": round(index_s, 1)})


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    v = rng.standard_normal((count, DIM), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def vector_batches(cat: Catalogue, seed: int) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """(rows, last) in the shape the ingest writes them; the same vectors on every call."""
    n = len(cat.world.ids)
    for b, start in enumerate(range(0, n, VECTOR_BATCH)):
        stop = min(n, start + VECTOR_BATCH)
        vectors = unit_vectors(np.random.default_rng([seed, b]), stop - start)
        yield ([{"id": str(cat.world.ids[i]), "vector": vectors[i - start], "category": cat.category[i],
                 "owner": cat.owner[i], "status": READY} for i in range(start, stop)], stop == n)


async def seed_vectors(uri: str, cat: Catalogue, seed: int, searches: int) -> dict[str, Any]:
    """Every vector through storage/vectors.py (one flush at the end), then the bare search timed from here."""
    index = VectorIndex(uri)
    try:
        started = time.perf_counter()
        await index.ensure_collection(cat.collection, DIM, PHOTO_SCALARS)
        for rows, last in vector_batches(cat, seed):
            await index.upsert(cat.collection, rows, flush=last)
        insert_s = time.perf_counter() - started
        rows_stored = await index.count(cat.collection)
        rng = np.random.default_rng([seed, 999_999])
        first = time.perf_counter()
        await index.search(cat.collection, unit_vectors(rng, 1), limit=LIMIT)
        first_s = time.perf_counter() - first
        samples = []
        for query in unit_vectors(rng, searches):
            t0 = time.perf_counter()
            await index.search(cat.collection, query[None, :], limit=LIMIT)
            samples.append(time.perf_counter() - t0)
    finally:
        await index.close()
    return {"insert_s": round(insert_s, 1), "rows": rows_stored, "first_search_ms": round(first_s * 1000, 1),
            "bare_search": percentiles(samples)}


# --- one API process and its requests -----------------------------------------------------------------


def start_api(cluster: Cluster, name: str, env: dict[str, str], timeout: float) -> Child:
    """`photoduel serve` with its worker off (as Cluster.add_api, with this env: the file mode drops
    PHOTODUEL_MILVUS_URI), ready once its model is loaded."""
    port = free_port()
    api = Child(name, photoduel("serve", "--port", str(port)), {**env, "PHOTODUEL_WORKER_ENABLED": "false"},
                cluster.root / f"{name}.log")
    cluster.apis.append(api)
    cluster.api_urls[name] = f"http://127.0.0.1:{port}"
    api.start()
    cluster.wait_ready(api, timeout)
    return api


Request = Callable[[random.Random], tuple[str, dict[str, Any]]]


def requests_for(cat: Catalogue) -> dict[str, Request]:
    ids = cat.world.ids
    categories = cat.world.categories

    def search(rng: random.Random) -> tuple[str, dict[str, Any]]:
        text = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.randrange(10_000)}"  # never the same text twice
        return SEARCH, {"t": text}

    def similar(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return SIMILAR, {"id": str(ids[rng.randrange(len(ids))])}

    def next_duel(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return NEXT, {"c": rng.choice(categories) if rng.random() < 0.5 else None}

    return {"searchPhotos": search, "similarPhotos": similar, "nextDuel": next_duel}


async def time_op(clients: list[httpx.AsyncClient], stats: Stats, op: str, make: Request, rng: random.Random,
                  args: argparse.Namespace, pids: dict[str, int]) -> dict[str, Any]:
    """3 untimed calls, then `--requests` calls (or `--op-seconds`) from `--clients` concurrent callers; the
    CPU each process spent meanwhile, per call (what a busy box inflates least: the wall times wait for
    cores others hold)."""
    for i in range(3):
        await call(clients[i % len(clients)], Stats(), op, *make(rng), args.timeout)
    left, deadline = [args.requests], time.monotonic() + args.op_seconds
    window = Window(pids)

    async def caller(c: int) -> None:
        while left[0] > 0 and time.monotonic() < deadline:
            left[0] -= 1
            await call(clients[(c + left[0]) % len(clients)], stats, op, *make(rng), args.timeout)

    await asyncio.gather(*(caller(c) for c in range(args.clients)))
    closed = window.close()
    calls = len(stats.latency[op])
    return {"cpu_ms_per_call": {k: round(1000 * v / calls, 1) for k, v in closed["cpu_s"].items()} if calls else {},
            "others_cpu_share": closed["others_cpu_share"]}


async def time_requests(url: str, cat: Catalogue, args: argparse.Namespace, pids: dict[str, int]) -> dict[str, Any]:
    """Each operation in turn, each request signed in as one of USERS users."""
    stats, rng, cpu = Stats(), random.Random(args.seed), {}
    clients = [httpx.AsyncClient(base_url=url, timeout=args.timeout, headers={
        "Authorization": f"Bearer {mint_token(f'bench-scale-{u}', expires_in=86400)}"}) for u in range(USERS)]
    try:
        for op, make in requests_for(cat).items():
            cpu[op] = await time_op(clients, stats, op, make, rng, args, pids)
    finally:
        for client in clients:
            await client.aclose()
    errors: dict[str, dict[str, int]] = {}
    for (op, code), count in stats.errors.items():
        errors.setdefault(op, {})[code] = count
    return {op: {**percentiles(stats.latency[op]), **cpu[op], "errors": errors.get(op, {})} for op in cpu}


def measure_api(cluster: Cluster, mode: str, env: dict[str, str], cat: Catalogue,
                args: argparse.Namespace) -> dict[str, Any]:
    """One API process on this Milvus: start, warm up (its duel catalogue), time the requests, memory."""
    started = time.perf_counter()
    api = start_api(cluster, f"api-{mode}", env, args.ready_timeout)
    result: dict[str, Any] = {"ready_s": round(time.perf_counter() - started, 1)}
    result["catalogue_warmup_s"] = warm_up(cluster.url(api), args.ready_timeout)
    result["memory_at_ready"] = memory_mib(api.pid)
    pids = {"api": api.pid, "database": database_pid(cluster)}
    if mode == "server":
        pids["milvus"] = cluster.milvus.pid
    known = {k: v for k, v in pids.items() if v is not None}
    window = Window(known)
    result["latency"] = asyncio.run(time_requests(cluster.url(api), cat, args, known))
    result["window"] = window.close()
    result["memory"] = {name: memory_mib(pid) for name, pid in pids.items()}
    api.stop()
    return result


def latency_run(n: int, args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    """One N: the database seeded offline, then per Milvus mode the vectors and one API process on them."""
    root = Path(tempfile.mkdtemp(prefix=f"photoduel-scale-{n}-"))
    result: dict[str, Any] = {"machine": machine(), "photos": n, "args": public_args(args),
                              "mem_available_gib_before": mem_available_gib(), "loadavg_before": os.getloadavg()}
    collection = model_collection(model_dir)
    try:
        print(f"[{n}] seeding the database ...", flush=True)
        cat = seed_database(root / "data" / "mongodb", n, args.categories, args.seed, collection)
        result["seeding"] = dict(cat.timings)
        with running_cluster(root, apis=0, workers=0, env=service_env(model_dir)) as cluster:
            for mode in args.milvus:
                print(f"[{n}] milvus-lite {mode}: vectors ...", flush=True)
                env = dict(cluster.env)
                if mode == "file":
                    env.pop("PHOTODUEL_MILVUS_URI")
                uri = cluster.milvus_uri if mode == "server" else str(cluster.data_dir / "milvus.db")
                before = Window({"milvus": cluster.milvus.pid} if mode == "server" else {})
                vectors = asyncio.run(seed_vectors(uri, cat, args.seed, args.requests))
                vectors["window"] = before.close()
                vectors["milvus_server_memory"] = memory_mib(cluster.milvus.pid) if mode == "server" else None
                print(f"[{n}] milvus-lite {mode}: the API ...", flush=True)
                result[mode] = {"vectors": vectors, "api": measure_api(cluster, mode, env, cat, args)}
                print(report_mode(n, mode, result[mode]), flush=True)
    finally:
        result["mem_available_gib_after"] = mem_available_gib()
        result["loadavg_after"] = os.getloadavg()
        result["data_dir"] = str(root) if args.keep else None
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return result


# --- votes/s with one API process and with two ----------------------------------------------------------


def votes_run(n_apis: int, seeded: Path, world: World, args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    """bench/load.py's players against `n_apis` API processes on one database server (a fresh copy)."""
    root = Path(tempfile.mkdtemp(prefix=f"photoduel-votes-{n_apis}-"))
    shutil.copytree(seeded, root / "data" / "mongodb")
    result: dict[str, Any] = {"apis": n_apis}
    try:
        with running_cluster(root, apis=n_apis, workers=0, env=service_env(model_dir)) as cluster:
            urls = [cluster.url(api) for api in cluster.apis]
            result["catalogue_warmup_s"] = [warm_up(url, args.ready_timeout) for url in urls]
            db = open_db(cluster.mongo_uri, DB_NAME)
            pids = {api.name: api.pid for api in cluster.apis if api.pid is not None}
            pids["database"] = database_pid(cluster) or 0
            marks: dict[str, Any] = {}
            stats, wall = asyncio.run(run_players(
                urls, world, args, lambda: marks.update(window=Window(pids)),
                lambda: marks.update(closed=marks["window"].close())))
            accepted = len({d for d, _, ok in stats.acks if ok})
            result.update(summarise_votes(stats, wall, marks["closed"], pids))
            result["projector_holder"] = projector_holder(db, pids)
            result["drain"] = wait_drained(db, sorted(stats.touched), 2 * accepted, args.quiet_seconds,
                                           args.drain_seconds)
            checks = check_votes(db, stats)
            after = Snapshot.take(db)
            result["checks"] = {"accepted": checks["accepted"], "lost": len(checks["lost"]),
                                "doubled_in_log": len(checks["doubled_in_log"]),
                                "doubled_acks": len(checks["doubled_acks"]),
                                "rating_votes": after.votes, "rating_votes_expected": 2 * checks["accepted"]}
            result["memory"] = {name: memory_mib(pid) for name, pid in pids.items()}
            db.client.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def projector_holder(db: Any, pids: dict[str, int]) -> str | None:
    lease = db["leases"].find_one({"_id": "rating_projector"})
    if lease is None:
        return None
    pid = int(str(lease["holder"]).split(":")[1])
    return next((name for name, p in pids.items() if p == pid), f"pid {pid}")


def summarise_votes(stats: Stats, wall: float, window: dict[str, Any], pids: dict[str, int]) -> dict[str, Any]:
    accepted = len({d for d, _, ok in stats.acks if ok})
    cpu = window["cpu_s"]
    return {
        "wall_s": round(wall, 2), "duels": stats.duels, "accepted_votes": accepted,
        "votes_per_s": round(accepted / wall, 1), "no_pair": stats.no_pair,
        "latency": {op: percentiles(stats.latency[op]) for op in ("nextDuel", "voteDuel")},
        "errors": {f"{op} {code}": n for (op, code), n in stats.errors.items()},
        "window": window,
        "cpu_ms_per_duel": {k: round(1000 * v / stats.duels, 2) if stats.duels else None for k, v in cpu.items()},
        "cpu_cores_busy": {k: round(v / wall, 2) for k, v in cpu.items()},
    }


def votes_mode(args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    seeded = Path(tempfile.mkdtemp(prefix="photoduel-votes-seed-"))
    result: dict[str, Any] = {"machine": machine(), "photos": args.photos[0], "args": public_args(args),
                              "mem_available_gib_before": mem_available_gib()}
    try:
        print(f"[votes] seeding {args.photos[0]} photos ...", flush=True)
        cat = seed_database(seeded / "mongodb", args.photos[0], args.categories, args.seed, model_collection(model_dir))
        result["seeding"] = cat.timings
        result["runs"] = []
        for n_apis in args.apis:
            print(f"[votes] {n_apis} API process(es) ...", flush=True)
            result["runs"].append(votes_run(n_apis, seeded / "mongodb", cat.world, args, model_dir))
            print(report_votes_run(result["runs"][-1]), flush=True)
    finally:
        shutil.rmtree(seeded, ignore_errors=True)
    rates = [r["votes_per_s"] for r in result["runs"]]
    result["ratio"] = round(rates[-1] / rates[0], 2) if len(rates) > 1 and rates[0] else None
    return result


# --- shared -------------------------------------------------------------------------------------------


# Capacity, not policy: the per-user and per-address limits would refuse a bench's few users and one
# address long before the service is busy, and the revocation check needs an Auth emulator.
UNLIMITED = {f"PHOTODUEL_RATE_LIMIT_{name}": "off" for name in ("IP", "VOTES", "DUELS", "SKIPS", "SEARCHES")} | {
    "PHOTODUEL_RATE_LIMIT_OPEN_TICKETS": "0", "PHOTODUEL_RATE_LIMIT_DAILY_VOTES": "0",
    "PHOTODUEL_AUTH_CHECK_REVOKED": "false"}


def service_env(model_dir: Path) -> dict[str, str]:
    return {"PHOTODUEL_CLIP_MODEL": str(model_dir), "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099",
            "PHOTODUEL_LOG_LEVEL": "WARNING", **UNLIMITED}


def public_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def cell(p: dict[str, Any]) -> str:
    return f"{p.get('p50_ms', '—')} / {p.get('p95_ms', '—')} / {p.get('p99_ms', '—')}" if p.get("n") else "—"


def mem(m: dict[str, float] | None) -> str:
    return f"{m['rss_mib']} / {m['peak_mib']}" if m else "—"


def report_mode(n: int, mode: str, r: dict[str, Any]) -> str:
    v, a = r["vectors"], r["api"]
    lat = a["latency"]
    errors = {op: p["errors"] for op, p in lat.items() if p["errors"]}
    w = a["window"]
    return "\n".join([
        f"| {n:,} | {mode} | {v['insert_s']} | {cell(v['bare_search'])} | {cell(lat['searchPhotos'])} | "
        f"{cell(lat['similarPhotos'])} | {cell(lat['nextDuel'])} | {mem(a['memory']['api'])} | "
        f"{mem(a['memory']['database'])} | {mem(a['memory'].get('milvus'))} | "
        f"{w['loadavg_before'][0]} -> {w['loadavg_after'][0]}, others {w['others_cpu_share']} |",
        f"  (rows {v['rows']}, first search {v['first_search_ms']} ms, API ready {a['ready_s']} s, catalogue "
        f"{a['catalogue_warmup_s']} s, API memory at ready {mem(a['memory_at_ready'])}, errors {errors or 'none'})",
        "  CPU ms per call: " + "; ".join(
            f"{op} " + ", ".join(f"{k} {v}" for k, v in p.get("cpu_ms_per_call", {}).items())
            + f" (others {p.get('others_cpu_share')})" for op, p in lat.items()),
    ])


LATENCY_HEADER = (
    "| N | Milvus | vector insert s | bare search p50/p95/p99 ms | searchPhotos ms | similarPhotos ms | "
    "nextDuel ms | API RSS / peak MiB | database RSS / peak MiB | milvus server RSS / peak MiB | "
    "loadavg (1 min) before -> after, others' CPU share |\n"
    "| ---: | --- | ---: | --- | --- | --- | --- | --- | --- | --- | --- |")


def report_votes_run(r: dict[str, Any]) -> str:
    lat, w = r["latency"], r["window"]
    busy = ", ".join(f"{k} {v}" for k, v in r["cpu_cores_busy"].items())
    per = ", ".join(f"{k} {v}" for k, v in r["cpu_ms_per_duel"].items())
    c = r["checks"]
    return "\n".join([
        f"{r['apis']} API: {r['votes_per_s']} votes/s, nextDuel {cell(lat['nextDuel'])}, voteDuel "
        f"{cell(lat['voteDuel'])} ms; errors {r['errors'] or 'none'}; projector in {r['projector_holder']}",
        f"  cores busy: {busy}; CPU ms per duel: {per}",
        f"  loadavg {w['loadavg_before'][0]} -> {w['loadavg_after'][0]}, machine busy {w['machine_busy_share']}, "
        f"others {w['others_cpu_share']}; lost {c['lost']}, doubled {c['doubled_in_log']}/{c['doubled_acks']}, "
        f"Σ rating.votes {c['rating_votes']} of {c['rating_votes_expected']} ({r['drain']['state']})",
    ])


def write(name: str, result: dict[str, Any], text: str) -> None:
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / f"{name}.md").write_text(text + "\n")
    print(f"wrote bench/results/{name}.json and .md")


def header(result: dict[str, Any], args: argparse.Namespace) -> str:
    m = result["machine"]
    return (f"machine: {m['nproc']} CPUs, {m['cpu']}; commit {m['commit']}; {m['date']}; MemAvailable "
            f"{result['mem_available_gib_before']} GiB before" + (f"; {args.label}" if args.label else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir, _ = ensure_model(args.model_dir)
    if args.mode == "votes":
        result = votes_mode(args, model_dir)
        text = "\n".join([header(result, args), *(report_votes_run(r) for r in result["runs"]),
                          f"ratio (last / first): {result['ratio']}"])
        write(f"scale-votes-{args.photos[0]}{args.suffix}", result, text)
        return 0
    for n in args.photos:
        result = latency_run(n, args, model_dir)
        text = "\n".join([header(result, args), f"seeding: {result['seeding']}", "", LATENCY_HEADER,
                          *(report_mode(n, mode, result[mode]) for mode in args.milvus)])
        print(text)
        write(f"scale-latency-{n}{args.suffix}", result, text)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("latency", "votes"))
    parser.add_argument("--photos", type=int, nargs="+", default=[10_000])
    parser.add_argument("--milvus", nargs="+", choices=("file", "server"), default=["file", "server"])
    parser.add_argument("--requests", type=int, default=200, help="latency: timed calls per operation")
    parser.add_argument("--op-seconds", type=float, default=90.0, help="latency: bound per operation")
    parser.add_argument("--clients", type=int, default=1, help="latency: concurrent callers")
    parser.add_argument("--apis", type=int, nargs="+", default=[1, 2], help="votes: API processes, one run each")
    parser.add_argument("--players", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of every request, seconds")
    parser.add_argument("--drain-seconds", type=float, default=60.0)
    parser.add_argument("--quiet-seconds", type=float, default=10.0)
    parser.add_argument("--ready-timeout", type=float, default=900.0, help="API start and catalogue load bound")
    parser.add_argument("--categories", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--keep", action="store_true", help="latency: keep the data dir")
    parser.add_argument("--label", default="")
    parser.add_argument("--suffix", default="", help="appended to the result files' names")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
