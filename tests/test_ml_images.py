"""Upload validation and renditions, on real encoded files (scikit-image photos and generated images)."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pillow_heif
import pytest
from PIL import ExifTags, Image, ImageCms
from skimage import data as skdata

from ml.images import DecodedImage, ImageRejected, decode_upload, render_variants, sniff_format

MAX_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 50_000_000


def decode(data: bytes, **kwargs: object) -> DecodedImage:
    kwargs.setdefault("max_bytes", MAX_BYTES)
    kwargs.setdefault("max_pixels", MAX_PIXELS)
    return decode_upload(data, **kwargs)  # type: ignore[arg-type]


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def rejected(data: bytes, **kwargs: object) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        decode(data, **kwargs)
    return info.value


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


@pytest.fixture(scope="module")
def astronaut_jpeg(astronaut: Image.Image) -> bytes:
    return encode(astronaut, "JPEG", quality=90)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def tiny_png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header claims width x height (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_markers(jpeg: bytes) -> list[int]:
    """The marker codes of a JPEG's header segments, up to the start of scan."""
    assert jpeg[:2] == b"\xff\xd8"
    markers, pos = [], 2
    while pos < len(jpeg):
        assert jpeg[pos] == 0xFF, f"bad segment at {pos}"
        marker = jpeg[pos + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        (length,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        pos += 2 + length
    return markers


# --- bad inputs, each with its reason ---------------------------------------------------------------


def test_empty_upload_is_empty() -> None:
    err = rejected(b"")
    assert err.reason == "EMPTY"
    assert isinstance(err, ValueError)
    assert "empty" in str(err)


def test_text_bytes_are_not_an_image() -> None:
    err = rejected(b"Hello! This is a plain text file, not a photo.\n" * 20, declared_type="text/plain")
    assert err.reason == "NOT_AN_IMAGE"
    assert "not an image" in str(err)


def test_over_the_byte_cap_is_too_large_before_anything_else(astronaut_jpeg: bytes) -> None:
    err = rejected(astronaut_jpeg, max_bytes=len(astronaut_jpeg) - 1)
    assert err.reason == "TOO_LARGE"
    assert "limit" in str(err)
    # Size is checked before the content is even looked at.
    assert rejected(b"x" * 1000, max_bytes=999).reason == "TOO_LARGE"


def test_truncated_jpeg_cut_in_half(astronaut_jpeg: bytes) -> None:
    err = rejected(astronaut_jpeg[: len(astronaut_jpeg) // 2])
    assert err.reason == "TRUNCATED"
    assert "truncated" in str(err)


def test_jpeg_cut_inside_its_header_is_truncated(astronaut_jpeg: bytes) -> None:
    assert rejected(astronaut_jpeg[:40]).reason == "TRUNCATED"


def test_truncated_png(astronaut: Image.Image) -> None:
    png = encode(astronaut, "PNG")
    assert rejected(png[: len(png) // 2]).reason == "TRUNCATED"


def test_png_header_declaring_900_megapixels_is_refused_before_decoding() -> None:
    bomb = tiny_png_declaring(30_000, 30_000)
    assert len(bomb) < 200
    err = rejected(bomb)
    assert err.reason == "TOO_MANY_PIXELS"
    assert "900.0 megapixels" in str(err) and "limit is 50.0 megapixels" in str(err)


def test_our_header_check_runs_before_decoding() -> None:
    # 60 MP: under Pillow's own bomb limit (179 MP), over ours (50 MP). The pixel data is a few bytes, so
    # a full decode would fail as TRUNCATED; TOO_MANY_PIXELS proves the header was checked first.
    err = rejected(tiny_png_declaring(10_000, 6_000))
    assert err.reason == "TOO_MANY_PIXELS"
    assert "10000x6000" in str(err)
    assert rejected(tiny_png_declaring(100, 60)).reason == "TRUNCATED"


def test_pillows_own_bomb_guard_maps_to_too_many_pixels() -> None:
    # With our cap out of the way, Pillow's DecompressionBombError (over 2x its MAX_IMAGE_PIXELS) fires in
    # Image.open; it must surface as the same reason, not as a 500.
    assert rejected(tiny_png_declaring(30_000, 30_000), max_pixels=10**12).reason == "TOO_MANY_PIXELS"


def test_highly_compressible_big_png_is_too_many_pixels() -> None:
    big = encode(Image.new("1", (8000, 8000), 0), "PNG")  # 64 MP of black
    assert len(big) < 100_000, len(big)  # small on the wire, 192 MB once decoded to RGB
    err = rejected(big)
    assert err.reason == "TOO_MANY_PIXELS"
    assert "64.0 megapixels" in str(err)


def test_huge_pixel_count_against_a_low_cap(astronaut_jpeg: bytes) -> None:
    assert rejected(astronaut_jpeg, max_pixels=512 * 512 - 1).reason == "TOO_MANY_PIXELS"
    assert decode(astronaut_jpeg, max_pixels=512 * 512).width == 512


@pytest.mark.parametrize("declared", ["image/png", "text/plain", "image/gif", "application/pdf", "IMAGE/WEBP"])
def test_declared_type_naming_something_else_is_a_mismatch(astronaut_jpeg: bytes, declared: str) -> None:
    err = rejected(astronaut_jpeg, declared_type=declared)
    assert err.reason == "TYPE_MISMATCH"
    assert "image/jpeg" in str(err)


@pytest.mark.parametrize(
    "declared", [None, "", "application/octet-stream", "image/jpeg", "image/jpg", "IMAGE/JPEG; charset=binary"]
)
def test_declared_type_that_agrees_or_says_nothing_is_accepted(astronaut_jpeg: bytes, declared: str | None) -> None:
    assert decode(astronaut_jpeg, declared_type=declared).format == "JPEG"


def test_type_mismatch_is_checked_before_the_pixel_count() -> None:
    assert rejected(tiny_png_declaring(30_000, 30_000), declared_type="image/jpeg").reason == "TYPE_MISMATCH"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_unsupported(astronaut: Image.Image, fmt: str) -> None:
    err = rejected(encode(astronaut.resize((64, 64)), fmt))
    assert err.reason == "UNSUPPORTED_FORMAT"
    assert fmt in str(err)


def test_sniffing_reads_content_not_names() -> None:
    assert sniff_format(b"\xff\xd8\xff\xe0rest") == "JPEG"
    assert sniff_format(b"\x89PNG\r\n\x1a\nrest") == "PNG"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert sniff_format(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic") == "HEIF"
    assert sniff_format(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf") == "AVIF"
    assert sniff_format(b"just text") is None


# --- happy paths ------------------------------------------------------------------------------------


def test_jpeg_decodes_to_rgb_with_hash(astronaut_jpeg: bytes) -> None:
    decoded = decode(astronaut_jpeg, declared_type="image/jpeg")
    assert (decoded.format, decoded.mime, decoded.width, decoded.height) == ("JPEG", "image/jpeg", 512, 512)
    assert decoded.image.mode == "RGB"
    assert decoded.sha256 == hashlib.sha256(astronaut_jpeg).hexdigest()


def test_png_with_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((40, 60, 4), dtype=np.uint8)
    rgba[:, :30] = (200, 20, 20, 255)  # opaque red left half, fully transparent right half
    decoded = decode(encode(Image.fromarray(rgba, "RGBA"), "PNG"), declared_type="image/png")
    assert decoded.format == "PNG" and decoded.image.mode == "RGB"
    assert decoded.image.getpixel((5, 5)) == (200, 20, 20)
    assert decoded.image.getpixel((55, 5)) == (255, 255, 255)


def test_palette_png_with_transparency() -> None:
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    img.paste(1, (0, 0, 10, 20))
    decoded = decode(encode(img, "PNG", transparency=0))
    assert decoded.image.getpixel((2, 2)) == (10, 200, 10)
    assert decoded.image.getpixel((15, 2)) == (255, 255, 255)


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    grey16 = np.full((16, 16), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    decoded = decode(encode(Image.fromarray(grey16), "PNG"))
    assert abs(decoded.image.getpixel((3, 3))[0] - 128) <= 1


def test_cmyk_jpeg_becomes_rgb(astronaut: Image.Image) -> None:
    decoded = decode(encode(astronaut.convert("CMYK"), "JPEG", quality=90))
    assert decoded.image.mode == "RGB"
    original = np.asarray(astronaut, dtype=np.float64)
    assert np.abs(np.asarray(decoded.image, dtype=np.float64) - original).mean() < 12


def test_webp_lossy_and_lossless(astronaut: Image.Image) -> None:
    for params in ({"quality": 80}, {"lossless": True}):
        decoded = decode(encode(astronaut, "WEBP", **params), declared_type="image/webp")
        assert (decoded.format, decoded.mime, decoded.image.size) == ("WEBP", "image/webp", (512, 512))


def test_heif_round_trip(astronaut: Image.Image) -> None:
    pillow_heif.register_heif_opener()  # this wheel ships the x265 encoder, so HEIC can be written here
    heic = encode(astronaut, "HEIF", quality=80)
    decoded = decode(heic, declared_type="image/heic")
    assert (decoded.format, decoded.mime, decoded.image.size, decoded.image.mode) == (
        "HEIF",
        "image/heic",
        (512, 512),
        "RGB",
    )
    assert np.abs(np.asarray(decoded.image, np.float64) - np.asarray(astronaut, np.float64)).mean() < 10
    assert decode(heic, declared_type="image/heif").format == "HEIF"
    assert rejected(heic, declared_type="image/jpeg").reason == "TYPE_MISMATCH"


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (120, 80), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # red marker in the stored top-left corner
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90 degrees clockwise to display"
    decoded = decode(encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    assert decoded.image.size == (80, 120)
    assert decoded.image.getpixel((75, 5))[0] > 200  # the marker is now top-right
    assert decoded.image.getpixel((5, 5))[2] > 200


# --- renditions -------------------------------------------------------------------------------------


def photo_with_gps_and_orientation() -> bytes:
    """A phone-like JPEG: rotated via EXIF orientation 6, carrying GPS, a comment and an ICC profile."""
    img = Image.fromarray(skdata.chelsea())  # 451 x 300
    img.paste((255, 0, 0), (0, 0, 40, 40))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "PhoneCo"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.0)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description>home</rdf:Description></rdf:RDF></x:xmpmeta>'
    return encode(img, "JPEG", quality=92, exif=exif.tobytes(), icc_profile=icc, comment=b"shot at home", xmp=xmp)


def test_upload_really_carries_gps() -> None:
    with Image.open(io.BytesIO(photo_with_gps_and_orientation())) as src:
        exif = src.getexif()
        assert exif[ExifTags.Base.Orientation] == 6
        assert exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
        assert "icc_profile" in src.info and src.info.get("comment") == b"shot at home"
        assert b"xmpmeta" in src.info.get("xmp", b"")


def test_renditions_carry_no_metadata_and_are_rotated() -> None:
    decoded = decode(photo_with_gps_and_orientation(), declared_type="image/jpeg")
    assert decoded.image.size == (300, 451)  # upright: portrait
    variants = render_variants(decoded.image, display_max_side=200, thumbnail_max_side=64)
    assert set(variants) == {"original", "display", "thumbnail"}
    expected_sizes = {"original": (300, 451), "display": (133, 200), "thumbnail": (43, 64)}
    for name, rendition in variants.items():
        assert rendition.mime == "image/jpeg"
        assert (rendition.width, rendition.height) == expected_sizes[name], name
        # No APP1 (EXIF, XMP), APP2 (ICC), APP13 (IPTC) or any other APPn but JFIF's APP0, and no comment.
        markers = jpeg_markers(rendition.data)
        assert not [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE], (name, [hex(m) for m in markers])
        assert b"Exif" not in rendition.data and b"PhoneCo" not in rendition.data and b"xmpmeta" not in rendition.data
        with Image.open(io.BytesIO(rendition.data)) as served:
            assert served.format == "JPEG"
            assert served.size == expected_sizes[name]
            assert len(served.getexif()) == 0
            assert not {"exif", "icc_profile", "comment", "xmp"} & set(served.info)
            # Rotated: the red marker (stored top-left) is at the top-right, upright as the phone showed it.
            w, h = served.size
            r, g, b = served.convert("RGB").getpixel((w - 1 - w // 40, h // 40))
            assert r > 180 and g < 90 and b < 90, (name, (r, g, b))


def test_renditions_are_never_upscaled() -> None:
    small = Image.new("RGB", (100, 50), (30, 60, 90))
    variants = render_variants(small, display_max_side=2048, thumbnail_max_side=400)
    assert {k: (v.width, v.height) for k, v in variants.items()} == {
        "original": (100, 50),
        "display": (100, 50),
        "thumbnail": (100, 50),
    }


def test_rendition_quality_ladder(astronaut: Image.Image) -> None:
    variants = render_variants(astronaut, display_max_side=512, thumbnail_max_side=512)
    # Same pixels, decreasing JPEG quality: 90 > 85 > 80.
    assert len(variants["original"].data) > len(variants["display"].data) > len(variants["thumbnail"].data)
    with Image.open(io.BytesIO(variants["original"].data)) as served:
        diff = np.abs(np.asarray(served, np.float64) - np.asarray(astronaut, np.float64)).mean()
    assert diff < 4


def test_the_analysis_decode_is_reduced_but_never_below_twice_clips_input(astronaut: Image.Image) -> None:
    """A 2048 px display rendition decodes at 1024 px (JPEG DCT scaling); small ones stay as they are."""
    from ml.pipelines.display_image import ANALYSIS_SHORTEST_SIDE, decode_for_analysis

    def jpeg(size: tuple[int, int]) -> bytes:
        out = io.BytesIO()
        astronaut.resize(size).save(out, "JPEG", quality=90)
        return out.getvalue()

    big = decode_for_analysis(jpeg((2048, 1536)))
    assert big.mode == "RGB" and big.size == (1024, 768)
    assert decode_for_analysis(jpeg((2048, 800))).size == (2048, 800)  # halving would go below the floor
    assert decode_for_analysis(jpeg((400, 300))).size == (400, 300)
    assert min(decode_for_analysis(jpeg((4000, 3000))).size) >= ANALYSIS_SHORTEST_SIDE
    png = io.BytesIO()
    astronaut.resize((2048, 1536)).save(png, "PNG")
    assert decode_for_analysis(png.getvalue()).size == (2048, 1536)  # only JPEG has a cheap reduced decode
