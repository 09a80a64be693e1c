"""Duel tickets signed by the server, so issuing one writes nothing.

A ticket is the pair a player was shown, bound to that player and to an expiry, and carried by the client
as the duel id: ``base64url(payload || HMAC-SHA256(secret, payload)[:16])``. The vote and the skip check
the signature instead of reading a stored ticket, which takes the write off `nextDuel` entirely (it was
one of the two writers in the embedded server's deadlock) and lets any API process answer any ticket.

The payload holds a random 12-byte nonce (an ObjectId, so the answer to a ticket can use it as its
`_id`: one ticket, one answer), the two photo ids, the expiry, which side the anchor was on, whether the
pair came from the anchor's neighbour list (with its similarity), the category asked for, and the
player's uid. Replays are harmless: the answer is unique per nonce, and per player and pair.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from bson import ObjectId

VERSION = 1
MAC_BYTES = 16
# version, nonce, left, right, expiry (unix seconds), flags, similarity
_HEAD = struct.Struct(">B12s12s12sIBf")
ANCHOR_LEFT, NEIGHBOUR_PAIR = 1, 2
MAX_TEXT_BYTES = 255


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


def _text(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > MAX_TEXT_BYTES:
        raise ValueError(f"too long for a ticket: {value[:40]!r}...")
    return bytes([len(raw)]) + raw


class TicketSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the duel ticket secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:MAC_BYTES]

    def sign(self, ticket: Ticket) -> str:
        flags = (ANCHOR_LEFT if ticket.anchor_left else 0) | (NEIGHBOUR_PAIR if ticket.similarity is not None else 0)
        head = _HEAD.pack(VERSION, ticket.nonce.binary, ticket.left.binary, ticket.right.binary,
                          int(ticket.expires_at.timestamp()), flags, float(ticket.similarity or 0.0))
        payload = head + _text(ticket.category or "") + _text(ticket.player)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def verify(self, duel_id: str) -> Ticket:
        """The ticket behind a duel id; raises InvalidTicket for anything this server did not sign."""
        try:
            raw = base64.urlsafe_b64decode(duel_id + "=" * (-len(duel_id) % 4))
        except (binascii.Error, ValueError):
            raise InvalidTicket("not a duel id") from None
        if len(raw) < _HEAD.size + 2 + MAC_BYTES:
            raise InvalidTicket("not a duel id")
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidTicket("not a duel id")
        version, nonce, left, right, expiry, flags, similarity = _HEAD.unpack_from(payload)
        if version != VERSION:
            raise InvalidTicket("not a duel id")
        rest = payload[_HEAD.size:]
        category_len = rest[0]
        category = rest[1:1 + category_len].decode()
        player_len = rest[1 + category_len]
        player = rest[2 + category_len:2 + category_len + player_len].decode()
        return Ticket(
            nonce=ObjectId(nonce), player=player, left=ObjectId(left), right=ObjectId(right),
            expires_at=datetime.fromtimestamp(expiry, UTC), anchor_left=bool(flags & ANCHOR_LEFT),
            similarity=float(similarity) if flags & NEIGHBOUR_PAIR else None, category=category or None,
        )
