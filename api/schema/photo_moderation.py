"""A photo's moderation as its owner and admins see it (`Photo.moderation`): why it was held back, what
was decided, and (admins) the decisions on record. Apart from `moderation`, which needs `Photo`, so that
`api.schema.photos` can name these lazily without an import cycle."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from bson import ObjectId
from strawberry.types import Info


@strawberry.enum(description="An admin's decision on a photo")
class ModerationDecision(Enum):
    APPROVE = strawberry.enum_value("APPROVE", description="Visible to everyone (READY); the reports that hid "
                                                           "it never count again")
    REJECT = strawberry.enum_value("REJECT", description="Hidden for good; only its owner and admins see it")


@strawberry.enum(description="Where a photo stands in moderation")
class ModerationState(Enum):
    PENDING = strawberry.enum_value("pending", description="Hidden until an admin decides")
    APPROVED = strawberry.enum_value("approved", description="An admin made it visible (again)")
    REJECTED = strawberry.enum_value("rejected", description="An admin keeps it hidden for good")


@strawberry.enum(description="What held a photo back")
class ModerationSource(Enum):
    SCREENING = strawberry.enum_value("screening", description="Content screening at upload")
    REPORTS = strawberry.enum_value("reports", description="Enough players reported it")
    ADMIN = strawberry.enum_value("admin", description="An admin acted on it directly")


@strawberry.type(description="A content label's score from 0 to 1 (screening at upload)")
class LabelScore:
    label: str = strawberry.field(description="The label: nudity, gore, violence (the classifier's own names)")
    score: float = strawberry.field(description="0: nothing of the kind seen; 1: certain. The photo was held back "
                                                "when a score reached its label's threshold")


def label_scores(scores: dict[str, Any]) -> list[LabelScore]:
    return [LabelScore(label=k, score=float(v)) for k, v in sorted(scores.items(), key=lambda kv: -float(kv[1]))]


@strawberry.type(description="An admin's decision, as recorded: who, when, what, and why")
class ModerationDecisionRecord:
    decision: ModerationDecision = strawberry.field(description="What was decided")
    decided_by: str = strawberry.field(description="The admin's user id")
    decided_at: datetime = strawberry.field(description="When")
    note: str | None = strawberry.field(description="The admin's note, also sent to the owner")
    previous_status: str = strawberry.field(description="The photo's status when the admin decided (READY, HIDDEN)")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ModerationDecisionRecord:
        return cls(decision=ModerationDecision(doc["decision"]), decided_by=doc["by"], decided_at=doc["at"],
                   note=doc.get("note"), previous_status=(doc.get("previous") or {}).get("status", ""))


@strawberry.type(description="Why a photo was held back, and what was decided; its owner and admins only")
class PhotoModeration:
    state: ModerationState = strawberry.field(description="Pending review, approved or rejected")
    source: ModerationSource = strawberry.field(description="What held it back (or who took it down)")
    reasons: list[str] = strawberry.field(description="Screening's labels (nudity, gore, violence) or the "
                                                      "reports' reasons, the strongest first")
    scores: list[LabelScore] = strawberry.field(description="Screening's scores of those labels, highest first")
    hidden_at: datetime | None = strawberry.field(description="When it was hidden; null for one approved without "
                                                              "ever being hidden")
    decided_at: datetime | None = strawberry.field(description="When an admin last decided; null while pending")
    note: str | None = strawberry.field(description="The admin's note with the decision")
    _doc: strawberry.Private[dict[str, Any]]
    _photo: strawberry.Private[ObjectId]

    @classmethod
    def from_doc(cls, photo: dict[str, Any]) -> PhotoModeration:
        moderation = photo["moderation"]
        return cls(state=ModerationState(moderation["state"]), source=ModerationSource(moderation["source"]),
                   reasons=list(moderation.get("reasons", [])), scores=label_scores(moderation.get("scores") or {}),
                   hidden_at=moderation.get("hidden_at"), decided_at=moderation.get("decided_at"),
                   note=moderation.get("note"), _doc=moderation, _photo=photo["_id"])

    @classmethod
    def for_photo(cls, doc: dict[str, Any], info: Info) -> PhotoModeration | None:
        principal = info.context.principal
        if not doc.get("moderation") or not (principal.admin or (principal.uid is not None
                                                                 and principal.uid == doc.get("owner"))):
            return None  # why a photo was held back is between its owner and the moderators
        return cls.from_doc(doc)

    @strawberry.field(description="The admin who decided last (admins only; null for the owner)")
    def decided_by(self, info: Info) -> str | None:
        return self._doc.get("decided_by") if info.context.principal.admin else None

    @strawberry.field(description="Every admin decision on the photo, newest first, with who and when (admins "
                                  "only; empty for the owner)")
    async def decisions(self, info: Info) -> list[ModerationDecisionRecord]:
        if not info.context.principal.admin:
            return []
        history = await info.context.loaders.decisions.load(self._photo)
        return [ModerationDecisionRecord.from_doc(d) for d in history]
