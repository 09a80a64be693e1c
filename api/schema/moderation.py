"""Moderation types of the admin queue and of reports; a photo's own moderation is `photo_moderation`.
Roots: `moderation_roots`."""

from __future__ import annotations

from enum import Enum

import strawberry

from api.schema.photo_moderation import LabelScore, PhotoModeration, label_scores
from api.schema.photos import Photo
from photos.moderation import ModerationCase as Case


@strawberry.enum(description="Why a player reports a photo")
class ReportReason(Enum):
    NUDITY = strawberry.enum_value("NUDITY", description="Nudity or sexual content")
    VIOLENCE = strawberry.enum_value("VIOLENCE", description="Violence or gore")
    HATE = strawberry.enum_value("HATE", description="Hate speech or symbols")
    HARASSMENT = strawberry.enum_value("HARASSMENT", description="Harassment of a person, or a private photo of "
                                                                 "someone without their consent")
    SPAM = strawberry.enum_value("SPAM", description="Advertising, or not a photo at all")
    COPYRIGHT = strawberry.enum_value("COPYRIGHT", description="Someone else's photo")
    OTHER = strawberry.enum_value("OTHER", description="Anything else: say what in `text`")


@strawberry.type(description="How many distinct players reported a photo for one reason")
class ReasonCount:
    reason: str = strawberry.field(description="A ReportReason value")
    reports: int = strawberry.field(description="Distinct players who gave this reason")


@strawberry.type(description="A photo waiting for an admin's decision")
class ModerationCase:
    photo: Photo = strawberry.field(description="The photo as its owner sees it (with its owner and image)")
    moderation: PhotoModeration = strawberry.field(description="Why it is held back")
    reports: int = strawberry.field(description="Distinct registered players who reported it since the last "
                                                "decision")
    report_reasons: list[ReasonCount] = strawberry.field(description="Those reports per reason, the most given first")
    report_notes: list[str] = strawberry.field(description="What the reporters wrote (`reportPhoto`'s text), newest "
                                                           "first, at most 20")
    screening: list[LabelScore] = strawberry.field(description="Every label's score at upload, highest first "
                                                               "(empty when screening was off)")

    @classmethod
    def from_case(cls, case: Case) -> ModerationCase:
        doc = case.photo
        return cls(photo=Photo.from_doc(doc), moderation=PhotoModeration.from_doc(doc), reports=case.reports,
                   report_reasons=[ReasonCount(reason=r, reports=n) for r, n in case.report_reasons],
                   report_notes=list(case.report_notes),
                   screening=label_scores((doc.get("screening") or {}).get("scores") or {}))
