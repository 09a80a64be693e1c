"""Load test: K simulated players over HTTP GraphQL for T seconds against `photoduel serve` with N photos.

    .venv/bin/python bench/load.py [--photos 1000] [--players 16] [--seconds 20] [--categories 4]
        [--seed 1] [--keep] [--json-out PATH] [--env KEY=VALUE ...]
        [--uri http://host:port [--mongodb-uri mongodb://...]]

Why through HTTP only: the vote path (gaming/duels) is being rewritten, so the bench knows nothing of it
but the GraphQL contract (nextDuel, voteDuel, skipDuel) and, to verify, read-only queries on the
vote log and the photos. What it does:

1. Writes N synthetic READY photos straight into MongoDB, as ingest leaves them (several owners, a few
   categories, a prior rating from a model score, k=24 neighbours drawn from the photo's visual
   cluster), on the embedded server (SecantusDB) started alone on the data dir, then stops it.
2. Starts `photoduel serve` on that data dir as a child, on the embedded defaults, dev tokens
   (FIREBASE_AUTH_EMULATOR_HOST); the embedded server is one of its descendants, found in /proc for
   CPU accounting and for the read-only verification queries.
3. K players, one keep-alive httpx client each: nextDuel (half of them in a category), then a vote
   drawn from a hidden true quality (Thurstone: P(LEFT) = Phi((q_l - q_r) / noise), a draw band), 5%
   skipDuel instead, and 5% of accepted votes re-sent (a client retry: must come back accepted:false).
   Every request has a deadline; a timeout is an error with code TIMEOUT, the bench never hangs.
4. Waits until the service has drained (the photos' summed rating.votes unchanged for 2 s at twice
   the accepted votes, or for --quiet-seconds at any value, or --drain-seconds), then checks every acknowledged
   vote is in the vote log exactly once and that the summed rating.votes is twice the accepted votes.

Reports votes/s, p50/p95/p99 per operation, errors by extensions.code, lost and doubled votes, database
writes per duel, and API and database CPU per duel (/proc utime+stime over the load window). Writes:
SecantusDB's serverStatus opcounters count write *commands* (an insert_many is one insert) and it has
no metrics.document, so documents are counted from a change stream replayed from the window's start
to the drain: one event per document written, by operation and collection. A "duel" is a pair
nextDuel served. Results: stdout and bench/results/load-<N>-<K>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from bson import ObjectId
from pymongo import InsertOne, MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gaming.duels.records import initial_rating_fields  # noqa: E402
from gaming.ratings import RatingEnv  # noqa: E402
from storage.embedded_mongo import EmbeddedMongo, free_port  # noqa: E402
from storage.mongo import INDEXES  # noqa: E402
from storage.vectors import collection_name  # noqa: E402
from tests.tokens import mint_token  # noqa: E402

CATEGORY_NAMES = ("landscape", "portrait", "street", "food", "animals", "architecture", "macro", "night")
NEIGHBOURS_K = 24
CLUSTER_SIZE = 60
MODEL_R = 0.7  # correlation of the model's quality score with the hidden true quality
VOTE_NOISE = 1.0  # Thurstone noise, in units of the true-quality spread
DRAW_MARGIN = 0.125  # |difference| under this is a DRAW: ~10% of duels between equal photos
SKIP_RATE = RETRY_RATE = 0.05
DRAIN_STATES = {"complete": "complete (Σ rating.votes reached 2 x accepted)",
                "still": "gave up waiting, Σ rating.votes stopped moving", "bound": "gave up at --drain-seconds"}
OPS = ("nextDuel", "voteDuel", "voteDuel retry", "skipDuel")

NEXT = "query Next($c: String) { nextDuel(category: $c) { id left { id } right { id } } }"
VOTE = "mutation Vote($d: ID!, $c: DuelChoice!) { voteDuel(duelId: $d, choice: $c) { accepted } }"
SKIP = "mutation Skip($d: ID!) { skipDuel(duelId: $d) }"


# --- the synthetic catalogue ------------------------------------------------------------------------


@dataclass
class World:
    """The photos as the players' hidden taste sees them: true quality by photo id string."""

    ids: list[ObjectId]
    true_quality: dict[str, float]
    categories: list[str]


def make_world(n: int, categories: int, seed: int) -> tuple[World, Iterator[list[dict[str, Any]]]]:
    """Photos in clusters of ~60 (one category each); neighbours are 24 other members of the cluster,
    with similarities below the near-duplicate threshold. Documents are generated lazily, in chunks."""
    rng = np.random.default_rng(seed)
    ids = [ObjectId() for _ in range(n)]
    q = rng.normal(size=n)
    noisy = MODEL_R * q + math.sqrt(1 - MODEL_R**2) * rng.normal(size=n)
    score = 0.5 * (1 + np.vectorize(math.erf)(noisy / math.sqrt(2)))  # Phi: a model score in [0, 1]
    cluster = rng.permutation(n) // CLUSTER_SIZE
    names = [CATEGORY_NAMES[c % len(CATEGORY_NAMES)] + ("" if c < len(CATEGORY_NAMES) else str(c))
             for c in range(categories)]
    order = np.argsort(cluster, kind="stable")
    starts = np.searchsorted(cluster[order], np.arange(cluster.max() + 2))
    members = [order[starts[c]:starts[c + 1]] for c in range(cluster.max() + 1)]
    owners = max(4, n // 40)
    world = World(ids, {str(i): float(v) for i, v in zip(ids, q, strict=True)}, names)
    env = RatingEnv()
    vector_collection = collection_name("photos", "bench-load", 32)

    def doc(i: int, created: datetime) -> dict[str, Any]:
        group = members[int(cluster[i])]
        others = group[group != i]
        picked = rng.choice(others, size=min(NEIGHBOURS_K, len(others)), replace=False)
        sims = np.sort(rng.uniform(0.55, 0.92, size=len(picked)))[::-1]
        return {
            "_id": ids[i], "owner": f"bench-owner-{int(rng.integers(owners))}", "title": f"bench {i}",
            "sha256": f"bench-{ids[i]}", "status": "READY", "created_at": created, "updated_at": created,
            "category": names[int(cluster[i]) % categories], "category_score": 0.5, "tags": [], "suggestions": [],
            "quality": {"score": float(score[i])},
            "neighbours": [{"id": ids[j], "similarity": round(float(s), 5)} for j, s in zip(picked, sims, strict=True)],
            "neighbours_short": len(picked) < NEIGHBOURS_K, "duplicate_of": None,
            "vector_collection": vector_collection,
            "rating": initial_rating_fields(float(score[i]), env), "rating_version": 0, "duels": 0,
        }

    def chunks(size: int = 2000) -> Iterator[list[dict[str, Any]]]:
        created = datetime.now(UTC)
        for start in range(0, n, size):
            yield [doc(i, created) for i in range(start, min(n, start + size))]

    return world, chunks()


def load_photos(db: Database[dict[str, Any]], docs: Iterator[list[dict[str, Any]]]) -> float:
    """insert_many in chunks; the ingest_params record says the short flags are set for k=24 (as after
    a real ingest), so serve's start does not re-flag every photo. Returns seconds taken."""
    started = time.perf_counter()
    for chunk in docs:
        db["photos"].bulk_write([InsertOne(d) for d in chunk], ordered=False)
    db["ingest_params"].update_one({"_id": "neighbour_lists"}, {"$set": {"k": NEIGHBOURS_K}}, upsert=True)
    return time.perf_counter() - started


def build_indexes(db: Database[dict[str, Any]]) -> float:
    """The service's indexes, built once after the bulk load (on SecantusDB, 4x faster than keeping
    them up during it); serve's own `ensure_indexes` at start then finds them all. Returns seconds."""
    started = time.perf_counter()
    for spec in INDEXES:
        db[spec.collection].create_index(spec.keys, name=spec.name, **dict(spec.options))
    return time.perf_counter() - started


def missing_indexes(db: Database[dict[str, Any]]) -> list[str]:
    """Indexes of storage.mongo.INDEXES the running database lacks (serve creates them at start)."""
    present = {(c, ix["name"]) for c in {s.collection for s in INDEXES} for ix in db[c].list_indexes()}
    return [f"{s.collection}.{s.name}" for s in INDEXES if (s.collection, s.name) not in present]


# --- processes and the machine ----------------------------------------------------------------------


CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    # the command name may hold spaces: the fields that follow it start after the last ')'
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, all its threads (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return found


def descendants(pid: int) -> list[int]:
    found = children(pid)
    return found + [d for c in found for d in descendants(c)]


def tree_cpu_seconds(pid: int, exclude: int | None = None) -> float:
    """A process and its descendants, less the subtree of `exclude`: the API's side (serve and any
    helper it starts) without the database, or the database with whatever it runs."""
    if pid == exclude:
        return 0.0
    try:
        return cpu_seconds(pid) + sum(tree_cpu_seconds(c, exclude) for c in children(pid))
    except OSError:
        return 0.0  # gone meanwhile


def machine_busy_seconds() -> float:
    """CPU seconds every core spent busy (/proc/stat): what else ran on the machine shows as the
    difference from our three processes."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy / CLOCK_TICK


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")


def is_database(pid: int) -> bool:
    """SecantusDB itself (`python .../secantusd-py --host ...`), not a wrapper that has it as an argument
    (the rewrite runs it under storage/embedded_guard.py)."""
    try:
        argv = cmdline(pid)
    except OSError:
        return False
    return any(a.endswith("secantusd-py") for a in argv[:2])


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True)
    described = (commit.stdout.strip() + (" (+ uncommitted changes)" if dirty.stdout.strip() else "")
                 if commit.returncode == 0 else f"none: {ROOT} is not a git checkout")
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model, "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "commit": described}


@dataclass
class Serve:
    """`photoduel serve` as a child; the embedded database is its child (found via /proc)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    db_pid: int | None = None
    mongodb_uri: str | None = None

    @classmethod
    def start(cls, data_dir: Path, extra_env: dict[str, str], log: Path) -> Serve:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTODUEL_")}
        env.update({"PHOTODUEL_DATA_DIR": str(data_dir), "PHOTODUEL_PORT": str(port), "PHOTODUEL_ENV": "dev",
                    "PHOTODUEL_WORKER_ENABLED": "true", "PHOTODUEL_CLIP_MODEL": str(data_dir / "no-model"),
                    "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099",
                    "PHOTODUEL_AUTH_CHECK_REVOKED": "false",  # no emulator runs to look users up
                    **extra_env})
        process = subprocess.Popen([sys.executable, "-m", "photoduel.cli", "serve"], cwd=ROOT, env=env,
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT)
        return cls(process, f"http://127.0.0.1:{port}", log)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("serve exited:\n" + self.log.read_text()[-3000:])
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError("serve did not become ready:\n" + self.log.read_text()[-3000:])
        for pid in descendants(self.process.pid):
            if is_database(pid):
                argv = cmdline(pid)
                self.db_pid = pid
                port = argv[argv.index("--port") + 1]
                self.mongodb_uri = f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"

    def stop(self) -> None:
        """SIGTERM as an orchestrator would; a service hung on its database gets SIGKILL, and then so does
        the orphaned database (it runs in its own session)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.db_pid is not None and is_database(self.db_pid):
            try:
                os.kill(self.db_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- players ----------------------------------------------------------------------------------------


@dataclass
class Stats:
    """What the players saw, merged over all of them (one event loop: no locks needed)."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    acks: list[tuple[str, str, bool]] = field(default_factory=list)  # (duel id, choice, accepted), first sends
    retries: Counter[str] = field(default_factory=Counter)  # how re-sent votes came back
    duels: int = 0
    no_pair: int = 0
    skips: int = 0
    touched: set[str] = field(default_factory=set)  # photo ids nextDuel served
    cancelled: int = 0  # players still stuck at the bound


async def call(client: httpx.AsyncClient, stats: Stats, op: str, query: str, variables: dict[str, Any],
               timeout: float) -> dict[str, Any] | None:
    """One GraphQL request with a deadline: the data, or None with the error counted by its code.
    Latency is recorded for every call, failed ones too (a timeout counts its whole wait)."""
    started = time.perf_counter()
    try:
        # httpx's own timeout bounds each read; this one bounds the whole request
        response = await asyncio.wait_for(client.post("/graphql", json={"query": query, "variables": variables}),
                                          timeout + 1)
        body = response.json()
    except (TimeoutError, httpx.TimeoutException):
        stats.errors[op, "TIMEOUT"] += 1
        return None
    except httpx.HTTPError as exc:
        stats.errors[op, f"TRANSPORT {type(exc).__name__}"] += 1
        return None
    except ValueError:
        stats.errors[op, f"HTTP {response.status_code}"] += 1
        return None
    except asyncio.CancelledError:
        stats.errors[op, "CANCELLED_AT_BOUND"] += 1
        raise
    finally:
        stats.latency[op].append(time.perf_counter() - started)
    if body.get("errors"):
        for error in body["errors"]:
            stats.errors[op, (error.get("extensions") or {}).get("code", "NO_CODE")] += 1
        return None
    return body.get("data")


def choose(world: World, left: str, right: str, rng: random.Random) -> str:
    """A Thurstone voter: the photo whose true quality plus noise is higher wins; close calls are draws.
    Photos not of this bench (a --uri service with its own) count as average."""
    diff = world.true_quality.get(left, 0.0) - world.true_quality.get(right, 0.0) + rng.gauss(0, VOTE_NOISE)
    return "DRAW" if abs(diff) < DRAW_MARGIN else "LEFT" if diff > 0 else "RIGHT"


async def play_once(client: httpx.AsyncClient, world: World, stats: Stats, rng: random.Random,
                    timeout: float) -> None:
    category = rng.choice(world.categories) if world.categories and rng.random() < 0.5 else None
    data = await call(client, stats, "nextDuel", NEXT, {"c": category}, timeout)
    if data is None:
        await asyncio.sleep(0.2)  # an error: do not hammer a failing service
        return
    duel = data["nextDuel"]
    if duel is None:
        stats.no_pair += 1
        await asyncio.sleep(0.2)
        return
    stats.duels += 1
    stats.touched.update((duel["left"]["id"], duel["right"]["id"]))
    if rng.random() < SKIP_RATE:
        stats.skips += await call(client, stats, "skipDuel", SKIP, {"d": duel["id"]}, timeout) is not None
        return
    choice = choose(world, duel["left"]["id"], duel["right"]["id"], rng)
    voted = await call(client, stats, "voteDuel", VOTE, {"d": duel["id"], "c": choice}, timeout)
    if voted is None:
        return
    accepted = bool(voted["voteDuel"]["accepted"])
    stats.acks.append((duel["id"], choice, accepted))
    if accepted and rng.random() < RETRY_RATE:
        again = await call(client, stats, "voteDuel retry", VOTE, {"d": duel["id"], "c": choice}, timeout)
        stats.retries["error" if again is None else f"accepted={again['voteDuel']['accepted']}"] += 1


async def player(url: str, uid: str, world: World, stats: Stats, rng: random.Random, args: argparse.Namespace,
                 ready: asyncio.Barrier, go: asyncio.Event) -> None:
    """One player: its own token and keep-alive client; a first `me` query, outside the timed window,
    opens the connection (and lets the service note the user). Starts no duel after T seconds."""
    headers = {"Authorization": f"Bearer {mint_token(uid, expires_in=24 * 3600)}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=args.timeout) as client:
        await call(client, Stats(), "me", "{ me { id } }", {}, args.timeout)
        await ready.wait()
        await go.wait()
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            await play_once(client, world, stats, rng, args.timeout)


async def run_players(url: str | Sequence[str], world: World, args: argparse.Namespace,
                      on_start: Callable[[], None], on_end: Callable[[], None]) -> tuple[Stats, float]:
    """K players for T seconds; `on_start`/`on_end` snapshot the processes around the window only.
    Several URLs (API processes of one deployment): player i plays on URL i mod their number.
    Stops by itself: stragglers (a request stuck on a hung service) are cancelled after T plus a bound."""
    urls = [url] if isinstance(url, str) else list(url)
    stats, ready, go = Stats(), asyncio.Barrier(args.players + 1), asyncio.Event()
    tasks = [asyncio.create_task(player(urls[i % len(urls)], f"bench-player-{i}", world, stats,
                                        random.Random(args.seed * 1000 + i), args, ready, go))
             for i in range(args.players)]
    await asyncio.wait_for(ready.wait(), 2 * args.timeout + 5)  # every warm-up `me` answered or timed out
    on_start()
    t0 = time.monotonic()
    go.set()
    _, pending = await asyncio.wait(tasks, timeout=args.seconds + 3 * args.timeout + 5)
    for task in pending:
        task.cancel()
    wall = time.monotonic() - t0
    on_end()
    stats.cancelled = len(pending)
    return stats, wall


# --- verification: read-only queries on the database ------------------------------------------------


def vote_key(duel_id: str) -> list[Any]:
    """The forms a duel id may take in the log: the API's string; the ObjectId it is (a stored ticket,
    code up to ffa283b); or the nonce inside a signed ticket (base64url of version byte, 12-byte
    nonce, ...: the rewrite's votes use it as `_id`)."""
    keys: list[Any] = [duel_id]
    if ObjectId.is_valid(duel_id):
        keys.append(ObjectId(duel_id))
    try:
        raw = base64.urlsafe_b64decode(duel_id + "=" * (-len(duel_id) % 4))
    except ValueError:
        return keys
    if len(raw) > 13 and raw[0] == 1:
        keys.append(ObjectId(raw[1:13]))
    return keys


def logged_votes(db: Database[dict[str, Any]], duel_ids: list[str]) -> dict[str, list[str | None]]:
    """duel id -> the choices its vote-log records hold (two records: a doubled vote). The one place
    that knows the log's shape (with `vote_key`): a record whose `_id` or `duel_id` is one of the
    keys. Two queries rather than one `$or`: SecantusDB answers a top-level `$or` with a collection scan."""
    found: dict[str, list[str | None]] = defaultdict(list)
    for start in range(0, len(duel_ids), 500):
        owner = {k: d for d in duel_ids[start:start + 500] for k in vote_key(d)}
        seen: set[Any] = set()
        for name in ("_id", "duel_id"):
            for doc in db["votes"].find({name: {"$in": list(owner)}}, {"_id": 1, "duel_id": 1, "choice": 1}):
                duel = owner.get(doc.get("duel_id")) or owner.get(doc["_id"])
                if duel is not None and doc["_id"] not in seen:
                    seen.add(doc["_id"])
                    found[duel].append(doc.get("choice"))
    return found


def rating_votes(db: Database[dict[str, Any]], ids: list[str] | None = None) -> int:
    """Σ rating.votes over all photos, or over `ids` (cheap enough to poll: by _id)."""
    matches = [{}] if ids is None else [{"_id": {"$in": [ObjectId(i) for i in ids[s:s + 2000]]}}
                                         for s in range(0, len(ids), 2000)]
    group = {"_id": None, "votes": {"$sum": "$rating.votes"}}
    return sum(int(row["votes"]) for match in matches
               for row in db["photos"].aggregate([{"$match": match}, {"$group": group}]))


@dataclass
class Snapshot:
    """The database at one moment: SecantusDB's opcounters (they count write *commands*: an
    insert_many of 1000 is one insert; it has no metrics.document), the cluster time (where the change
    stream that counts documents starts), documents per collection, and Σ rating.votes."""

    opcounters: dict[str, int]
    cluster_time: Any
    counts: dict[str, int]
    votes: int

    @classmethod
    def take(cls, db: Database[dict[str, Any]]) -> Snapshot:
        status = db.client.admin.command("serverStatus")
        counts = {name: db[name].estimated_document_count() for name in db.list_collection_names()}
        return cls(dict(status.get("opcounters", {})), status.get("operationTime"), counts, rating_votes(db))


def document_writes(db: Database[dict[str, Any]], since: Snapshot, until: Snapshot,
                    bound: float = 120.0) -> dict[str, int]:
    """Every document written between two snapshots, by "operation collection", read back from a change
    stream started at the first one's cluster time: one event per document, inside transactions too."""
    events: Counter[str] = Counter()
    deadline = time.monotonic() + bound
    with db.watch(start_at_operation_time=since.cluster_time, max_await_time_ms=500) as stream:
        while time.monotonic() < deadline:
            event = stream.try_next()
            if event is None or event["clusterTime"] > until.cluster_time:
                break
            if event["clusterTime"] > since.cluster_time:
                events[f"{event['operationType']} {event.get('ns', {}).get('coll', '?')}"] += 1
    return dict(events.most_common())


def wait_drained(db: Database[dict[str, Any]], touched: list[str], target: int | None,
                 quiet_s: float, bound: float) -> dict[str, Any]:
    """Poll Σ rating.votes over the photos the players saw until the projector is done: unchanged for
    2 s once it reached `target` (2 x accepted votes, when we know every photo started at 0: "complete"),
    or unchanged for `quiet_s` whatever it is (a projector stalled or losing votes, or an unknown
    target: "still"), or `bound` seconds ("bound"). A projector writes in batches, and a slow batch
    leaves the sum still for seconds: hence no stop at 2 s short of the target."""
    started = time.monotonic()
    last, since = -1, time.monotonic()
    while True:
        total = rating_votes(db, touched)
        now = time.monotonic()
        if total != last:
            last, since = total, now
        quiet = now - since
        state = ("complete" if target is not None and total >= target and quiet >= 2.0
                 else "still" if quiet >= quiet_s else "bound" if now - started >= bound else None)
        if state:
            return {"state": state, "waited_s": round(now - started, 1), "quiet_s": round(quiet, 1)}
        time.sleep(0.3)


def check_votes(db: Database[dict[str, Any]], stats: Stats) -> dict[str, Any]:
    """Lost: an acknowledged accepted vote not in the log. Doubled: a duel with two log records, or
    two acknowledgements accepted:true."""
    accepted = Counter(d for d, _, ok in stats.acks if ok)
    sent = {d: c for d, c, ok in stats.acks if ok}
    logged = logged_votes(db, list(accepted))
    return {
        "accepted": len(accepted),
        "lost": sorted(d for d in accepted if not logged.get(d)),
        "doubled_in_log": sorted(d for d, rows in logged.items() if len(rows) > 1),
        "doubled_acks": sorted(d for d, n in accepted.items() if n > 1),
        "wrong_choice": sorted(d for d, rows in logged.items() if any(c not in (None, sent[d]) for c in rows)),
        "first_sends_not_accepted": sum(1 for _, _, ok in stats.acks if not ok),
    }


# --- the run ----------------------------------------------------------------------------------------


def cpu_now(serve: Serve | None) -> dict[str, float]:
    """CPU seconds so far: the API (serve and its helpers, all threads), the database, this bench, and
    the whole machine (less those three: `other`, someone else's load distorting the numbers)."""
    own = os.times()
    cpu = {"bench": own.user + own.system}
    if serve is not None:
        cpu["api"] = tree_cpu_seconds(serve.process.pid, exclude=serve.db_pid)
        if serve.db_pid:
            cpu["db"] = tree_cpu_seconds(serve.db_pid)
    cpu["other"] = machine_busy_seconds() - sum(cpu.values())
    return cpu


def per_duel(total: float, duels: int, scale: float = 1.0) -> float | None:
    return round(scale * total / duels, 2) if duels else None


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    p50, p95, p99 = np.percentile(np.array(samples) * 1000, [50, 95, 99])
    return {"n": len(samples), "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1),
            "p99_ms": round(float(p99), 1), "max_ms": round(max(samples) * 1000, 1)}


def open_db(uri: str, name: str) -> Database[dict[str, Any]]:
    # a deadline on every verification query too: a deadlocked database must not hang the bench
    return MongoClient(uri, tz_aware=True, timeoutMS=60_000, serverSelectionTimeoutMS=10_000)[name]


def setup(args: argparse.Namespace, data_dir: Path, world_docs: Iterator[list[dict[str, Any]]],
          extra_env: dict[str, str], result: dict[str, Any]) -> tuple[Serve | None, str, str | None]:
    """Load the photos and start serve (or point at --uri); returns (serve, API url, MongoDB uri)."""
    db_name = extra_env.get("PHOTODUEL_MONGODB_DATABASE", "photoduel")
    if args.uri:
        if args.mongodb_uri and args.photos:
            result["load_s"] = round(load_photos(open_db(args.mongodb_uri, db_name), world_docs), 1)
        return None, args.uri.rstrip("/"), args.mongodb_uri
    with EmbeddedMongo(data_dir / "mongodb") as server, MongoClient(server.uri) as client:
        result["load_s"] = round(load_photos(client[db_name], world_docs), 1)
        result["index_build_s"] = round(build_indexes(client[db_name]), 1)
    started = time.perf_counter()
    serve = Serve.start(data_dir, extra_env, data_dir / "serve.log")
    serve.wait_ready()
    result["serve_start_s"] = round(time.perf_counter() - started, 1)
    return serve, serve.url, serve.mongodb_uri


def warm_up(url: str, seconds: float) -> float | None:
    """Until `nextDuel` answers with a pair (the service loads its matchmaking catalogue at start: seconds
    at 100,000 photos on the embedded server, UNAVAILABLE meanwhile); the time it took, None if never."""
    started = time.perf_counter()
    query = {"query": "{ nextDuel { id } }"}
    headers = {"Authorization": f"Bearer {mint_token('warm-up')}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.perf_counter() - started < seconds:
            try:
                body = client.post("/graphql", json=query, headers=headers).json()
                if (body.get("data") or {}).get("nextDuel"):
                    return round(time.perf_counter() - started, 1)
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    result: dict[str, Any] = {"machine": machine(), "args": {k: v for k, v in vars(args).items() if k != "json_out"}}
    data_dir = Path(tempfile.mkdtemp(prefix="photoduel-load-"))
    world, docs = make_world(args.photos, args.categories, args.seed)
    serve: Serve | None = None
    try:
        serve, url, mongodb_uri = setup(args, data_dir, docs, extra_env, result)
        db = open_db(mongodb_uri, extra_env.get("PHOTODUEL_MONGODB_DATABASE", "photoduel")) if mongodb_uri else None
        result["missing_indexes"] = missing_indexes(db) if db is not None else None
        result["warmup_s"] = warm_up(url, args.warmup_seconds) if args.warmup_seconds else None
        marks: dict[str, Any] = {}

        def on_start() -> None:
            marks["db_before"] = Snapshot.take(db) if db is not None else None
            marks["cpu_before"] = cpu_now(serve)

        def on_end() -> None:
            marks["cpu_after"] = cpu_now(serve)

        stats, wall = asyncio.run(run_players(url, world, args, on_start, on_end))
        summarise(result, stats, wall, marks["cpu_before"], marks["cpu_after"])
        if db is not None:
            verify(result, db, stats, marks["db_before"], serve)
    finally:
        if serve is not None:
            serve.stop()
        result["data_dir"] = str(data_dir) if args.keep else None
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return result


def summarise(result: dict[str, Any], stats: Stats, wall: float, before: dict[str, float],
              after: dict[str, float]) -> None:
    accepted = len({d for d, _, ok in stats.acks if ok})
    errors: dict[str, dict[str, int]] = defaultdict(dict)
    for (op, code), n in sorted(stats.errors.items()):
        errors[op][code] = n
    result.update({
        "wall_s": round(wall, 2), "duels": stats.duels, "accepted_votes": accepted, "skips": stats.skips,
        "no_pair": stats.no_pair, "players_cancelled": stats.cancelled, "votes_per_s": round(accepted / wall, 1),
        "latency": {op: percentiles(stats.latency[op]) for op in OPS}, "errors": dict(errors),
        "retries": dict(stats.retries),
        "cpu_window_s": {k: round(after[k] - before[k], 2) for k in after},
        "cpu_ms_per_duel": {k: per_duel(after[k] - before[k], stats.duels, 1000) for k in after if k != "other"},
    })


def verify(result: dict[str, Any], db: Database[dict[str, Any]], stats: Stats, before: Snapshot,
           serve: Serve | None) -> None:
    """After the players: wait for the drain, then the vote checks and the write counts (window start
    to drained: writes a projector makes after the window are the duels' writes too)."""
    cpu_before_drain = cpu_now(serve)
    try:
        target = 2 * len({d for d, _, ok in stats.acks if ok}) if serve is not None else None
        drain = wait_drained(db, sorted(stats.touched), target, result["args"]["quiet_seconds"],
                             result["args"]["drain_seconds"])
        cpu_drain = cpu_now(serve)
        result["drain"] = {**drain, "cpu_s": {k: round(cpu_drain[k] - cpu_before_drain[k], 2) for k in cpu_drain}}
        after = Snapshot.take(db)
        checks = check_votes(db, stats)
        documents = document_writes(db, before, after)
    except PyMongoError as exc:  # a hung database: say so instead of hanging
        result["verification_error"] = f"{type(exc).__name__}: {exc}"[:500]
        return
    checks["rating_votes_delta"] = after.votes - before.votes
    checks["rating_votes_expected"] = 2 * checks["accepted"]
    result["checks"] = checks
    commands = {k: after.opcounters.get(k, 0) - before.opcounters.get(k, 0) for k in ("insert", "update", "delete")}
    result["writes"] = {
        "write_commands": commands, "write_commands_per_duel": per_duel(sum(commands.values()), stats.duels),
        "documents": documents, "documents_per_duel": per_duel(sum(documents.values()), stats.duels),
        "documents_added": {k: v - before.counts.get(k, 0) for k, v in after.counts.items()
                            if v != before.counts.get(k, 0)},
    }


# --- report -----------------------------------------------------------------------------------------


def report(r: dict[str, Any]) -> str:
    a, m = r["args"], r["machine"]
    target = a["uri"] or "photoduel serve (embedded SecantusDB, worker on, no model)"
    lines = [
        f"load: N={a['photos']} photos, K={a['players']} players, T={a['seconds']} s, {a['categories']} categories, "
        f"seed {a['seed']}, request timeout {a['timeout']} s; target {target}",
        f"machine: {m['nproc']} CPUs, {m['cpu']}; commit {m['commit']}; {m['date']}"
        + (f"; {a['label']}" if a["label"] else ""),
        "setup: " + ", ".join(f"{k} {r[k]}" for k in ("load_s", "index_build_s", "serve_start_s", "warmup_s") if k in r)
        + f"; missing indexes: {r['missing_indexes'] if r['missing_indexes'] is not None else 'not checked'}",
        "",
        f"window {r['wall_s']} s: {r['duels']} duels served, {r['accepted_votes']} votes accepted, {r['skips']} skips, "
        f"{r['no_pair']} nextDuel null, {r['players_cancelled']} players cancelled at the bound",
        f"**votes/s: {r['votes_per_s']}**",
        "",
        "| operation | calls | p50 ms | p95 ms | p99 ms | max ms | errors by code |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for op, p in r["latency"].items():
        errs = ", ".join(f"{c} {n}" for c, n in r["errors"].get(op, {}).items()) or "—"
        cells = [str(p.get(k, "")) for k in ("n", "p50_ms", "p95_ms", "p99_ms", "max_ms")]
        lines.append(f"| {op} | {' | '.join(cells)} | {errs} |")
    lines += ["", f"re-sent votes (client retries): {r['retries'] or 'none'}"]
    cpu = r["cpu_ms_per_duel"]
    lines.append("CPU ms per duel (load window): " + ", ".join(f"{k} {v}" for k, v in cpu.items())
                 + f"  (window CPU s: {r['cpu_window_s']})")
    if "verification_error" in r:
        lines.append(f"verification: the database did not answer: {r['verification_error']}")
    elif "checks" in r:
        c, w, d = r["checks"], r["writes"], r["drain"]
        lines += [
            f"drain: {DRAIN_STATES[d['state']]} after {d['waited_s']} s, Σ rating.votes unchanged for the last "
            f"{d['quiet_s']} s (CPU s meanwhile: {d['cpu_s']})",
            f"lost votes: {len(c['lost'])}, doubled in the log: {len(c['doubled_in_log'])}, doubled acks: "
            f"{len(c['doubled_acks'])}, wrong choice: {len(c['wrong_choice'])}, first sends accepted:false: "
            f"{c['first_sends_not_accepted']}",
            f"Σ rating.votes: +{c['rating_votes_delta']} (expected 2 x accepted = {c['rating_votes_expected']})",
            f"DB write commands per duel (serverStatus opcounters): {w['write_commands_per_duel']} "
            f"{w['write_commands']}",
            f"DB documents written per duel (change stream): {w['documents_per_duel']} {w['documents']}",
        ]
    else:
        lines.append("verification: no database (pass --mongodb-uri with --uri)")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1000, help="N synthetic READY photos to load")
    parser.add_argument("--players", type=int, default=16, help="K concurrent players")
    parser.add_argument("--seconds", type=float, default=20.0, help="T, the load window")
    parser.add_argument("--categories", type=int, default=4, help="how many (at least 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of every request, seconds")
    parser.add_argument("--drain-seconds", type=float, default=60.0, help="bound on the wait for the drain")
    parser.add_argument("--quiet-seconds", type=float, default=10.0,
                        help="the drain ends when Σ rating.votes has not moved for this long, short of its target")
    parser.add_argument("--warmup-seconds", type=float, default=240.0,
                        help="wait at most this long for the first pair before the window (0: start at once)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (and serve.log in it)")
    parser.add_argument("--uri", help="an already running service (http://host:port) instead of starting one")
    parser.add_argument("--mongodb-uri", help="with --uri: its database, to load photos into and verify")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra env for serve")
    parser.add_argument("--label", default="", help="free text for the report (which code this is)")
    parser.add_argument("--json-out", type=Path, help="default bench/results/load-<N>-<K>.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.categories < 1 or args.players < 1 or args.photos < (0 if args.uri else 2):
        raise SystemExit("--categories and --players must be at least 1, --photos at least 2")
    result = run(args)
    print(report(result))
    out = args.json_out or ROOT / "bench" / "results" / f"load-{args.photos}-{args.players}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    # failed: a vote lost or doubled, or (ours being the only traffic) the ratings not counting each once
    checks = result.get("checks", {})
    wrong_sum = not args.uri and checks.get("rating_votes_delta") != checks.get("rating_votes_expected")
    return 1 if checks.get("lost") or checks.get("doubled_in_log") or checks.get("doubled_acks") or wrong_sum else 0


if __name__ == "__main__":
    sys.exit(main())
