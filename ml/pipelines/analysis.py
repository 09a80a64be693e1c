"""One model pass per batch: embedding, zero-shot tag and category scores, CLIP-IQA, pixel measures.

All of the model work for a batch runs in one call on the model thread, so a batch costs one image
forward pass (the text side is embedded once per vocabulary and cached by the tagger). The pure
scoring lives in `ml.tagger`, `ml.quality` and `ml.screening`; this class only feeds them. Content
screening (`ml.screening`) reads the same embeddings: it adds no image pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ml.pipelines.models import ModelRegistry
from ml.pipelines.pixel_lane import run_in_pixel_lane
from ml.quality import ClipIqa, Quality, TechnicalMeasures, combine_quality, technical_measures
from ml.screening import Screening, ScreeningFactory
from ml.tagger import TagSuggestion, ZeroShotTagger, choose_category, combine_suggestions, neighbour_tag_votes
from ml.vocabulary import Vocabulary


@dataclass(frozen=True)
class PhotoAnalysis:
    vector: np.ndarray
    tag_scores: dict[str, float]
    category_scores: dict[str, float]
    quality: Quality
    screening: dict[str, float] = field(default_factory=dict)  # unsafe-content score per label
    screening_model: str | None = None  # None: no screening configured


@dataclass(frozen=True)
class _ModelPass:
    vectors: np.ndarray
    tags: np.ndarray
    categories: np.ndarray
    aesthetic: np.ndarray
    screening: tuple[str, tuple[str, ...], np.ndarray] | None  # model id, labels, scores


class PhotoAnalyzer:
    def __init__(self, models: ModelRegistry, vocabulary: Vocabulary, *,
                 screening: ScreeningFactory | None = None) -> None:
        """`screening`: builds the content classifier once the model is loaded; None screens nothing."""
        self.models = models
        self.base_vocabulary = vocabulary
        self._vocabulary = vocabulary
        self._tagger: ZeroShotTagger | None = None
        self._iqa: ClipIqa | None = None
        self._screening_factory = screening
        self._screening: Screening | None = None

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

    def _screen(self, images: Sequence[Image.Image], vectors: np.ndarray
                ) -> tuple[str, tuple[str, ...], np.ndarray] | None:
        if self._screening_factory is None:
            return None
        if self._screening is None:
            self._screening = self._screening_factory(self.models.embedder())
        screening = self._screening
        return screening.model_id, tuple(screening.labels), np.asarray(screening.scores(images, vectors))

    def _model_pass(self, images: Sequence[Image.Image]) -> _ModelPass:
        tagger, iqa = self._scorers()
        vectors = self.models.embedder().embed_images(images)
        return _ModelPass(vectors=vectors, tags=tagger.tag_scores(vectors), categories=tagger.category_scores(vectors),
                          aesthetic=iqa.scores(vectors), screening=self._screen(images, vectors))

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
            out = await self.models.run(self._model_pass, images)
        finally:
            technical: list[TechnicalMeasures] = await technical_task
        model, labels, screened = out.screening or (None, (), np.zeros((len(images), 0)))
        return [
            PhotoAnalysis(
                vector=out.vectors[i].astype(np.float32),
                tag_scores={t: float(s) for t, s in zip(vocab.tags, out.tags[i], strict=True)},
                category_scores={c: float(s) for c, s in zip(vocab.categories, out.categories[i], strict=True)},
                quality=combine_quality(float(out.aesthetic[i]), technical[i]),
                screening={label: round(float(s), 4) for label, s in zip(labels, screened[i], strict=True)},
                screening_model=model,
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
