"""Blocking: a player who blocks a user never sees that user's photos in their duels or lists.

The list is the blocker's own business: the blocked user is not told, and still sees the blocker's
photos. Matchmaking (`gaming.duels.service`) and the lists a signed-in player reads (photos,
searchPhotos, similarPhotos, featured, leaderboard) take the owners out; a photo opened by id stays
reachable (a link someone shared is not a list).
"""

from __future__ import annotations

from storage.blocks import BlockLimitReached, BlockRepository
from storage.users import UserRepository

__all__ = ["MAX_BLOCKED", "BlockLimitReached", "Blocks", "CannotBlockSelf", "UnknownUser"]

# Enough for anyone's real list, small enough that excluding them stays a short `$nin` on every list.
MAX_BLOCKED = 1000


class UnknownUser(LookupError):
    """No user of that id has ever signed in here."""


class CannotBlockSelf(ValueError):
    """A user blocking themselves: it would hide all of their own photos from nobody but them."""


class Blocks:
    def __init__(self, blocks: BlockRepository, users: UserRepository, *, cap: int = MAX_BLOCKED) -> None:
        self.blocks = blocks
        self.users = users
        self.cap = cap

    async def _known(self, uid: str) -> None:
        if await self.users.get(uid) is None:
            raise UnknownUser(uid)

    async def block(self, blocker: str, target: str) -> bool:
        """True when newly blocked, False when already. Raises CannotBlockSelf, UnknownUser,
        BlockLimitReached."""
        if target == blocker:
            raise CannotBlockSelf("you cannot block yourself")
        await self._known(target)
        return await self.blocks.block(blocker, target, cap=self.cap)

    async def unblock(self, blocker: str, target: str) -> bool:
        """True when the user was blocked. Raises UnknownUser for an id that never signed in."""
        if await self.blocks.unblock(blocker, target):
            return True
        await self._known(target)
        return False

    async def blocked(self, blocker: str) -> list[str]:
        """The users `blocker` blocked, oldest first."""
        return await self.blocks.blocked_by(blocker)
