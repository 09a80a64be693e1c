from __future__ import annotations

from typing import Any

from strawberry.types import Info

from api.errors import BadUserInput, NotFound
from api.resolvers.photos import read_upload
from ml.pipelines.celebrities import Celebrity, EnrolmentRejected, enrol_celebrity
from ml.pipelines.celebrities import remove_celebrity as remove_from_gallery


async def enroll_celebrity(info: Info, name: str, files: list[Any]) -> Celebrity:
    services = info.context.services
    admin = info.context.require_admin()
    limit = services.settings.max_upload_bytes
    uploads = [(await read_upload(f, limit), getattr(f, "content_type", None)) for f in files]
    try:
        return await enrol_celebrity(
            services.gallery, services.faces, services.photos, services.jobs, name=name, files=uploads,
            max_bytes=limit, max_pixels=services.settings.max_upload_pixels, by=admin,
        )
    except EnrolmentRejected as exc:
        raise BadUserInput(str(exc), argument="files",
                           problems=[{"file": p.index, "reason": p.reason, "message": p.message}
                                     for p in exc.problems]) from None
    except ValueError as exc:
        raise BadUserInput(str(exc)) from None
    finally:
        services.wake_worker()


async def remove_celebrity(info: Info, name: str) -> bool:
    services = info.context.services
    info.context.require_admin()
    if not await remove_from_gallery(services.gallery, services.photos, services.jobs, " ".join(name.split())):
        raise NotFound(f"no celebrity named {name!r}", argument="name")
    services.wake_worker()
    return True
