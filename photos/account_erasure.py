"""Erasing an account (`deleteAccount`): marked at once, erased by a keyed job that survives restarts.

At once (the request): the job `account_erasure:<uid>` is written, durable; the user's document is
reduced to an erasure mark (`storage.users`: profile, names and preferences gone, and every request
with the uid is refused from then on: FORBIDDEN); every photo of the account becomes a tombstone in
one call, so the account reads as deleted everywhere (their similarity groups summarised again, so the
group listing drops them too); its devices go, so nothing already queued for it
is pushed to its phones. The job then erases, every step a no-op when repeated, so a run cut off
anywhere (a crash, a restart) is simply run again:

1. each photo's traces, as a photo deletion removes them (`photos.traces`): blobs, vector rows, places
   in neighbour lists, notifications about it; its votes stay, marked;
2. the notifications, blobs an upload left without a photo, the rate-limit buckets, and what other
   collections keep per player (`forget_player`: its progress, its blocks, the reports it filed); the
   devices go with the mark, which every run writes again first, so nothing is pushed to them again;
3. the account's own votes and skips, and its uid in the rating records, screening decisions and
   moderation decisions (`anonymise_player`), take one random id (the same everywhere, so the log stays
   consistent and no photo's rating moves, a `ratings rebuild` included); the finished tombstones take
   it as their owner;
4. (last sweep) what the progress projector counted under the random id meanwhile, then the erasure mark
   itself: nothing of the account is left, and a later sign-in with the same uid starts a new, empty
   account (the client is expected to delete the Firebase user as well).

Why the job runs its steps twice: a process that saw the account recently trusts that look for
`recheck_seconds` (`accounts.seen`), so a request of the account may still be served there (an upload,
say) after the mark. The job does all of the above at once, then waits until every process refuses the
account (`sweep_after_seconds` from the mark, longer than `recheck_seconds`) and runs the steps again
before the mark goes. A photo whose ingest or face check is running is left until it is not, as a photo
deletion does. The finished job's record is the erasure's trail (the uid in its key, who asked, when);
the random id leaves it, so nothing ties the uid to the votes that carry that id.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from accounts.rate_limits import RateLimiter, user_subject
from notifications.devices import DeviceRepository
from notifications.outbox import Outbox
from photos.group_listing import RefreshGroups, no_refresh
from photos.queries import Viewer
from photos.traces import PhotoTraces
from storage.blobs import BlobStore
from storage.clock import utcnow
from storage.jobs import Defer, Done, Job, JobQueue, Outcome
from storage.photos import PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.users import UserRepository
from storage.voter_flags import VoterFlagRepository
from storage.votes import VoteRepository

log = structlog.get_logger(__name__)

ACCOUNT_ERASURE = "account_erasure"
# Tombstones whose traces are removed per round (each round: a few scans of the votes and the photos).
PHOTOS_PER_ROUND = 500
BUSY_RETRY_SECONDS = 2.0

PlayerData = Callable[[str], Awaitable[object]]
Anonymise = Callable[[str, str], Awaitable[object]]


def erasure_job_key(uid: str) -> str:
    return f"{ACCOUNT_ERASURE}:{uid}"


def random_id() -> str:
    """The id an erased account's votes and records carry instead of its uid."""
    return f"erased-{secrets.token_hex(12)}"


class UnknownAccount(LookupError):
    """No account of that uid (never seen, or erased already)."""


class NotYourAccount(PermissionError):
    """Only admins erase another user's account."""


@dataclass(frozen=True)
class Erasure:
    """What an erasure request answers: the account, and when its erasure was first asked for."""

    uid: str
    requested_at: datetime


@dataclass(frozen=True)
class AccountStores:
    """Where an account leaves something, besides its photos."""

    users: UserRepository
    votes: VoteRepository
    batches: RatingBatchRepository
    voter_flags: VoterFlagRepository
    devices: DeviceRepository
    outbox: Outbox
    blobs: BlobStore
    rate_limits: RateLimiter
    # Other collections keyed by the player's uid, each forgotten by one call (progress, blocks, reports filed).
    forget_player: Sequence[PlayerData] = ()
    # Other records that keep the uid for history (moderation decisions): it is replaced by the random id.
    anonymise_player: Sequence[Anonymise] = ()


class AccountErasure:
    def __init__(self, stores: AccountStores, photos: PhotoRepository, traces: PhotoTraces, jobs: JobQueue, *,
                 sweep_after_seconds: float, on_erased: Callable[[str], None] = lambda uid: None,
                 on_photos_deleted: Callable[[Sequence[Any]], None] = lambda ids: None,
                 on_enqueued: Callable[[], None] = lambda: None, refresh_groups: RefreshGroups = no_refresh) -> None:
        """`on_erased`: this process refuses the uid at once; `on_photos_deleted`: they leave its duel
        catalogue; `on_enqueued`: wakes its worker; `refresh_groups`: their similarity groups are
        summarised again (`photos.group_listing`)."""
        self.stores = stores
        self.photos = photos
        self.traces = traces
        self.jobs = jobs
        self.sweep_after = timedelta(seconds=sweep_after_seconds)
        self.on_erased = on_erased
        self.on_photos_deleted = on_photos_deleted
        self.on_enqueued = on_enqueued
        self.refresh_groups = refresh_groups

    async def request(self, viewer: Viewer, uid: str | None = None) -> Erasure:
        """Erase the caller's account, or (an admin) another's. Raises UnknownAccount, NotYourAccount."""
        target = uid or viewer.uid
        if target is None:
            raise UnknownAccount("")
        if target != viewer.uid and not viewer.admin:
            raise NotYourAccount(target)
        users = self.stores.users
        account = await users.get(target)
        if account is None:
            raise UnknownAccount(target)
        if "erasure" in account:
            return Erasure(uid=target, requested_at=account["erasure"]["at"])
        by = "self" if target == viewer.uid else "admin"
        payload = {"uid": target, "by": by, "anonymous": random_id(), "requested_at": utcnow()}
        # requeued, not enqueued: the job of an earlier account under the same uid may be done already
        await self.jobs.requeue_key(ACCOUNT_ERASURE, payload, key=erasure_job_key(target))
        mark = await self._mark(payload)
        if mark is None:
            raise UnknownAccount(target)
        self.on_enqueued()
        log.info("account.erasure_requested", by=by)
        return Erasure(uid=target, requested_at=mark["erasure"]["at"])

    async def _mark(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """The erasure mark (the first one, if there was one) and every photo a tombstone; None when the
        account no longer exists (the job ran to its end already)."""
        uid = str(payload["uid"])
        # a finished job's payload has no random id left (`run_job`); the mark, if any is left, holds it
        anonymous = str(payload.get("anonymous") or random_id())
        mark = await self.stores.users.mark_erased(uid, by=str(payload["by"]), anonymous=anonymous,
                                                   created_before=payload["requested_at"])
        if mark is None:
            return None
        self.on_erased(uid)
        # at once, not when the job first runs: the dispatcher reads the devices as it sends, so nothing queued
        # for the account (a suggestion, a badge) reaches its phones from here on
        await self.stores.devices.forget_user(uid)
        if await self.photos.tombstone_owned(uid, by="account"):
            tombstones = await self.photos.unfinished_deletions(owner=uid)
            self.on_photos_deleted([t["_id"] for t in tombstones])
            await self.refresh_groups(tombstones)
        return mark

    async def run(self, payload: Mapping[str, Any]) -> Outcome:
        """One run of the job: every step; Defer until the sweep (or a busy photo), Done once nothing is left."""
        uid = str(payload["uid"])
        mark = await self._mark(payload)
        if mark is None:
            return Done({"skipped": "no such account"})
        anonymous = str(mark["erasure"]["anonymous"])
        busy = await self._remove_photos(uid)
        await self._forget(uid)
        await self._anonymise(uid, anonymous)
        if busy:
            return Defer(delay=BUSY_RETRY_SECONDS, reason=f"{busy} photos' ingest or face check is running")
        wait = (mark["erasure"]["at"] + self.sweep_after - utcnow()).total_seconds()
        if wait > 0:
            return Defer(delay=wait, reason="sweeping again once every process refuses the account")
        await self._forget_anonymous(anonymous)
        await self.stores.users.forget_erased(uid)
        log.info("account.erased")
        return Done({"erased": True})

    async def run_job(self, job: Job) -> Outcome:
        """`run`, and once it is done the random id leaves the job's record: the record (its key names the
        uid, who asked, when) stays as the erasure's trail, without what would tie the uid to its votes."""
        outcome = await self.run(job.payload)
        if isinstance(outcome, Done):
            await self.jobs.forget_payload(job, ["anonymous"])
        return outcome

    async def _remove_photos(self, uid: str) -> int:
        """Every tombstone of the account cleared of its traces; how many are left busy."""
        busy: set[Any] = set()
        while True:
            pending = [t for t in await self.photos.unfinished_deletions(owner=uid, limit=PHOTOS_PER_ROUND + len(busy))
                       if t["_id"] not in busy]
            if not pending:
                return len(busy)
            busy.update((await self.traces.remove(pending)).busy)

    async def _forget(self, uid: str) -> None:
        stores = self.stores  # the devices went in `_mark`, which every run begins with
        await stores.outbox.forget_user(uid)
        await stores.blobs.delete_owned(uid)
        await stores.rate_limits.forget(user_subject(uid))
        for forget in stores.forget_player:
            await forget(uid)

    async def _anonymise(self, uid: str, anonymous: str) -> None:
        stores = self.stores
        await stores.votes.anonymise_player(uid, anonymous)
        await stores.batches.anonymise_player(uid, anonymous)
        await stores.voter_flags.anonymise(uid, anonymous)
        await self.photos.anonymise_owner(uid, anonymous)
        for anonymise in stores.anonymise_player:
            await anonymise(uid, anonymous)

    async def _forget_anonymous(self, anonymous: str) -> None:
        """What was derived from the anonymised votes since the first sweep: the progress projector counts
        the rating batches it had not reached yet under the random id (and may announce a badge to it)."""
        await self.stores.outbox.forget_user(anonymous)
        for forget in self.stores.forget_player:
            await forget(anonymous)


class AccountErasureHandler:
    """Job handler for kind "account_erasure": one account per job, one job at a time."""

    kind = ACCOUNT_ERASURE
    batch_size = 1

    def __init__(self, erasure: AccountErasure) -> None:
        self.erasure = erasure

    async def handle(self, jobs: Sequence[Job]) -> Mapping[Any, Outcome]:
        return {job.id: await self.erasure.run_job(job) for job in jobs}
