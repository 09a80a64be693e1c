"""Permission classes, so resolvers never start with `if not user: raise`, and the declarations of the
fields only a signed-in user may ask for."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.permission import BasePermission
from strawberry.types import Info

from api.errors import Unauthenticated


class IsAuthenticated(BasePermission):
    message = "sign in first: send 'Authorization: Bearer <Firebase ID token>'"
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.principal.authenticated


class IsAdmin(BasePermission):
    message = "admin rights required"
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        """Anonymous: UNAUTHENTICATED (signing in may be all it takes); signed in without the claim: FORBIDDEN."""
        principal = info.context.principal
        if not principal.authenticated:
            raise Unauthenticated(IsAuthenticated.message)
        return principal.admin


def described(resolver: Callable[..., Any]) -> str | None:
    """A field's description is its resolver's docstring: the schema's documentation and the code's are
    one text."""
    doc = inspect.getdoc(resolver)
    return " ".join(doc.split()) if doc else None


def user_field(resolver: Callable[..., Any]) -> Any:
    """A query field for the signed-in user only."""
    return strawberry.field(resolver=resolver, permission_classes=[IsAuthenticated], description=described(resolver))


def user_mutation(resolver: Callable[..., Any]) -> Any:
    """A mutation for the signed-in user only."""
    return strawberry.mutation(resolver=resolver, permission_classes=[IsAuthenticated],
                               description=described(resolver))
