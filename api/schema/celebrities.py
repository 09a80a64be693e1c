"""Celebrity information on a photo: only for admins and the photo's owner."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info


@strawberry.type
class DetectedPerson:
    name: str
    confidence: float


@strawberry.type
class CelebrityInfo:
    detected: bool
    faces: int
    people: list[DetectedPerson]

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
