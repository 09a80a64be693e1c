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
from api.metrics import OperationMetrics, count_graphql_errors
from api.schema.limits import QueryLimits
from api.schema.roots import Mutation, Query, Subscription

SDL_PATH = Path(__file__).resolve().parents[2] / "schema.graphql"

# Distinct operation texts kept parsed and validated (an app sends a few dozen; codegen'd clients fewer).
DOCUMENT_CACHE_SIZE = 512


class PhotoDuelSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        log_graphql_errors(errors, execution_context.operation_name if execution_context else None)
        count_graphql_errors(errors, execution_context)


#: The Relay pagination arguments mean the same on every connection: described once, here.
PAGINATION_ARGUMENTS = {
    "first": "How many items this page holds: 1 to the server's maximum (100 by default); 20 when null",
    "after": "Start after this cursor (a previous page's `pageInfo.endCursor`); from the start when null",
}
ROOT_DESCRIPTIONS = {
    "Query": "Reads. Anonymous callers may browse; fields about the signed-in user need a token",
    "Mutation": "Changes, each by the signed-in user (admin-only ones say so)",
    "Subscription": "Live events over graphql-transport-ws, for the signed-in user",
}


def _describe_conventions(schema: strawberry.Schema) -> None:
    """Pagination arguments and root types described once rather than on each of their dozens of uses;
    a description written at a field's own definition is kept."""
    for name, graphql_type in schema._schema.type_map.items():
        if name in ROOT_DESCRIPTIONS and not graphql_type.description:
            graphql_type.description = ROOT_DESCRIPTIONS[name]
        for field in (getattr(graphql_type, "fields", None) or {}).values():
            for arg_name, arg in (getattr(field, "args", None) or {}).items():
                if arg_name in PAGINATION_ARGUMENTS and not arg.description:
                    arg.description = PAGINATION_ARGUMENTS[arg_name]


def build_schema(*, max_depth: int = 10, limits: QueryLimits | None = None) -> strawberry.Schema:
    """`limits`: cost, aliases and introspection (`api.schema.limits`); the defaults when None."""
    # The limiters' rule classes are made once: strawberry's limiters build a new class per instance, and
    # a new class per request would make every ValidationCache lookup (keyed by the rules) a miss.
    limit_rules = [*QueryDepthLimiter(max_depth=max_depth).validation_rules, *(limits or QueryLimits()).rules()]
    schema = PhotoDuelSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=4000),
            lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),  # after MaxTokensLimiter: parses with its limit
            lambda: AddValidationRules(limit_rules),
            lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
            ApiErrorMasking,
            OperationMetrics,
        ],
    )
    _describe_conventions(schema)
    return schema


def export_sdl(path: Path = SDL_PATH) -> str:
    sdl = build_schema().as_str() + "\n"
    path.write_text(sdl)
    return sdl
