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
from api.public_url import public_base_url
from gaming.duels.groups import GroupView
from gaming.duels.private_series import OwnerSeries
from photos.queries import Viewer

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

        async def load_decisions(ids: list[ObjectId]) -> list[list[dict[str, Any]]]:
            found = await services.moderation.histories(ids)
            return [found.get(i, []) for i in ids]

        async def load_notifications(keys: list[tuple[str, ObjectId]]) -> list[dict[str, Any] | None]:
            found: dict[tuple[str, ObjectId], dict[str, Any]] = {}
            for user in {u for u, _ in keys}:  # one user per request in practice: one read
                owned = await services.notifications.owned(user, [i for u, i in keys if u == user])
                found.update(((user, i), doc) for i, doc in owned.items())
            return [found.get(key) for key in keys]

        self.photo: DataLoader[ObjectId, dict[str, Any] | None] = DataLoader(load_fn=load_photos)
        # similarity groups shown on a page (each photo's, a groups list): their members in one read
        self.group: DataLoader[ObjectId, GroupView] = DataLoader(load_fn=load_groups)
        # the viewer's blocked users: every list of the request leaves them out, read once
        self.blocked: DataLoader[str, list[str]] = DataLoader(load_fn=load_blocked)
        # a page of photos shows each owner once, read with every other owner of the page
        self.owner: DataLoader[str, PublicProfile] = DataLoader(load_fn=load_owners)
        # an owner's private series per group (Photo.seriesRank): a page of their photos reads each group once
        self.series: DataLoader[tuple[str, ObjectId], OwnerSeries] = DataLoader(load_fn=load_series)
        # admins' decisions on each photo of a page (PhotoModeration.decisions), newest first: one read
        self.decisions: DataLoader[ObjectId, list[dict[str, Any]]] = DataLoader(load_fn=load_decisions)
        # notifications refetched by id (`nodes(ids:)`): the caller's own, in one read
        self.notification: DataLoader[tuple[str, ObjectId], dict[str, Any] | None] = DataLoader(
            load_fn=load_notifications)


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
    def viewer(self) -> Viewer:
        """Who is asking, as the photo rules see them (anonymous included)."""
        return Viewer(uid=self.principal.uid, admin=self.principal.admin)

    def require_viewer(self) -> Viewer:
        """The signed-in caller as the photo rules see them; UNAUTHENTICATED when anonymous."""
        return Viewer(uid=self.require_user(), admin=self.principal.admin)

    @property
    def base_url(self) -> str:
        return public_base_url(self.request)
