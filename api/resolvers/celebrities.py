from __future__ import annotations

from typing import Any

from strawberry.types import Info

from api.errors import BadUserInput, NotFound
from api.resolvers.photos import read_upload
from api.schema.common import capped
from ml.pipelines.celebrity_enrolment import EnrolmentRejected, enrol_celebrity
from ml.pipelines.celebrity_enrolment import remove_celebrity as remove_from_gallery
from storage.celebrities import Celebrity

#: Photos of one person per enrolment: each is decoded and searched for a face.
MAX_ENROLMENT_FILES = 20


async def enroll_celebrity(info: Info, name: str, files: list[Any]) -> Celebrity:
    services = info.context.services
    admin = info.context.require_user()  # IsAdmin on the field checked the rights
    rules = services.uploads.rules
    capped(files, "files", MAX_ENROLMENT_FILES)
    uploads = [(await read_upload(rules, f), getattr(f, "content_type", None)) for f in files]
    try:
        return await enrol_celebrity(
            services.gallery, services.faces, services.photos, services.jobs, name=name, files=uploads,
            decode=rules.decode, by=admin,
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
    if not await remove_from_gallery(services.gallery, services.photos, services.jobs, name):
        raise NotFound(f"no celebrity named {name!r}", argument="name")
    services.wake_worker()
    return True
