"""Public profiles: the display name a user chooses, and what anyone may see of a photo's owner.

The rule for a display name (`display_name`) is pure and says which part was broken. Two names are the
same name when their keys are (`display_name_key`): NFKC, case-folded, of the trimmed name with runs
of spaces as one, so "Ann Lee",
"ann  lee" and "ＡＮＮ LEE" cannot belong to two users. The key's uniqueness is the users collection's
unique index, so two users asking for one name at once get one winner and one DISPLAY_NAME_TAKEN.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from storage.base import Doc
from storage.photos import PhotoRepository
from storage.users import DisplayNameTaken, UserRepository

__all__ = ["DisplayNameTaken", "InvalidDisplayName", "Profiles", "PublicProfile", "display_name",
           "display_name_key"]

MIN_DISPLAY_NAME = 3
MAX_DISPLAY_NAME = 30
DISPLAY_NAME_PUNCTUATION = " ._-"
_SPACES = re.compile(" {2,}")


class InvalidDisplayName(ValueError):
    """A name the rule refuses; the message names the rule."""


def display_name(raw: str) -> str:
    """The name as stored: NFKC, trimmed, inner runs of spaces as one. Raises InvalidDisplayName."""
    name = _SPACES.sub(" ", unicodedata.normalize("NFKC", raw).strip())
    if not MIN_DISPLAY_NAME <= len(name) <= MAX_DISPLAY_NAME:
        raise InvalidDisplayName(f"a display name is {MIN_DISPLAY_NAME} to {MAX_DISPLAY_NAME} characters long "
                                 f"(got {len(name)} after trimming)")
    for char in name:
        if not (char.isalpha() or char.isdecimal() or char in DISPLAY_NAME_PUNCTUATION):
            raise InvalidDisplayName(f"a display name has only letters, digits, spaces and . _ - (not {char!r})")
    if not _alnum(name[0]) or not _alnum(name[-1]):
        raise InvalidDisplayName("a display name starts and ends with a letter or a digit")
    return name


def display_name_key(name: str) -> str:
    """What two names must differ in to belong to two users: case, and nothing else of a stored name."""
    return unicodedata.normalize("NFKC", name.casefold())


def _alnum(char: str) -> bool:
    return char.isalpha() or char.isdecimal()


@dataclass(frozen=True)
class PublicProfile:
    """What anyone may see of a user: no email, no admin flag."""

    id: str
    display_name: str | None
    photo_count: int  # READY photos: what others can see of theirs


class Profiles:
    def __init__(self, users: UserRepository, photos: PhotoRepository) -> None:
        self.users = users
        self.photos = photos

    async def set_display_name(self, uid: str, raw: str) -> Doc:
        """The user's document with the new name. Raises InvalidDisplayName, DisplayNameTaken."""
        name = display_name(raw)
        return await self.users.set_display_name(uid, name, display_name_key(name))

    async def public_many(self, uids: Sequence[str]) -> list[PublicProfile]:
        """Profiles in the order of `uids`, in two round trips whatever their number (a DataLoader batch).
        A uid without a user document (an owner never seen by this deployment's users) still has one."""
        names = await self.users.display_names(uids)
        counts = await self.photos.ready_counts(uids)
        return [PublicProfile(id=uid, display_name=names.get(uid), photo_count=counts.get(uid, 0)) for uid in uids]
