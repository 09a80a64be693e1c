"""Content screening at ingest: per-label unsafe-content scores for a batch of photos.

A classifier is anything with the `Screening` shape: labels, a model id recorded with the scores, and
`scores(images, vectors)`. It is built once the CLIP model is loaded, from a `ScreeningFactory` given the
embedder, so the default needs no second image pass: it works on the image embeddings ingest computes
anyway, and costs a few dot products per photo. Another classifier (one that looks at the pixels, for
instance) is plugged in by naming its factory, ``package.module:factory``, in
`PHOTODUEL_MODERATION_SCREENING` (`screening_factory`). nudenet's detector is not a default: its wheel
carries an AGPL-3.0 licence file.

The default, `ClipScreening`, is CLIP zero-shot. Each unsafe label (nudity, gore, violence) and each
safe concept (portraits, people in swimwear, sports, food, statues, costumes...; the confusers are
there on purpose) is a prompt ensemble, the prompts' unit embeddings averaged and renormalised (as in
`ml.tagger`). A label's score is a softmax at CLIP's logit scale over that label against every safe
concept::

    score(l) = exp(s_l) / (exp(s_l) + sum_k exp(s_k)),   s = 100 * cos(image, ensemble)

so it reads "how much more this photo is like <label> than like the ordinary photo it most resembles".
Labels do not compete with each other (a photo may be both gory and violent, and adding a label does
not move the others), while safe concepts do: a photo of a beach in swimsuits puts its mass on
"swimwear", not on "nudity". With real ViT-B/32 weights a score of 0.85 needs a cosine margin of about
0.017 over the nearest safe concept (logit scale 100). The thresholds (`crossed`, set per label in
`PHOTODUEL_MODERATION_THRESHOLDS`) must be checked against real photos before they are relied on: the
test suite runs a tiny random CLIP, which knows no concepts, so there they only exercise the plumbing.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ml.embedder import Embedder
from ml.tagger import LOGIT_SCALE, prompt_ensembles

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "ClipScreening",
    "Screening",
    "ScreeningFactory",
    "ScreeningPrompts",
    "crossed",
    "label_scores",
    "screening_factory",
]

OFF, CLIP = "off", "clip"
_FACTORY_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class Screening(Protocol):
    """Scores photos for unsafe content, one score in [0, 1] per label."""

    @property
    def model_id(self) -> str:
        """Recorded with the scores, so a stored score says which classifier gave it."""
        ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    def scores(self, images: Sequence[Image.Image], vectors: np.ndarray) -> np.ndarray:
        """(n, len(labels)) in [0, 1] for a batch: the analysis images and their CLIP embeddings (unit
        rows). Runs on the model thread; may block."""
        ...


ScreeningFactory = Callable[[Embedder], Screening]


class ScreeningPrompts:
    """The prompt ensembles: unsafe labels and safe concepts, each a list of sentences."""

    def __init__(self, unsafe: Mapping[str, Sequence[str]], safe: Mapping[str, Sequence[str]]) -> None:
        if not unsafe or not safe:
            raise ValueError("screening needs at least one unsafe label and one safe concept")
        for name, prompts in [*unsafe.items(), *safe.items()]:
            if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
                raise ValueError(f"screening concept {name!r} needs at least one non-empty prompt")
        self.unsafe = {name: tuple(prompts) for name, prompts in unsafe.items()}
        self.safe = {name: tuple(prompts) for name, prompts in safe.items()}

    @classmethod
    def load_default(cls) -> ScreeningPrompts:
        """The shipped ensembles (`ml/data/screening_prompts.json`)."""
        raw = json.loads(resources.files("ml").joinpath("data", "screening_prompts.json").read_text(encoding="utf-8"))
        return cls(raw["unsafe"], raw["safe"])

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.unsafe)


def label_scores(images: np.ndarray, unsafe: np.ndarray, safe: np.ndarray, *,
                 logit_scale: float = LOGIT_SCALE) -> np.ndarray:
    """(n, labels): each label's softmax against all safe concepts (module docstring). `images` (n, d),
    `unsafe` (labels, d), `safe` (concepts, d), all unit rows. In float64 and through log-sum-exp, so a
    large margin saturates to 0 or 1 instead of overflowing."""
    x = np.atleast_2d(np.asarray(images, dtype=np.float64))
    s_unsafe = logit_scale * (x @ np.asarray(unsafe, dtype=np.float64).T)
    s_safe = logit_scale * (x @ np.asarray(safe, dtype=np.float64).T)
    top = s_safe.max(axis=1, keepdims=True)
    log_safe = top + np.log(np.exp(s_safe - top).sum(axis=1, keepdims=True))
    # exp(s_l) / (exp(s_l) + exp(log_safe)) = sigmoid(s_l - log_safe)
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * (s_unsafe - log_safe))))


class ClipScreening:
    """Zero-shot screening on CLIP embeddings; the prompt embeddings are computed once, on first use."""

    def __init__(self, embedder: Embedder, prompts: ScreeningPrompts | None = None) -> None:
        self._embedder = embedder
        self._prompts = prompts or ScreeningPrompts.load_default()
        self._lock = threading.Lock()
        self._matrices: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def model_id(self) -> str:
        return f"clip-zero-shot:{self._embedder.model_id}"

    @property
    def labels(self) -> tuple[str, ...]:
        return self._prompts.labels

    def _prompt_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._matrices is None:
                unsafe = prompt_ensembles(self._embedder, list(self._prompts.unsafe.values()))
                safe = prompt_ensembles(self._embedder, list(self._prompts.safe.values()))
                self._matrices = (unsafe, safe)
            return self._matrices

    def scores(self, images: Sequence[Image.Image], vectors: np.ndarray) -> np.ndarray:
        unsafe, safe = self._prompt_matrices()
        return label_scores(vectors, unsafe, safe)


def crossed(scores: Mapping[str, float], thresholds: Mapping[str, float]) -> list[str]:
    """The labels whose score reached their threshold, highest score first. A label without a threshold
    never hides a photo: its score is only recorded."""
    hits = [label for label, score in scores.items() if label in thresholds and score >= thresholds[label]]
    return sorted(hits, key=lambda label: -scores[label])


def screening_factory(spec: str) -> ScreeningFactory | None:
    """The factory a setting names: "clip" (the default above), "off" (no screening), or
    "package.module:factory", a callable taking the CLIP embedder and returning a `Screening`. Raises
    ValueError when the name cannot be imported, at start rather than on the first photo."""
    spec = spec.strip()
    if spec == OFF:
        return None
    if spec == CLIP:
        return ClipScreening
    if not _FACTORY_PATH.match(spec):
        raise ValueError(f"expected 'clip', 'off' or 'package.module:factory', got {spec!r}")
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import the screening factory {spec!r}: {exc}") from None
    if not callable(factory):
        raise ValueError(f"the screening factory {spec!r} is not callable")
    checked: ScreeningFactory = factory
    return checked
