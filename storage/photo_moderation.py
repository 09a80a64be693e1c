"""The shape of a photo's `moderation` sub-document, and the filters its writes are conditional on.

Pure: `storage.photos.PhotoRepository` does the reads and writes with these, so the rules of the
document (what a hide or a decision sets, what a write must find unchanged) read in one place.

    moderation: {state: pending | approved | rejected, source: screening | reports | admin,
                 reasons [label or report reason], scores {label: score} (screening),
                 reports (distinct reporters that hid it), round, hidden_at,
                 decided_by, decided_at, note, previous_status}

A photo without `moderation` was never held back. HIDDEN with `pending` waits in the admin queue;
`approved` is READY again; `rejected` stays HIDDEN for good (the owner and admins still see it).

`round` numbers the stretches between decisions: a report is counted in the round it was made in, and
every decision starts the next round, so reports an admin has answered never count again (an approved
photo is not hidden again by the reports that hid it). A write is conditional on the round (and the
status) it read, which makes it a compare-and-set: of a report and a decision racing, the one that
wrote second finds the round moved on and does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from storage.base import Doc
from storage.pagination import SortKey

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
SCREENING, REPORTS, ADMIN = "screening", "reports", "admin"
# Oldest hidden first: the photo that has waited longest is reviewed first.
QUEUE_ORDER = SortKey((("moderation.hidden_at", 1), ("_id", 1)))


def round_of(doc: Mapping[str, object]) -> int:
    """The photo's current round (0 for a photo never moderated)."""
    moderation = doc.get("moderation")
    return int(moderation.get("round", 0)) if isinstance(moderation, Mapping) else 0


def in_round(round: int) -> Doc:
    """A filter matching a photo in this round. Round 0 is the photo never moderated: a moderated photo
    that is READY has had a decision, so it is in round 1 or later."""
    return {"moderation": {"$exists": False}} if round == 0 else {"moderation.round": round}


def as_read(doc: Mapping[str, object]) -> Doc:
    """A filter matching the photo only while its status and moderation are as read."""
    if not isinstance(doc.get("moderation"), Mapping):
        return {"_id": doc["_id"], "status": doc["status"], "moderation": {"$exists": False}}
    return {"_id": doc["_id"], "status": doc["status"], "moderation.round": round_of(doc)}


def hidden(source: str, reasons: Sequence[str], *, round: int, at: datetime,
           scores: Mapping[str, float] | None = None, reports: int | None = None) -> Doc:
    """Held back pending review, by screening (with the scores) or by reports (with their count)."""
    doc: Doc = {"state": PENDING, "source": source, "reasons": list(reasons), "round": round, "hidden_at": at}
    if scores is not None:
        doc["scores"] = dict(scores)
    if reports is not None:
        doc["reports"] = reports
    return doc


def decided(previous: Mapping[str, object], state: str, *, was_hidden: bool, by: str, at: datetime,
            note: str | None) -> Doc:
    """An admin's decision on the photo as read; the next round begins. On a hidden photo what hid it
    stays on record; a photo taken down while visible is the admin's own doing (source `admin`)."""
    before = previous.get("moderation")
    kept: Doc = dict(before) if was_hidden and isinstance(before, Mapping) else {"source": ADMIN, "reasons": []}
    kept.update(state=state, round=round_of(previous) + 1, decided_by=by, decided_at=at, note=note,
                previous_status=previous["status"])
    if not was_hidden and state == REJECTED:
        kept["hidden_at"] = at
    return kept


def queue_query(hidden_status: str) -> Doc:
    """Photos waiting for a decision (index `moderation_queue`)."""
    return {"moderation.state": PENDING, "status": hidden_status}
