"""The GraphQL schema: one root type per operation, merged from the per-domain roots in `roots`."""

from __future__ import annotations

from pathlib import Path

import strawberry
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.file_uploads import Upload  # noqa: F401 - re-exported scalar

from api.errors import should_mask_error
from api.schema.roots import Mutation, Query, Subscription

SDL_PATH = Path(__file__).resolve().parents[2] / "schema.graphql"


def build_schema(*, max_depth: int = 10) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            lambda: QueryDepthLimiter(max_depth=max_depth),
            lambda: MaxAliasesLimiter(max_alias_count=30),
            lambda: MaxTokensLimiter(max_token_count=4000),
            lambda: MaskErrors(should_mask_error=should_mask_error),
        ],
    )


def export_sdl(path: Path = SDL_PATH) -> str:
    sdl = build_schema().as_str() + "\n"
    path.write_text(sdl)
    return sdl
