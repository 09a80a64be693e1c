"""The GraphQL schema: one root type per operation, merged from the per-domain roots in `roots`."""

from __future__ import annotations

from pathlib import Path

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.file_uploads import Upload  # noqa: F401 - re-exported scalar
from strawberry.types import ExecutionContext

from api.error_handling import ApiErrorMasking, log_graphql_errors
from api.schema.limits import QueryLimits
from api.schema.roots import Mutation, Query, Subscription

SDL_PATH = Path(__file__).resolve().parents[2] / "schema.graphql"

# Distinct operation texts kept parsed and validated (an app sends a few dozen; codegen'd clients fewer).
DOCUMENT_CACHE_SIZE = 512


class PhotoDuelSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        log_graphql_errors(errors, execution_context.operation_name if execution_context else None)


def build_schema(*, max_depth: int = 10, limits: QueryLimits | None = None) -> strawberry.Schema:
    """`limits`: cost, aliases and introspection (`api.schema.limits`); the defaults when None."""
    # The limiters' rule classes are made once: strawberry's limiters build a new class per instance, and
    # a new class per request would make every ValidationCache lookup (keyed by the rules) a miss.
    limit_rules = [*QueryDepthLimiter(max_depth=max_depth).validation_rules, *(limits or QueryLimits()).rules()]
    return PhotoDuelSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=4000),
            lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),  # after MaxTokensLimiter: parses with its limit
            lambda: AddValidationRules(limit_rules),
            lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
            ApiErrorMasking,
        ],
    )


def export_sdl(path: Path = SDL_PATH) -> str:
    sdl = build_schema().as_str() + "\n"
    path.write_text(sdl)
    return sdl
