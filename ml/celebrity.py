"""Recognising enrolled celebrities from face descriptors (pure: arrays in, a match out).

Why this exists: votes reward fame as well as photography, so a photo showing a famous person
gets its fame advantage removed from its rating (``gaming/celebrity.py``). That discount must only
apply when we are confident the person *is* an enrolled celebrity, so the rules here err towards
"no match": a nearest-neighbour match needs a face descriptor within ``threshold``; CLIP's
zero-shot guess of a name can raise the confidence of such a match but never create one (CLIP
happily "recognises" look-alikes, costumes and posters, and text in the image).

Distances are Euclidean between dlib 128-d descriptors (see :mod:`ml.faces`). dlib's published
operating point is 0.6 (99.38 % on LFW pairs); bench/face_threshold.py measures what we can offline
and sets :data:`DEFAULT_THRESHOLD`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

import numpy as np

#: Match threshold on descriptor distance. Stricter than dlib's 0.6 because this is 1:N
#: identification (every upload is compared to the whole gallery, so false matches add up with
#: gallery size) and a false match wrongly discounts an ordinary photographer's photo; a missed
#: match only leaves a fame bonus in place. Evidence and limits: bench/results/face_threshold.md.
DEFAULT_THRESHOLD = 0.5

#: Width of the logistic that maps distance to confidence (descriptor-distance units). Chosen so
#: confidence moves from ~0.5 at the threshold to ~0.95 at 0.15 below it, which is roughly the
#: spread between same-person renditions (< 0.2) and the threshold in our measurements.
CONFIDENCE_SCALE = 0.05


class _HasDescriptor(Protocol):
    @property
    def descriptor(self) -> np.ndarray: ...


@dataclass(frozen=True)
class CelebrityMatch:
    """The nearest enrolled celebrity within the threshold.

    ``confidence`` in (0, 1) is a monotone, decreasing function of ``distance`` (see
    :func:`distance_confidence`), possibly raised by :func:`confirm_with_clip`. It is an ordering
    score with a readable scale, not a calibrated probability: we have no offline data to calibrate
    it against.
    """

    name: str
    distance: float
    confidence: float


class EnrolmentFailure(StrEnum):
    NO_FACE = "NO_FACE"
    SEVERAL_FACES = "SEVERAL_FACES"


class EnrolmentError(ValueError):
    """An enrolment photo that cannot say who the celebrity is.

    ``reason`` is machine-readable so the API can turn it into a ``BAD_USER_INPUT`` with a code
    the admin can act on ("no face found" vs "crop to one person").
    """

    NO_FACE = EnrolmentFailure.NO_FACE
    SEVERAL_FACES = EnrolmentFailure.SEVERAL_FACES

    def __init__(self, reason: EnrolmentFailure, message: str | None = None) -> None:
        self.reason = EnrolmentFailure(reason)
        super().__init__(message or _ENROLMENT_MESSAGES[self.reason])


_ENROLMENT_MESSAGES = {
    EnrolmentFailure.NO_FACE: "no usable face found in the enrolment photo",
    EnrolmentFailure.SEVERAL_FACES: "the enrolment photo shows several faces; use a photo of one person",
}


def distance_confidence(
    distance: float, *, threshold: float = DEFAULT_THRESHOLD, scale: float = CONFIDENCE_SCALE
) -> float:
    """``1 / (1 + exp((distance - threshold) / scale))``: 0.5 at the threshold, towards 1 as the
    descriptors coincide, strictly decreasing in distance.

    A logistic rather than a linear ramp so that confidence saturates for the clearly-same
    distances (all near 1) and changes fastest where decisions are actually uncertain.
    """
    z = (distance - threshold) / scale
    # Guard exp overflow for far-away distances; the value is ~0 there anyway.
    if z > 700:
        return 0.0
    return 1.0 / (1.0 + math.exp(z))


def _check_descriptor(descriptor: np.ndarray, what: str) -> np.ndarray:
    vector = np.asarray(descriptor, dtype=np.float32)
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"{what} must be a 1-d vector, got shape {vector.shape}")
    if not np.all(np.isfinite(vector)):
        raise ValueError(f"{what} contains non-finite values")
    return vector


def match_face(
    descriptor: np.ndarray,
    gallery: Sequence[tuple[str, np.ndarray]],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> CelebrityMatch | None:
    """The nearest gallery entry by Euclidean distance if it is closer than ``threshold``.

    A celebrity may have several gallery entries (one per enrolment photo): nearest-neighbour over
    all of them is more robust to pose and age than comparing to an average. Ties go to the entry
    listed first. An empty gallery matches nothing.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    query = _check_descriptor(descriptor, "descriptor")
    if not gallery:
        return None
    names = [name for name, _ in gallery]
    vectors = np.stack([_check_descriptor(vec, f"gallery descriptor of {name!r}") for name, vec in gallery])
    if vectors.shape[1] != query.shape[0]:
        raise ValueError(f"descriptor has {query.shape[0]} dims, gallery has {vectors.shape[1]}")
    distances = np.linalg.norm(vectors - query, axis=1)
    best = int(np.argmin(distances))
    distance = float(distances[best])
    if distance >= threshold:
        return None
    return CelebrityMatch(
        name=names[best],
        distance=distance,
        confidence=distance_confidence(distance, threshold=threshold),
    )


def confirm_with_clip(
    match: CelebrityMatch,
    clip_name_scores: Mapping[str, float],
    *,
    min_score: float,
) -> CelebrityMatch:
    """Raise a face match's confidence when CLIP zero-shot agrees on the same name.

    ``clip_name_scores`` are CLIP's probabilities (softmax over the enrolled names' prompts, each in
    [0, 1]) for this image. CLIP confirms only if the matched name is its top name and scores at
    least ``min_score``; the confidence then becomes the noisy-OR ``1 - (1 - c) * (1 - s)``:
    two independent signals agreeing leave less doubt than either alone. Otherwise the match is
    returned unchanged: disagreement does not lower it (the face descriptor is the stronger
    identity signal; CLIP is fooled by names printed in the image), and without a face match there
    is nothing to confirm -- the signature takes a match, not ``None``, on purpose.
    """
    if not 0.0 < min_score <= 1.0:
        raise ValueError(f"min_score must be in (0, 1], got {min_score}")
    for name, given in clip_name_scores.items():
        if not 0.0 <= given <= 1.0 or math.isnan(given):
            raise ValueError(f"CLIP score for {name!r} must be a probability in [0, 1], got {given}")
    score = clip_name_scores.get(match.name)
    if score is None or score < min_score:
        return match
    if any(other > score for name, other in clip_name_scores.items() if name != match.name):
        return match
    confidence = 1.0 - (1.0 - match.confidence) * (1.0 - score)
    return replace(match, confidence=max(match.confidence, confidence))


def enrolment_descriptor(faces: Sequence[_HasDescriptor]) -> np.ndarray:
    """The descriptor to store for one enrolment photo: exactly one face is required.

    With several faces we cannot know which one is the celebrity, and guessing wrong would attach
    a stranger's face to a famous name (every later photo of that stranger would be discounted),
    so the admin is asked for a photo of one person instead.
    """
    if not faces:
        raise EnrolmentError(EnrolmentFailure.NO_FACE)
    if len(faces) > 1:
        raise EnrolmentError(EnrolmentFailure.SEVERAL_FACES)
    return _check_descriptor(faces[0].descriptor, "face descriptor").copy()
