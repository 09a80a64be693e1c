"""Descriptions are the client developers' documentation (GraphiQL, codegen'd doc comments, schema.graphql):
every type, field, argument, input field and enum value of the schema carries one."""

from __future__ import annotations

from enum import Enum

import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
)

from api.schema import build_schema

#: graphql's own scalars: described by the spec, not by us.
BUILT_IN_SCALARS = frozenset({"String", "Int", "Float", "Boolean", "ID"})


def _described(text: str | None) -> bool:
    return bool(text and text.strip())


def _undocumented_members(name: str, graphql_type: GraphQLNamedType) -> list[str]:
    missing: list[str] = []
    if isinstance(graphql_type, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
        for field_name, field in graphql_type.fields.items():
            if not _described(field.description):
                missing.append(f"field {name}.{field_name}")
            for arg_name, arg in (getattr(field, "args", None) or {}).items():
                if not _described(arg.description):
                    missing.append(f"argument {name}.{field_name}({arg_name})")
    if isinstance(graphql_type, GraphQLEnumType):
        missing += [f"enum value {name}.{value_name}" for value_name, value in graphql_type.values.items()
                    if not _described(value.description)]
    return missing


def undocumented(schema: GraphQLSchema) -> list[str]:
    """What a client developer would find without a description, as 'kind Type.member(arg)' lines."""
    missing: list[str] = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or name in BUILT_IN_SCALARS:
            continue
        if not _described(graphql_type.description):
            missing.append(f"type {name}")
        missing += _undocumented_members(name, graphql_type)
    return missing


def test_every_type_field_argument_and_enum_value_is_described() -> None:
    missing = undocumented(build_schema()._schema)
    assert not missing, f"{len(missing)} without a description (strawberry: description=...):\n" + "\n".join(missing)


def test_node_types_inherit_the_interface_id_description() -> None:
    """A Node type redeclaring a bare `id` would drop the interface's documented one."""
    schema = build_schema()._schema
    node = schema.type_map["Node"]
    assert isinstance(node, GraphQLInterfaceType)
    implementations = schema.get_implementations(node).objects
    assert {"Photo", "PublicProfile", "Notification"} <= {t.name for t in implementations}
    for graphql_type in implementations:
        assert _described(graphql_type.fields["id"].description), graphql_type.name
    interface_text = node.fields["id"].description
    for name in ("Photo", "PublicProfile", "Notification"):
        assert schema.type_map[name].fields["id"].description == interface_text, name  # type: ignore[union-attr]


@strawberry.enum(name="Shade")
class _Shade(Enum):
    DARK = strawberry.enum_value("DARK", description="described")
    LIGHT = "LIGHT"


@strawberry.input(name="Filter", description="described")
class _Filter:
    shade: _Shade | None = None


@strawberry.type(name="Item")
class _Item:
    name: str = strawberry.field(description="described")
    size: int
    note: str = strawberry.field(description="  ")


@strawberry.type(name="Query", description="described")
class _GappyQuery:
    """One gap of each kind: type, field, argument, input field, enum value, and a blank description."""

    @strawberry.field(description="described")
    def items(self, where: _Filter | None = None) -> list[_Item]:
        return []

    @strawberry.field
    def item(self, id: strawberry.ID) -> _Item | None:
        return None


def test_the_check_finds_each_kind_of_gap() -> None:
    """The check itself: every gap of the small schema above is reported, and nothing else."""
    schema = strawberry.Schema(query=_GappyQuery)._schema
    assert sorted(undocumented(schema)) == sorted([
        "type Shade", "enum value Shade.LIGHT", "field Filter.shade", "type Item", "field Item.size",
        "field Item.note", "argument Query.items(where)", "field Query.item", "argument Query.item(id)",
    ])
