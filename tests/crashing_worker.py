"""A worker process for tests: the real `Worker` and `JobQueue`, with a job kind whose handler can kill it.

`python -m tests.crashing_worker <mongodb uri> <database> <lease seconds> <max attempts>` works the kind
"poisonable" in batches of four until it is killed. A job whose payload says `crash` ends the process
with `os._exit` before anything of its batch is settled, as a segfaulting decoder or the OOM killer
would; the others record their effect and are done. `on_parked` records which process parked what.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from photoduel.worker import Worker
from storage.jobs import Done, Job, JobQueue, Outcome
from storage.mongo import create_client

KIND = "poisonable"
CRASH_EXIT_CODE = 70


class PoisonableHandler:
    batch_size = 4

    def __init__(self, db: Any) -> None:
        self.db = db

    async def handle(self, jobs: Sequence[Job]) -> Mapping[Any, Outcome]:
        if any(job.payload.get("crash") for job in jobs):
            os._exit(CRASH_EXIT_CODE)
        for job in jobs:
            await self.db.effects.insert_one({"job": job.id, "n": job.payload["n"], "pid": os.getpid()})
        return {job.id: Done() for job in jobs}

    async def on_parked(self, job: Job, error: str) -> None:
        await self.db.parked_reports.insert_one({"job": job.id, "error": error, "pid": os.getpid()})


async def main(uri: str, database: str, lease_seconds: float, max_attempts: int) -> None:
    client = create_client(uri)
    db = client[database]
    worker = Worker(JobQueue(db["jobs"]), {KIND: PoisonableHandler(db)}, lease_seconds=lease_seconds,
                    max_attempts=max_attempts, retry_base_seconds=0.05, poll_seconds=0.05)
    worker.start()
    await asyncio.Event().wait()  # until the test stops it


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
