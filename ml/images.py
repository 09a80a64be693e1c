"""Upload validation and the renditions we serve.

An upload is untrusted bytes from the internet, so every check that can refuse it cheaply runs before
the expensive one: byte count, then the format sniffed from the content (never from the file name or
the client's Content-Type), then the declared type, then the pixel count read from the header, and
only then the full decode. A 40 KB PNG can declare 30000 x 30000 pixels; decoding it would allocate
gigabytes, which is why the pixel guard reads the header first.

What we serve is always re-encoded from decoded pixels into a fresh image object: no EXIF (GPS!),
XMP, IPTC, ICC profile or comment from the upload can leak into a public rendition. Colours are
converted to sRGB first, so dropping the ICC profile does not shift them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

__all__ = [
    "DecodedImage",
    "ImageRejected",
    "Rendition",
    "decode_upload",
    "render_variants",
    "sniff_format",
]

SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "HEIF")

MIME_BY_FORMAT: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIF": "image/heic",
}

# Content-Type values clients actually send for the formats we accept. Browsers and phone SDKs disagree
# on the spelling, so several map to one format.
_FORMAT_BY_DECLARED_TYPE: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/png": "PNG",
    "image/x-png": "PNG",
    "image/apng": "PNG",
    "image/webp": "WEBP",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
    "image/heic-sequence": "HEIF",
    "image/heif-sequence": "HEIF",
}

# Declarations that say nothing about the content: multipart clients send these when they do not know.
_NO_DECLARATION: frozenset[str] = frozenset({"", "application/octet-stream", "binary/octet-stream"})

# ISO-BMFF brands. HEIC/HEIF stills are accepted; AVIF shares the container but not the codec.
_HEIF_BRANDS: frozenset[bytes] = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2"}
)
_AVIF_BRANDS: frozenset[bytes] = frozenset({b"avif", b"avis"})

# Magic numbers of image formats we recognise but refuse, so the client hears "unsupported" rather than
# "not an image".
_UNSUPPORTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"qoif", "QOI"),
)

_JPEG_QUALITY: dict[str, int] = {"original": 90, "display": 85, "thumbnail": 80}


class ImageRejected(ValueError):
    """An upload we refuse. ``reason`` is a stable machine code the API passes to clients.

    Codes: EMPTY, TOO_LARGE, NOT_AN_IMAGE, UNSUPPORTED_FORMAT, TRUNCATED, TOO_MANY_PIXELS, TYPE_MISMATCH.
    ``str()`` is a sentence a person can act on.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ImageRejected({self.reason!r}, {self.message!r})"


@dataclass(frozen=True)
class DecodedImage:
    """A validated upload: pixels upright (EXIF orientation applied), RGB, sRGB."""

    image: Image.Image
    format: str  # JPEG | PNG | WEBP | HEIF
    mime: str
    width: int
    height: int
    sha256: str  # of the raw uploaded bytes: same bytes, same photo


@dataclass(frozen=True)
class Rendition:
    """One encoded variant as served to the public."""

    data: bytes
    mime: str
    width: int
    height: int


@functools.cache
def _register_heif() -> None:
    # Registering an opener mutates Pillow's plugin table; doing it once, on first use, keeps importing
    # this module free of side effects.
    import pillow_heif

    pillow_heif.register_heif_opener()


def sniff_format(data: bytes) -> str | None:
    """Name the image format from the leading bytes: one of SUPPORTED_FORMATS, another format's name,
    or None when the bytes start like no image we know."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[:4], "big"), len(data), 256)
        brands = {head[8:12]} | {data[i : i + 4] for i in range(16, box_end - 3, 4)}
        if head[8:12] in _AVIF_BRANDS:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
        if brands & _AVIF_BRANDS:
            return "AVIF"
        return None
    for magic, name in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            return name
    return None


def _identify_other(data: bytes) -> str | None:
    """Ask Pillow whether bytes we did not recognise are some other image format it can read."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return str(img.format or "unknown")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _declared_format(declared_type: str | None) -> str:
    """The format a Content-Type names, "" for no declaration, or the raw type when it names no image
    format we accept."""
    if declared_type is None:
        return ""
    main = declared_type.split(";", 1)[0].strip().lower()
    if main in _NO_DECLARATION:
        return ""
    return _FORMAT_BY_DECLARED_TYPE.get(main, main)


def _too_many_pixels_from(exc: Image.DecompressionBombError, max_pixels: int) -> ImageRejected:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "too many pixels"
    pillow_limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else max_pixels
    limit = min(max_pixels, pillow_limit)
    return ImageRejected("TOO_MANY_PIXELS", f"The image has {size}; the limit is {limit / 1e6:.1f} megapixels.")


def _fmt_bytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n} bytes"


def _check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ImageRejected("EMPTY", "The upload is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageRejected(
            "TOO_LARGE", f"The upload is {_fmt_bytes(len(data))}; the limit is {_fmt_bytes(max_bytes)}."
        )


def _supported_format(data: bytes) -> str:
    """The format named by the content itself, or ImageRejected when it is none we accept."""
    fmt = sniff_format(data)
    if fmt is None:
        other = _identify_other(data)
        if other is None:
            raise ImageRejected("NOT_AN_IMAGE", "The upload is not an image (JPEG, PNG, WebP or HEIC).")
        fmt = other
    if fmt not in SUPPORTED_FORMATS:
        raise ImageRejected(
            "UNSUPPORTED_FORMAT", f"{fmt} images are not supported; upload a JPEG, PNG, WebP or HEIC photo."
        )
    return fmt


def _check_declared(fmt: str, declared_type: str | None) -> None:
    declared = _declared_format(declared_type)
    if declared and declared != fmt:
        raise ImageRejected(
            "TYPE_MISMATCH",
            f"The upload was declared as {declared_type!r} but its content is {MIME_BY_FORMAT[fmt]}.",
        )


def _open_header(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """Pillow reads only the header here; the pixels stay undecoded until ``load()``."""
    if fmt == "HEIF":
        _register_heif()
    pillow_formats = ["JPEG", "MPO"] if fmt == "JPEG" else [fmt]
    try:
        return Image.open(io.BytesIO(data), formats=pillow_formats)
    except Image.DecompressionBombError as exc:
        # Pillow's own guard (2x Image.MAX_IMAGE_PIXELS) fires inside open(), before we see the size.
        raise _too_many_pixels_from(exc, max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        # The magic bytes said image, but the header cannot be read: the file was cut short or damaged.
        raise ImageRejected("TRUNCATED", f"The {fmt} file is truncated or corrupt ({exc}).") from None


def _check_pixels(img: Image.Image, fmt: str, max_pixels: int) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageRejected("TRUNCATED", f"The {fmt} header declares an empty {width}x{height} image.")
    if width * height > max_pixels:
        raise ImageRejected(
            "TOO_MANY_PIXELS",
            f"The image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
            f"the limit is {max_pixels / 1e6:.1f} megapixels.",
        )


def _decode_upright(img: Image.Image, fmt: str, max_pixels: int) -> Image.Image:
    try:
        img.load()
        return ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels_from(exc, max_pixels) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected("TRUNCATED", f"The {fmt} file is truncated or corrupt ({exc}).") from None


def decode_upload(data: bytes, *, max_bytes: int, max_pixels: int, declared_type: str | None = None) -> DecodedImage:
    """Validate and decode an uploaded photo, or raise ImageRejected with the first problem found.

    Cheap checks first (size, sniffed format, declared type, header pixel count), the full decode last.
    The limits are `photos.upload_rules.UploadRules`'s; this is that module's last step.
    """
    _check_size(data, max_bytes)
    fmt = _supported_format(data)
    _check_declared(fmt, declared_type)
    with _open_header(data, fmt, max_pixels) as img:
        _check_pixels(img, fmt, max_pixels)
        rgb = to_srgb_rgb(_decode_upright(img, fmt, max_pixels))

    return DecodedImage(
        image=rgb,
        format=fmt,
        mime=MIME_BY_FORMAT[fmt],
        width=rgb.width,
        height=rgb.height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def to_srgb_rgb(img: Image.Image) -> Image.Image:
    """Convert any decoded mode to 8-bit sRGB RGB.

    Transparent pixels are composited on white (how a photo with alpha looks on a page); 16-bit and float
    greyscale are scaled, not clipped (a plain convert would turn most 16-bit values into white); an
    embedded ICC profile (CMYK, Display P3) is honoured, so colours survive when the profile is dropped.
    """
    icc = img.info.get("icc_profile")
    if img.mode in _DEEP_GREY_MODES:
        img = _deep_grey_to_l(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode in ("L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    if icc and img.mode in ("RGB", "CMYK", "L"):
        converted = _icc_to_srgb(img, icc)
        if converted is not None:
            return converted
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


_DEEP_GREY_MODES: frozenset[str] = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
# Rows scaled at a time: the float32 copy of a strip stays a few MB however large the image.
_STRIP_ROWS = 256


def _deep_grey_to_l(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale scaled (not clipped) to 8 bits: a strip of rows at a time, in
    float32, into one uint8 buffer. A 50 MP 16-bit image is 100 MB as decoded; one float64 copy of it
    would be 400 MB, and a whole-image expression makes several."""
    arr = np.asarray(img)  # uint16, int32 or float32: the decoded depth, not widened
    peak = arr.max(initial=0)
    top = 255.0 if peak <= 255 else (65535.0 if peak <= 65535 else float(peak))
    scale = np.float32(255.0 / top)
    out = np.empty(arr.shape, dtype=np.uint8)
    for start in range(0, arr.shape[0], _STRIP_ROWS):
        strip = arr[start : start + _STRIP_ROWS].astype(np.float32)
        strip *= scale
        np.rint(strip, out=strip)
        np.clip(strip, 0, 255, out=strip)
        out[start : start + _STRIP_ROWS] = strip
    return Image.fromarray(out)


def _icc_to_srgb(img: Image.Image, icc: bytes) -> Image.Image | None:
    """Colour-manage to sRGB; None when the profile is unusable (then a plain convert is the best we can do)."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size that fits within max_side on the longest side, never larger than the source."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _encode_jpeg(pixels: Image.Image, quality: int) -> Rendition:
    # A brand-new image carries no info dict at all: Pillow's JPEG writer copies im.info["comment"] (and,
    # for other writers, exif/icc) by default, so we never hand it the decoded image object itself.
    clean = Image.new("RGB", pixels.size)
    clean.paste(pixels.convert("RGB") if pixels.mode != "RGB" else pixels)
    buf = io.BytesIO()
    clean.save(buf, format="JPEG", quality=quality, exif=b"", icc_profile=None, optimize=False)
    return Rendition(data=buf.getvalue(), mime="image/jpeg", width=clean.width, height=clean.height)


def render_variants(image: Image.Image, *, display_max_side: int, thumbnail_max_side: int) -> dict[str, Rendition]:
    """Encode the served variants: "original" (full size), "display" and "thumbnail", all metadata-free
    JPEG, never upscaled. Pass the upright RGB image from decode_upload."""
    rgb = image if image.mode == "RGB" else to_srgb_rgb(image)
    out = {"original": _encode_jpeg(rgb, _JPEG_QUALITY["original"])}
    display_size = _fit(rgb.width, rgb.height, display_max_side)
    display = rgb if display_size == rgb.size else rgb.resize(display_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    out["display"] = _encode_jpeg(display, _JPEG_QUALITY["display"])
    # The thumbnail is made from the display pixels: same look, a fraction of the resampling work.
    thumb_size = _fit(rgb.width, rgb.height, thumbnail_max_side)
    source = display if display.width >= thumb_size[0] else rgb
    thumb = source if thumb_size == source.size else source.resize(thumb_size, Image.Resampling.LANCZOS)
    out["thumbnail"] = _encode_jpeg(thumb, _JPEG_QUALITY["thumbnail"])
    return out
