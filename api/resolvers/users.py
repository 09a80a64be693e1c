from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from accounts.profiles import DisplayNameTaken, InvalidDisplayName
from api.errors import BadUserInput
from api.errors import DisplayNameTaken as NameTakenError
from api.schema.users import User


async def me(info: Info) -> User | None:
    uid = info.context.principal.uid
    if uid is None:
        return None
    doc = await info.context.services.users.get(uid)
    return User.from_doc(doc) if doc else None


async def set_display_name(info: Info, name: Annotated[str, strawberry.argument(
        description="The wanted public name, by the rules above")]) -> User:
    uid = info.context.require_user()
    try:
        doc = await info.context.services.profiles.set_display_name(uid, name)
    except InvalidDisplayName as exc:
        raise BadUserInput(str(exc), argument="name") from None
    except DisplayNameTaken:
        raise NameTakenError("another user has this display name (names are compared regardless of case)",
                             argument="name") from None
    return User.from_doc(doc)
