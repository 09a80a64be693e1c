"""The process's face model: loaded on first use, called off the event loop.

The face counterpart of :class:`ml.pipelines.models.ModelRegistry` (which holds CLIP). Loaded on first
use rather than at start: the weights take ~0.4 s and 31 MB, and most processes (an API that never
enrols, a maintenance command) never look at a face. Detection and descriptors take 30-150 ms per
face on a CPU, so each call runs on a thread; the dlib model serialises its own calls.
"""

from __future__ import annotations

import asyncio

from PIL import Image

from ml.faces import Face, FaceFinder, FaceModel


class FaceModelRegistry:
    def __init__(self, model: FaceFinder | None = None) -> None:
        self._model: FaceFinder = model or FaceModel()

    def _faces(self, image: Image.Image) -> list[Face]:
        if not self._model.loaded:
            self._model.load()
        return self._model.faces(image)

    async def faces(self, image: Image.Image) -> list[Face]:
        """The usable faces in a photo, best detection first."""
        return await asyncio.to_thread(self._faces, image)
