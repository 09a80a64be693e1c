"""The rating projector: the one writer of ratings, applying the vote log in batches.

The API only appends votes (`storage.votes`); one projector per deployment, held by a lease, turns
them into ratings. Per batch it writes twice, never in a transaction:
1. the batch record (`storage.rating_batches`): which votes, in which order, with which celebrity
   flags and discount parameters, and every touched photo's resulting rating: one insert whose
   sequence number is unique, which also fences off a second projector that lost its lease unawares;
2. the photos' ratings, each write guarded by the batch number it carries, so a repeat is a no-op.
A projector that dies between the two is repeated by the next holder from the record, with the same
result; the log order is the batches' order, so `replay` reproduces the stored ratings exactly.

A series round's answer (k photos, a pick or an order: `storage.votes`) is applied in the same order and
batches as a duel vote, rated by `gaming.series` with the same weight and celebrity offset. Its entry
keeps ``photos``, ``ranks``, ``choice``, ``celebrity`` (one flag per photo) and ``ratings`` (one result
per photo, in the order of ``photos``) instead of left/right.

Finding the votes to apply without marking them (a mark would be another write per vote): a vote
written in the projector's own process is handed over directly (`offer`); the others are read by
`created_at`. The tail catches votes as they come, a re-read of the second behind it twice a second
catches inserts that landed a little out of order, and a vote whose insert lands later still (a slow
write, another API process's clock) is caught by the sweep, which re-reads the window [horizon, now -
straggler_seconds) every `sweep_seconds` and then moves the horizon on. Votes applied but newer than
the horizon are remembered (and, after a takeover, read back from the recent batch records), so none is
applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from gaming.celebrity import CelebrityOffset
from gaming.duels.feed import RatingFeed
from gaming.duels.legacy import migrate_legacy_votes
from gaming.duels.records import initial_rating_fields, rating_fields, rating_from_fields
from gaming.ratings import DuelAdjustment, Outcome, Rating, RatingEnv
from gaming.series import rate_order, rate_pick
from gaming.vote_weights import VoteWeighting, rate_weighted
from storage.background import BackgroundTask, pause, raise_if_cancelled
from storage.clock import utcnow
from storage.leases import Lease
from storage.mongo import long_work
from storage.photos import PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.votes import SERIES_PICK, VoteRepository, answered_photos

log = structlog.get_logger(__name__)

LEASE_NAME = "rating_projector"
# Every RECHECK_SECONDS the projector re-reads this far behind its tail: concurrent inserts commit a little
# out of the order of their timestamps, and this catches them then rather than at the next sweep.
TAIL_OVERLAP = timedelta(seconds=1)
RECHECK_SECONDS = 0.5
MAX_OFFERED = 10_000
SWEEP_LIMIT = 2_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The adjustment a vote is rated with, from the parameters recorded with it.
AdjustmentFactory = Callable[[Mapping[str, Any] | None], DuelAdjustment | None]
# The parameters in force now, read once per batch.
CurrentAdjustment = Callable[[], Awaitable[Mapping[str, Any] | None]]
# The voters whose votes are left out now (player -> screening status), read once per batch.
CurrentScreening = Callable[[], Awaitable[Mapping[str, str]]]


async def _no_adjustment() -> None:
    return None


async def _no_screening() -> Mapping[str, str]:
    return {}


def _rebase_weights(rebase: Mapping[str, Any] | None) -> tuple[int, VoteWeighting, dict[str, str]]:
    """From the newest rebase record: up to which batch, with which weighting and decisions, votes are
    weighed again (0: none, every entry keeps its recorded weight)."""
    if rebase is None:
        return 0, VoteWeighting(), {}
    info = rebase["rebase"]
    return (int(rebase["_id"]), VoteWeighting.from_params(info.get("weighting")),
            {d["player"]: d["status"] for d in info.get("excluded", [])})


class LostLease(RuntimeError):
    """Another projector wrote this batch number: this one was not the holder any more."""


def is_celebrity(photo: Mapping[str, Any]) -> bool:
    return bool((photo.get("celebrity") or {}).get("people"))


def _result(choice: str, side: str) -> str:
    if choice == Outcome.DRAW.value:
        return "draws"
    return "wins" if choice == side.upper() else "losses"


def _weight_fields(vote: Mapping[str, Any], weight: float) -> dict[str, Any]:
    """What an entry keeps of its vote's weighting: the weight applied, and what a rebuild needs to weigh
    it again (the voter, the account kind and history recorded with the vote)."""
    kept = {k: vote[k] for k in ("player", "anonymous", "history") if vote.get(k) is not None}
    return {**kept, "weight": weight}


def _voter(vote: Mapping[str, Any]) -> dict[str, Any]:
    """Who cast a vote left unrated (a photo deleted): it still counts in its player's progress."""
    return {"player": vote["player"]} if vote.get("player") else {}


def _counts(fields: Mapping[str, Any], outcome_for_photo: str) -> dict[str, int]:
    counts = {k: int(fields.get(k, 0)) for k in ("votes", "wins", "losses", "draws")}
    counts["votes"] += 1
    counts[outcome_for_photo] += 1
    return counts


class RatingProjector:
    def __init__(
        self, votes: VoteRepository, batches: RatingBatchRepository, photos: PhotoRepository, lease: Lease,
        env: RatingEnv, feed: RatingFeed, *, adjustment_factory: AdjustmentFactory = lambda params: None,
        current_adjustment: CurrentAdjustment = _no_adjustment, batch_size: int = 256, poll_seconds: float = 0.05,
        straggler_seconds: float = 30.0, sweep_seconds: float = 5.0,
        after_record: Callable[[Mapping[str, Any]], Awaitable[None]] | None = None,
        weighting: VoteWeighting | None = None, current_screening: CurrentScreening = _no_screening,
    ) -> None:
        self.votes = votes
        self.batches = batches
        self.photos = photos
        self.lease = lease
        self.env = env
        self.feed = feed
        self.adjustment_factory = adjustment_factory
        self.current_adjustment = current_adjustment
        self.weighting = weighting or VoteWeighting()
        self.current_screening = current_screening
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.straggler = timedelta(seconds=straggler_seconds)
        self.sweep_seconds = sweep_seconds
        self.after_record = after_record  # between the two writes: where tests stop a projector
        self.active = False
        self._wake = asyncio.Event()
        self._stepping = asyncio.Lock()
        self._task = BackgroundTask("rating-projector")
        self._renewed = 0.0
        self._swept = 0.0
        self._rechecked = 0.0
        self.seq = 0
        self.horizon = EPOCH
        self.tail = EPOCH
        self.applied: dict[ObjectId, datetime] = {}
        self._offered: dict[ObjectId, dict[str, Any]] = {}

    # --- the rating math, shared by the projection and the replay ------------------------------------

    def rate(self, left: Mapping[str, Any], right: Mapping[str, Any], choice: str, left_celebrity: bool,
             right_celebrity: bool, params: Mapping[str, Any] | None, *,
             weight: float = 1.0) -> tuple[dict[str, Any], dict[str, Any]]:
        """The two photos' rating fields after one vote of this weight (`gaming.vote_weights`); a vote of
        weight 0 (a screened-out voter's) changes nothing, not even the vote counts."""
        if weight == 0.0:
            return dict(left), dict(right)
        new_left, new_right = self._rate(rating_from_fields(left), rating_from_fields(right), Outcome(choice),
                                         left_celebrity, right_celebrity, params, weight)
        return (rating_fields(new_left, self.env, _counts(left, _result(choice, "left"))),
                rating_fields(new_right, self.env, _counts(right, _result(choice, "right"))))

    def rate_series(self, photos: Sequence[Mapping[str, Any]], choice: str, ranks: Sequence[int],
                    celebrity: Sequence[bool], params: Mapping[str, Any] | None, *,
                    weight: float = 1.0) -> list[dict[str, Any]]:
        """The rating fields of a series round's photos after one answer: a PICK (the photo at place 0 above
        each other, `gaming.series.rate_pick`) or an ORDER (`ranks`: each photo's place, 0 best). Counts as
        a duel vote does: one vote each, a win for the photo placed first, a loss for the others. A
        celebrity offset in force acts as in a duel; weight 0 changes nothing."""
        if weight == 0.0:
            return [dict(p) for p in photos]
        adjustment = self.adjustment_factory(params)
        offset = adjustment.offset if isinstance(adjustment, CelebrityOffset) else 0.0
        before, best = [rating_from_fields(p) for p in photos], min(ranks)
        if choice == SERIES_PICK:
            rated = rate_pick(before, list(ranks).index(best), self.env, weight=weight, celebrity=list(celebrity),
                              celebrity_offset=offset)
        else:
            rated = rate_order(before, list(ranks), self.env, weight=weight, celebrity=list(celebrity),
                               celebrity_offset=offset)
        return [rating_fields(new, self.env, _counts(old, "wins" if rank == best else "losses"))
                for old, new, rank in zip(photos, rated, ranks, strict=True)]

    def _rate(self, left: Rating, right: Rating, outcome: Outcome, left_celebrity: bool, right_celebrity: bool,
              params: Mapping[str, Any] | None, weight: float) -> tuple[Rating, Rating]:
        return rate_weighted(left, right, outcome, self.env, weight, left_celebrity=left_celebrity,
                             right_celebrity=right_celebrity, adjustment=self.adjustment_factory(params))

    # --- holding the lease ---------------------------------------------------------------------------

    async def hold(self) -> bool:
        """Take or renew the lease (a write only every third of its time); recover on taking it."""
        if self.active and time.monotonic() - self._renewed < self.lease.seconds / 3:
            return True
        held = await self.lease.acquire()
        if held:
            self._renewed = time.monotonic()
            if not self.active:
                await self.recover()
                self.active = True
                log.info("projector.took_over", seq=self.seq, holder=self.lease.holder)
        elif self.active:
            self.active = False
            self._offered.clear()
            log.warning("projector.lost_lease", seq=self.seq, holder=self.lease.holder)
        return held

    async def recover(self) -> None:
        """Where the last holder stopped: its last batch's ratings written (a repeat is a no-op), the
        horizon, and which newer votes are applied already."""
        last = await self.batches.last()
        if last is None:
            try:
                with long_work():
                    migrated = await migrate_legacy_votes(self.votes, self.batches, self.photos, self.env, self.rate,
                                                          batch_size=self.batch_size)
            except DuplicateKeyError:
                raise LostLease("another projector is migrating the legacy votes") from None
            if migrated:
                log.info("projector.migrated_legacy_votes", votes=migrated)
                last = await self.batches.last()
        if last is None:
            self.seq, self.horizon, self.applied = 0, EPOCH, {}
        else:
            self.seq = int(last["_id"])
            await self.photos.write_ratings(self.seq, {r["id"]: r["rating"] for r in last["ratings"]})
            self.horizon = last["horizon"]
            self.applied = await self.batches.applied_since(self.horizon)
        self.tail = self.horizon  # the first tail read takes every vote since; the applied ones are known
        self._swept = 0.0

    # --- applying votes ------------------------------------------------------------------------------

    async def step(self, *, settle: bool = False) -> int:
        """Apply the next batch of votes; how many were applied. `settle`: no API writes votes any more
        (tests, offline commands), so every vote up to now may be swept at once."""
        async with self._stepping:  # the background task and a drain in the same process take turns
            return await self._step(settle)

    async def _step(self, settle: bool) -> int:
        found: dict[ObjectId, dict[str, Any]] = {}
        horizon = self.horizon
        if settle or time.monotonic() - self._swept > self.sweep_seconds:
            end = utcnow() - (timedelta(0) if settle else self.straggler)
            if end > self.horizon:
                swept = await self.votes.created_between(self.horizon, end, limit=SWEEP_LIMIT)
                found.update((v["_id"], v) for v in swept if v["_id"] not in self.applied)
                # a long backlog (a takeover after a long outage) is swept a slice at a time
                horizon = end if len(swept) < SWEEP_LIMIT else swept[-1]["created_at"]
            self._swept = time.monotonic()
        found.update((k, v) for k, v in self._offered.items() if k not in self.applied)
        if time.monotonic() - self._rechecked > RECHECK_SECONDS:  # inserts that landed a little late
            late = await self.votes.created_between(max(self.tail - TAIL_OVERLAP, self.horizon), self.tail)
            found.update((v["_id"], v) for v in late if v["_id"] not in self.applied)
            self._rechecked = time.monotonic()
        tail = await self.votes.created_between(max(self.tail, self.horizon), limit=self.batch_size + 64)
        found.update((v["_id"], v) for v in tail if v["_id"] not in self.applied)
        pending = sorted(found.values(), key=lambda v: (v["created_at"], v["_id"]))
        if len(pending) > self.batch_size:
            pending, horizon = pending[: self.batch_size], self.horizon  # the sweep's remainder comes next
        if pending:
            await self._apply(pending, horizon)
        # the tail moves up to the oldest vote it read that is still unapplied (it is read inclusively)
        unapplied = [v["created_at"] for v in tail if v["_id"] not in self.applied]
        if unapplied:
            self.tail = max(self.tail, min(unapplied))
        elif tail:
            self.tail = max(self.tail, tail[-1]["created_at"])
        # offered votes applied now leave before `applied` forgets those the horizon has passed (a settle
        # moves it past them at once): otherwise the next step would find them offered and unapplied
        self._offered = {k: v for k, v in self._offered.items() if k not in self.applied}
        self.horizon = max(self.horizon, horizon)
        self.applied = {k: at for k, at in self.applied.items() if at >= self.horizon}
        return len(pending)

    async def _apply(self, votes: list[dict[str, Any]], horizon: datetime) -> None:
        photos = await self.photos.rating_inputs([pid for v in votes for pid in answered_photos(v)])
        if any(int(p.get("rating_seq", 0)) > self.seq for p in photos.values()):
            raise LostLease(f"photos carry ratings newer than batch {self.seq}")
        params = await self.current_adjustment()
        screening = await self.current_screening()
        current = {pid: p["rating"] for pid, p in photos.items() if "rating" in p}
        entries: list[dict[str, Any]] = []
        for vote in votes:
            if "photos" in vote:  # a series round
                entries.append(self._series_entry(vote, current, photos, params, screening))
                continue
            left, right = current.get(vote["left"]), current.get(vote["right"])
            if left is None or right is None:  # a photo was deleted: the vote stays in the log, unrated
                entries.append({"vote": vote["_id"], "created_at": vote["created_at"], "gone": True, **_voter(vote)})
                continue
            flags = (is_celebrity(photos[vote["left"]]), is_celebrity(photos[vote["right"]]))
            weight = self.weighting.weight_of(vote, screening.get(vote.get("player", "")))
            current[vote["left"]], current[vote["right"]] = self.rate(left, right, vote["choice"], *flags, params,
                                                                      weight=weight)
            entries.append({
                "vote": vote["_id"], "created_at": vote["created_at"], "left": vote["left"], "right": vote["right"],
                "choice": vote["choice"], "left_celebrity": flags[0], "right_celebrity": flags[1],
                "left_rating": current[vote["left"]], "right_rating": current[vote["right"]],
                **_weight_fields(vote, weight),
            })
        touched = {pid for e in entries if not e.get("gone") for pid in answered_photos(e)}
        batch = {
            "_id": self.seq + 1, "written_at": utcnow(), "horizon": horizon,
            "max_created_at": max(v["created_at"] for v in votes), "adjustment": params, "entries": entries,
            "ratings": [{"id": pid, "rating": current[pid]} for pid in touched],
        }
        try:
            await self.batches.insert(batch)
        except DuplicateKeyError:
            raise LostLease(f"batch {batch['_id']} was written by another projector") from None
        # The record holds every result: votes waiting for theirs are answered now, not after the photos.
        self.feed.publish(batch)
        if self.after_record is not None:
            await self.after_record(batch)
        await self.photos.write_ratings(batch["_id"], {pid: current[pid] for pid in touched})
        self.seq = batch["_id"]
        self.applied.update((v["_id"], v["created_at"]) for v in votes)

    def _series_entry(self, vote: Mapping[str, Any], current: dict[Any, dict[str, Any]],
                      photos: Mapping[Any, Mapping[str, Any]], params: Mapping[str, Any] | None,
                      screening: Mapping[str, str]) -> dict[str, Any]:
        """Apply one series round's answer to `current` and return its batch entry."""
        shown = list(vote["photos"])
        if any(pid not in current for pid in shown):  # a photo was deleted: logged, unrated
            return {"vote": vote["_id"], "created_at": vote["created_at"], "gone": True, **_voter(vote)}
        flags = [is_celebrity(photos[pid]) for pid in shown]
        weight = self.weighting.weight_of(vote, screening.get(vote.get("player", "")))
        rated = self.rate_series([current[pid] for pid in shown], vote["choice"], vote["ranks"], flags, params,
                                 weight=weight)
        current.update(zip(shown, rated, strict=True))
        return {"vote": vote["_id"], "created_at": vote["created_at"], "photos": shown, "ranks": list(vote["ranks"]),
                "choice": vote["choice"], "celebrity": flags, "ratings": rated, **_weight_fields(vote, weight)}

    async def drain(self, *, settle: bool = False) -> int:
        """Apply everything pending now (needs the lease); `settle` as for `step`."""
        if not await self.hold():
            raise RuntimeError(f"the rating projector lease is held by {await self.lease.holder_now()}")
        applied = 0
        while (n := await self.step(settle=settle)) > 0:
            applied += n
        return applied

    async def lag_seconds(self) -> float:
        """How long the oldest vote that no batch has applied yet has waited; 0 when none waits.

        Read from the batch records and the log, so every process can tell, the lease's holder or not. A
        vote counts as waiting when it is newer than the newest vote of the last batch: one that landed
        out of order just before that is not seen here (the sweep applies it), so this may understate."""
        oldest = await self.votes.oldest_vote_after(await self.batches.newest_applied_at())
        return 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())

    # --- the background task -------------------------------------------------------------------------

    def offer(self, vote: Mapping[str, Any]) -> None:
        """A vote this process has just written: apply it now, without waiting to read it back. Only
        kept while this process holds the lease; otherwise the holder reads it from the log."""
        if self.active and len(self._offered) < MAX_OFFERED:
            self._offered[vote["_id"]] = dict(vote)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                if await self.hold() and await self.step() >= self.batch_size:
                    continue
            except LostLease as exc:
                log.warning("projector.fenced", reason=str(exc))
                self.active = False
                self.feed.rewind(self.seq)
            except Exception:
                raise_if_cancelled()
                log.exception("projector.step_failed")
                self.active = False  # recover from the records before going on
            await pause(self._wake, self.poll_seconds if self.active else self.lease.seconds / 3)

    def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        if self.active:
            with contextlib.suppress(Exception):
                await self.lease.release()
            self.active = False

    # --- the log as a whole --------------------------------------------------------------------------

    async def replay(self) -> dict[ObjectId, dict[str, Any]]:
        """The ratings the log implies: each photo's prior from its stored quality, then every batch in
        order with the flags and parameters recorded in it. Pure reading."""
        fields = {f"entries.{name}": 1 for name in ("left", "right", "choice", "left_celebrity", "right_celebrity",
                                                    "gone", "player", "anonymous", "history", "weight", "photos",
                                                    "ranks", "celebrity")}
        with long_work():
            rebased_to, weighting, excluded = _rebase_weights(await self.batches.last_rebase())
            ratings = {pid: initial_rating_fields(q, self.env) for pid, q in (await self.photos.priors()).items()}
            async for batch in self.batches.in_order({**fields, "adjustment": 1}):
                rebased = int(batch["_id"]) < rebased_to
                for entry in batch["entries"]:
                    shown = [] if entry.get("gone") else answered_photos(entry)
                    if not shown or any(pid not in ratings for pid in shown):
                        continue
                    if rebased and "player" in entry:
                        weight = weighting.weight_of(entry, excluded.get(entry["player"]))
                    else:
                        weight = float(entry.get("weight", 1.0))
                    if "photos" in entry:
                        rated = self.rate_series([ratings[pid] for pid in shown], entry["choice"], entry["ranks"],
                                                 entry["celebrity"], batch.get("adjustment"), weight=weight)
                        ratings.update(zip(shown, rated, strict=True))
                        continue
                    left, right = ratings[entry["left"]], ratings[entry["right"]]
                    ratings[entry["left"]], ratings[entry["right"]] = self.rate(
                        left, right, entry["choice"], entry["left_celebrity"], entry["right_celebrity"],
                        batch.get("adjustment"), weight=weight)
        return ratings

    async def rebuild(self) -> int:
        """`photoduel ratings rebuild`: weigh every vote again with today's weighting and screening decisions
        (a flag cleared counts its voter's votes again, a flag raised leaves out the ones before it too),
        record that as a rebase batch, and write the replayed ratings back (holding the lease); photos
        changed. The rebase record is what later replays weigh the votes before it by, so `--check` keeps
        agreeing whatever is decided afterwards."""
        await self.drain()  # also takes the lease: the running projector's, if it is this process's
        excluded = await self.current_screening()
        record: dict[str, Any] = {
            "_id": self.seq + 1, "written_at": utcnow(), "horizon": self.horizon, "max_created_at": self.horizon,
            "adjustment": None, "entries": [], "ratings": [],
            "rebase": {"at": utcnow(), "weighting": self.weighting.to_params(),
                       "excluded": [{"player": p, "status": s} for p, s in sorted(excluded.items())]},
        }
        try:
            await self.batches.insert(record)
        except DuplicateKeyError:
            raise LostLease(f"batch {record['_id']} was written by another projector") from None
        self.seq = record["_id"]
        changed = 0
        for photo_id, fields in (await self.replay()).items():
            changed += await self.photos.overwrite_rating(photo_id, fields, self.seq)
        return changed
