"""The photos collection: one document per photo, the source of truth for everything but vectors.

Document shape (fields appear as the pipeline fills them):
  _id, owner, title, sha256, status (PROCESSING | READY | FAILED | HIDDEN | DELETED), failure {reason, at},
  format, mime, width, height, bytes, blobs {raw, original, display, thumbnail} (GridFS ids),
  renditions {variant: {width, height, etag}}, created_at, updated_at,
  category, category_score, category_model, tags [accepted], rejected_tags, suggestions [{tag, score, source}],
  quality {score, aesthetic, sharpness, exposure, noise, resolution},
  neighbours [{id, similarity}] and neighbours_short (the kept neighbour lists: `storage.neighbours`),
  duplicate_of, vector_collection, ready_at (the READY write's, or the deletion's: what matchmaking's catalogues
  poll), ingest_token (which ingest batch wrote READY), featured_at,
  rating {mu, sigma, conservative, score, votes, wins, losses, draws},
  rating_seq (the rating batch that wrote `rating` last), faces_count, celebrity {people [...]},
  group_id (its similarity group: `storage.photo_groups`),
  screening {model, scores {label: score}} (ingest's content screening), moderation {state, source, reasons,
  round, ...} (a photo held back or decided on: `storage.photo_moderation`).

`category` is the model's choice (ingest, with its confidence `category_score`) until the owner sets one
(`set_category`); `category_model` then keeps the model's choice, for comparison, and `category_score`
stays the model's confidence in it.

`rating` is written by ingest (the prior, at READY) and afterwards only by the rating projector
(`write_ratings`), one writer per field, so no transaction is needed around it.

A deleted photo leaves a tombstone (`tombstone`): status DELETED, `deletion {at, by, finished_at}`, the owner
(who may ask again: a repeated deletion answers the same), `sha256` replaced by a placeholder (the same bytes may
be uploaded again), and what a replay of the vote log needs of it: its prior (`quality.score`) and its rating,
which the projector keeps writing for votes cast before the deletion, so every other photo's rating replays
unchanged. `blobs`, `vector_collection` and `group_id` stay until the deletion job has removed what they
point to (`finish_deletion`). No other write touches a tombstone (`NOT_DELETED` in their filters).

This repository is the only code that reads or writes the collection: every filter on it is written
here, so an index in `storage.mongo` can be checked against the queries that need it in one file.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from bson import ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from storage.base import Doc, Repository, journaled
from storage.clock import utcnow as now
from storage.mongo import long_work
from storage.neighbours import NeighbourListParams, list_update, list_without, merged_list, short_flag_stage
from storage.pagination import Page, SortKey, read_page
from storage.photo_groups import PhotoGroupFields
from storage.photo_moderation import QUEUE_ORDER, REPORTS, as_read, hidden, in_round, queue_query

log = structlog.get_logger(__name__)

PROCESSING, READY, FAILED = "PROCESSING", "READY", "FAILED"
# HIDDEN: held back by moderation pending review (owner and admins still see it); DELETED: a tombstone
# that keeps deletion idempotent while the photo's traces are removed. Neither is public.
HIDDEN, DELETED = "HIDDEN", "DELETED"
NOT_DELETED: Doc = {"status": {"$ne": DELETED}}
MAX_TAGS_PER_PHOTO = 30
MAX_REJECTED_TAGS = 100
# Compare-and-set tries of one tag review against concurrent ones before it gives up.
TAG_WRITE_ATTEMPTS = 10
# Documents per round trip for whole-collection reads: each round trip has its own deadline.
SCAN_BATCH = 5000

NEWEST = SortKey((("created_at", -1), ("_id", -1)))
OLDEST = SortKey((("created_at", 1), ("_id", 1)))
BEST = SortKey((("rating.conservative", -1), ("_id", -1)))


@dataclass(frozen=True)
class Settled:
    """READY photos rated enough to promote: at least `min_votes` votes, sigma at most `max_sigma`,
    optionally of one category and uploaded since a moment."""

    min_votes: int
    max_sigma: float
    category: str | None = None
    since: datetime | None = None
    excluding_owners: tuple[str, ...] = ()  # owners the viewer blocked

    def query(self) -> Doc:
        query: Doc = {"status": READY, "rating.votes": {"$gte": self.min_votes},
                      "rating.sigma": {"$lte": self.max_sigma}}
        if self.category:
            query["category"] = self.category
        if self.since is not None:
            query["created_at"] = {"$gte": self.since}
        if self.excluding_owners:
            query["owner"] = {"$nin": list(self.excluding_owners)}
        return query


@dataclass(frozen=True)
class ReadyFields:
    """What ingest found for a photo, written with its PROCESSING -> READY transition."""

    category: str
    category_score: float
    suggestions: list[Doc]  # [{tag, score, source}], best first
    quality: Doc
    neighbours: list[Doc]  # the kept list at ingest, merged with offers that arrived meanwhile
    duplicate_of: ObjectId | None
    vector_collection: str
    rating: Doc  # the prior
    screening: Doc | None = None  # {model, scores}: the content screening's scores
    moderation: Doc | None = None  # set when screening held the photo back: it is written HIDDEN

    def doc(self, at: datetime) -> Doc:
        """The fields as stored, with the READY (or, held back, HIDDEN) status and stamp."""
        fields: Doc = {"status": READY if self.moderation is None else HIDDEN, "category": self.category,
                       "category_score": self.category_score, "suggestions": self.suggestions,
                       "quality": self.quality, "neighbours": self.neighbours, "duplicate_of": self.duplicate_of,
                       "vector_collection": self.vector_collection, "rating": self.rating, "ready_at": at,
                       "updated_at": at}
        if self.screening is not None:
            fields["screening"] = self.screening
        if self.moderation is not None:
            fields["moderation"] = self.moderation
        return fields


@dataclass(frozen=True)
class ReadyWrites:
    """The outcome of a batch's READY writes: the photos it made READY (not those another worker
    finished first) and those whose write failed, with the reason."""

    mine: set[ObjectId]
    at: datetime
    failed: dict[ObjectId, str] = field(default_factory=dict)


class TagLimitExceeded(ValueError):
    pass


class TagReviewConflict(RuntimeError):
    """A tag review lost its compare-and-set every time: only a flood of reviews of one photo does that."""


TagChange = Callable[[list[str], list[str]], tuple[list[str], list[str]]]


def _as_read(doc: Doc, field: str) -> Doc:
    """A filter matching the field exactly as it was read (an array compares whole; absent stays absent)."""
    return {field: doc[field]} if field in doc else {field: {"$exists": False}}


class PhotoRepository(PhotoGroupFields, Repository):
    collection_name = "photos"

    async def create_or_get(self, doc: Doc) -> tuple[Doc, bool]:
        """Insert a new photo, or return the one this owner already uploaded with the same bytes."""
        try:
            await self.collection.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            existing = await self.collection.find_one({"owner": doc["owner"], "sha256": doc["sha256"]})
            if existing is None:  # pragma: no cover - deleted in between
                raise
            return existing, False

    async def find_by_owner_sha(self, owner: str, sha256: str) -> Doc | None:
        return await self.collection.find_one({"owner": owner, "sha256": sha256})

    async def update(self, photo_id: ObjectId, fields: Mapping[str, Any], *, unset: Sequence[str] = ()) -> Doc | None:
        """None when there is no such photo, or only its tombstone: a write racing a deletion (a face check,
        an edit) must not put back what the deletion removed."""
        update: dict[str, Any] = {"$set": {**fields, "updated_at": now()}}
        if unset:
            update["$unset"] = {name: "" for name in unset}
        return await self.collection.find_one_and_update(
            {"_id": photo_id, **NOT_DELETED}, update, return_document=ReturnDocument.AFTER
        )

    async def _page(self, query: Doc, sort: SortKey, *, first: int, after: str | None) -> Page:
        return await read_page(self.collection, query, sort, first=first, after=after)

    # --- public reads -------------------------------------------------------------------------------

    async def browse(self, sort: SortKey, *, tag: str | None = None, category: str | None = None,
                     excluding_owners: Sequence[str] = (), first: int, after: str | None) -> Page:
        """READY photos, optionally with a tag or of a category, and none of some owners' (those the viewer
        blocked); raises InvalidCursor. Sorted by rating, only rated photos (a photo without a rating has
        no place in that order)."""
        query: Doc = {"status": READY}
        if tag:
            query["tags"] = tag
        if category:
            query["category"] = category
        if excluding_owners:
            query["owner"] = {"$nin": list(excluding_owners)}
        if sort == BEST:
            query["rating.conservative"] = {"$exists": True}
        return await self._page(query, sort, first=first, after=after)

    async def owned(self, owner: str, *, status: str | None = None, first: int, after: str | None) -> Page:
        """An owner's photos in every status but DELETED (or in one), newest first (index `owner_created`);
        raises InvalidCursor."""
        query: Doc = {"owner": owner, **({"status": status} if status else NOT_DELETED)}
        return await self._page(query, NEWEST, first=first, after=after)

    async def ready_counts(self, owners: Sequence[str]) -> dict[str, int]:
        """owner -> number of READY photos, in one round trip (owners without one are absent)."""
        cursor = await self.collection.aggregate([
            {"$match": {"owner": {"$in": list(set(owners))}, "status": READY}},
            {"$group": {"_id": "$owner", "n": {"$sum": 1}}},
        ])
        return {d["_id"]: int(d["n"]) async for d in cursor}

    async def ready_ids(self, ids: Sequence[ObjectId]) -> set[ObjectId]:
        """Which of `ids` are READY now, reading nothing else (a vote checks its two photos)."""
        return {d["_id"] async for d in self.collection.find({"_id": {"$in": list(ids)}, "status": READY}, {"_id": 1})}

    async def ready_many(self, ids: Sequence[ObjectId], *, excluding_owners: Sequence[str] = ()) -> list[Doc]:
        """The READY photos among `ids`, in their order (others are not public), none of these owners'."""
        excluded = set(excluding_owners)
        return [d for d in await self.get_many(ids)
                if d is not None and d["status"] == READY and d["owner"] not in excluded]

    async def settled_page(self, settled: Settled, *, first: int, after: str | None) -> Page:
        """A leaderboard page: settled photos, best conservative skill first."""
        return await self._page(settled.query(), BEST, first=first, after=after)

    async def best_settled(self, settled: Settled, *, limit: int) -> list[Doc]:
        return await self.find(settled.query(), sort=BEST.fields, limit=limit)

    async def settled_categories(self, settled: Settled) -> list[str | None]:
        return list(await self.collection.distinct("category", settled.query()))

    async def count_settled(self, settled: Settled) -> int:
        return await self.collection.count_documents(settled.query())

    async def mark_featured(self, photo_id: ObjectId) -> bool:
        """Stamp `featured_at` once; True only for the call that set it (the one that announces)."""
        result = await self.collection.update_one({"_id": photo_id, "featured_at": {"$exists": False}},
                                                  {"$set": {"featured_at": now()}})
        return result.modified_count == 1

    async def recently_featured(self, category: str | None, *, limit: int) -> list[Doc]:
        """READY photos of a category (all when None) in the order they became featured, newest first:
        a feed's entries, which stay put once announced even when a photo later drops below the cut."""
        query: Doc = {"status": READY, "featured_at": {"$exists": True}}
        if category is not None:
            query["category"] = category
        return await self.find(query, sort=[("featured_at", -1), ("_id", -1)], limit=limit)

    # --- moderation (the sub-document's rules: storage.photo_moderation) ------------------------------

    async def hide_reported(self, photo_id: ObjectId, *, round: int, reasons: Sequence[str],
                            reports: int) -> Doc | None:
        """READY -> HIDDEN pending review, for the reports of `round`; None when the photo is not READY in
        that round any more (a concurrent report hid it first, or an admin's decision moved the round on).
        `ready_at` is stamped, as at every moderation change of status: every process's duel catalogue
        follows it within its new-photo poll."""
        at = now()
        return await self.collection.find_one_and_update(
            {"_id": photo_id, "status": READY, **in_round(round)},
            {"$set": {"status": HIDDEN, "updated_at": at, "ready_at": at,
                      "moderation": hidden(REPORTS, reasons, round=round, at=at, reports=reports)}},
            return_document=ReturnDocument.AFTER,
        )

    async def moderate(self, read: Doc, status: str, moderation: Doc) -> Doc | None:
        """An admin's decision, written only while the photo is as `read` (status and round): None when it
        changed meanwhile. `ready_at` is stamped, so every process's duel catalogue takes the photo back
        (or drops it) within its new-photo poll."""
        at = now()
        fields: Doc = {"status": status, "moderation": moderation, "updated_at": at, "ready_at": at}
        return await self.collection.find_one_and_update(as_read(read), {"$set": fields},
                                                         return_document=ReturnDocument.AFTER)

    async def moderation_queue(self, *, first: int, after: str | None) -> Page:
        """Photos held back pending review, the longest waiting first (index `moderation_queue`); raises
        InvalidCursor."""
        return await self._page(queue_query(HIDDEN), QUEUE_ORDER, first=first, after=after)

    async def anonymise_moderator(self, uid: str, anonymous: str) -> int:
        """An erased admin's uid on the decisions photos carry replaced by its random id (the same one
        `moderation_decisions` gets). A scan under the long deadline: erasing an admin is rare, and an index
        for it would cost every photo write."""
        with long_work():
            result = await self.collection.update_many({"moderation.decided_by": uid},
                                                       {"$set": {"moderation.decided_by": anonymous}})
        return result.modified_count

    # --- the duel catalogue's scans -----------------------------------------------------------------

    async def rated_ready(self, fields: Sequence[str], *, batch_size: int = SCAN_BATCH) -> AsyncIterator[Doc]:
        """Every READY, rated photo (only `fields`), `batch_size` documents per round trip."""
        async for doc in self.collection.find({"status": READY, "rating": {"$exists": True}},
                                              dict.fromkeys(fields, 1), batch_size=batch_size):
            yield doc

    async def ready_since(self, since: datetime, fields: Sequence[str]) -> AsyncIterator[Doc]:
        """Photos that entered READY, or were deleted, at or after `since` (only `fields` and the status):
        `ready_at` stamps both, so every process's catalogue drops a deleted photo at its next poll."""
        async for doc in self.collection.find({"ready_at": {"$gte": since}},
                                              dict.fromkeys([*fields, "status"], 1)):
            yield doc

    # --- the owner's edits ----------------------------------------------------------------------------

    async def set_title(self, photo_id: ObjectId, title: str | None) -> Doc | None:
        """The new title (None removes it); None when there is no such photo."""
        if title is None:
            return await self.update(photo_id, {}, unset=("title",))
        return await self.update(photo_id, {"title": title})

    async def set_category(self, photo_id: ObjectId, category: str) -> Doc | None:
        """The owner's category for a READY photo; the model's first choice moves to `category_model`
        the first time (a second change keeps the model's, not the owner's earlier one). None when there
        is no READY photo of that id: before READY ingest has not chosen yet and would overwrite it."""
        return await self.collection.find_one_and_update(
            {"_id": photo_id, "status": READY},
            [{"$set": {"category_model": {"$ifNull": ["$category_model", "$category"]},
                       "category": {"$literal": category}, "updated_at": now()}}],
            return_document=ReturnDocument.AFTER,
        )

    # --- tags ---------------------------------------------------------------------------------------

    async def accept_tags(self, photo_id: ObjectId, tags: Sequence[str]) -> Doc | None:
        """Accepted tags make the photo findable by tag and feed neighbours' suggestions; raises
        TagLimitExceeded past MAX_TAGS_PER_PHOTO, also when a concurrent review got there first."""

        def change(accepted: list[str], rejected: list[str]) -> tuple[list[str], list[str]]:
            merged = list(dict.fromkeys([*accepted, *tags]))
            if len(merged) > MAX_TAGS_PER_PHOTO:
                raise TagLimitExceeded(f"a photo has at most {MAX_TAGS_PER_PHOTO} tags")
            return merged, [t for t in rejected if t not in tags]

        return await self._review_tags(photo_id, change)

    async def reject_tags(self, photo_id: ObjectId, tags: Sequence[str]) -> Doc | None:
        """The rejected list only hides suggestions, so it keeps the MAX_REJECTED_TAGS most recent
        rather than growing the document without bound."""

        def change(accepted: list[str], rejected: list[str]) -> tuple[list[str], list[str]]:
            kept = [t for t in rejected if t not in tags] + list(dict.fromkeys(tags))
            return [t for t in accepted if t not in tags], kept[-MAX_REJECTED_TAGS:]

        return await self._review_tags(photo_id, change)

    async def _review_tags(self, photo_id: ObjectId, change: TagChange) -> Doc | None:
        """Compare-and-set: the write applies only while both lists are as read, so reviews racing each
        other cannot together pass a cap; the one that lost re-reads and recomputes."""
        for _ in range(TAG_WRITE_ATTEMPTS):
            doc = await self.collection.find_one({"_id": photo_id, **NOT_DELETED}, {"tags": 1, "rejected_tags": 1})
            if doc is None:
                return None
            accepted, rejected = change(list(doc.get("tags", [])), list(doc.get("rejected_tags", [])))
            updated = await self.collection.find_one_and_update(
                {"_id": photo_id, **NOT_DELETED, **_as_read(doc, "tags"), **_as_read(doc, "rejected_tags")},
                {"$set": {"tags": accepted, "rejected_tags": rejected, "updated_at": now()}},
                return_document=ReturnDocument.AFTER,
            )
            if updated is not None:
                return updated
        raise TagReviewConflict(f"photo {photo_id}: {TAG_WRITE_ATTEMPTS} concurrent tag reviews in a row")

    # --- ingest: status transitions and neighbour lists ---------------------------------------------

    async def mark_ready(self, ready: Sequence[tuple[ObjectId, ReadyFields]], k: int) -> ReadyWrites:
        """A batch's PROCESSING -> READY writes in one round trip.

        Each write is conditional on PROCESSING, so a photo another worker finished first is left alone;
        when not every write matched, the batch's `ingest_token` tells which ones were ours. Each is a
        pipeline update, so the kept list merges with offers that arrived while the photo was processed
        (a concurrent batch that saw it in the vector index) instead of overwriting them.
        """
        token = secrets.token_hex(8)
        stamp = now()
        operations = []
        for photo_id, fields in ready:
            values = {**fields.doc(stamp), "ingest_token": token}
            kept = values.pop("neighbours")
            operations.append(UpdateOne(
                {"_id": photo_id, "status": PROCESSING},
                [{"$set": {**{key: {"$literal": value} for key, value in values.items()},
                           "neighbours": merged_list(kept, k)}}, short_flag_stage(k)],
            ))
        ids = [photo_id for photo_id, _ in ready]
        failed: dict[ObjectId, str] = {}
        try:
            matched = (await self.collection.bulk_write(operations, ordered=False)).matched_count
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                failed[ids[error["index"]]] = f"READY write failed: {error.get('errmsg', error)}"
            matched = -1
        if matched == len(ids):
            return ReadyWrites(mine=set(ids), at=stamp)
        mine = {d["_id"] async for d in self.collection.find({"_id": {"$in": ids}, "ingest_token": token},
                                                             {"_id": 1})}
        return ReadyWrites(mine=mine, at=stamp, failed=failed)

    async def mark_failed(self, photo_id: ObjectId, reason: str) -> bool:
        """PROCESSING -> FAILED with the reason (shortened: it is shown to the owner)."""
        stamp = now()
        result = await self.collection.update_one(
            {"_id": photo_id, "status": PROCESSING},
            {"$set": {"status": FAILED, "failure": {"reason": reason[:500], "at": stamp}, "updated_at": stamp}},
        )
        return result.modified_count == 1

    async def offer_neighbours(self, offers: Mapping[ObjectId, Sequence[Doc]], k: int) -> None:
        """Merge entries into photos' kept lists (photo id -> entries offered to its list): one atomic
        pipeline update per list, all in one round trip. Repeating it changes nothing."""
        if offers:
            await self.collection.bulk_write([UpdateOne({"_id": photo_id, **NOT_DELETED}, list_update(entries, k))
                                              for photo_id, entries in offers.items()], ordered=False)

    async def short_lists(self, vector_collection: str, *, limit: int) -> list[Doc]:
        """READY photos of a vector collection whose kept list is short of k (`_id`, `neighbours`)."""
        return await self.collection.find(
            {"neighbours_short": True, "vector_collection": vector_collection, "status": READY},
            {"_id": 1, "neighbours": 1},
        ).limit(limit).to_list(None)

    async def flag_short_lists(self, k: int, params: NeighbourListParams) -> int:
        """Make `neighbours_short` right for the k in force, at process start; returns how many changed.

        Two cases leave it wrong: READY photos made before the flag existed have none (a short list among
        them would never be found, so never filled), and a change of k (lists full under the old k are
        short under a larger one). While k is unchanged only photos without a flag are read (none, once
        done); after a change every READY photo is.
        """
        previous = await params.flagged_for()
        query: Doc = {"status": READY}
        if previous == k:
            query["neighbours_short"] = {"$exists": False}
        with long_work():  # at start, over every READY photo the first time
            changed = (await self.collection.update_many(query, [short_flag_stage(k)])).modified_count
        await params.record(k)
        if changed:
            log.info("photos.short_flags_set", photos=changed, k=k, previous_k=previous)
        return changed

    # --- reindex ------------------------------------------------------------------------------------

    async def ready_photos(self) -> list[Doc]:
        """Every READY photo, oldest id first, read batch by batch (each under its own deadline)."""
        return [doc async for doc in self.collection.find({"status": READY}, batch_size=SCAN_BATCH).sort("_id", 1)]

    async def replace_neighbours(self, photo_id: ObjectId, entries: Sequence[Doc], vector_collection: str,
                                 k: int) -> None:
        """A list recomputed against a complete vector collection (reindex): replaces the kept one."""
        await self.collection.update_one({"_id": photo_id}, [
            {"$set": {"neighbours": {"$literal": list(entries)}, "vector_collection": vector_collection,
                      "updated_at": now()}},
            short_flag_stage(k),
        ])

    # --- ratings (the projector's) ------------------------------------------------------------------

    async def rating_inputs(self, ids: Sequence[ObjectId]) -> dict[ObjectId, Doc]:
        """What the rating projector needs of a batch's photos: rating, celebrity flags, prior."""
        cursor = self.collection.find({"_id": {"$in": list(set(ids))}},
                                      {"rating": 1, "rating_seq": 1, "celebrity": 1, "quality": 1})
        return {d["_id"]: d async for d in cursor}

    async def owners_and_ratings(self, ids: Sequence[ObjectId]) -> dict[ObjectId, Doc]:
        """What the voter screening compares votes with: each photo's owner and settled rating."""
        cursor = self.collection.find({"_id": {"$in": list(set(ids))}}, {"owner": 1, "rating": 1})
        return {d["_id"]: d async for d in cursor}

    async def write_ratings(self, seq: int, ratings: Mapping[ObjectId, Doc]) -> int:
        """The projector's write of batch `seq`: each photo's rating, unless batch `seq` or a later
        one wrote it already (a repeat after a crash changes nothing). One round trip."""
        if not ratings:
            return 0
        # `$not: {$gte}` also matches a photo without rating_seq; an `$or` would make the embedded server
        # scan the collection for every update (150 ms at 20,000 photos against 0.5 ms)
        ops = [UpdateOne({"_id": pid, "rating_seq": {"$not": {"$gte": seq}}},
                         {"$set": {"rating": fields, "rating_seq": seq}}) for pid, fields in ratings.items()]
        # journaled: the next batch is computed from these ratings, so a crash must not roll them back
        result = await journaled(self.collection).bulk_write(ops, ordered=False)
        return result.modified_count

    async def priors(self) -> dict[ObjectId, float | None]:
        """Every rated photo's model quality score: where a replay of the vote log starts."""
        cursor = self.collection.find({"rating": {"$exists": True}}, {"quality.score": 1}, batch_size=SCAN_BATCH)
        return {d["_id"]: (d.get("quality") or {}).get("score") async for d in cursor}

    async def stored_ratings(self) -> dict[ObjectId, Doc]:
        cursor = self.collection.find({"rating": {"$exists": True}}, {"rating": 1}, batch_size=SCAN_BATCH)
        return {d["_id"]: d["rating"] async for d in cursor}

    async def overwrite_rating(self, photo_id: ObjectId, fields: Doc, seq: int) -> bool:
        """`photoduel ratings rebuild`: the replayed rating, stamped with the last batch replayed."""
        result = await self.collection.update_one({"_id": photo_id, "rating": {"$ne": fields}},
                                                  {"$set": {"rating": fields, "rating_seq": seq}})
        return result.modified_count == 1

    async def ids_with_faces(self) -> list[ObjectId]:
        """Photos to match again after the celebrity gallery changed (their descriptors are stored)."""
        cursor = self.collection.find({"faces_count": {"$gt": 0}}, {"_id": 1}, batch_size=SCAN_BATCH)
        return [d["_id"] async for d in cursor]

    async def processing_created_before(self, cutoff: datetime) -> list[ObjectId]:
        """PROCESSING photos older than `cutoff`: candidates for an ingest job lost between two writes."""
        cursor = self.collection.find({"status": PROCESSING, "created_at": {"$lt": cutoff}}, {"_id": 1})
        return [d["_id"] async for d in cursor]

    async def count_processing(self, ids: Sequence[ObjectId]) -> int:
        """How many of these photos ingest has not finished yet (a command waits for its own uploads)."""
        return await self.collection.count_documents({"_id": {"$in": list(ids)}, "status": PROCESSING})

    async def count_all(self) -> int:
        """Every photo, whatever its state: `photoduel demo` seeds only an install that has none."""
        return await self.collection.count_documents({})

    # --- deletion: the tombstone, then what the deletion job removes ---------------------------------

    async def tombstone(self, photo_id: ObjectId, *, by: str) -> Doc | None:
        """Make the photo a tombstone in one conditional write, so it leaves every read at once. Returns
        the tombstone, the first one when it was one already (a repeat changes nothing); None when there
        is no such photo. `by`: owner, admin or account (an erasure)."""
        made = await self.collection.find_one_and_update({"_id": photo_id, **NOT_DELETED}, _tombstone(now(), by),
                                                         return_document=ReturnDocument.AFTER)
        return made or await self.collection.find_one({"_id": photo_id, "status": DELETED})

    async def tombstone_many(self, photo_ids: Sequence[ObjectId], *, by: str) -> int:
        """These photos tombstones (`tombstone`'s conditional write for each, in one call); how many were
        not one yet. Unknown ids are a no-op."""
        if not photo_ids:
            return 0
        result = await self.collection.update_many({"_id": {"$in": list(photo_ids)}, **NOT_DELETED},
                                                   _tombstone(now(), by))
        return result.modified_count

    async def tombstone_owned(self, owner: str, *, by: str) -> int:
        """Every photo of an owner a tombstone (conditional writes, one per document, in one call); how
        many were not one yet."""
        result = await self.collection.update_many({"owner": owner, **NOT_DELETED}, _tombstone(now(), by))
        return result.modified_count

    async def unfinished_deletions(self, *, ids: Sequence[ObjectId] | None = None, owner: str | None = None,
                                   limit: int = 0) -> list[Doc]:
        """Tombstones whose traces are not all removed yet, among `ids` or of `owner`: `_id`, owner and
        where the traces are (`TOMBSTONE_PENDING`)."""
        query: Doc = {"status": DELETED, "deletion.finished_at": {"$exists": False}}
        if ids is not None:
            query["_id"] = {"$in": list(ids)}
        if owner is not None:
            query["owner"] = owner
        cursor = self.collection.find(query, dict.fromkeys(("owner", *TOMBSTONE_PENDING), 1))
        return await (cursor.limit(limit) if limit else cursor).to_list(None)

    async def pull_from_neighbour_lists(self, ids: Sequence[ObjectId], k: int) -> list[Doc]:
        """Take these photos out of every kept list holding them, flagging those lists short; returns the
        photos whose lists held them (`_id`, `vector_collection`), so they can be refilled. Finding them
        is a scan of the collection, under the long deadline: an index on list entries would cost every
        list write on the ingest path, for the sake of a rare deletion."""
        if not ids:
            return []
        with long_work():
            holders = await self.collection.find({"neighbours.id": {"$in": list(ids)}, **NOT_DELETED},
                                                 {"vector_collection": 1}).to_list(None)
        if holders:
            await self.collection.update_many({"_id": {"$in": [h["_id"] for h in holders]}}, list_without(ids, k))
        return holders

    async def finish_deletion(self, ids: Sequence[ObjectId]) -> int:
        """Tombstones whose traces are removed: down to what they keep for good (anything a write racing
        the deletion put back goes too), stamped `deletion.finished_at`."""
        if not ids:
            return 0
        result = await self.collection.update_many(
            {"_id": {"$in": list(ids)}, "status": DELETED},
            [{"$project": dict.fromkeys(TOMBSTONE_KEEPS, 1)}, {"$set": {"deletion.finished_at": now()}}])
        return result.modified_count

    async def anonymise_owner(self, owner: str, anonymous: str) -> int:
        """An erased account's finished tombstones carry a random id instead of its uid (the same one its
        votes get, so the voter screening's "own photo" test still reads the log as it was)."""
        result = await self.collection.update_many(
            {"owner": owner, "status": DELETED, "deletion.finished_at": {"$exists": True}},
            {"$set": {"owner": anonymous}})
        return result.modified_count


# What a tombstone keeps for good: who may ask for the deletion again, the placeholder hash, and the rating
# and prior a replay of the vote log needs.
TOMBSTONE_KEEPS = ("owner", "status", "deletion", "sha256", "created_at", "updated_at", "ready_at", "rating",
                   "rating_seq", "quality.score")
# What it keeps until the deletion job is done: where the rest is to be removed from.
TOMBSTONE_PENDING = ("blobs", "vector_collection", "group_id")


def _tombstone(at: datetime, by: str) -> list[Doc]:
    """The pipeline that makes a photo its tombstone. `ready_at` is stamped so that matchmaking's
    catalogues, which poll it for new photos, see the photo leave within seconds in every process."""
    return [
        {"$set": {"status": DELETED, "deletion": {"at": at, "by": {"$literal": by}}, "ready_at": at, "updated_at": at,
                  "sha256": {"$concat": ["deleted:", {"$toString": "$_id"}]}}},
        {"$project": dict.fromkeys((*TOMBSTONE_KEEPS, *TOMBSTONE_PENDING), 1)},
    ]
