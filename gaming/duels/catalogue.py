"""What matchmaking knows about every duel-able photo, held in memory by each API process.

Choosing an anchor needs the most uncertain photos, the ones nearest the featured cut and the least
voted, per category: sorted reads over the whole catalogue. The embedded server answers none of them
from an index (about 800 ms each at 20,000 photos), and even on MongoDB three sorted reads per
`nextDuel` is the wrong price. So every process keeps a compact array per field (mu, sigma, votes,
category, owner, near-duplicate root) of the READY, rated photos, and `nextDuel` reads the database
only by id (the anchor, the opponent) and for the player's judged pairs.

Lifetimes, which is how stale the view may be:
- ratings: follow the rating projector's batches (`RatingFeed`), in the projector's own process at
  once, elsewhere within the feed's poll interval (0.2 s by default);
- new READY photos: at once in the process that ingested them (`add`), elsewhere within
  `new_photos_seconds` (read by `ready_at`, indexed);
- a category an owner changed: at once in the process that took the change (`add`, from
  `photos.editing`), elsewhere at the full reload;
- a deleted photo: at once in the process that took the deletion (`remove`), elsewhere at the next
  new-photo poll (the tombstone's `ready_at` is stamped, and `add` drops a photo that is not READY);
- a photo moderation hid or approved: the same way (`photos.moderation` stamps `ready_at`);
- a photo's similarity group: read with the photo; the anchor's is refreshed from its document on every
  `nextDuel` (`regroup`), the other members of a group that merged into another at the full reload;
- anything else: the full reload every `reload_seconds`.
A stale entry costs at most a less useful pair: the ticket's photos are re-read by id and the vote
path checks them again. Nothing here is needed by another process: each builds its own from the
database and the batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import structlog
from bson import ObjectId

from gaming.duels.records import rating_from_fields
from gaming.featured import TOP_FRACTION, featured_boundary_array, featured_count
from gaming.matchmaking import RatedPhoto
from gaming.ratings import RatingEnv
from storage.background import raise_if_cancelled
from storage.clock import utcnow
from storage.mongo import long_work
from storage.photos import READY, PhotoRepository

log = structlog.get_logger(__name__)

FIELDS = ("category", "owner", "duplicate_of", "rating", "ready_at", "group_id")
NEW_PHOTO_GRACE = timedelta(seconds=30)  # a READY write may land a little after its ready_at stamp
VIEW_TTL_SECONDS = 1.0
VIEW_DEPTH = 200  # entries kept per sorted read: enough after the player's own photos are taken out
SCAN_BATCH = 2000
LOAD_RETRY_SECONDS = 10.0  # after a failed load: not at once, the server may still be busy with it


@dataclass(frozen=True)
class CategoryView:
    """A category's sorted reads at one moment: indexes into the catalogue's arrays."""

    members: np.ndarray
    cut: float
    most_uncertain: np.ndarray
    least_voted: np.ndarray
    near_above: np.ndarray  # nearest the cut first, at or above it
    near_below: np.ndarray  # nearest the cut first, below it
    at: float


class CatalogueLoading(RuntimeError):
    """The catalogue is not loaded yet; the request may be retried in a few seconds."""


class DuelCatalogue:
    def __init__(self, photos: PhotoRepository, env: RatingEnv, *,
                 top_fraction: float = TOP_FRACTION, reload_seconds: float = 300.0, new_photos_seconds: float = 2.0,
                 first_load_wait: float = 5.0) -> None:
        self.photos = photos
        self.env = env
        self.top_fraction = top_fraction
        self.reload_seconds = reload_seconds
        self.new_photos_seconds = new_photos_seconds
        self.first_load_wait = first_load_wait
        self._first_load: asyncio.Task[None] | None = None
        self._failed_at = 0.0
        self._load_lock = asyncio.Lock()
        self._loaded_at: float | None = None
        self._polled_at = 0.0
        self._new_since: datetime | None = None
        self._views: dict[str | None, CategoryView] = {}
        self._reloading: asyncio.Task[None] | None = None  # kept: a task nobody holds may be collected
        self._seen_while_loading: list[Mapping[str, Any]] | None = None
        self._reset()

    def _reset(self, capacity: int = 1024) -> None:
        self.ids: list[ObjectId] = []
        self.index: dict[ObjectId, int] = {}
        self.mu = np.zeros(capacity)
        self.sigma = np.zeros(capacity)
        self.votes = np.zeros(capacity, dtype=np.int64)
        self.category = np.zeros(capacity, dtype=np.int64)
        self.owner = np.zeros(capacity, dtype=np.int64)
        self.root = np.zeros(capacity, dtype=np.int64)
        self.group = np.full(capacity, -1, dtype=np.int64)  # similarity group code; -1: none
        self.live = np.zeros(capacity, dtype=bool)
        self._codes: dict[Any, int] = {}
        self._names: list[Any] = []

    # --- codes: categories, owners and duplicate roots as small integers ---------------------------

    def code(self, value: Any) -> int:
        found = self._codes.get(value)
        if found is None:
            found = self._codes[value] = len(self._names)
            self._names.append(value)
        return found

    def known_code(self, value: Any) -> int:
        """-1 for a value never seen (no photo has it)."""
        return self._codes.get(value, -1)

    def name(self, code: int) -> Any:
        return self._names[code]

    @property
    def size(self) -> int:
        return len(self.ids)

    # --- writes -------------------------------------------------------------------------------------

    def _grow(self) -> None:
        for field in ("mu", "sigma", "votes", "category", "owner", "root", "group", "live"):
            old = getattr(self, field)
            new = np.full(len(old) * 2, -1 if field == "group" else 0, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, field, new)

    def add(self, doc: Mapping[str, Any]) -> None:
        """A READY, rated photo joins (or is refreshed in) the catalogue."""
        if doc.get("status", READY) != READY or "rating" not in doc:
            self.remove(doc["_id"])
            return
        i = self.index.get(doc["_id"])
        if i is None:
            if self.size == len(self.mu):
                self._grow()
            i = self.index[doc["_id"]] = self.size
            self.ids.append(doc["_id"])
        category = self.code(("category", doc.get("category")))
        if self.live[i] and self.category[i] != category:  # an owner's new category: the views hold the old one
            self._views.clear()
        self.category[i] = category
        self.owner[i] = self.code(("owner", doc["owner"]))
        self.root[i] = self.code(("root", doc.get("duplicate_of") or doc["_id"]))
        self.regroup(i, doc.get("group_id"))
        if not self.live[i]:  # a photo (back) in the catalogue is offered at once, not when the views expire
            self.live[i] = True
            self._views.clear()
        self.set_rating(doc["_id"], doc["rating"])

    def set_rating(self, photo_id: ObjectId, fields: Mapping[str, Any]) -> None:
        i = self.index.get(photo_id)
        if i is None:
            return  # not READY here yet: `add` will bring the rating with the photo
        self.mu[i], self.sigma[i], self.votes[i] = fields["mu"], fields["sigma"], fields.get("votes", 0)

    def regroup(self, i: int, group_id: Any) -> None:
        """Photo i's similarity group as its document names it now (None: not grouped)."""
        self.group[i] = -1 if group_id is None else self.code(("group", group_id))

    def apply_batch(self, batch: Mapping[str, Any]) -> None:
        """A rating projector batch: its final ratings."""
        if self._seen_while_loading is not None:  # a reload's scan may read these photos before the batch
            self._seen_while_loading.append(batch)
        for row in batch.get("ratings", []):
            self.set_rating(row["id"], row["rating"])

    def remove(self, photo_id: ObjectId) -> None:
        i = self.index.get(photo_id)
        if i is not None and self.live[i]:
            self.live[i] = False
            self._views.clear()

    # --- loading ------------------------------------------------------------------------------------

    def start_loading(self) -> None:
        """Begin the first load now (at process start), so the first players do not wait for it."""
        if self._first_load is None:
            self._first_load = asyncio.create_task(self._reload_in_background(), name="catalogue-load")

    async def stop(self) -> None:
        for task in (self._first_load, self._reloading):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def ensure_fresh(self) -> None:
        """Load on first use; after that, reload in the background every `reload_seconds` (requests go
        on with the view they have) and pick up new photos every few seconds. While the first load runs
        (seconds at 100,000 photos on the embedded server), a request waits `first_load_wait` at most,
        then gets CatalogueLoading: the client retries, rather than every request piling up behind it."""
        now = time.monotonic()
        if self._loaded_at is None:
            self.start_loading()
            assert self._first_load is not None
            try:
                await asyncio.wait_for(asyncio.shield(self._first_load), self.first_load_wait)
            except TimeoutError:
                raise CatalogueLoading("matchmaking is still loading its catalogue: retry in a few seconds") from None
            if self._loaded_at is None:  # the load failed (and was logged): a request after a pause retries
                if time.monotonic() - self._failed_at > LOAD_RETRY_SECONDS:
                    self._first_load = None
                raise CatalogueLoading("matchmaking could not load its catalogue: retry in a few seconds")
            return
        if now - self._loaded_at > self.reload_seconds and not self._load_lock.locked():
            self._reloading = asyncio.create_task(self._reload_in_background(), name="catalogue-reload")
            return
        if now - self._polled_at > self.new_photos_seconds:
            self._polled_at = now
            await self.poll_new_photos()

    async def _reload_in_background(self) -> None:
        async with self._load_lock:
            try:
                await self.reload()
            except Exception:  # the view in hand stays; a later request tries again
                raise_if_cancelled()
                log.exception("catalogue.reload_failed")
                self._failed_at = time.monotonic()
                if self._loaded_at is not None:
                    self._loaded_at = time.monotonic() - self.reload_seconds + self.new_photos_seconds

    async def reload(self) -> None:
        """Read every READY, rated photo into the arrays in place. A photo keeps its index, so requests
        in flight, which hold indexes across their awaits, never see them point at another photo; one
        not found any more is marked not live. Batches that arrive during the scan are applied again
        after it: the scan may have read a photo before their rating writes."""
        started = utcnow()
        seen: set[ObjectId] = set()
        self._seen_while_loading = []
        try:
            with long_work():
                async for doc in self.photos.rated_ready(FIELDS, batch_size=SCAN_BATCH):
                    self.add(doc)
                    seen.add(doc["_id"])
        finally:
            arrived, self._seen_while_loading = self._seen_while_loading, None
        for batch in arrived:
            self.apply_batch(batch)
        for photo_id, i in self.index.items():
            if photo_id not in seen and self.live[i]:
                self.live[i] = False
        self._views.clear()
        self._loaded_at = self._polled_at = time.monotonic()
        self._new_since = started - NEW_PHOTO_GRACE
        log.info("catalogue.loaded", photos=len(seen))

    async def poll_new_photos(self) -> int:
        since = self._new_since or utcnow() - NEW_PHOTO_GRACE
        started = utcnow()
        added = 0
        async for doc in self.photos.ready_since(since, FIELDS):
            if doc["_id"] not in self.index:
                added += 1
            self.add(doc)
        self._new_since = started - NEW_PHOTO_GRACE
        return added

    # --- reads --------------------------------------------------------------------------------------

    def scope(self, category: str | None, *, excluding_owners: Iterable[str] = ()) -> np.ndarray:
        """Indexes of live photos in the category (None: every category), minus some owners' photos."""
        n = self.size
        mask = self.live[:n].copy()
        if category is not None:
            mask &= self.category[:n] == self.known_code(("category", category))
        for owner in excluding_owners:
            code = self.known_code(("owner", owner))
            if code >= 0:
                mask &= self.owner[:n] != code
        return np.flatnonzero(mask)

    def rated(self, i: int) -> RatedPhoto:
        category = self.name(int(self.category[i]))[1]
        return RatedPhoto(id=str(self.ids[i]), rating=rating_from_fields({"mu": self.mu[i], "sigma": self.sigma[i]}),
                          duels=int(self.votes[i]), owner=self.name(int(self.owner[i]))[1], category=category)

    def group_members(self, i: int) -> np.ndarray:
        """Indexes of the live photos in photo i's similarity group, i among them if live; empty when it
        has none. A scan of one array: a few hundred microseconds at 100,000 photos."""
        code = self.group[i]
        if code < 0:
            return np.zeros(0, dtype=np.int64)
        n = self.size
        return np.flatnonzero((self.group[:n] == code) & self.live[:n])

    def owner_of(self, i: int) -> str:
        return str(self.name(int(self.owner[i]))[1])

    def view(self, category: str | None) -> CategoryView:
        """The sorted reads of one category (None: all), computed over the arrays once a second at most
        (`VIEW_TTL_SECONDS`) and shared by every request meanwhile: per request the work is then a few
        dozen entries, not the whole catalogue."""
        cached = self._views.get(category)
        if cached is not None and time.monotonic() - cached.at < VIEW_TTL_SECONDS:
            return cached
        members = self.scope(category)
        cut = float(featured_boundary_array(self.mu[members], self.top_fraction)) if len(members) else self.env.mu
        fresh = CategoryView(
            members=members, cut=cut, most_uncertain=self.top(members, self.sigma, VIEW_DEPTH),
            least_voted=self.top(members, -self.votes, VIEW_DEPTH),
            near_above=self.top(members[self.mu[members] >= cut], -self.mu, VIEW_DEPTH // 2),
            near_below=self.top(members[self.mu[members] < cut], self.mu, VIEW_DEPTH // 2), at=time.monotonic())
        self._views[category] = fresh
        return fresh

    def cut(self, category: str | None) -> float:
        """The featured cut's skill in a category (`gaming.featured`)."""
        return self.view(category).cut

    def allowed(self, indexes: np.ndarray, *, category: str | None, owners: Iterable[str],
                unlike: int | None = None) -> np.ndarray:
        """Those of `indexes` that are live, in the category (None: any), of none of these owners, and
        not `unlike` nor a near-duplicate of it (the same duplicate root)."""
        indexes = np.asarray(indexes, dtype=np.int64)
        keep = self.live[indexes].copy()
        if category is not None:
            keep &= self.category[indexes] == self.known_code(("category", category))
        codes = [code for owner in owners if (code := self.known_code(("owner", owner))) >= 0]
        if codes:  # one pass whatever the number (a player's blocked owners are among them)
            keep &= ~np.isin(self.owner[indexes], codes)
        if unlike is not None:
            keep &= (indexes != unlike) & (self.root[indexes] != self.root[unlike])
        allowed: np.ndarray = indexes[keep]
        return allowed

    def featured(self, *, min_votes: int, max_sigma: float) -> dict[str | None, list[ObjectId]]:
        """Per category, the featured set: of the photos settled enough to promote, as many as rank above
        the featured cut (`gaming.featured`), best conservative skill first. The announcer reads it here:
        on the embedded server the same from the database is a scan of every photo per category."""
        n = self.size
        settled = self.live[:n] & (self.votes[:n] >= min_votes) & (self.sigma[:n] <= max_sigma)
        conservative = self.mu[:n] - self.env.k * self.sigma[:n]
        sets: dict[str | None, list[ObjectId]] = {}
        for code in np.unique(self.category[:n][settled]):
            members = np.flatnonzero(settled & (self.category[:n] == code))
            best = self.top(members, conservative, featured_count(len(members), self.top_fraction))
            sets[self.name(int(code))[1]] = [self.ids[i] for i in best]
        return sets

    def top(self, members: np.ndarray, key: np.ndarray, count: int) -> np.ndarray:
        """The `count` members with the largest key, best first."""
        if len(members) <= count:
            return members[np.argsort(-key[members], kind="stable")]
        part = members[np.argpartition(-key[members], count)[:count]]
        return part[np.argsort(-key[part], kind="stable")]
