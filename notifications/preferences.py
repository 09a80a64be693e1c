"""Per-user notification preferences: which kinds of notification are muted.

Muting is about push: a muted kind never makes the phone buzz. The event is still recorded in the
outbox and listed in the in-app `notifications` list (and sent to open `notificationAdded`
subscriptions, which only exist while the user has the app open), so nothing the user asked about
disappears. The dispatcher reads the preference when it delivers, not when the event is written, so
muting also silences what is still waiting for delivery.

Stored on the user document (`muted: [kind, ...]`) by `storage.users.UserRepository`.
"""

from __future__ import annotations

from notifications.outbox import KINDS
from storage.users import UserRepository


class UnknownKind(ValueError):
    pass


def _checked(kind: str) -> str:
    if kind not in KINDS:
        raise UnknownKind(f"unknown notification kind {kind!r}; known: {', '.join(KINDS)}")
    return kind


class Preferences:
    """The notification kinds a user muted, checked against the kinds that exist."""

    def __init__(self, users: UserRepository) -> None:
        self.users = users

    async def muted(self, user: str) -> list[str]:
        muted = await self.users.muted(user)
        return [k for k in KINDS if k in muted]

    async def is_muted(self, user: str, kind: str) -> bool:
        return await self.users.is_muted(user, kind)

    async def mute(self, user: str, kind: str) -> list[str]:
        """Idempotent; returns the muted kinds after the change."""
        await self.users.set_muted(user, _checked(kind), True)
        return await self.muted(user)

    async def unmute(self, user: str, kind: str) -> list[str]:
        await self.users.set_muted(user, _checked(kind), False)
        return await self.muted(user)
