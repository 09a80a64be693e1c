"""One model pass per batch: embedding, zero-shot tag and category scores, CLIP-IQA, pixel measures.

All of the model work for a batch runs in one call on the model thread, so a batch costs one image
forward pass (the text side is embedded once per vocabulary and cached by the tagger). The pure
scoring lives in `ml.tagger` and `ml.quality`; this class only feeds them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ml.pipelines.models import ModelRegistry
from ml.pipelines.pixel_lane import run_in_pixel_lane
from ml.quality import ClipIqa, Quality, TechnicalMeasures, combine_quality, technical_measures
from ml.tagger import TagSuggestion, ZeroShotTagger, choose_category, combine_suggestions, neighbour_tag_votes
from ml.vocabulary import Vocabulary


@dataclass(frozen=True)
class PhotoAnalysis:
    vector: np.ndarray
    tag_scores: dict[str, float]
    category_scores: dict[str, float]
    quality: Quality


class PhotoAnalyzer:
    def __init__(self, models: ModelRegistry, vocabulary: Vocabulary) -> None:
        self.models = models
        self.base_vocabulary = vocabulary
        self._vocabulary = vocabulary
        self._tagger: ZeroShotTagger | None = None
        self._iqa: ClipIqa | None = None

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocabulary

    def set_vocabulary(self, vocabulary: Vocabulary) -> None:
        """Admin-added tags: the tagger's text embeddings are rebuilt on the next batch."""
        if vocabulary != self._vocabulary:
            self._vocabulary = vocabulary
            self._tagger = None

    def _scorers(self) -> tuple[ZeroShotTagger, ClipIqa]:
        embedder = self.models.embedder()
        if self._tagger is None:
            self._tagger = ZeroShotTagger(embedder, self._vocabulary)
        if self._iqa is None:
            self._iqa = ClipIqa(embedder)
        return self._tagger, self._iqa

    def _model_pass(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        tagger, iqa = self._scorers()
        vectors = self.models.embedder().embed_images(images)
        return vectors, tagger.tag_scores(vectors), tagger.category_scores(vectors), iqa.scores(vectors)

    async def analyze(
        self, images: Sequence[Image.Image], original_sizes: Sequence[tuple[int, int] | None] | None = None
    ) -> list[PhotoAnalysis]:
        """``original_sizes``: each photo's size as uploaded, when ``images`` are reduced copies."""
        vocab = self._vocabulary  # the tagger built for this pass uses this vocabulary
        sizes = list(original_sizes) if original_sizes is not None else [None] * len(images)
        # The pixel measures run in the pixel lane during the model pass (see ml.pipelines.pixel_lane).
        technical_task = asyncio.create_task(run_in_pixel_lane(
            lambda: [technical_measures(im, size) for im, size in zip(images, sizes, strict=True)]))
        try:
            vectors, tags, categories, aesthetic = await self.models.run(self._model_pass, images)
        finally:
            technical: list[TechnicalMeasures] = await technical_task
        return [
            PhotoAnalysis(
                vector=vectors[i].astype(np.float32),
                tag_scores={t: float(s) for t, s in zip(vocab.tags, tags[i], strict=True)},
                category_scores={c: float(s) for c, s in zip(vocab.categories, categories[i], strict=True)},
                quality=combine_quality(float(aesthetic[i]), technical[i]),
            )
            for i in range(len(images))
        ]

    async def embed_text(self, text: str) -> np.ndarray:
        vectors = await self.models.run(self.models.embedder().embed_texts, [text])
        return np.asarray(vectors[0])

    def suggest(
        self,
        analysis: PhotoAnalysis,
        neighbour_tags: Sequence[tuple[float, Sequence[str]]],
        neighbour_categories: Sequence[tuple[float, str]],
        *,
        limit: int,
    ) -> tuple[list[TagSuggestion], str, float]:
        votes = neighbour_tag_votes(neighbour_tags)
        suggestions = combine_suggestions(analysis.tag_scores, votes, limit=limit)
        category, score = choose_category(analysis.category_scores, neighbour_categories)
        return suggestions, category, float(score)
