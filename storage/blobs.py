"""Image bytes in GridFS: originals and the renditions served to clients."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket, NoFile
from pymongo.asynchronous.database import AsyncDatabase


class BlobNotFound(KeyError):
    pass


class BlobStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], bucket_name: str = "images") -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=bucket_name)

    async def put(self, data: bytes, *, filename: str, content_type: str, metadata: dict[str, Any]) -> ObjectId:
        return await self._bucket.upload_from_stream(
            filename, data, metadata={**metadata, "content_type": content_type}
        )

    async def get(self, blob_id: ObjectId) -> bytes:
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
