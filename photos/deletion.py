"""Deleting a photo (`deletePhoto`): a tombstone at once, then a keyed job that removes its traces.

The request makes two writes. First the job (`photo_deletion:<id>`, durable), then the tombstone: one
conditional write after which the photo is in no list, search, similar photos, featured set or duel,
and its image URLs answer 404 (every public read asks for READY; the vote re-reads both photos of its
ticket, so a ticket drawn before the deletion is refused). This process's matchmaking catalogue drops
it at once, the others' at their next poll (`gaming.duels.catalogue`). Were the request to die between
the two writes, the job makes the tombstone itself; the other order could leave a tombstone whose
traces no job would ever remove. The photo's similarity group is summarised again before the request
answers (`refresh_groups`), so the group listing drops it at once too (the tombstone keeps `group_id`
until the job has taken it out of the group).

Who may: the owner and admins. Another user gets FORBIDDEN for a photo they can see, and not-found for
one they cannot (one still processing, or deleted already): its existence is not told. A repeated
deletion (a client retrying) answers what the first did.

The job removes the traces (`photos.traces`); its votes stay in the log, so every other photo's
rating is what a replay of the log gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from bson import ObjectId

from photos.editing import NotPhotoOwner, PhotoNotFound
from photos.group_listing import RefreshGroups, no_refresh
from photos.queries import Viewer, visible
from photos.traces import PhotoTraces
from storage.base import Doc, parse_object_id
from storage.jobs import Defer, Done, Job, JobQueue, Outcome
from storage.photos import DELETED, PhotoRepository

__all__ = ["PHOTO_DELETION", "Deletion", "NotPhotoOwner", "PhotoDeletion", "PhotoDeletionHandler",
           "PhotoNotFound", "deletion_job_key"]

log = structlog.get_logger(__name__)

PHOTO_DELETION = "photo_deletion"
# A photo whose ingest or face check is running is looked at again after this long.
BUSY_RETRY_SECONDS = 2.0


def deletion_job_key(photo_id: ObjectId) -> str:
    return f"{PHOTO_DELETION}:{photo_id}"


@dataclass(frozen=True)
class Deletion:
    """What a deletion answers, the same every time it is asked for."""

    photo_id: ObjectId
    deleted_at: datetime


def deletion_of(tombstone: Doc) -> Deletion:
    return Deletion(photo_id=tombstone["_id"], deleted_at=tombstone["deletion"]["at"])


class PhotoDeletion:
    def __init__(self, photos: PhotoRepository, jobs: JobQueue, traces: PhotoTraces, *,
                 on_deleted: Callable[[ObjectId], None] = lambda photo_id: None,
                 on_enqueued: Callable[[], None] = lambda: None, refresh_groups: RefreshGroups = no_refresh) -> None:
        """`on_deleted`: the photo leaves this process's duel catalogue; `on_enqueued`: wakes its worker;
        `refresh_groups`: its similarity group is summarised again (`photos.group_listing`)."""
        self.photos = photos
        self.jobs = jobs
        self.traces = traces
        self.on_deleted = on_deleted
        self.on_enqueued = on_enqueued
        self.refresh_groups = refresh_groups

    async def delete(self, viewer: Viewer, photo_id: str) -> Deletion:
        """Raises PhotoNotFound, NotPhotoOwner."""
        oid = parse_object_id(photo_id)
        doc = await self.photos.get(oid) if oid is not None else None
        if doc is None:
            raise PhotoNotFound(photo_id)
        if not viewer.admin and doc["owner"] != viewer.uid:
            raise PhotoNotFound(photo_id) if not visible(doc, viewer) else NotPhotoOwner(photo_id)
        if doc["status"] == DELETED:
            return deletion_of(doc)
        by = "owner" if doc["owner"] == viewer.uid else "admin"
        await self.jobs.enqueue(PHOTO_DELETION, {"photo_id": str(doc["_id"]), "by": by},
                                key=deletion_job_key(doc["_id"]), durable=True)
        tombstone = await self.photos.tombstone(doc["_id"], by=by)
        if tombstone is None:  # gone between the read and the write (never expected: tombstones stay)
            raise PhotoNotFound(photo_id)
        self.on_deleted(doc["_id"])
        await self.refresh_groups([tombstone])
        self.on_enqueued()
        log.info("photo.deletion_requested", photo=str(doc["_id"]), by=by)
        return deletion_of(tombstone)

    async def finish(self, jobs: Sequence[Job]) -> dict[Any, Outcome]:
        """The deletion jobs of a batch of photos: their traces removed together (a few scans for the batch,
        not per photo). A photo whose ingest or face check runs is deferred."""
        wanted: dict[ObjectId, Job] = {}
        by_whom: dict[str, list[ObjectId]] = {}
        results: dict[Any, Outcome] = {}
        for job in jobs:
            oid = parse_object_id(str(job.payload.get("photo_id", "")))
            if oid is None:
                results[job.id] = Done({"skipped": "not a photo id"})
                continue
            wanted[oid] = job
            by_whom.setdefault(str(job.payload.get("by", "owner")), []).append(oid)
        # the request may have died before its tombstone write: the job's existence is the intent
        for by, ids in by_whom.items():
            await self.photos.tombstone_many(ids, by=by)
        removed = await self.traces.remove(await self.photos.unfinished_deletions(ids=list(wanted)))
        busy = set(removed.busy)
        for oid, job in wanted.items():
            if oid in busy:
                results[job.id] = Defer(delay=BUSY_RETRY_SECONDS, reason="its ingest or face check is running")
            else:
                results[job.id] = Done({"photo": str(oid)})
        return results


class PhotoDeletionHandler:
    """Job handler for kind "photo_deletion"."""

    kind = PHOTO_DELETION

    def __init__(self, deletion: PhotoDeletion, *, batch_size: int) -> None:
        self.deletion = deletion
        self.batch_size = batch_size

    async def handle(self, jobs: Sequence[Job]) -> Mapping[Any, Outcome]:
        return await self.deletion.finish(jobs)
