"""photos.upload_rules: the limits and argument checks every upload path shares (no server needed)."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from ml.images import ImageRejected
from photoduel.settings import Settings
from photos.upload_rules import MAX_TITLE, MULTIPART_OVERHEAD_BYTES, UploadArgumentError, UploadRules

RULES = UploadRules(max_bytes=1000, max_pixels=10_000)


class _Part:
    """A multipart file part as strawberry hands it over: something with an async `read(n)`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: int | None = None

    async def read(self, n: int) -> bytes:
        self.asked = n
        return self.data[:n]


def test_limits_come_from_the_settings() -> None:
    settings = Settings(max_upload_bytes=5_000_000, max_upload_pixels=7_000_000)
    rules = UploadRules.from_settings(settings)
    assert (rules.max_bytes, rules.max_pixels) == (5_000_000, 7_000_000)
    assert rules.max_request_bytes == 5_000_000 + MULTIPART_OVERHEAD_BYTES
    assert str(rules.max_request_bytes) in rules.request_too_large
    assert "PHOTODUEL_MAX_UPLOAD_BYTES" in rules.request_too_large


def test_a_file_part_is_read_to_one_byte_over_the_cap_and_no_further() -> None:
    part = _Part(b"x" * 5000)
    data = asyncio.run(RULES.read_file(part))
    assert part.asked == 1001 and len(data) == 1001


def test_an_argument_that_is_not_a_file_part_is_refused_by_name() -> None:
    with pytest.raises(UploadArgumentError) as info:
        asyncio.run(RULES.read_file("not a file"))
    assert info.value.argument == "file"
    assert str(info.value) == "`file` must be a file part of a multipart request"


def test_titles_are_trimmed_blank_is_none_and_long_is_refused() -> None:
    assert RULES.title(None) is None
    assert RULES.title("   ") is None
    assert RULES.title("  Eileen  ") == "Eileen"
    assert RULES.title(" " + "t" * MAX_TITLE + " ") == "t" * MAX_TITLE
    with pytest.raises(UploadArgumentError) as info:
        RULES.title("t" * (MAX_TITLE + 1))
    assert info.value.argument == "title"


def test_decode_applies_the_byte_and_pixel_limits() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 100), (10, 20, 30)).save(buffer, "PNG")
    png = buffer.getvalue()
    roomy = UploadRules(max_bytes=len(png), max_pixels=200 * 100)
    assert roomy.decode(png, "image/png").width == 200
    with pytest.raises(ImageRejected) as too_large:
        UploadRules(max_bytes=len(png) - 1, max_pixels=200 * 100).decode(png, None)
    assert too_large.value.reason == "TOO_LARGE"
    with pytest.raises(ImageRejected) as too_many:
        UploadRules(max_bytes=len(png), max_pixels=200 * 100 - 1).decode(png, None)
    assert too_many.value.reason == "TOO_MANY_PIXELS"
