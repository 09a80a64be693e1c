"""Faces and celebrity matching on real faces, with the real dlib weights.

The real faces available offline: ``skimage.data.astronaut()`` (Eileen Collins, full resolution) and
``skimage.data.lfw_subset()`` (100 LFW faces, 25x25 greyscale, unlabelled). "Another photo of the
same person" is a different rendition of the astronaut photo (crop, rescale, JPEG, placed into a
generated scene): stronger evidence than none, weaker than a second photo taken on another day --
see bench/results/face_threshold.md for the limits. "Someone who is not enrolled" is an LFW face,
upscaled: a real different person, at low resolution.
"""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ml.celebrity import (
    DEFAULT_THRESHOLD,
    CelebrityMatch,
    EnrolmentError,
    EnrolmentFailure,
    confirm_with_clip,
    distance_confidence,
    enrolment_descriptor,
    match_face,
)
from ml.faces import DESCRIPTOR_SIZE, Face, FaceBox, FaceModel

skdata = pytest.importorskip("skimage.data")

ASTRONAUT_FACE = (179, 83, 266, 170)  # HOG box at upsample=0, for orientation in assertions


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return FaceModel().load()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


@pytest.fixture(scope="module")
def enrolled(model: FaceModel, astronaut: Image.Image) -> np.ndarray:
    return enrolment_descriptor(model.faces(astronaut))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _scene(size: tuple[int, int], seed: int) -> Image.Image:
    """A generated, busy photo without people: sky gradient, shapes, lines, sensor noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    y = np.linspace(0, 1, height)[:, None, None]
    sky = (np.array([90, 140, 200]) * (1 - y) + np.array([40, 90, 50]) * y) * np.ones((1, width, 1))
    image = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = (x0, y0, x0 + int(rng.integers(10, width // 3)), y0 + int(rng.integers(10, height // 3)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    noisy = np.asarray(image).astype(np.int16) + rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _lfw_photo(index: int) -> Image.Image:
    """An LFW face (25x25 grey) upscaled 6x into a 250x250 photo."""
    tile = skdata.lfw_subset()[index]
    face = Image.fromarray((tile * 255).astype(np.uint8)).resize((150, 150), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (250, 250), int(np.median(tile) * 255))
    canvas.paste(face, (50, 50))
    return canvas.convert("RGB")


# -- finding the enrolled person -----------------------------------------------------------------


def test_enrolled_person_is_found_in_a_different_rendition_inside_a_larger_scene(
    model: FaceModel, astronaut: Image.Image, enrolled: np.ndarray
) -> None:
    rendition = _jpeg(astronaut.crop((60, 0, 420, 380)).resize((288, 304), Image.Resampling.LANCZOS), 40)
    scene = _scene((1600, 1200), seed=3)
    scene.paste(rendition, (900, 500))  # 1600 px wide: detection runs on a 1024 px copy

    faces = model.faces(scene)

    assert len(faces) == 1
    box = faces[0].box
    # The face sits at ~((179-60)*0.8 + 900, 83*0.8 + 500) in the scene, ~70 px wide.
    assert 980 <= box.left <= 1010 and 550 <= box.top <= 590 and 55 <= box.width <= 90
    gallery = [("Someone Else", -enrolled), ("Eileen Collins", enrolled)]
    match = match_face(faces[0].descriptor, gallery, threshold=DEFAULT_THRESHOLD)
    assert match is not None and match.name == "Eileen Collins"
    assert match.distance < 0.3 and match.confidence > 0.95


def test_flipped_greyscale_rendition_still_matches(
    model: FaceModel, astronaut: Image.Image, enrolled: np.ndarray
) -> None:
    rendition = astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT).convert("L")
    faces = model.faces(rendition)  # an "L" image: faces() converts
    assert len(faces) == 1
    match = match_face(faces[0].descriptor, [("Eileen Collins", enrolled)], threshold=DEFAULT_THRESHOLD)
    assert match is not None and match.distance < 0.35


def test_boxes_map_back_to_original_coordinates_of_a_large_photo(model: FaceModel, astronaut: Image.Image) -> None:
    big = astronaut.resize((3000, 3000), Image.Resampling.BICUBIC)  # detection on a 1024 copy
    (face,) = model.faces(big)
    scale = 3000 / 512
    left, top, right, bottom = (v * scale for v in ASTRONAUT_FACE)
    assert abs(face.box.left - left) < 0.1 * (right - left)
    assert abs(face.box.top - top) < 0.1 * (bottom - top)
    assert abs(face.box.width - (right - left)) < 0.15 * (right - left)


# -- people who are not enrolled, and photos without people ------------------------------------------


@pytest.mark.parametrize("lfw_index", [1, 2, 7])
def test_a_person_who_is_not_enrolled_has_a_face_but_no_match(
    model: FaceModel, enrolled: np.ndarray, lfw_index: int
) -> None:
    faces = model.faces(_lfw_photo(lfw_index))
    assert len(faces) == 1
    assert match_face(faces[0].descriptor, [("Eileen Collins", enrolled)], threshold=DEFAULT_THRESHOLD) is None


def test_enrolled_astronaut_is_not_matched_to_a_gallery_of_other_real_people(
    model: FaceModel, astronaut: Image.Image
) -> None:
    gallery = []
    for index in range(12):
        faces = model.faces(_lfw_photo(index))
        if len(faces) == 1:
            gallery.append((f"lfw-{index}", faces[0].descriptor))
    assert len(gallery) >= 8
    (face,) = model.faces(astronaut)
    assert match_face(face.descriptor, gallery, threshold=DEFAULT_THRESHOLD) is None


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_photos_without_people_have_no_face(model: FaceModel, name: str) -> None:
    assert model.faces(Image.fromarray(getattr(skdata, name)())) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_images_have_no_face(model: FaceModel, seed: int) -> None:
    assert model.faces(_scene((900, 600), seed)) == []
    noise = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert model.faces(Image.fromarray(noise)) == []
    assert model.faces(Image.new("RGB", (300, 200), (128, 128, 128))) == []


def test_faces_smaller_than_the_floor_are_skipped(model: FaceModel, astronaut: Image.Image) -> None:
    small = astronaut.resize((180, 180), Image.Resampling.LANCZOS)  # face ~32 px wide
    canvas = Image.new("RGB", (400, 300), (128, 128, 128))
    canvas.paste(small, (0, 0))
    assert model.faces(canvas) == []
    permissive = FaceModel(min_face_px=1).load()
    (face,) = permissive.faces(canvas)
    assert face.box.width < model.min_face_px


# -- enrolment -----------------------------------------------------------------------------------------


def test_enrolment_from_one_face_returns_its_descriptor(model: FaceModel, astronaut: Image.Image) -> None:
    faces = model.faces(astronaut)
    descriptor = enrolment_descriptor(faces)
    assert descriptor.shape == (DESCRIPTOR_SIZE,) and descriptor.dtype == np.float32
    np.testing.assert_array_equal(descriptor, faces[0].descriptor)


def test_enrolment_photo_without_a_face_is_refused(model: FaceModel) -> None:
    with pytest.raises(EnrolmentError) as info:
        enrolment_descriptor(model.faces(Image.fromarray(skdata.coffee())))
    assert info.value.reason is EnrolmentFailure.NO_FACE
    assert isinstance(info.value, ValueError)


def test_enrolment_photo_with_two_faces_is_refused(model: FaceModel, astronaut: Image.Image) -> None:
    head = astronaut.crop((120, 20, 330, 240))
    canvas = Image.new("RGB", (2 * head.width + 40, head.height + 40), (30, 30, 30))
    canvas.paste(head, (10, 20))
    canvas.paste(head, (head.width + 30, 20))
    faces = model.faces(canvas)
    assert len(faces) == 2
    with pytest.raises(EnrolmentError) as info:
        enrolment_descriptor(faces)
    assert info.value.reason is EnrolmentFailure.SEVERAL_FACES
    assert EnrolmentError.SEVERAL_FACES is EnrolmentFailure.SEVERAL_FACES


# -- the FaceModel seams ---------------------------------------------------------------------------


def test_detect_and_describe_contracts(model: FaceModel, astronaut: Image.Image) -> None:
    rgb = np.asarray(astronaut)
    boxes = model.detect(rgb, upsample=0)
    assert len(boxes) == 1 and isinstance(boxes[0], FaceBox)
    assert (boxes[0].left, boxes[0].top) == ASTRONAUT_FACE[:2]
    vectors = model.describe(rgb, boxes + boxes)
    assert vectors.shape == (2, DESCRIPTOR_SIZE) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], vectors[1])
    assert model.describe(rgb, []).shape == (0, DESCRIPTOR_SIZE)
    with pytest.raises(ValueError, match="uint8"):
        model.detect(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="RGB"):
        model.detect(rgb[..., 0])


def test_model_must_be_loaded_before_use(astronaut: Image.Image) -> None:
    with pytest.raises(RuntimeError, match="load"):
        FaceModel().faces(astronaut)


# -- matching rules (pure) ----------------------------------------------------------------------------


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DESCRIPTOR_SIZE).astype(np.float32)
    return v / np.linalg.norm(v)


def test_match_face_takes_the_nearest_entry_under_the_threshold() -> None:
    base = _unit(0)
    near, far = base + 0.2 * _unit(1), base + 0.45 * _unit(2)
    gallery = [("far", far), ("near", near), ("other", _unit(3))]
    match = match_face(base, gallery, threshold=0.5)
    assert match == CelebrityMatch("near", pytest.approx(0.2, abs=1e-5), match.confidence)
    assert match_face(base, gallery, threshold=0.15) is None
    assert match_face(base, [], threshold=0.5) is None
    with pytest.raises(ValueError):
        match_face(base, gallery, threshold=0.0)
    with pytest.raises(ValueError):
        match_face(base[:64], gallery, threshold=0.5)


def test_confidence_is_a_decreasing_map_of_distance() -> None:
    values = [distance_confidence(d, threshold=0.5) for d in np.linspace(0, 2, 50)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert distance_confidence(0.5, threshold=0.5) == pytest.approx(0.5)
    assert 0.0 <= values[-1] < 1e-6 and values[0] > 0.99


def test_clip_can_only_raise_the_confidence_of_an_existing_match() -> None:
    match = CelebrityMatch("Ada", 0.45, distance_confidence(0.45))
    confirmed = confirm_with_clip(match, {"Ada": 0.8, "Bo": 0.1}, min_score=0.5)
    assert confirmed.name == "Ada" and confirmed.distance == match.distance
    assert confirmed.confidence == pytest.approx(1 - (1 - match.confidence) * 0.2)
    # CLIP unsure, or preferring someone else: the match stands unchanged, never lowered.
    assert confirm_with_clip(match, {"Ada": 0.3, "Bo": 0.2}, min_score=0.5) == match
    assert confirm_with_clip(match, {"Ada": 0.55, "Bo": 0.6}, min_score=0.5) == match
    assert confirm_with_clip(match, {"Bo": 0.99}, min_score=0.5) == match
    with pytest.raises(ValueError):
        confirm_with_clip(match, {"Ada": 1.5}, min_score=0.5)
    with pytest.raises(ValueError):
        confirm_with_clip(match, {"Ada": 0.9}, min_score=0.0)


def test_enrolment_descriptor_accepts_any_face_like_objects() -> None:
    face = Face(FaceBox(0, 0, 50, 50, 1.0), _unit(4))
    np.testing.assert_array_equal(enrolment_descriptor([face]), face.descriptor)
    with pytest.raises(EnrolmentError):
        enrolment_descriptor([])
