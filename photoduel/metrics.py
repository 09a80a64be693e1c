"""Prometheus metrics of one process (`/metrics`).

Each process keeps its own series in its own registry and exposes them itself: an API process on its
`/metrics`, a `photoduel worker` on `PHOTODUEL_METRICS_PORT`. Prometheus scrapes every process as its own
target and sums across them (`sum by (operation) (rate(...))`); nothing is shared between processes, so
no multiprocess directory is needed and a restarted process simply starts its counters again (`rate`
handles that). A registry per process rather than the library's global one also keeps several apps in
one test process apart.

The domain packages do not import the library: they are handed callbacks (`ModelRegistry(on_run=)`,
`Dispatcher(on_outcome=)`, the duel service's `on_vote`), wired in `photoduel.container`. What lives in the
database (queue depth, projector lag) is read when scraped, under a deadline (`MetricReads`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable

import pymongo
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from storage.clock import utcnow
from storage.jobs import LEASED, PARKED, QUEUED, Backlog, JobQueue

log = structlog.get_logger(__name__)

__all__ = ["CONTENT_TYPE_LATEST", "MetricReads", "Metrics"]

# Operation names are the client's to choose: only well-formed ones become label values, and only so many
# per process (a label value is a series for as long as the process lives).
OPERATION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_OPERATION_NAMES = 200
ANONYMOUS, OTHER = "(anonymous)", "(other)"

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MODEL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """This process's series. Counter names get `_total` appended by the library."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._operations: set[str] = set()
        r = self.registry
        self.graphql_seconds = Histogram(
            "photoduel_graphql_request_duration_seconds",
            "HTTP requests that ran a GraphQL operation, by operation name and type: from the first byte in to "
            "the response sent (auth, body and persisted-query lookups included)",
            ["operation", "type"], buckets=REQUEST_BUCKETS, registry=r)
        self.http_responses = Counter(
            "photoduel_http_responses", "HTTP responses by route template and status", ["route", "status"],
            registry=r)
        self.errors = Counter(
            "photoduel_graphql_errors",
            "Errors answered on /graphql, by extensions.code: every error of a response, or the code of a "
            "request refused before any operation ran (401, 413, 429, 503 ...)", ["code"], registry=r)
        self.websockets = Gauge("photoduel_websocket_connections", "Open GraphQL websockets", registry=r)
        self.votes = Counter("photoduel_votes", "Votes this process recorded (rate(): votes per second)",
                             registry=r)
        self.model_seconds = Histogram(
            "photoduel_model_batch_duration_seconds",
            "Time of each call on the model thread, by work (model_pass: an ingest batch; embed_texts: a "
            "search; embed_images: a reindex batch; load)", ["work"], buckets=MODEL_BUCKETS, registry=r)
        self.push = Counter(
            "photoduel_push_notifications",
            "Outbox records this process's push dispatcher took, by what became of them (sent, skipped, muted, "
            "failed, pending: a retry scheduled, lease_lost, error)", ["outcome"], registry=r)
        self.job_depth = Gauge(
            "photoduel_job_queue_depth", "Jobs not done, by kind and state (queued, leased, parked); read when "
            "scraped", ["kind", "state"], registry=r)
        self.job_oldest_age = Gauge(
            "photoduel_job_queue_oldest_age_seconds", "Age of the oldest queued or leased job, by kind (0: none); "
            "read when scraped", ["kind"], registry=r)
        self.projector_lag = Gauge(
            "photoduel_projector_lag_seconds", "How long the oldest vote not yet applied to the ratings has "
            "waited (0: none); read when scraped", registry=r)
        self.projector_active = Gauge(
            "photoduel_projector_active", "1 in the process that holds the rating projector's lease", registry=r)
        self.reads_ok = Gauge(
            "photoduel_metrics_reads_ok", "1 when the reads of the last scrape answered within their deadline; "
            "0: the queue series are missing from that scrape and the lag is NaN", registry=r)

    # --- hooks the container hands to the services ---------------------------------------------------

    def vote_recorded(self) -> None:
        self.votes.inc()

    def model_ran(self, work: str, seconds: float) -> None:
        self.model_seconds.labels(work).observe(seconds)

    def push_settled(self, outcome: str) -> None:
        self.push.labels(outcome).inc()

    # --- requests (api/metrics.py) -------------------------------------------------------------------

    def operation_label(self, name: str | None) -> str:
        if not name:
            return ANONYMOUS
        if not OPERATION_NAME.fullmatch(name):
            return OTHER
        if name not in self._operations:
            if len(self._operations) >= MAX_OPERATION_NAMES:
                return OTHER
            self._operations.add(name)
        return name

    def request_done(self, route: str, status: int, seconds: float, operation: tuple[str | None, str] | None,
                     ) -> None:
        self.http_responses.labels(route, str(status)).inc()
        if operation is not None:
            name, kind = operation
            self.graphql_seconds.labels(self.operation_label(name), kind).observe(seconds)

    def error_answered(self, code: str) -> None:
        self.errors.labels(code).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricReads:
    """The series read from the database when scraped: every process can tell, whether or not it works
    the queue or holds the projector. Each scrape reads afresh under `deadline_seconds`; when the reads
    fail, the queue series are left out of that scrape and the lag is NaN (`photoduel_metrics_reads_ok`
    is 0), rather than stale values repeated as if current."""

    def __init__(self, metrics: Metrics, jobs: JobQueue, *, projector_lag: Callable[[], Awaitable[float]],
                 projector_active: Callable[[], bool], kinds: Iterable[str], deadline_seconds: float = 2.0) -> None:
        self.metrics = metrics
        self.jobs = jobs
        self.projector_lag = projector_lag
        self.projector_active = projector_active
        self.kinds = tuple(kinds)  # reported at 0 when empty, so an alert has a series to watch
        self.deadline_seconds = deadline_seconds

    async def refresh(self) -> bool:
        """Read and set the gauges; False when the database did not answer in time."""
        m = self.metrics
        m.projector_active.set(1 if self.projector_active() else 0)
        try:
            with pymongo.timeout(self.deadline_seconds):
                backlog, lag = await asyncio.wait_for(
                    asyncio.gather(self.jobs.backlog(), self.projector_lag()), self.deadline_seconds)
        except Exception as exc:  # a scrape must answer whatever the database does
            log.warning("metrics.reads_failed", error=f"{type(exc).__name__}: {exc}")
            for gauge in (m.job_depth, m.job_oldest_age):
                gauge.clear()
            m.projector_lag.set(float("nan"))
            m.reads_ok.set(0)
            return False
        self._set_backlog(backlog)
        m.projector_lag.set(lag)
        m.reads_ok.set(1)
        return True

    def _set_backlog(self, backlog: list[Backlog]) -> None:
        m, now = self.metrics, utcnow()
        m.job_depth.clear()
        m.job_oldest_age.clear()
        for kind in {*self.kinds, *(b.kind for b in backlog)}:
            for state in (QUEUED, LEASED, PARKED):
                m.job_depth.labels(kind, state).set(0)
            waiting = [b.oldest for b in backlog if b.kind == kind and b.state != PARKED and b.oldest]
            m.job_oldest_age.labels(kind).set(max(0.0, (now - min(waiting)).total_seconds()) if waiting else 0.0)
        for entry in backlog:
            m.job_depth.labels(entry.kind, entry.state).set(entry.count)
