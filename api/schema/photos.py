"""The Photo type and what hangs off it. Built from the stored document; the raw document stays private."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from bson import ObjectId
from strawberry.types import Info

from api.resolvers.blocks import blocked_owners
from api.schema.common import Connection, connection, page_size, paged
from api.schema.node import Node
from api.schema.profiles import PublicProfile
from gaming.duels.groups import GroupView
from photos.queries import visible

if TYPE_CHECKING:
    from api.schema.celebrities import CelebrityInfo
    from api.schema.photo_moderation import PhotoModeration
    from api.schema.series_rank import SeriesRank


@strawberry.enum(description="Where a photo stands: being analysed, public, failed, or held back by moderation")
class PhotoStatus(Enum):
    _value_: str  # the values are these strings; mypy would type them as enum_value's EnumValueDefinition
    PROCESSING = strawberry.enum_value(
        "PROCESSING", description="Uploaded and being analysed (tags, quality, category), usually for seconds; only "
                                  "the owner and admins see it")
    READY = strawberry.enum_value("READY", description="Analysed and public: listed, searchable and in duels")
    FAILED = strawberry.enum_value(
        "FAILED", description="Processing gave up (see `failure`); only the owner and admins see it")
    HIDDEN = strawberry.enum_value(
        "HIDDEN", description="Held back by moderation (see `moderation`); only the owner and admins see it")


@strawberry.enum(description="A served rendition of a photo: each a JPEG without EXIF or GPS, never upscaled")
class ImageVariant(Enum):
    _value_: str  # the values are these strings; mypy would type them as enum_value's EnumValueDefinition
    ORIGINAL = strawberry.enum_value("original", description="Full size, re-encoded (not the uploaded file itself)")
    DISPLAY = strawberry.enum_value(
        "display", description="Longest side at most 2048 px by default: for full-screen viewing")
    THUMBNAIL = strawberry.enum_value(
        "thumbnail", description="Longest side at most 400 px by default: for grids and lists")


@strawberry.enum(description="How `photos` sorts")
class PhotoOrder(Enum):
    _value_: str  # the values are these strings; mypy would type them as enum_value's EnumValueDefinition
    NEWEST = strawberry.enum_value("NEWEST", description="Most recently uploaded first")
    OLDEST = strawberry.enum_value("OLDEST", description="Earliest uploaded first")
    SCORE = strawberry.enum_value(
        "SCORE", description="Best rated first (by the conservative skill that `rating.score` shows)")


@strawberry.type(description="A tag the model proposes for the owner's photo: acceptTags adds it, rejectTags "
                             "drops it")
class TagSuggestion:
    tag: str = strawberry.field(description="The tag, lower-case, as acceptTags takes it")
    score: float = strawberry.field(description="Confidence from 0 to 1: CLIP's match blended with the tags owners "
                                                "accepted on visually similar photos")
    source: str = strawberry.field(description="clip, neighbours, or clip+neighbours")


@strawberry.type(description="The model's assessment of a photo, each part from 0 (poor) to 1 (good); it seeds "
                             "the rating before any vote")
class Quality:
    score: float = strawberry.field(description="Model quality in [0, 1]: the rating prior")
    aesthetic: float = strawberry.field(description="How pleasing CLIP judges the photo, 0 to 1")
    sharpness: float = strawberry.field(description="Fine detail, grain not counted: 0 (blurred) to 1 (sharp)")
    exposure: float = strawberry.field(
        description="Brightness balance, 0 to 1: low for a too dark or too bright photo, blown highlights cost most")
    noise: float = strawberry.field(description="Freedom from grain: 1 clean, 0.5 at moderate noise, near 0 very noisy")
    resolution: float = strawberry.field(
        description="Pixel count on a log scale: 0 at 0.1 megapixels or fewer, 0.48 at 1 MP, 1 at 12 MP or more")


@strawberry.type(description="The photo's TrueSkill rating from duel votes, seeded by the model's quality score")
class Rating:
    score: float = strawberry.field(description="1.0 - 10.0, from the conservative skill mu - k*sigma")
    mu: float = strawberry.field(description="TrueSkill mean skill: 25 is an average photo (unbounded)")
    sigma: float = strawberry.field(
        description="Uncertainty of mu: 5 to 8.3 before any vote, shrinking as votes come in")
    votes: int = strawberry.field(description="Votes applied to this rating so far")
    wins: int = strawberry.field(description="Duels this photo won")
    losses: int = strawberry.field(description="Duels this photo lost")
    draws: int = strawberry.field(description="Duels that ended in DRAW")


@strawberry.type(description="Why and when processing of a photo failed")
class PhotoFailure:
    reason: str = strawberry.field(description="Why ingest gave up on the photo")
    at: datetime = strawberry.field(description="When processing gave up")


@strawberry.type(description="An uploaded photo: its renditions, tags, the model's assessment and its duel rating. "
                             "Inside a duel, owner, quality, rating and celebrity are null")
class Photo(Node):
    status: PhotoStatus = strawberry.field(description="Where the photo stands; only READY photos are public")
    title: str | None = strawberry.field(description="The owner's title, at most 200 characters; null when none")
    width: int | None = strawberry.field(
        description="Width in pixels of the upright original (EXIF orientation applied); null when unknown")
    height: int | None = strawberry.field(
        description="Height in pixels of the upright original (EXIF orientation applied); null when unknown")
    category: str | None = strawberry.field(
        description="One of `categories`: the model's choice, or the owner's (setCategory); null until READY")
    tags: list[str] = strawberry.field(
        description="The tags the owner accepted (acceptTags), lower-case, at most 30: what `photos(tag:)` matches")
    created_at: datetime = strawberry.field(description="When the photo was uploaded")
    failure_reason: str | None = strawberry.field(
        description="Why processing failed, as `failure.reason`; null unless FAILED")
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
    def url(self, info: Info, variant: Annotated[ImageVariant, strawberry.argument(
            description="Which rendition")] = ImageVariant.DISPLAY) -> str | None:
        rendition = (self._doc.get("renditions") or {}).get(variant.value)
        if not rendition:
            return None
        return f"{info.context.base_url}/images/{self.id}/{variant.value}?v={rendition['etag']}"

    @strawberry.field(description="The category the model chose; differs from `category` once the owner set one")
    def model_category(self) -> str | None:
        return self._doc.get("category_model") or self._doc.get("category")

    @strawberry.field(description="How sure the model is of `modelCategory`, from 0 to 1 (CLIP's probability blended "
                                  "with the visually similar photos' categories); null until READY")
    def category_confidence(self) -> float | None:
        value = self._doc.get("category_score")
        return float(value) if value is not None else None

    @strawberry.field(description="Why processing failed (FAILED photos, seen by their owner and admins)")
    def failure(self) -> PhotoFailure | None:
        failure = self._doc.get("failure")
        return PhotoFailure(reason=failure["reason"], at=failure["at"]) if failure else None

    @strawberry.field(description="The photographer; null inside a duel, where photos are shown anonymously")
    async def owner(self, info: Info) -> PublicProfile | None:
        if self._blind:
            return None
        return PublicProfile.from_profile(await info.context.loaders.owner.load(self._doc["owner"]))

    @strawberry.field(description="Tag suggestions not yet accepted or rejected, best first; the owner's only "
                                  "(empty for anyone else and inside a duel)")
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

    @strawberry.field(description="The model's assessment; null inside a duel and until READY")
    def quality(self) -> Quality | None:
        q = self._doc.get("quality")
        if self._blind or not q:
            return None
        return Quality(**{k: q[k] for k in ("score", "aesthetic", "sharpness", "exposure", "noise", "resolution")})

    @strawberry.field(description="The duel rating; null inside a duel and until READY")
    def rating(self) -> Rating | None:
        r = self._doc.get("rating")
        if self._blind or not r:
            return None
        return Rating(score=r["score"], mu=r["mu"], sigma=r["sigma"], votes=r.get("votes", 0),
                      wins=r.get("wins", 0), losses=r.get("losses", 0), draws=r.get("draws", 0))

    @strawberry.field(description="The earlier photo this one nearly copies, when its viewer may see it")
    async def duplicate_of(self, info: Info) -> Photo | None:
        target = self._doc.get("duplicate_of")
        if self._blind or target is None:
            return None
        doc = await info.context.loaders.photo.load(target)
        if doc is None or not visible(doc, info.context.viewer):
            return None  # an original held back by moderation (or deleted) is not shown through its copy
        return Photo.from_doc(doc)

    @strawberry.field(description="Enrolled famous people recognised in the photo (their fame advantage is taken "
                                  "out of the rating); the owner and admins only: null for anyone else, inside a "
                                  "duel, and until faces were checked")
    def celebrity(self, info: Info) -> Annotated[CelebrityInfo, strawberry.lazy("api.schema.celebrities")] | None:
        from api.schema.celebrities import CelebrityInfo

        if self._blind:
            return None
        return CelebrityInfo.for_photo(self._doc, info)

    @strawberry.field(description="The photo's similarity group (near-duplicates, crops and other shots of the "
                                  "same subject); null inside a duel, and until the photo is READY and grouped")
    def group(self) -> PhotoGroup | None:
        group = self._doc.get("group_id")
        if self._blind or group is None or self._doc.get("status") != PhotoStatus.READY.value:
            return None
        return PhotoGroup.of(group)

    @strawberry.field(description="Where this photo stands among its owner's photos of its similarity group, by "
                                  "the owner's private comparisons (nextSeriesDuel). The owner only: null for anyone "
                                  "else, inside a duel, for a photo not READY or not grouped, and while the owner has "
                                  "fewer than two READY photos in the group")
    async def series_rank(self, info: Info) -> Annotated[SeriesRank, strawberry.lazy("api.schema.series_rank")] | None:
        from api.schema.series_rank import SeriesRank

        group = self._doc.get("group_id")
        if (self._blind or group is None or self._doc.get("status") != PhotoStatus.READY.value
                or not _is_owner(info, self._doc)):
            return None
        series = await info.context.loaders.series.load((self._doc["owner"], group))
        rank = series.rank_of(self._doc["_id"], info.context.services.rating_env)
        return None if rank is None else SeriesRank(rank=rank.rank, size=rank.size, votes=rank.votes)

    @strawberry.field(description="Why the photo is held back (HIDDEN) or what a moderator decided; its owner "
                                  "and admins only, null for anyone else and for a photo never moderated")
    def moderation(self, info: Info
                   ) -> Annotated[PhotoModeration, strawberry.lazy("api.schema.photo_moderation")] | None:
        from api.schema.photo_moderation import PhotoModeration

        if self._blind:
            return None
        return PhotoModeration.for_photo(self._doc, info)


def _is_owner(info: Info, doc: dict[str, Any]) -> bool:
    uid = info.context.principal.uid
    return uid is not None and uid == doc.get("owner")


@strawberry.type(description="A photo that looks like the one asked about")
class SimilarPhoto:
    photo: Photo = strawberry.field(description="The similar photo (READY)")
    similarity: float = strawberry.field(
        description="Cosine similarity of the two photos' CLIP image embeddings: 1 is identical, higher is closer")


@strawberry.type(description="Photos of one subject: near-duplicates, crops and other shots that look alike, "
                             "grouped at upload. Only READY photos are members here.")
class PhotoGroup(Node):
    id: strawberry.ID = strawberry.field(description="The group's own id, never a photo's: `node(id:)` fetches "
                                                     "the group again")
    _group: strawberry.Private[ObjectId]

    @classmethod
    def of(cls, group_id: ObjectId) -> PhotoGroup:
        return cls(id=strawberry.ID(str(group_id)), _group=group_id)

    async def _shown(self, info: Info) -> tuple[GroupView, list[dict[str, Any]]]:
        """The group, and its members this viewer may see, best first."""
        view: GroupView = await info.context.loaders.group.load(self._group)
        blocked = set(await blocked_owners(info))
        return view, [m for m in view.members if m.get("owner") not in blocked]

    @strawberry.field(description="How many READY photos the group has (a blocked user's not counted)")
    async def size(self, info: Info) -> int:
        return len((await self._shown(info))[1])

    @strawberry.field(description="The group's best photo: its leader by conservative skill (what leaderboards "
                                  "sort by). Provisional until `settled`; null when the group has no READY photo")
    async def best(self, info: Info) -> Photo | None:
        _, shown = await self._shown(info)
        doc = await info.context.loaders.photo.load(shown[0]["_id"]) if shown else None
        return Photo.from_doc(doc) if doc is not None and doc["status"] == PhotoStatus.READY.value else None

    @strawberry.field(description="true once `best` is settled: enough votes and a low sigma (the featured rules), "
                                  "and no other member likely to beat it; false: not settled yet, `best` is the "
                                  "leader so far")
    async def settled(self, info: Info) -> bool:
        view, shown = await self._shown(info)
        return view.settled and bool(shown) and view.best is not None and shown[0]["_id"] == view.best["_id"]

    @strawberry.field(description="The group's READY photos, best first (highest conservative skill)")
    async def photos(
        self, info: Info,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Photo]:
        size = page_size(first, info.context.services.settings.max_page_size)
        with paged():
            page = await info.context.services.group_reads.members(
                self._group, first=size, after=after, excluding_owners=await blocked_owners(info))
        return connection(page, Photo.from_doc)
