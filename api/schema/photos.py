"""The Photo type and what hangs off it. Built from the stored document; the raw document stays private."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types import Info

from api.schema.profiles import PublicProfile

if TYPE_CHECKING:
    from api.schema.celebrities import CelebrityInfo


@strawberry.enum
class PhotoStatus(Enum):
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"


@strawberry.enum
class ImageVariant(Enum):
    ORIGINAL = "original"
    DISPLAY = "display"
    THUMBNAIL = "thumbnail"


@strawberry.enum
class PhotoOrder(Enum):
    NEWEST = "NEWEST"
    OLDEST = "OLDEST"
    SCORE = "SCORE"


@strawberry.type
class TagSuggestion:
    tag: str
    score: float
    source: str = strawberry.field(description="clip, neighbours, or clip+neighbours")


@strawberry.type
class Quality:
    score: float = strawberry.field(description="Model quality in [0, 1]: the rating prior")
    aesthetic: float
    sharpness: float
    exposure: float
    noise: float
    resolution: float


@strawberry.type
class Rating:
    score: float = strawberry.field(description="1.0 - 10.0, from the conservative skill mu - k*sigma")
    mu: float
    sigma: float
    votes: int
    wins: int
    losses: int
    draws: int


@strawberry.type
class PhotoFailure:
    reason: str = strawberry.field(description="Why ingest gave up on the photo")
    at: datetime


@strawberry.type
class Photo:
    id: strawberry.ID
    status: PhotoStatus
    title: str | None
    width: int | None
    height: int | None
    category: str | None
    tags: list[str]
    created_at: datetime
    failure_reason: str | None
    _doc: strawberry.Private[dict[str, Any]]
    _blind: strawberry.Private[bool]

    @classmethod
    def from_doc(cls, doc: dict[str, Any], *, blind: bool = False) -> Photo:
        """`blind`: shown in a duel, so no owner, score, quality or celebrity that could sway the vote."""
        failure = doc.get("failure") or {}
        return cls(
            id=strawberry.ID(str(doc["_id"])), status=PhotoStatus(doc["status"]), title=doc.get("title"),
            width=doc.get("width"), height=doc.get("height"), category=doc.get("category"),
            tags=list(doc.get("tags", [])), created_at=doc["created_at"], failure_reason=failure.get("reason"),
            _doc=doc, _blind=blind,
        )

    @strawberry.field(description="Absolute URL of a rendition; EXIF and GPS are stripped from all of them")
    def url(self, info: Info, variant: ImageVariant = ImageVariant.DISPLAY) -> str | None:
        rendition = (self._doc.get("renditions") or {}).get(variant.value)
        if not rendition:
            return None
        return f"{info.context.base_url}/images/{self.id}/{variant.value}?v={rendition['etag']}"

    @strawberry.field(description="The category the model chose; differs from `category` once the owner set one")
    def model_category(self) -> str | None:
        return self._doc.get("category_model") or self._doc.get("category")

    @strawberry.field(description="Why processing failed (FAILED photos, seen by their owner and admins)")
    def failure(self) -> PhotoFailure | None:
        failure = self._doc.get("failure")
        return PhotoFailure(reason=failure["reason"], at=failure["at"]) if failure else None

    @strawberry.field(description="The photographer; null inside a duel, where photos are shown anonymously")
    async def owner(self, info: Info) -> PublicProfile | None:
        if self._blind:
            return None
        return PublicProfile.from_profile(await info.context.loaders.owner.load(self._doc["owner"]))

    @strawberry.field
    def suggestions(self, info: Info) -> list[TagSuggestion]:
        if self._blind or not _is_owner(info, self._doc):
            return []
        rejected = set(self._doc.get("rejected_tags", []))
        accepted = set(self._doc.get("tags", []))
        return [
            TagSuggestion(tag=s["tag"], score=s["score"], source=s["source"])
            for s in self._doc.get("suggestions", [])
            if s["tag"] not in rejected and s["tag"] not in accepted
        ]

    @strawberry.field
    def quality(self) -> Quality | None:
        q = self._doc.get("quality")
        if self._blind or not q:
            return None
        return Quality(**{k: q[k] for k in ("score", "aesthetic", "sharpness", "exposure", "noise", "resolution")})

    @strawberry.field
    def rating(self) -> Rating | None:
        r = self._doc.get("rating")
        if self._blind or not r:
            return None
        return Rating(score=r["score"], mu=r["mu"], sigma=r["sigma"], votes=r.get("votes", 0),
                      wins=r.get("wins", 0), losses=r.get("losses", 0), draws=r.get("draws", 0))

    @strawberry.field
    async def duplicate_of(self, info: Info) -> Photo | None:
        target = self._doc.get("duplicate_of")
        if self._blind or target is None:
            return None
        doc = await info.context.loaders.photo.load(target)
        return Photo.from_doc(doc) if doc else None

    @strawberry.field
    def celebrity(self, info: Info) -> Annotated[CelebrityInfo, strawberry.lazy("api.schema.celebrities")] | None:
        from api.schema.celebrities import CelebrityInfo

        if self._blind:
            return None
        return CelebrityInfo.for_photo(self._doc, info)


def _is_owner(info: Info, doc: dict[str, Any]) -> bool:
    uid = info.context.principal.uid
    return uid is not None and uid == doc.get("owner")


@strawberry.type
class SimilarPhoto:
    photo: Photo
    similarity: float
