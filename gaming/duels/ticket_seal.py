"""The signing core of every ticket kind: a payload sealed with a MAC, carried by the client as its id.

A sealed ticket is ``base64url(payload || HMAC-SHA256(key, payload)[:16])``, unpadded. Duel tickets
(`gaming.duels.tickets`) and series tickets (`gaming.duels.series_tickets`) differ only in their payload and
key (the series key is derived from the same secret with a label of its own, so one kind never verifies as
the other); the sealing, the check and the length-prefixed texts at the payload's end are this module's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

MAC_BYTES = 16
MAX_TEXT_BYTES = 255
MIN_SECRET_BYTES = 16


class TicketSeal:
    def __init__(self, secret: bytes, *, label: bytes | None = None) -> None:
        """`label`: derive the key from the secret with it (a ticket kind of its own); None: the secret is
        the key."""
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the duel ticket secret must be at least {MIN_SECRET_BYTES} bytes")
        self._key = secret if label is None else hmac.new(secret, label, hashlib.sha256).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:MAC_BYTES]

    def seal(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def open(self, token: str, *, min_payload: int) -> bytes | None:
        """The payload this key sealed into `token`; None for anything else (malformed, shorter than
        `min_payload` bytes, or a signature that does not match)."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) < min_payload + MAC_BYTES:
            return None
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        return payload if hmac.compare_digest(mac, self._mac(payload)) else None


def text(value: str) -> bytes:
    """A text as a payload holds it: one length byte, then its UTF-8 bytes."""
    raw = value.encode()
    if len(raw) > MAX_TEXT_BYTES:
        raise ValueError(f"too long for a ticket: {value[:40]!r}...")
    return bytes([len(raw)]) + raw


def read_texts(data: bytes, count: int) -> list[str]:
    """The first `count` texts written by :func:`text` at the start of `data` (a payload this server sealed)."""
    texts: list[str] = []
    at = 0
    for _ in range(count):
        length = data[at]
        texts.append(data[at + 1:at + 1 + length].decode())
        at += 1 + length
    return texts
