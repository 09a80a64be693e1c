"""What a deleted photo leaves outside its tombstone, and its removal: the deletion jobs' common step.

A photo's traces: its blobs (GridFS), its rows in the vector index (one per model's collection, an old
one a reindex left included), its place in other photos' kept neighbour lists, its place
in its similarity group and the reports about it (`forget_photo`: collections that keep something per
photo), the notifications about it (in-app records and pending pushes alike), and its votes, which
stay in the log marked as concerning a deleted photo (`storage.votes`): the rating projector and a
replay read them as before, so no other photo's rating moves.

A list that held a deleted photo is refilled at once with the next nearest READY photos (one vector
search for all such lists of a collection), which makes it its exact top k again. Were it left short,
the existing refill would fill it from the next ingest batches (any new photo belongs in a list short
of k), with photos that arrive next rather than the ones that come next in similarity; that refill
remains for a list the search cannot fill (a collection of fewer than k other photos).

Order matters against the two jobs that may still write about a photo: its ingest (a vector row, offers
to other lists, the READY announcement) and its face check. While either is running, the photo is left
for later (`remove` returns it as busy): once neither runs, whatever they wrote is there to be removed,
and a later run of either finds the tombstone and stops before writing anything (the READY write is
conditional on PROCESSING, the face check's on the photo not being a tombstone). Every step is a no-op
when repeated, so a job interrupted anywhere is simply run again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import structlog
from bson import ObjectId

from notifications.outbox import Outbox
from storage.base import Doc, parse_object_id
from storage.blobs import BlobStore
from storage.job_kinds import faces_job_key, ingest_job_key
from storage.jobs import JobQueue
from storage.neighbours import entry
from storage.photos import PhotoRepository
from storage.vectors import PHOTO_VECTORS, VectorIndex
from storage.votes import VoteRepository

log = structlog.get_logger(__name__)

# One collection's removal of what it keeps about these photos.
ForgetPhotos = Callable[[Sequence[ObjectId]], Awaitable[object]]


@dataclass(frozen=True)
class Removed:
    """One removal's outcome: the photos finished, and those left for later (a job still writes about them)."""

    finished: list[ObjectId]
    busy: list[ObjectId]


class PhotoTraces:
    def __init__(self, photos: PhotoRepository, blobs: BlobStore, vectors: VectorIndex, votes: VoteRepository,
                 outbox: Outbox, jobs: JobQueue, *, neighbours_k: int,
                 forget_photo: Sequence[ForgetPhotos] = ()) -> None:
        """`forget_photo`: other collections' removal of what they keep per photo, each called once with all
        the photos of a removal and safe to repeat."""
        self.photos = photos
        self.forget_photo = list(forget_photo)
        self.blobs = blobs
        self.vectors = vectors
        self.votes = votes
        self.outbox = outbox
        self.jobs = jobs
        self.neighbours_k = neighbours_k

    async def remove(self, tombstones: Sequence[Doc]) -> Removed:
        """Remove the traces of these tombstones (`PhotoRepository.unfinished_deletions`), all of them in
        a few calls, and mark them finished; those whose ingest or face check runs now are left alone."""
        busy = await self._busy([t["_id"] for t in tombstones])
        ready = [t for t in tombstones if t["_id"] not in busy]
        ids = [t["_id"] for t in ready]
        if ready:
            await self.blobs.delete_many([blob_id for t in ready for blob_id in (t.get("blobs") or {}).values()])
            await self.vectors.delete_everywhere(PHOTO_VECTORS, [str(i) for i in ids])
            holders = await self.photos.pull_from_neighbour_lists(ids, self.neighbours_k)
            await self._refill(holders)
            for forget in self.forget_photo:
                await forget(ids)
            for owner, owned in _by_owner(ready).items():
                await self.outbox.forget_photos(owner, owned)
            votes = await self.votes.mark_deleted_photos(ids)
            await self.photos.finish_deletion(ids)
            log.info("photos.deleted", photos=[str(i) for i in ids], neighbour_lists=len(holders), votes_marked=votes)
        return Removed(finished=ids, busy=sorted(busy))

    async def _refill(self, holders: Sequence[Doc]) -> None:
        """Offer each list its nearest READY photos: the merge keeps the k most similar, so the list is what
        it held plus the next nearest in place of what left."""
        k = self.neighbours_k
        by_collection: dict[str, list[ObjectId]] = {}
        for holder in holders:
            if holder.get("vector_collection"):
                by_collection.setdefault(holder["vector_collection"], []).append(holder["_id"])
        for collection, members in by_collection.items():
            await self.vectors.load(collection)
            stored = await self.vectors.get_vectors(collection, [str(m) for m in members])
            present = [m for m in members if str(m) in stored]
            if not present:
                continue
            hits = await self.vectors.search(collection, np.stack([stored[str(m)] for m in present]), limit=2 * k + 1)
            found = {oid for row in hits for hit in row if (oid := parse_object_id(hit.id)) is not None}
            ready = await self.photos.ready_ids(sorted(found))
            await self.photos.offer_neighbours({
                member: [entry(oid, hit.similarity) for hit in row
                         if (oid := parse_object_id(hit.id)) in ready and oid != member]
                for member, row in zip(present, hits, strict=True)}, k)

    async def _busy(self, ids: Sequence[ObjectId]) -> set[ObjectId]:
        """The photos whose ingest or face check a live worker holds now."""
        keys = {key: photo_id for photo_id in ids for key in (ingest_job_key(photo_id), faces_job_key(photo_id))}
        return {keys[key] for key in await self.jobs.running(list(keys))}


def _by_owner(tombstones: Sequence[Doc]) -> dict[str, list[ObjectId]]:
    grouped: dict[str, list[ObjectId]] = {}
    for tombstone in tombstones:
        grouped.setdefault(tombstone["owner"], []).append(tombstone["_id"])
    return grouped
