"""Image bytes in GridFS: originals and the renditions served to clients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pymongo
from bson import ObjectId
from gridfs import AsyncGridFSBucket, NoFile
from pymongo.asynchronous.database import AsyncDatabase

BUCKET = "images"
# The slowest transfer a blob write is allowed before its deadline: the client's per-call deadline is
# sized for small documents, a 25 MB original is one 25 MB insert of its chunks.
MIN_BLOB_BYTES_PER_SECOND = 1024 * 1024


class BlobNotFound(KeyError):
    pass


class BlobStore:
    """GridFS blobs.

    ``indexes_ensured``: the bucket's two indexes exist (``storage.mongo.INDEXES`` holds them and the
    service creates them at start). PyMongo otherwise checks for them before every file it writes, with a
    ``find_one`` on the files and on the chunks collection: two round trips per blob, four blobs per
    upload. Worse, a server without an early-stopping collection scan (SecantusDB decodes every chunk
    for it) makes each upload cost time in proportion to all the image bytes stored.
    """

    def __init__(self, db: AsyncDatabase[dict[str, Any]], bucket_name: str = BUCKET, *,
                 indexes_ensured: bool = False) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=bucket_name)
        self._files = db[f"{bucket_name}.files"]
        self._chunks = db[f"{bucket_name}.chunks"]
        self._indexes_ensured = indexes_ensured
        self._call_timeout: float | None = db.client.options.timeout

    async def put(self, data: bytes, *, filename: str, content_type: str, metadata: dict[str, Any]) -> ObjectId:
        if not self._call_timeout:
            return await self._put(data, filename=filename, content_type=content_type, metadata=metadata)
        # The client's deadline plus time for the bytes, for the whole write (chunks, then the file).
        with pymongo.timeout(self._call_timeout + len(data) / MIN_BLOB_BYTES_PER_SECOND):
            return await self._put(data, filename=filename, content_type=content_type, metadata=metadata)

    async def _put(self, data: bytes, *, filename: str, content_type: str, metadata: dict[str, Any]) -> ObjectId:
        stream = self._bucket.open_upload_stream(filename, metadata={**metadata, "content_type": content_type})
        if self._indexes_ensured:
            # PyMongo's per-stream flag (no public switch). Were it renamed, this sets an unused attribute
            # and PyMongo goes back to checking: slower, never wrong.
            object.__setattr__(stream, "_ensured_index", True)
        async with stream:
            await stream.write(data)
        file_id: ObjectId = stream._id
        return file_id

    async def get(self, blob_id: ObjectId) -> bytes:
        # Chunks are read batch by batch, each batch under the client's deadline.
        try:
            stream = await self._bucket.open_download_stream(blob_id)
        except NoFile as exc:
            raise BlobNotFound(str(blob_id)) from exc
        return await stream.read()

    async def delete(self, blob_id: ObjectId) -> None:
        try:
            await self._bucket.delete(blob_id)
        except NoFile:
            pass

    async def delete_many(self, blob_ids: Sequence[ObjectId]) -> int:
        """Several blobs in two writes, whatever their number (GridFS's own delete is two per blob). The
        files go first, as in GridFS's delete, so no blob is ever readable with chunks missing (a call cut
        off between the two leaves chunks nothing reads, as GridFS's would). Missing ids are a no-op; how
        many files went."""
        if not blob_ids:
            return 0
        ids = list(set(blob_ids))
        files = await self._files.delete_many({"_id": {"$in": ids}})
        await self._chunks.delete_many({"files_id": {"$in": ids}})
        return files.deleted_count

    async def delete_owned(self, owner: str) -> int:
        """Every blob stored for an owner, found by the metadata each was written with (a scan of the files
        collection): also those an upload left without a photo document when it failed half-way."""
        ids = [f._id async for f in self._bucket.find({"metadata.owner": owner})]
        await self.delete_many(ids)
        return len(ids)

