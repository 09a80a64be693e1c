"""Duel tickets signed by the server, so issuing one writes nothing.

A ticket is the pair a player was shown, bound to that player and to an expiry, and carried by the client
as the duel id: ``base64url(payload || HMAC-SHA256(secret, payload)[:16])`` (`gaming.duels.ticket_seal`).
The vote and the skip check the signature instead of reading a stored ticket, which takes the write off
`nextDuel` entirely (it was one of the two writers in the embedded server's deadlock) and lets any API
process answer any ticket.

The payload holds a random 12-byte nonce (an ObjectId, so the answer to a ticket can use it as its
`_id`: one ticket, one answer), the two photo ids, the expiry, which side the anchor was on, whether the
pair came from the anchor's neighbour list (with its similarity), the category asked for, and the
player's uid. Replays are harmless: the answer is unique per nonce, and per player and pair.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from bson import ObjectId

from gaming.duels.ticket_seal import TicketSeal, read_texts, text

VERSION = 1
# version, nonce, left, right, expiry (unix seconds), flags, similarity
_HEAD = struct.Struct(">B12s12s12sIBf")
ANCHOR_LEFT, NEIGHBOUR_PAIR = 1, 2


class InvalidTicket(ValueError):
    """Not a ticket this server issued (malformed, or the signature does not match)."""


@dataclass(frozen=True)
class Ticket:
    nonce: ObjectId
    player: str
    left: ObjectId
    right: ObjectId
    expires_at: datetime
    anchor_left: bool
    similarity: float | None  # None: the opponent did not come from the anchor's neighbour list
    category: str | None

    @property
    def anchor(self) -> ObjectId:
        return self.left if self.anchor_left else self.right

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now


class TicketSigner:
    def __init__(self, secret: bytes) -> None:
        self._seal = TicketSeal(secret)

    def sign(self, ticket: Ticket) -> str:
        flags = (ANCHOR_LEFT if ticket.anchor_left else 0) | (NEIGHBOUR_PAIR if ticket.similarity is not None else 0)
        head = _HEAD.pack(VERSION, ticket.nonce.binary, ticket.left.binary, ticket.right.binary,
                          int(ticket.expires_at.timestamp()), flags, float(ticket.similarity or 0.0))
        return self._seal.seal(head + text(ticket.category or "") + text(ticket.player))

    def verify(self, duel_id: str) -> Ticket:
        """The ticket behind a duel id; raises InvalidTicket for anything this server did not sign."""
        payload = self._seal.open(duel_id, min_payload=_HEAD.size + 2)
        if payload is None:
            raise InvalidTicket("not a duel id")
        version, nonce, left, right, expiry, flags, similarity = _HEAD.unpack_from(payload)
        if version != VERSION:
            raise InvalidTicket("not a duel id")
        category, player = read_texts(payload[_HEAD.size:], 2)
        return Ticket(
            nonce=ObjectId(nonce), player=player, left=ObjectId(left), right=ObjectId(right),
            expires_at=datetime.fromtimestamp(expiry, UTC), anchor_left=bool(flags & ANCHOR_LEFT),
            similarity=float(similarity) if flags & NEIGHBOUR_PAIR else None, category=category or None,
        )
