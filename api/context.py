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

if TYPE_CHECKING:
    from photoduel.container import Services


class Loaders:
    """DataLoaders are per request: they cache, and a cache must not outlive one caller's view."""

    def __init__(self, services: Services) -> None:
        photos, profiles = services.photos, services.profiles

        async def load_photos(ids: list[ObjectId]) -> list[dict[str, Any] | None]:
            return await photos.get_many(ids)

        async def load_owners(uids: list[str]) -> list[PublicProfile]:
            return await profiles.public_many(uids)

        self.photo: DataLoader[ObjectId, dict[str, Any] | None] = DataLoader(load_fn=load_photos)
        # a page of photos shows each owner once, read with every other owner of the page
        self.owner: DataLoader[str, PublicProfile] = DataLoader(load_fn=load_owners)


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
