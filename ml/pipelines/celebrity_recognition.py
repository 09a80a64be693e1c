"""Who, if anyone enrolled, these faces are: the gallery's nearest entries judged by the recognition rules.

The rules (:mod:`ml.celebrity`) are pure; here they meet their inputs: candidates from the gallery's
vector search and, for confirmation, CLIP's zero-shot scores of the enrolled names on the photo's
stored image vector (no image is decoded again).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.celebrity import CelebrityMatch, confirm_with_clip, match_face
from ml.pipelines.models import ModelRegistry
from storage.celebrities import CelebrityGallery

#: CLIP confirms a face match only when it gives the matched name at least this probability.
CLIP_CONFIRM_MIN_SCORE = 0.5


class CelebrityRecognizer:
    def __init__(self, gallery: CelebrityGallery, models: ModelRegistry, *, max_distance: float) -> None:
        self.gallery = gallery
        self.models = models
        self.max_distance = max_distance

    @property
    def ready(self) -> bool:
        """Whether CLIP can confirm: a match made without it would be stored with a lower confidence."""
        return self.models.ready

    async def identify(self, descriptors: Sequence[np.ndarray], image_vector: np.ndarray | None
                       ) -> list[CelebrityMatch]:
        """The enrolled people among these faces, best confidence first, one entry per name."""
        candidates = await self.gallery.nearest(descriptors)
        matches = [m for d, gallery in zip(descriptors, candidates, strict=True)
                   if (m := match_face(d, gallery, threshold=self.max_distance)) is not None]
        if matches and image_vector is not None and self.models.ready:
            scores = await self._clip_name_scores(image_vector)
            matches = [confirm_with_clip(m, scores, min_score=CLIP_CONFIRM_MIN_SCORE) for m in matches]
        best: dict[str, CelebrityMatch] = {}
        for match in matches:
            if match.name not in best or match.confidence > best[match.name].confidence:
                best[match.name] = match
        return sorted(best.values(), key=lambda m: -m.confidence)

    async def _clip_name_scores(self, image_vector: np.ndarray) -> dict[str, float]:
        """Softmax over the enrolled names' prompts, at CLIP's usual logit scale of 100."""
        names = await self.gallery.names()
        if not names:
            return {}
        embedder = self.models.embedder()
        texts = await self.models.run(embedder.embed_texts, [f"a photo of {n}." for n in names])
        logits = 100.0 * (texts @ image_vector)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        return {n: float(p) for n, p in zip(names, probabilities, strict=True)}
