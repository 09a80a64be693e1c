"""Moderation of photos after ingest: players' reports, the admin queue, and admins' decisions.

Screening at ingest (`ml.screening`, `ml.pipelines.ingest`) is one way a photo is held back; reports
are the other: when `reports_to_hide` distinct registered players have reported a READY photo in the
current round (`storage.photo_moderation`), the report that reaches the count hides it, READY ->
HIDDEN by a write conditional on the round, so of several reports racing over the line one hides it
and the photo is announced once. Reports from anonymous accounts are kept for the admins but not
counted: such accounts are free to make by the thousand. A hidden photo leaves every public read at
once (they all filter READY); this process's duel catalogue drops it (`on_hidden`), the others do not
need to: matchmaking re-reads both photos by id before it issues a duel, and a vote re-checks them.

An admin's decision (APPROVE, REJECT) is applied with a compare-and-set on the photo's status and
round, carries who and when on the photo itself and is appended to `moderation_decisions` with the
photo as it was. APPROVE makes the photo READY (it keeps its vectors, ratings and lists, and `ready_at`
brings it back into every process's duel catalogue); the reports that hid it belong to the round that
the decision closed, so they never hide it again. REJECT keeps it hidden for good. The owner is told
both ways.

Hiding and approving change what the photo's similarity group shows (its best photo, its size): both
await `refresh_groups` before the request answers, so `groups(...)` lists the change at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from notifications.moderation import announce_decision, announce_held
from notifications.outbox import Outbox
from photos.editing import NotPhotoOwner, PhotoNotFound, visible_photo
from photos.group_listing import RefreshGroups, no_refresh
from photos.queries import Viewer
from storage.base import Doc, parse_object_id
from storage.clock import utcnow
from storage.moderation_decisions import ModerationDecisionRepository
from storage.pagination import Page
from storage.photo_moderation import APPROVED, REJECTED, REPORTS, decided, round_of
from storage.photo_reports import PhotoReportRepository
from storage.photos import DELETED, HIDDEN, READY, PhotoRepository

__all__ = ["APPROVE", "REJECT", "REPORT_REASONS", "ModerationCase", "ModerationService", "NotPhotoOwner",
           "PhotoNotFound", "RefusedModeration"]

APPROVE, REJECT = "APPROVE", "REJECT"
REPORT_REASONS = ("NUDITY", "VIOLENCE", "HATE", "HARASSMENT", "SPAM", "COPYRIGHT", "OTHER")
MAX_TEXT = 500  # a report's text, a decision's note: shown to admins, and a note to the owner
NOTES_PER_CASE = 20  # report texts shown with a queued photo
DECISION_ATTEMPTS = 5  # compare-and-set tries against concurrent reports and decisions

Announce = Callable[[dict[str, Any]], Awaitable[None]]


class RefusedModeration(ValueError):
    """An argument or a photo state the request cannot take; `argument` names the argument."""

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


@dataclass(frozen=True)
class ModerationCase:
    """A photo waiting for a decision, with the reports of its round per reason (most given first) and the
    texts they came with (newest first)."""

    photo: Doc
    report_reasons: list[tuple[str, int]]
    report_notes: list[str]

    @property
    def reports(self) -> int:
        return sum(n for _, n in self.report_reasons)


def _text(value: str | None, argument: str) -> str | None:
    text = (value or "").strip()
    if len(text) > MAX_TEXT:
        raise RefusedModeration(f"`{argument}` is at most {MAX_TEXT} characters", argument=argument)
    return text or None


class ModerationService:
    def __init__(self, photos: PhotoRepository, reports: PhotoReportRepository,
                 decisions: ModerationDecisionRepository, outbox: Outbox, *, reports_to_hide: int,
                 on_hidden: Callable[[Mapping[str, Any]], None] = lambda doc: None,
                 on_ready: Callable[[Mapping[str, Any]], None] = lambda doc: None,
                 on_announced: Announce | None = None, refresh_groups: RefreshGroups = no_refresh) -> None:
        """`on_hidden` / `on_ready`: this process's duel catalogue drops or takes back the photo;
        `on_announced`: wakes push delivery for a new owner notification; `refresh_groups`: the photo's
        similarity group is summarised again (`photos.group_listing`)."""
        self.photos = photos
        self.reports = reports
        self.decisions = decisions
        self.outbox = outbox
        self.reports_to_hide = reports_to_hide
        self.on_hidden = on_hidden
        self.on_ready = on_ready
        self.on_announced = on_announced
        self.refresh_groups = refresh_groups

    async def _announced(self, outcome: tuple[dict[str, Any], bool]) -> None:
        record, created = outcome
        if created and self.on_announced is not None:
            await self.on_announced(record)

    # --- reports ------------------------------------------------------------------------------------

    async def report(self, viewer: Viewer, photo_id: str, reason: str, text: str | None = None, *,
                     counted: bool = True) -> bool:
        """Record the viewer's report; False when they had reported this photo already (a no-op).
        `counted`: False for an anonymous account's report, kept but not counted towards hiding.
        Raises PhotoNotFound (unknown, or not the viewer's to see), NotPhotoOwner (their own photo),
        RefusedModeration (a bad reason or text, a photo that is not READY)."""
        if reason not in REPORT_REASONS:
            raise RefusedModeration(f"unknown reason {reason!r}: one of {', '.join(REPORT_REASONS)}",
                                    argument="reason")
        note = _text(text, "text")
        doc = await visible_photo(self.photos, viewer, photo_id)
        if doc["owner"] == viewer.uid:
            raise NotPhotoOwner(photo_id)
        if doc["status"] != READY:
            raise RefusedModeration("only a READY photo can be reported", argument="id")
        assert viewer.uid is not None
        round = round_of(doc)
        created = await self.reports.add(photo=doc["_id"], owner=doc["owner"], reporter=viewer.uid, reason=reason,
                                         text=note, round=round, counted=counted)
        if created and counted:
            await self._hide_if_reported(doc, round)
        return created

    async def _hide_if_reported(self, doc: Doc, round: int) -> None:
        """Counted after this report's insert, so of reports racing over the line at least one sees the
        full count; the conditional write lets exactly one hide the photo."""
        tally = (await self.reports.tallies([(doc["_id"], round)])).get(doc["_id"], [])
        reporters = sum(n for _, n in tally)
        if reporters < self.reports_to_hide:
            return
        reasons = [reason for reason, _ in tally]
        hidden = await self.photos.hide_reported(doc["_id"], round=round, reasons=reasons, reports=reporters)
        if hidden is None:
            return
        self.on_hidden(hidden)
        await self.refresh_groups([hidden])
        await self._announced(await announce_held(self.outbox, hidden, source=REPORTS, reasons=reasons, round=round))

    # --- the admin queue ----------------------------------------------------------------------------

    async def queue(self, *, first: int, after: str | None) -> tuple[Page, list[ModerationCase]]:
        """Photos waiting for a decision, the longest waiting first, with their round's report counts.
        Raises InvalidCursor."""
        page = await self.photos.moderation_queue(first=first, after=after)
        rounds = [(d["_id"], round_of(d)) for d in page.docs]
        tallies, notes = await asyncio.gather(self.reports.tallies(rounds),
                                              self.reports.notes(rounds, per_photo=NOTES_PER_CASE))
        return page, [ModerationCase(photo=d, report_reasons=tallies.get(d["_id"], []),
                                     report_notes=notes.get(d["_id"], [])) for d in page.docs]

    # --- decisions ----------------------------------------------------------------------------------

    async def decide(self, admin: str, photo_id: str, decision: str, note: str | None = None) -> Doc:
        """Apply and record an admin's decision; the photo as it is afterwards. The same decision again on
        a photo already in that state changes and records nothing (a retried request). Raises
        PhotoNotFound (unknown or deleted), RefusedModeration (a photo still processing, or failed)."""
        if decision not in (APPROVE, REJECT):
            raise RefusedModeration(f"a decision is {APPROVE} or {REJECT}", argument="decision")
        note = _text(note, "note")
        oid = parse_object_id(photo_id)
        for _ in range(DECISION_ATTEMPTS):
            doc = await self.photos.get(oid) if oid is not None else None
            if doc is None or doc["status"] == DELETED:  # a deleted photo is an unknown one
                raise PhotoNotFound(photo_id)
            if doc["status"] not in (READY, HIDDEN):
                raise RefusedModeration(f"a {doc['status']} photo cannot be moderated", argument="id")
            state = APPROVED if decision == APPROVE else REJECTED
            if (doc.get("moderation") or {}).get("state") == state:
                return doc
            at = utcnow()
            moderation = decided(doc, state, was_hidden=doc["status"] == HIDDEN, by=admin, at=at, note=note)
            updated = await self.photos.moderate(doc, READY if decision == APPROVE else HIDDEN, moderation)
            if updated is not None:
                await self.refresh_groups([updated])
                await self._record(doc, updated, decision, admin, note)
                return updated
        raise RefusedModeration("the photo kept changing while the decision was made: try again", argument="id")

    async def _record(self, before: Doc, after: Doc, decision: str, admin: str, note: str | None) -> None:
        moderation = before.get("moderation") or {}
        round = round_of(before)
        await self.decisions.record(
            photo=before["_id"], owner=before["owner"], decision=decision, by=admin,
            at=after["moderation"]["decided_at"], note=note,
            previous={"status": before["status"], "state": moderation.get("state"), "source": moderation.get("source"),
                      "reasons": moderation.get("reasons", []), "round": round})
        reasons = after["moderation"].get("reasons", [])
        if decision == APPROVE:
            self.on_ready(after)
            if before["status"] != HIDDEN:
                return  # it never left: nothing to tell the owner
        else:
            self.on_hidden(after)
        await self._announced(await announce_decision(self.outbox, after, approved=decision == APPROVE,
                                                      round=round, reasons=reasons, note=note))

    async def history(self, photo: ObjectId) -> list[Doc]:
        """The decisions on a photo, newest first."""
        return await self.decisions.for_photo(photo)

    async def histories(self, photos: Sequence[ObjectId]) -> dict[ObjectId, list[Doc]]:
        """`history` of several photos in one read (a page of photos an admin looks at); those without
        any decision are absent."""
        return await self.decisions.for_photos(photos)
