"""Per-request context: the process's services, who is calling, and this request's DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bson import ObjectId
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

from accounts.profiles import PublicProfile
from accounts.tokens import ANONYMOUS, Principal
from api.errors import Unauthenticated
from gaming.duels.groups import GroupView
from gaming.duels.private_series import OwnerSeries

if TYPE_CHECKING:
    from photoduel.container import Services


class Loaders:
    """DataLoaders are per request: they cache, and a cache must not outlive one caller's view."""

    def __init__(self, services: Services) -> None:
        photos, profiles = services.photos, services.profiles

        async def load_photos(ids: list[ObjectId]) -> list[dict[str, Any] | None]:
            return await photos.get_many(ids)

        async def load_groups(ids: list[ObjectId]) -> list[GroupView]:
            views = await services.group_reads.views(ids)
            return [views[i] for i in ids]

        async def load_series(keys: list[tuple[str, ObjectId]]) -> list[OwnerSeries]:
            return await services.private_series.ranks(keys)

        async def load_owners(uids: list[str]) -> list[PublicProfile]:
            return await profiles.public_many(uids)

        async def load_blocked(uids: list[str]) -> list[list[str]]:
            return [await services.blocks.blocked(uid) for uid in uids]

        self.photo: DataLoader[ObjectId, dict[str, Any] | None] = DataLoader(load_fn=load_photos)
        # similarity groups shown on a page (each photo's, a groups list): their members in one read
        self.group: DataLoader[ObjectId, GroupView] = DataLoader(load_fn=load_groups)
        # the viewer's blocked users: every list of the request leaves them out, read once
        self.blocked: DataLoader[str, list[str]] = DataLoader(load_fn=load_blocked)
        # a page of photos shows each owner once, read with every other owner of the page
        self.owner: DataLoader[str, PublicProfile] = DataLoader(load_fn=load_owners)
        # an owner's private series per group (Photo.seriesRank): a page of their photos reads each group once
        self.series: DataLoader[tuple[str, ObjectId], OwnerSeries] = DataLoader(load_fn=load_series)


@dataclass
class Context:
    services: Services
    request: Request | WebSocket
    response: Any = None
    principal: Principal = ANONYMOUS
    connection_params: dict[str, Any] | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.services)

    def require_user(self) -> str:
        if self.principal.uid is None:
            raise Unauthenticated("sign in first: send 'Authorization: Bearer <Firebase ID token>'")
        return self.principal.uid

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")
