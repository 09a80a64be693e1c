"""Signed tickets for series rounds and for a photographer's private duels, so issuing one writes nothing.

The same scheme as a duel ticket (`gaming.duels.tickets`): the photos shown, bound to one player and an
expiry, carried by the client as the round's id, ``base64url(payload || HMAC-SHA256(key, payload)[:16])``
(sealed by `gaming.duels.ticket_seal`, as a duel ticket is).
The key is derived from the duel secret with a label of its own, so a series ticket never verifies as a
duel ticket nor the other way round: a private duel's ticket cannot be voted into the public log through
`voteDuel`, and a public round's cannot be answered as a private duel (the kind is in the signed payload).

Payload: version, kind (ROUND: a public series round; PRIVATE: an owner's duel inside one of their
groups), a random 12-byte nonce (the answer's `_id`: one ticket, one answer), the expiry, the group (all
zeros when none), the photo ids (2 to `gaming.series.MAX_SERIES`), the category asked for and the player.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

from bson import ObjectId

from gaming.duels.ticket_seal import TicketSeal, read_texts, text
from gaming.series import MAX_SERIES

VERSION = 1
KEY_LABEL = b"photoduel series tickets v1"
# version, kind, nonce, expiry (unix seconds), group, photo count
_HEAD = struct.Struct(">BB12sI12sB")
_NO_GROUP = bytes(12)


class SeriesKind(IntEnum):
    ROUND = 1  # a public series round: "pick the best", rated into the public ratings
    PRIVATE = 2  # an owner comparing their own photos of one group: never enters public ratings


class InvalidSeriesTicket(ValueError):
    """Not a series ticket this server issued (malformed, or the signature does not match)."""


@dataclass(frozen=True)
class SeriesTicket:
    kind: SeriesKind
    nonce: ObjectId
    player: str
    photos: tuple[ObjectId, ...]
    expires_at: datetime
    group: ObjectId | None = None
    category: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now


class SeriesTicketSigner:
    def __init__(self, secret: bytes) -> None:
        self._seal = TicketSeal(secret, label=KEY_LABEL)

    def sign(self, ticket: SeriesTicket) -> str:
        if not 2 <= len(ticket.photos) <= MAX_SERIES:
            raise ValueError(f"a series ticket holds 2 to {MAX_SERIES} photos, got {len(ticket.photos)}")
        head = _HEAD.pack(VERSION, int(ticket.kind), ticket.nonce.binary, int(ticket.expires_at.timestamp()),
                          ticket.group.binary if ticket.group is not None else _NO_GROUP, len(ticket.photos))
        payload = head + b"".join(p.binary for p in ticket.photos) + text(ticket.category or "") + text(ticket.player)
        return self._seal.seal(payload)

    def verify(self, ticket_id: str) -> SeriesTicket:
        """The ticket behind an id; raises InvalidSeriesTicket for anything this server did not sign."""
        payload = self._seal.open(ticket_id, min_payload=_HEAD.size + 2)
        if payload is None:
            raise InvalidSeriesTicket("not a series ticket")
        version, kind, nonce, expiry, group, count = _HEAD.unpack_from(payload)
        if version != VERSION or kind not in iter(SeriesKind):
            raise InvalidSeriesTicket("not a series ticket")
        at = _HEAD.size
        photos = tuple(ObjectId(payload[at + 12 * i: at + 12 * (i + 1)]) for i in range(count))
        category, player = read_texts(payload[at + 12 * count:], 2)
        return SeriesTicket(kind=SeriesKind(kind), nonce=ObjectId(nonce), player=player, photos=photos,
                            expires_at=datetime.fromtimestamp(expiry, UTC),
                            group=None if group == _NO_GROUP else ObjectId(group), category=category or None)
