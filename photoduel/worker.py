"""The job worker: leases batches from the durable queue and hands them to a handler per kind.

Runs inside `photoduel serve` by default, or alone as `photoduel worker` (any number of them). While a
batch runs, a heartbeat keeps its leases alive; if this process dies the leases run out and another
worker takes the jobs, one at a time (`JobQueue.lease`), so a job that kills its worker takes no batch
down with it twice; a job whose last attempt ran out its lease is parked by the next worker to lease
its kind, which runs the handler's `on_parked`. A batch that raises is run again job by job, so one
bad job fails alone. On shutdown the worker stops taking jobs, lets the running batch finish for a
grace period, and releases whatever is still leased so another worker starts it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog
from pymongo.errors import PyMongoError

from storage.background import BackgroundTask, pause, raise_if_cancelled
from storage.backoff import backoff_seconds
from storage.jobs import PARKED, Defer, Done, Job, JobQueue, Outcome, Retry
from storage.leases import process_id

__all__ = ["Defer", "Done", "JobHandler", "Outcome", "Retry", "Worker"]

log = structlog.get_logger(__name__)

# The longest a failed job waits before its next attempt.
RETRY_CAP_SECONDS = 600.0


class JobHandler(Protocol):
    batch_size: int

    async def handle(self, jobs: Sequence[Job]) -> Mapping[Any, Outcome]:
        """Process a batch; return an outcome per job id. A missing id counts as a Retry.

        A handler may also define `async on_parked(job, error)`, called once a job has failed for
        the last time (e.g. to mark its photo FAILED with the reason).
        """
        ...


class Worker:
    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, JobHandler],
        *,
        lease_seconds: float,
        max_attempts: int,
        retry_base_seconds: float,
        poll_seconds: float,
        worker_id: str | None = None,
        concurrency: int = 1,
        wake: asyncio.Event | None = None,
    ) -> None:
        """`wake`: set by whoever enqueues in this process (the upload service, the ingest job's face
        checks), so a new job starts at once rather than at the next poll."""
        self.queue = queue
        self.handlers = dict(handlers)
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or process_id()
        self.concurrency = max(1, concurrency)
        self.rng = random.Random()
        self._stopping = asyncio.Event()
        self._wake = wake or asyncio.Event()
        self._task = BackgroundTask(f"worker {self.worker_id}")
        self._in_flight: dict[int, list[Job]] = {}

    def start(self) -> None:
        """Start `concurrency` batch loops sharing this worker's id, queue and handlers.

        Two loops keep the model busy: while one batch is in the forward pass (the model thread runs
        one pass at a time), the other decodes its photos, writes its results and settles its jobs.
        """
        loops = [self.run(loop) for loop in range(self.concurrency)]
        self._task.start(self._run_all(loops))

    @staticmethod
    async def _run_all(loops: list[Any]) -> None:
        await asyncio.gather(*loops)

    async def stop(self, grace_seconds: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        await self._task.stop(grace_seconds=grace_seconds)
        in_flight = [job for jobs in self._in_flight.values() for job in jobs]
        if in_flight:
            released = await self.queue.release(in_flight, self.worker_id)
            log.info("worker.released", worker=self.worker_id, jobs=released)
        self._in_flight.clear()

    async def run(self, loop: int = 0) -> None:
        log.info("worker.started", worker=self.worker_id, loop=loop, kinds=sorted(self.handlers))
        while not self._stopping.is_set():
            try:
                worked = await self.run_once(loop)
            except Exception:
                raise_if_cancelled()
                log.exception("worker.loop_error", worker=self.worker_id)
                worked = False
            if not worked:
                await pause(self._wake, self.poll_seconds)
        log.info("worker.stopped", worker=self.worker_id, loop=loop)

    async def run_once(self, loop: int = 0) -> bool:
        """Lease and process one batch of the first kind that has work; True when anything was done.

        Kinds are in priority order (the order of `handlers`): a waiting ingest batch goes before any
        face check, so a photographer's suggestions never queue behind background work.
        """
        for kind, handler in self.handlers.items():
            if self._stopping.is_set():
                break
            await self._park_exhausted(kind, handler)
            jobs = await self.queue.lease(
                self.worker_id, [kind], limit=handler.batch_size, lease_seconds=self.lease_seconds,
                max_attempts=self.max_attempts,
            )
            if jobs:
                await self._process(handler, jobs, loop)
                return True
        return False

    async def _park_exhausted(self, kind: str, handler: JobHandler) -> None:
        """Jobs whose last attempt ran out its lease (they killed their worker, every time): parked here,
        and the handler told, as for a job whose last attempt failed."""
        for job, reason in await self.queue.park_exhausted([kind], max_attempts=self.max_attempts):
            log.error("job.parked", job=str(job.id), kind=job.kind, attempts=job.attempts, reason=reason)
            await self._on_parked(handler, job, reason)

    @staticmethod
    async def _on_parked(handler: JobHandler | None, job: Job, error: str) -> None:
        on_parked = getattr(handler, "on_parked", None)
        if on_parked is not None:
            await on_parked(job, error)

    async def _handle(self, handler: JobHandler, jobs: list[Job]) -> Mapping[Any, Outcome]:
        """The batch's outcomes. When the batch raises, its jobs run again one by one: the exception is
        most likely one job's, and the others should not spend attempts (and be parked) for it. Not for
        a database error, which no job caused and which would only fail again per job."""
        try:
            return await handler.handle(jobs)
        except Exception as exc:
            log.exception("worker.batch_failed", worker=self.worker_id, jobs=len(jobs))
            if len(jobs) == 1 or isinstance(exc, PyMongoError):
                return {job.id: Retry(f"{type(exc).__name__}: {exc}") for job in jobs}
        outcomes: dict[Any, Outcome] = {}
        for job in jobs:
            try:
                outcomes.update(await handler.handle([job]))
            except Exception as exc:
                log.warning("job.raised", job=str(job.id), kind=job.kind, error=f"{type(exc).__name__}: {exc}")
                outcomes[job.id] = Retry(f"{type(exc).__name__}: {exc}")
        return outcomes

    async def _heartbeat(self, jobs: Sequence[Job]) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            await self.queue.heartbeat(jobs, self.worker_id, lease_seconds=self.lease_seconds)

    async def _process(self, handler: JobHandler, jobs: list[Job], loop: int = 0) -> None:
        self._in_flight[loop] = jobs
        heartbeat = asyncio.create_task(self._heartbeat(jobs))
        try:
            outcomes = await self._handle(handler, jobs)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        settled = {job.id: outcomes.get(job.id, Retry("handler returned no outcome")) for job in jobs}
        done = [(job, outcome.result) for job in jobs if isinstance(outcome := settled[job.id], Done)]
        if done:  # the common case, one round trip for the batch
            owned = await self.queue.complete_many(done, self.worker_id)
            log.info("jobs.done", kind=jobs[0].kind, jobs=[str(job.id) for job, _ in done], owned=owned)
        for job in jobs:
            if not isinstance(outcome := settled[job.id], Done):
                await self._settle(job, outcome)
        self._in_flight.pop(loop, None)

    async def _settle(self, job: Job, outcome: Retry | Defer) -> None:
        """A job that did not succeed: later without an attempt counted (Defer), or retried / parked."""
        if isinstance(outcome, Defer):
            await self.queue.defer(job, self.worker_id, delay=outcome.delay, reason=outcome.reason)
            log.info("job.deferred", job=str(job.id), kind=job.kind, reason=outcome.reason)
        else:
            delay = backoff_seconds(max(1, job.attempts), base=self.retry_base_seconds, cap=RETRY_CAP_SECONDS,
                                    rng=self.rng)
            state = await self.queue.fail(
                job, self.worker_id, outcome.error, max_attempts=self.max_attempts, retry_in=delay
            )
            log.warning("job.failed", job=str(job.id), kind=job.kind, attempts=job.attempts,
                        error=outcome.error, state=state)
            if state == PARKED:
                await self._on_parked(self.handlers.get(job.kind), job, outcome.error)
