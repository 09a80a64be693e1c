"""A photo service's refusals (`photos.editing`'s shared exceptions) as the codes clients act on: one
mapping for every mutation on someone's photo (edit, delete, report, moderate)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from api.errors import BadUserInput, Forbidden, NotFound
from photos.editing import NotPhotoOwner, PhotoNotFound


@contextlib.contextmanager
def photo_refusals(forbidden: str, *invalid: type[ValueError]) -> Iterator[None]:
    """NOT_FOUND for an id the caller cannot see, FORBIDDEN (with `forbidden`) for another's photo,
    BAD_USER_INPUT for the `invalid` argument errors (each carrying the `argument` it names)."""
    try:
        yield
    except PhotoNotFound:
        raise NotFound("no such photo", argument="id") from None
    except NotPhotoOwner:
        raise Forbidden(forbidden) from None
    except invalid as exc:
        raise BadUserInput(str(exc), argument=getattr(exc, "argument", None)) from None
