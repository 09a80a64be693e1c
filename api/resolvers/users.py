from __future__ import annotations

from strawberry.types import Info

from api.schema.users import User


async def me(info: Info) -> User | None:
    uid = info.context.principal.uid
    if uid is None:
        return None
    doc = await info.context.services.users.get(uid)
    return User.from_doc(doc) if doc else None
