"""What one operation may ask for, checked while it is validated, before any resolver runs.

* **Cost.** An object field costs 1 and a leaf 0; a field named in `QueryLimits.weights` (the expensive
  ones: a text search runs the model, an upload decodes an image) costs its weight instead. A field with a
  `first` argument multiplies what is selected under it by `first` (the default page size when absent,
  the largest page when it comes from a variable without a default, since validation cannot see the
  values); any other list of objects by `UNPAGED_LIST_SIZE`, except a connection's `edges` and `nodes`,
  which are the page already counted. Fragments count where they are spread, once per spread, so a
  fragment of 30 fields spread under three parents costs three times.
* **Aliases**, counted the same way: after spreading fragments, once per place.
* **Introspection**, refused when the settings turn it off (prod by default).

Each refusal is a validation error with its `extensions.code` (QUERY_TOO_COSTLY, TOO_MANY_ALIASES,
INTROSPECTION_DISABLED). Fragments are costed once each and remembered, so a document that would expand
to millions of fields is costed in time linear in its size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    is_composite_type,
    is_introspection_type,
    type_from_ast,
)
from graphql.type import GraphQLInterfaceType

from api.schema.common import DEFAULT_PAGE
from photoduel.settings import Settings

#: What a list of objects without a `first` argument is taken to hold (suggestions, devices, faces).
UNPAGED_LIST_SIZE = 10
#: The lists inside a connection: the page its `first` already multiplied.
CONNECTION_LISTS = frozenset({"edges", "nodes"})


@dataclass(frozen=True)
class QueryLimits:
    max_cost: int = 5000
    max_aliases: int = 30
    #: "Type.field" (schema names) -> the field's own cost, in place of 1.
    weights: Mapping[str, int] = field(default_factory=dict)
    default_page: int = 20
    max_page: int = 100
    introspection: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryLimits:
        return cls(max_cost=settings.max_query_cost, max_aliases=settings.max_query_aliases,
                   weights=dict(settings.query_cost_weights), default_page=min(DEFAULT_PAGE, settings.max_page_size),
                   max_page=settings.max_page_size, introspection=settings.introspection_enabled)

    def rules(self) -> list[type[ASTValidationRule]]:
        """The rule classes, made once per schema: a class per request would miss the ValidationCache."""
        limits = self

        class CostAndAliases(_CostAndAliasRule):
            pass

        CostAndAliases.limits = limits
        rules: list[type[ASTValidationRule]] = [CostAndAliases]
        if not self.introspection:
            rules.append(NoIntrospection)
        return rules


@dataclass
class _Tally:
    cost: int = 0
    aliases: int = 0

    def add(self, other: _Tally, times: int = 1) -> None:
        self.cost += other.cost * times
        self.aliases += other.aliases * times


class _CostAndAliasRule(ValidationRule):
    limits: QueryLimits

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.fragments: dict[str, _Tally] = {}
        self.in_progress: set[str] = set()
        self.variable_defaults: dict[str, Any] = {}

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
        root = self.context.schema.get_root_type(node.operation)
        if root is None:
            return  # reported by the standard rules
        self.variable_defaults = {d.variable.name.value: d.default_value for d in node.variable_definitions or ()}
        self.fragments = {}  # per operation: a fragment's `first: $var` reads this operation's defaults
        tally = self._selections(node.selection_set, root)
        name = f" `{node.name.value}`" if node.name else ""
        limits = self.limits
        if tally.cost > limits.max_cost:
            self.report_error(GraphQLError(
                f"the operation{name} costs {tally.cost}, over the limit of {limits.max_cost}: ask for smaller "
                "pages (`first`), fewer expensive fields (searches, uploads) or fewer fragment spreads",
                node, extensions={"code": "QUERY_TOO_COSTLY", "cost": tally.cost, "maxCost": limits.max_cost},
            ))
        if tally.aliases > limits.max_aliases:
            self.report_error(GraphQLError(
                f"the operation{name} has {tally.aliases} aliases (each fragment counted where it is spread), "
                f"over the limit of {limits.max_aliases}",
                node, extensions={"code": "TOO_MANY_ALIASES", "aliases": tally.aliases,
                                  "maxAliases": limits.max_aliases},
            ))

    def _selections(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> _Tally:
        tally = _Tally()
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                tally.add(self._field(selection, parent))
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = type_from_ast(self.context.schema, condition) if condition else parent
                if inner is not None:
                    tally.add(self._selections(selection.selection_set, get_named_type(inner)))
            elif isinstance(selection, FragmentSpreadNode):
                tally.add(self._fragment(selection.name.value))
        return tally

    def _fragment(self, name: str) -> _Tally:
        if name in self.fragments:
            return self.fragments[name]
        fragment = self.context.get_fragment(name)
        if fragment is None or name in self.in_progress:
            return _Tally()  # unknown or cyclic: reported by the standard rules
        self.in_progress.add(name)
        inner = type_from_ast(self.context.schema, fragment.type_condition)
        tally = self._selections(fragment.selection_set, get_named_type(inner)) if inner else _Tally()
        self.in_progress.discard(name)
        self.fragments[name] = tally
        return tally

    def _field(self, node: FieldNode, parent: GraphQLNamedType) -> _Tally:
        name = node.name.value
        tally = _Tally(aliases=1 if node.alias else 0)
        if name.startswith("__") or not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return tally
        definition = parent.fields.get(name)
        if definition is None:
            return tally
        inner = get_named_type(definition.type)
        composite = is_composite_type(inner)
        tally.cost = self.limits.weights.get(f"{parent.name}.{name}", 1 if composite else 0)
        if composite:
            children = self._selections(node.selection_set, inner)
            tally.add(children, self._multiplier(node, parent, definition.type, "first" in definition.args))
        return tally

    def _multiplier(self, node: FieldNode, parent: GraphQLNamedType, type_: GraphQLOutputType, paged: bool) -> int:
        if paged:
            return self._first(node)
        if _is_list(type_) and not (parent.name.endswith("Connection") and node.name.value in CONNECTION_LISTS):
            return UNPAGED_LIST_SIZE
        return 1

    def _first(self, node: FieldNode) -> int:
        limits = self.limits
        value: Any = next((a.value for a in node.arguments or () if a.name.value == "first"), None)
        if isinstance(value, VariableNode):
            value = self.variable_defaults.get(value.name.value) or _Worst
        if value is _Worst:
            return limits.max_page
        if isinstance(value, IntValueNode):
            return min(max(int(value.value), 0), limits.max_page)
        return limits.default_page  # absent or null; another literal is refused by the standard rules


class _Worst:
    """A `first` from a variable without a default: validation cannot see it, so the largest page."""


def _is_list(type_: GraphQLOutputType) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


class NoIntrospection(ValidationRule):
    """graphql-core's NoSchemaIntrospectionCustomRule, with a code and the setting that turns it on."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        type_ = get_named_type(self.context.get_type())
        parent = self.context.get_parent_type()
        inside = parent is not None and is_introspection_type(parent)  # reported once, at its root field
        if type_ is not None and is_introspection_type(type_) and not inside:
            self.report_error(GraphQLError(
                f"introspection is disabled (the query asks for `{node.name.value}`); "
                "PHOTODUEL_GRAPHQL_INTROSPECTION=true turns it on",
                node, extensions={"code": "INTROSPECTION_DISABLED"},
            ))
