"""docs/API.md stays true: every GraphQL operation in it validates against the schema, every JSON
response in it parses, and every error code the API can raise is in its table of what to do."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from graphql import parse, validate

from api.errors import ApiError
from api.schema import build_schema
from gaming.duels.service import DuelError

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "API.md"
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(GUIDE.read_text()) if lang == language]


def subclass_codes(base: type) -> set[str]:
    found, todo = set(), [base]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        found.add(cls.code)
    return found


@pytest.mark.parametrize("operation", blocks("graphql"), ids=lambda text: text.split("{")[0].strip()[:40])
def test_every_operation_in_the_guide_validates_against_the_schema(operation: str) -> None:
    schema = build_schema()._schema
    errors = validate(schema, parse(operation))
    assert not errors, [e.message for e in errors]


def test_the_guide_has_operations_and_responses() -> None:
    assert len(blocks("graphql")) >= 12
    for response in blocks("json"):
        json.loads(response)


def test_every_error_code_has_a_row_saying_what_to_do() -> None:
    table = {m for m in re.findall(r"^\| `([A-Z_]+)`", GUIDE.read_text(), re.MULTILINE)}
    codes = subclass_codes(ApiError) | subclass_codes(DuelError)
    codes |= {"PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_HASH_MISMATCH", "OPERATION_NOT_ALLOWED"}
    assert codes <= table, sorted(codes - table)
