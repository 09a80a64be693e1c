"""Changing the celebrity gallery: enrol a person from photos, or remove one; either re-checks photos.

Enrolment is all or nothing: every file must be an image showing exactly one face (with several,
we cannot know which one is the person, see :func:`ml.celebrity.enrolment_descriptor`), and every
problem file is reported at once, so the admin fixes them in one go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import structlog
from PIL import Image

from ml.celebrity import EnrolmentError, enrolment_descriptor
from ml.images import DecodedImage, ImageRejected
from ml.pipelines.celebrity_job import recheck_photos_with_faces
from ml.pipelines.face_model import FaceModelRegistry
from storage.celebrities import MAX_NAME, Celebrity, CelebrityGallery
from storage.jobs import JobQueue
from storage.photos import PhotoRepository

log = structlog.get_logger(__name__)

#: Checks and decodes one uploaded file (bytes, declared content type); raises ImageRejected.
Decode = Callable[[bytes, str | None], DecodedImage]


@dataclass(frozen=True)
class EnrolmentProblem:
    index: int
    reason: str
    message: str


class EnrolmentRejected(ValueError):
    """Nothing was enrolled: every problem photo is listed, so the admin fixes them in one go."""

    def __init__(self, problems: Sequence[EnrolmentProblem]) -> None:
        self.problems = list(problems)
        detail = "; ".join(f"file {p.index}: {p.message}" for p in self.problems)
        super().__init__(f"enrolment rejected: {detail}")


def gallery_name(name: str) -> str:
    """Names are compared with runs of whitespace collapsed, as people type them."""
    return " ".join(name.split())


async def _decode_all(files: Sequence[tuple[bytes, str | None]], decode: Decode
                      ) -> tuple[list[Image.Image | None], list[EnrolmentProblem]]:
    images: list[Image.Image | None] = []
    problems: list[EnrolmentProblem] = []
    for i, (data, declared) in enumerate(files):
        try:
            images.append((await asyncio.to_thread(decode, data, declared)).image)
        except ImageRejected as exc:
            problems.append(EnrolmentProblem(index=i, reason=exc.reason, message=str(exc)))
            images.append(None)
    return images, problems


async def _descriptors(faces: FaceModelRegistry, images: Sequence[Image.Image | None]
                       ) -> tuple[list[np.ndarray], list[EnrolmentProblem]]:
    """One descriptor per decoded photo; every photo with no face or several faces is reported."""
    descriptors: list[np.ndarray] = []
    problems: list[EnrolmentProblem] = []
    for i, image in enumerate(images):
        if image is None:
            continue
        try:
            descriptors.append(enrolment_descriptor(await faces.faces(image)))
        except EnrolmentError as exc:
            problems.append(EnrolmentProblem(index=i, reason=str(exc.reason), message=str(exc)))
    return descriptors, problems


async def enrol_celebrity(
    gallery: CelebrityGallery, faces: FaceModelRegistry, photos: PhotoRepository, jobs: JobQueue, *, name: str,
    files: Sequence[tuple[bytes, str | None]], decode: Decode, by: str,
) -> Celebrity:
    """Validate every file (an image, exactly one face), then enrol all of them or none, and queue a
    re-check of every photo with faces. Raises ValueError for a bad name or no files."""
    name = gallery_name(name)
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"name must be 1 to {MAX_NAME} characters")
    if not files:
        raise ValueError("give at least one photo of the person")
    images, problems = await _decode_all(files, decode)
    descriptors, face_problems = await _descriptors(faces, images)
    problems += face_problems
    if problems:
        raise EnrolmentRejected(sorted(problems, key=lambda p: p.index))
    celebrity = await gallery.enrol(name, descriptors, by=by)
    queued = await recheck_photos_with_faces(photos, jobs)
    log.info("celebrity.enrolled", name=name, descriptors=len(descriptors), rechecks=queued)
    return celebrity


async def remove_celebrity(gallery: CelebrityGallery, photos: PhotoRepository, jobs: JobQueue, name: str) -> bool:
    removed = await gallery.remove(gallery_name(name))
    if removed:
        await recheck_photos_with_faces(photos, jobs)
    return removed
