"""The progress projector: players' vote counts, streaks, goals and badges, projected from the rating
projector's batch records.

Why a projection and not a write on the vote path: `voteDuel` stays one write (the vote log), and the
counts are the log's: a vote is counted exactly when the rating projector applies it, once, in the log's
order, whatever retries, crashes or concurrent votes happened on the way. The batch records
(`storage.rating_batches`) are that order already, numbered, each entry naming its player and its
vote's time, so following them is an indexed range read by sequence number.

Each player's document carries the last batch counted into it (`seq`), and every write is conditional on
the `seq` and zone it was computed from (`storage.player_progress.apply`): a batch is counted once per
player even if this runs twice (a takeover, a replay from an old position), and a zone set in between
makes it read and count again. It runs beside the rating projector, in the process holding that lease
(`active`), woken by that process's feed as each batch lands, and polls otherwise.

Achievements are announced before the counters that record them are written: the announcement is keyed
(once per player and badge, or player and day), so a crash in between repeats the key, never loses it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

import structlog

from gaming.progress import Achievement, Progress, after_votes, worth_announcing, zone_or_default
from storage.background import BackgroundTask, pause, raise_if_cancelled
from storage.clock import utcnow
from storage.player_progress import PlayerProgressRepository
from storage.rating_batches import RatingBatchRepository
from storage.rating_params import RatingParamsRepository

log = structlog.get_logger(__name__)

CURSOR_ID = "player_progress"  # in rating_params: the last batch this projector went past
BATCHES_PER_STEP = 20
PLAYERS_IN_FLIGHT = 8
# Compare-and-set tries of one player's update against a zone change or another projector.
APPLY_TRIES = 5

Announce = Callable[[Achievement], Awaitable[object]]


def progress_from_doc(doc: Mapping[str, Any] | None) -> Progress:
    if not doc:
        return Progress()
    last_day = doc.get("last_day")
    return Progress(
        votes=int(doc.get("votes", 0)), streak=int(doc.get("streak", 0)),
        longest_streak=int(doc.get("longest_streak", 0)),
        last_day=date.fromisoformat(last_day) if last_day else None, day_votes=int(doc.get("day_votes", 0)),
        badges=MappingProxyType(dict(doc.get("badges") or {})),
    )


def progress_fields(progress: Progress) -> dict[str, Any]:
    """The counters as stored (badges are written one by one, as earned)."""
    return {"votes": progress.votes, "streak": progress.streak, "longest_streak": progress.longest_streak,
            "last_day": progress.last_day.isoformat() if progress.last_day else None,
            "day_votes": progress.day_votes}


@dataclass(frozen=True)
class CountedVote:
    seq: int  # the batch that applied it
    at: datetime


def votes_by_player(batches: Iterable[Mapping[str, Any]]) -> dict[str, list[CountedVote]]:
    """The votes in these batches by player, in log order, rated or not (a vote on a photo deleted before
    the projector reached it is still the player's vote). Entries without a player (votes logged before
    votes recorded their player) count for nobody."""
    found: dict[str, list[CountedVote]] = defaultdict(list)
    for batch in batches:
        for entry in batch.get("entries", []):
            if entry.get("player"):
                found[str(entry["player"])].append(CountedVote(int(batch["_id"]), entry["created_at"]))
    return found


class ProgressProjector:
    def __init__(self, batches: RatingBatchRepository, progress: PlayerProgressRepository,
                 params: RatingParamsRepository, *, goal: int, announce: Announce,
                 active: Callable[[], bool] = lambda: True, poll_seconds: float = 0.2) -> None:
        self.batches = batches
        self.progress = progress
        self.params = params
        self.goal = goal
        self.announce = announce
        self.active = active  # whether this process should project now (it holds the rating projector)
        self.poll_seconds = poll_seconds
        self.seq: int | None = None  # the last batch gone past; read from the cursor at first
        self._wake = asyncio.Event()
        self._stepping = asyncio.Lock()
        self._task = BackgroundTask("progress-projector")

    def wake(self, batch: object = None) -> None:
        """A batch landed in this process (a feed subscriber): count it now rather than at the next poll."""
        self._wake.set()

    async def step(self) -> int:
        """Count the next batches in; how many batches were read."""
        async with self._stepping:
            if self.seq is None:
                self.seq = int((await self.params.get(CURSOR_ID) or {}).get("seq", 0))
            batches = await self.batches.after(self.seq, limit=BATCHES_PER_STEP,
                                               fields={"entries.player": 1, "entries.created_at": 1})
            if not batches:
                return 0
            await self._count(votes_by_player(batches))
            self.seq = int(batches[-1]["_id"])
            await self.params.save(CURSOR_ID, {"seq": self.seq, "at": utcnow()})
            return len(batches)

    async def drain(self) -> int:
        """Count every batch recorded so far (tests, commands); how many were read."""
        read = 0
        while (n := await self.step()) > 0:
            read += n
        return read

    async def _count(self, votes: Mapping[str, Sequence[CountedVote]]) -> None:
        docs = dict(zip(votes, await self.progress.get_many(list(votes)), strict=True))
        in_flight = asyncio.Semaphore(PLAYERS_IN_FLIGHT)

        async def one(player: str) -> None:
            async with in_flight:
                await self._apply(player, docs[player], votes[player])

        await asyncio.gather(*(one(player) for player in votes))

    async def _apply(self, player: str, doc: dict[str, Any] | None, votes: Sequence[CountedVote]) -> None:
        existed = doc is not None
        for _ in range(APPLY_TRIES):
            if existed and doc is None:  # forgotten meanwhile (account erasure): not brought back
                return
            seq_was = None if doc is None else doc.get("seq")
            new = [v for v in votes if v.seq > (seq_was or 0)]
            if not new:
                return
            zone_was = None if doc is None else doc.get("zone")
            before = progress_from_doc(doc)
            after, achieved = after_votes(before, player, [v.at for v in new], zone_or_default(zone_was), self.goal)
            now = utcnow()
            for achievement in achieved:
                if worth_announcing(achievement, now):
                    await self.announce(achievement)
            earned = {b: at for b, at in after.badges.items() if b not in before.badges}
            if await self.progress.apply(player, seq_was=seq_was, zone_was=zone_was,
                                         fields={**progress_fields(after), "seq": new[-1].seq}, badges=earned,
                                         create=not existed):
                return
            doc = await self.progress.get(player)
        # the step fails and is repeated, so the cursor does not move past votes left uncounted
        raise RuntimeError(f"the progress of {player} kept changing during {APPLY_TRIES} tries")

    # --- the background task -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if not self.active():
                    self.seq = None  # another process may count meanwhile: read its cursor on taking over
                elif await self.step() >= BATCHES_PER_STEP:
                    continue
            except Exception:
                raise_if_cancelled()
                log.exception("progress.step_failed")
            await pause(self._wake, self.poll_seconds)

    def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
