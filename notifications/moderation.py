"""What a photographer is told when moderation holds a photo back, and when a moderator decides on it.

One outbox record per event, keyed by the photo, its moderation round and the event (`held`,
`approved`, `rejected`): a round sees at most one hide and ends with one decision
(`storage.photo_moderation`), so the key names the event exactly and a retried write announces once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from notifications.outbox import MODERATION, Outbox
from storage.photo_moderation import REPORTS

HELD, APPROVED, REJECTED = "held", "approved", "rejected"


def _reasons(reasons: Sequence[str]) -> str:
    return ", ".join(r.replace("_", " ").lower() for r in reasons) or "the content rules"


def _key(photo: Mapping[str, Any], round: int, event: str) -> str:
    return f"moderation:{photo['_id']}:{round}:{event}"


async def _record(outbox: Outbox, photo: Mapping[str, Any], key: str, event: str, title: str,
                  body: str) -> tuple[dict[str, Any], bool]:
    photo_id = str(photo["_id"])
    return await outbox.record(
        key=key, user=photo["owner"], kind=MODERATION, title=title, body=body,
        data={"photoId": photo_id, "kind": MODERATION, "event": event, "deepLink": f"photoduel://photos/{photo_id}"},
    )


async def announce_held(outbox: Outbox, photo: Mapping[str, Any], *, source: str, reasons: Sequence[str],
                        round: int) -> tuple[dict[str, Any], bool]:
    """"Your photo is hidden until a moderator reviews it", with why: what screening saw, or that
    players reported it and for what."""
    title = photo.get("title") or "Your photo"
    why = (f"several players reported it ({_reasons(reasons)})" if source == REPORTS
           else f"our screening thinks it may show {_reasons(reasons)}")
    return await _record(outbox, photo, _key(photo, round, HELD), HELD, "Photo held for review",
                         f"{title} is hidden until a moderator reviews it: {why}.")


async def announce_decision(outbox: Outbox, photo: Mapping[str, Any], *, approved: bool, round: int,
                            reasons: Sequence[str], note: str | None) -> tuple[dict[str, Any], bool]:
    """The moderator's decision: visible again, or hidden for good (with the reasons and the note)."""
    title = photo.get("title") or "Your photo"
    if approved:
        return await _record(outbox, photo, _key(photo, round, APPROVED), APPROVED, "Photo visible again",
                             f"{title} was reviewed and is visible to everyone again.")
    body = f"{title} was reviewed and stays hidden: it breaks the rules ({_reasons(reasons)})."
    if note:
        body += f" {note}"
    return await _record(outbox, photo, _key(photo, round, REJECTED), REJECTED, "Photo removed", body)
