"""What an upload must be: the limits and the checks, in the order they run.

An upload is untrusted bytes from the internet, so each step refuses what it can see before the next
one costs more:

1. The request (`api.middleware.BodyLimitMiddleware`): a body over :attr:`UploadRules.max_request_bytes`
   is refused while it streams in, before anything parses it (HTTP 413, PAYLOAD_TOO_LARGE).
2. The mutation's arguments (the upload and enrolment resolvers): :meth:`UploadRules.read_file` (a
   file part, read to at most one byte over the cap, so an oversized file is never held whole) and
   :meth:`UploadRules.title`.
3. The bytes (`photos.uploads.UploadService`, celebrity enrolment): :meth:`UploadRules.decode`, that is
   :func:`ml.images.decode_upload` under these limits: byte count, format sniffed from the content,
   declared content type against it, pixel count from the header, and only then the full decode.

Arguments are refused with :class:`UploadArgumentError`, the bytes with :class:`ml.images.ImageRejected`
(its `reason` is the code clients see). The limits are the settings PHOTODUEL_MAX_UPLOAD_BYTES and
PHOTODUEL_MAX_UPLOAD_PIXELS, read by :meth:`UploadRules.from_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ml.images import DecodedImage, decode_upload

MAX_TITLE = 200
#: Multipart framing and the other operation fields ride on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024


class UploadArgumentError(ValueError):
    """A mutation argument an upload cannot be made from; `argument` names it for the client."""

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


class UploadSettings(Protocol):
    @property
    def max_upload_bytes(self) -> int: ...

    @property
    def max_upload_pixels(self) -> int: ...


@dataclass(frozen=True)
class UploadRules:
    max_bytes: int
    max_pixels: int

    @classmethod
    def from_settings(cls, settings: UploadSettings) -> UploadRules:
        return cls(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels)

    # -- 1. the request ----------------------------------------------------------------------------

    @property
    def max_request_bytes(self) -> int:
        return self.max_bytes + MULTIPART_OVERHEAD_BYTES

    @property
    def request_too_large(self) -> str:
        return (f"request body over the limit of {self.max_request_bytes} bytes "
                f"(uploads are capped by PHOTODUEL_MAX_UPLOAD_BYTES)")

    # -- 2. the arguments --------------------------------------------------------------------------

    async def read_file(self, file: Any, *, argument: str = "file") -> bytes:
        """The file part's bytes, at most one over the cap: enough for step 3 to call it too large."""
        if not hasattr(file, "read"):
            raise UploadArgumentError(f"`{argument}` must be a file part of a multipart request", argument=argument)
        return bytes(await file.read(self.max_bytes + 1))

    def title(self, title: str | None) -> str | None:
        """The title as stored: trimmed, None when blank."""
        if title is None:
            return None
        title = title.strip()
        if len(title) > MAX_TITLE:
            raise UploadArgumentError(f"title is longer than {MAX_TITLE} characters", argument="title")
        return title or None

    # -- 3. the bytes ------------------------------------------------------------------------------

    def decode(self, data: bytes, declared_type: str | None) -> DecodedImage:
        """Blocking (a full decode): run it on a thread."""
        return decode_upload(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, declared_type=declared_type)
