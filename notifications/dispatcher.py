"""The outbox dispatcher: takes due outbox records and pushes them to the user's devices through FCM.

Why the outbox is its own queue rather than a kind of job on the job queue (`storage.jobs`): the
record already is the unit of delivery, written once, with its idempotency key, by whoever announces
(ingest, the featured announcer), and the in-app list reads the same document. A push job would be a
second document written beside it without a transaction (the embedded server deadlocks on them), so a
crash between the two writes would lose the push, or need a sweeper to find records without a job, and
the delivery state would live in two places. The job worker also runs batches per kind behind
the CPU-bound ingest batches, while a push is a network call the user is waiting for ("your tag
suggestions are ready"); here any process with FCM credentials delivers it at once. What the two
queues share is the machinery, written once: the lease fields and grants (`storage.leases`), the
worker id, the retry backoff (`storage.backoff`) and the background task (`storage.background`).

A record is claimed (`Outbox.claim_due`) with one `find_one_and_update` that grants `push.lease_owner/lease_token/
lease_expires` and moves `push.next_at` to the lease expiry. The due query is only `push.state ==
pending and push.next_at <= now` (the `push_due` index), so a record whose dispatcher died mid-delivery
simply becomes due again when the lease runs out: nothing is lost, and no sweeper is needed. Every state
change after the send is conditional on still holding the grant, so a dispatcher that stalled past its
lease can never overwrite the outcome of the one that took over.

Delivery is at-least-once. Each attempt is recorded right after FCM answers (`push.deliveries`, and the
fingerprints of the devices that got it in `push.sent_to`, written whether or not the lease is still
held), then the state is settled. A crash between FCM's answer and that first write means the next
dispatcher sends again: the phone may get the same push twice, and the shared collapse key
(`tag_suggestions-<photo>`) makes it show one. A crash after the write costs nothing: devices in
`sent_to` are not sent to again.

Outcomes per record (`push.state`): `sent` (at least one device got it), `pending` again with
`next_at = now + backoff` after a transient failure (UNAVAILABLE, INTERNAL, QUOTA_EXCEEDED, 5xx, no
network), `failed` after `max_attempts` or a fatal error, `skipped` (no devices, every token invalid,
or older than `max_age_seconds`), `muted` (the user muted the kind). Invalid tokens (UNREGISTERED,
SENDER_ID_MISMATCH, INVALID_ARGUMENT about the token) are removed from the user's devices.

With push off (no PHOTODUEL_FIREBASE_CREDENTIALS) no dispatcher runs and records stay `pending`: once
credentials are configured the backlog is delivered, except what is older than `max_age_seconds`,
which is `skipped` as "expired" (a days-old "tag suggestions" buzz helps nobody).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from notifications.devices import DeviceRepository, token_fingerprint
from notifications.fcm import DeliveryResult, DeliveryStatus, FcmSender
from notifications.messages import PushPayload
from notifications.outbox import FAILED, MUTED, PENDING, SENT, SKIPPED, TAG_SUGGESTIONS, Outbox
from notifications.preferences import Preferences
from storage.background import BackgroundTask, pause, raise_if_cancelled
from storage.backoff import backoff_seconds
from storage.clock import utcnow
from storage.leases import Grant, process_id

log = structlog.get_logger(__name__)

__all__ = ["FAILED", "MUTED", "PENDING", "SENT", "SKIPPED", "Claim", "DispatchConfig", "Dispatcher", "payload_for"]

# Kinds the user is waiting for wake a dozing phone; the rest are delivered power-considerately.
HIGH_PRIORITY_KINDS = frozenset({TAG_SUGGESTIONS})


@dataclass(frozen=True)
class DispatchConfig:
    # Longer than one worst-case send (firebase-admin: 30 s HTTP timeout, 4 retries inside), so a live
    # dispatcher does not lose its lease mid-send; a dead one's records wait at most this long.
    lease_seconds: float = 120.0
    max_attempts: int = 8
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 300.0
    max_age_seconds: float = 24 * 3600.0
    batch_size: int = 16
    poll_seconds: float = 1.0
    deliveries_kept: int = 50


@dataclass(frozen=True)
class Claim:
    """A leased record; `attempt` is `push.attempts` including this one."""

    record: dict[str, Any]
    lease_token: str
    attempt: int


def payload_for(record: dict[str, Any]) -> PushPayload:
    """The push for one outbox record: its title/body, its data plus the notification id (so a tap can
    mark it read), and a collapse key per kind and photo."""
    data = {str(k): str(v) for k, v in (record.get("data") or {}).items()}
    data["notificationId"] = str(record["_id"])
    data.setdefault("kind", record["kind"])
    photo_id = data.get("photoId")
    kind = str(record["kind"]).lower()
    return PushPayload(
        title=record["title"], body=record["body"], data=data,
        collapse_key=f"{kind}-{photo_id}" if photo_id else kind,
        high_priority=record["kind"] in HIGH_PRIORITY_KINDS,
    )


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        devices: DeviceRepository,
        preferences: Preferences,
        sender: FcmSender,
        *,
        config: DispatchConfig | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        """`on_outcome`: told what became of each record taken (its new push state, `lease_lost` or
        `error`), for the metrics."""
        self.outbox = outbox
        self.on_outcome = on_outcome
        self.devices = devices
        self.preferences = preferences
        self.sender = sender
        self.config = config or DispatchConfig()
        self.owner = owner or process_id()
        self.rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._task = BackgroundTask(f"push-dispatcher {self.owner}")

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._task.start(self.run())

    def wake(self) -> None:
        """A new record in this process: deliver it now rather than at the next poll."""
        self._wake.set()

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop claiming; let running sends finish for a while. Whatever is cut off keeps its lease and
        is delivered by the next dispatcher once the lease runs out (at-least-once)."""
        self._stopping.set()
        self._wake.set()
        await self._task.stop(grace_seconds=grace_seconds)

    async def run(self) -> None:
        log.info("push.dispatcher_started", owner=self.owner)
        while not self._stopping.is_set():
            try:
                worked = await self.run_once()
            except Exception:  # the loop must survive a database hiccup
                raise_if_cancelled()
                log.exception("push.dispatcher_error", owner=self.owner)
                worked = 0
            if not worked:
                await pause(self._wake, self.config.poll_seconds)
        log.info("push.dispatcher_stopped", owner=self.owner)

    async def run_once(self) -> int:
        """Claim up to `batch_size` due records and deliver them concurrently; returns how many."""
        claims: list[Claim] = []
        while len(claims) < self.config.batch_size and not self._stopping.is_set():
            claim = await self.claim()
            if claim is None:
                break
            claims.append(claim)
        if claims:
            await asyncio.gather(*(self._process_logged(c) for c in claims))
        return len(claims)

    async def _process_logged(self, claim: Claim) -> None:
        try:
            state = await self.process(claim)
        except Exception:  # the lease runs out and the record is retried
            log.exception("push.process_failed", notification=str(claim.record["_id"]))
            state = "error"
        self.on_outcome(state or "lease_lost")

    # --- one record -----------------------------------------------------------------------------
    async def claim(self) -> Claim | None:
        """Lease the most overdue pending record (or one whose previous dispatcher's lease ran out)."""
        now = utcnow()
        grant = Grant.new(self.owner, seconds=self.config.lease_seconds, now=now)
        doc = await self.outbox.claim_due(grant, now)
        if doc is None:
            return None
        return Claim(record=doc, lease_token=grant.token, attempt=int(doc["push"]["attempts"]))

    async def process(self, claim: Claim) -> str | None:
        """Deliver one claimed record; returns its new state (None: the lease was lost meanwhile)."""
        record = claim.record
        user, kind = record["user"], record["kind"]
        started = utcnow()
        if claim.attempt > self.config.max_attempts:  # dispatchers kept dying on it: stop trying
            return await self._finish(claim, FAILED, f"no outcome after {claim.attempt - 1} attempts")
        if started - record["created_at"] > timedelta(seconds=self.config.max_age_seconds):
            return await self._finish(claim, SKIPPED, "expired before it could be pushed")
        if await self.preferences.is_muted(user, kind):
            return await self._finish(claim, MUTED, f"{kind} muted by the user")
        devices = await self.devices.for_user(user)
        if not devices:
            return await self._finish(claim, SKIPPED, "no devices")
        already = set(record["push"].get("sent_to") or [])
        owed = [d.token for d in devices if token_fingerprint(d.token) not in already]
        if not owed:  # every device got it before a crash interrupted the settling
            return await self._finish(claim, SENT, None)
        results = await self.sender.send_async(payload_for(record), owed)
        platforms = {d.token: d.platform for d in devices}
        await self.record_attempt(claim, results, platforms, started)
        return await self.settle(claim, results, previously_sent=len(already))

    async def record_attempt(
        self, claim: Claim, results: Sequence[DeliveryResult], platforms: dict[str, str], started: datetime
    ) -> None:
        """Write what FCM said, lease or not (it happened), and forget the devices FCM called invalid."""
        record = claim.record
        now = utcnow()
        entries = [
            {"at": now, "attempt": claim.attempt, "device": token_fingerprint(r.token),
             "platform": platforms.get(r.token), "status": r.status.value, "error_code": r.error_code,
             "message_id": r.message_id, "detail": r.detail}
            for r in results
        ]
        sent = [token_fingerprint(r.token) for r in results if r.status is DeliveryStatus.SENT]
        await self.outbox.record_deliveries(record["_id"], entries, sent, keep=self.config.deliveries_kept)
        invalid = [r.token for r in results if r.status is DeliveryStatus.INVALID_TOKEN]
        await self.devices.remove_invalid(record["user"], invalid, checked_at=started)

    async def settle(self, claim: Claim, results: Sequence[DeliveryResult], *, previously_sent: int = 0) -> str | None:
        statuses = [r.status for r in results]
        sent_total = previously_sent + statuses.count(DeliveryStatus.SENT)
        codes = sorted({r.error_code for r in results if r.error_code})
        if DeliveryStatus.TRANSIENT in statuses:
            if claim.attempt < self.config.max_attempts:
                return await self._retry_later(claim, ", ".join(codes))
            reason = f"gave up after {claim.attempt} attempts: {', '.join(codes)}"
            return await self._finish(claim, SENT if sent_total else FAILED, reason)
        if sent_total:
            return await self._finish(claim, SENT, None)
        if statuses and all(s is DeliveryStatus.INVALID_TOKEN for s in statuses):
            return await self._finish(claim, SKIPPED, "no valid devices")
        return await self._finish(claim, FAILED, ", ".join(codes) or "no result")

    async def _settle(self, claim: Claim, fields: dict[str, Any]) -> bool:
        settled = await self.outbox.settle(claim.record["_id"], self.owner, claim.lease_token, fields)
        if not settled:
            log.warning("push.lease_lost", notification=str(claim.record["_id"]), owner=self.owner)
        return settled

    async def _retry_later(self, claim: Claim, error: str) -> str | None:
        delay = backoff_seconds(claim.attempt, base=self.config.backoff_base_seconds,
                                cap=self.config.backoff_cap_seconds, rng=self.rng)
        now = utcnow()
        if not await self._settle(claim, {"push.next_at": now + timedelta(seconds=delay), "push.last_error": error}):
            return None
        log.info("push.retry_scheduled", notification=str(claim.record["_id"]), attempt=claim.attempt,
                 delay_s=round(delay, 2), error=error)
        return PENDING

    async def _finish(self, claim: Claim, state: str, reason: str | None) -> str | None:
        now = utcnow()
        if not await self._settle(claim, {"push.state": state, "push.reason": reason, "push.finished_at": now}):
            return None
        log.info("push.settled", notification=str(claim.record["_id"]), kind=claim.record["kind"], state=state,
                 attempt=claim.attempt, reason=reason)
        return state
