"""Waiting, with a count, for the ingest of photos a command has just uploaded (`import --process`, `demo`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bson import ObjectId

from photoduel.progress_bars import Progress
from storage.photos import PhotoRepository


async def wait_for_ingest(photos: PhotoRepository, ids: Sequence[ObjectId], *, poll_seconds: float = 0.5) -> int:
    """Until none of `ids` is PROCESSING any more; how many were still processing at the start.

    Counts these photos, read back from the store, rather than the queue: the queue also holds other
    uploads' jobs and the face checks each ingest adds, and a photo uploaded before (an import run again)
    may be finished already. READY, FAILED or removed meanwhile all count as done."""
    ids = list(dict.fromkeys(ids))
    waiting = await photos.count_processing(ids) if ids else 0
    with Progress("processing", total=waiting, unit="photo") as bar:
        remaining = waiting
        while remaining:
            await asyncio.sleep(poll_seconds)
            remaining = await photos.count_processing(ids)
            bar.advance_to(waiting - remaining)
    return waiting
