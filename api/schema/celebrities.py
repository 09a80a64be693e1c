"""Celebrity information on a photo: only for admins and the photo's owner."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info


@strawberry.type(description="An enrolled famous person recognised in a photo")
class DetectedPerson:
    name: str = strawberry.field(description="The person's name, as enrolled")
    confidence: float = strawberry.field(
        description="How sure the match is, 0 to 1: about 0.5 at the match threshold, 0.95 for a clear match")


@strawberry.type(description="The faces in a photo and the enrolled famous people among them, whose fame advantage "
                             "the rating discounts. The photo's owner and admins only")
class CelebrityInfo:
    detected: bool = strawberry.field(description="Whether at least one enrolled person was recognised")
    faces: int = strawberry.field(description="How many faces were found in the photo")
    people: list[DetectedPerson] = strawberry.field(description="The people recognised, possibly none")

    @classmethod
    def for_photo(cls, doc: dict[str, Any], info: Info) -> CelebrityInfo | None:
        data = doc.get("celebrity")
        if data is None:
            return None
        principal = info.context.principal
        if not (principal.admin or (principal.uid is not None and principal.uid == doc.get("owner"))):
            return None  # who is in a photo, and that its rank is discounted, is the owner's business
        people = [DetectedPerson(name=p["name"], confidence=p["confidence"]) for p in data.get("people", [])]
        return cls(detected=bool(people), faces=int(doc.get("faces_count", 0)), people=people)
