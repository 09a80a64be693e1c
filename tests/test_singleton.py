"""One holder of a lease runs the periodic work (storage/singleton.py): the maintenance chores' helper.

Two candidates on one lease, as two worker processes are: only the holder's work runs; when the holder
stalls (a frozen or dead process stops renewing) the other takes over once the lease expires, and the
stalled one, back, finds the lease taken and runs nothing; a holder stopped cleanly hands over at once.
The process-level version (a worker SIGKILLed) is in tests/test_multiprocess.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from storage.leases import Lease
from storage.mongo import create_client
from storage.singleton import Singleton

LEASE_SECONDS = 1.0

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def leases(mongo_uri: str) -> AsyncIterator[AsyncCollection[dict[str, Any]]]:
    client = create_client(mongo_uri)
    try:
        yield client[f"t_{uuid.uuid4().hex[:12]}"]["leases"]
    finally:
        await client.close()


class Chores:
    """Work that counts its runs and can be made to hang (a holder frozen mid-run)."""

    def __init__(self) -> None:
        self.runs = 0
        self.unfrozen = asyncio.Event()
        self.unfrozen.set()

    async def __call__(self) -> None:
        await self.unfrozen.wait()
        self.runs += 1


async def until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check` held; fails at the deadline (a generous one, not a speed claim)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_only_the_holder_runs_the_chores_and_another_takes_over_within_the_lease(
    leases: AsyncCollection[dict[str, Any]],
) -> None:
    a = Singleton(Lease(leases, "maintenance", holder="host:1:a", seconds=LEASE_SECONDS), every=0.05)
    b = Singleton(Lease(leases, "maintenance", holder="host:2:b", seconds=LEASE_SECONDS), every=0.05)
    chores_a, chores_b = Chores(), Chores()
    a.start(chores_a)
    await until(lambda: a.active, 10)
    b.start(chores_b)
    try:
        await until(lambda: chores_a.runs >= 5, 10)
        assert chores_b.runs == 0 and not b.active
        assert (await leases.find_one({"_id": "maintenance"}) or {})["holder"] == "host:1:a"

        chores_a.unfrozen.clear()  # the holder freezes mid-run: it stops renewing
        took = await until(lambda: chores_b.runs >= 1, LEASE_SECONDS + 10)
        assert took < LEASE_SECONDS + 5, f"taken over after {took:.1f}s with a {LEASE_SECONDS:g}s lease"
        assert b.active and (await leases.find_one({"_id": "maintenance"}) or {})["holder"] == "host:2:b"

        frozen_runs = chores_a.runs
        chores_a.unfrozen.set()  # back: its run ends, its next try finds the lease taken
        await until(lambda: not a.active, 10)
        assert chores_a.runs == frozen_runs + 1  # the run it was in; none after
        runs_b = chores_b.runs
        await until(lambda: chores_b.runs >= runs_b + 5, 10)
        assert chores_a.runs == frozen_runs + 1

        await b.stop()  # a clean stop releases: the other takes over at its next try, not a lease later
        await until(lambda: a.active and chores_a.runs > frozen_runs + 1, LEASE_SECONDS / 2 + 5)
    finally:
        await a.stop()
        await b.stop()
