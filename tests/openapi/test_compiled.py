"""The compiled validators accept exactly what Connexion's python-jsonschema validators accept."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from connexion.json_schema import Draft4RequestValidator
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from clientkeys.config import SPEC_DIR
from clientkeys.openapi import compiled
from clientkeys.openapi.specs import iter_examples, load_spec

EXAMPLES = [
    (where, value, schema)
    for name in ("openapi.json", "admin.json")
    for where, value, schema in iter_examples(load_spec(SPEC_DIR, name))
    if isinstance(schema, dict) and schema
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=70) | st.sampled_from(["", "7.x", "2026-11-26T15:34:35Z", "a" * 32]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


def python_verdict(schema: Any, value: Any) -> bool:
    validator = Draft4RequestValidator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)
    return bool(validator.is_valid(value))


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            found += paths_of(sub, (*prefix, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found += paths_of(sub, (*prefix, index))
    return found


@st.composite
def mutated_examples(draw: st.DrawFn) -> tuple[Any, Any]:
    where, value, schema = draw(st.sampled_from(EXAMPLES))
    value = copy.deepcopy(value)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths_of(value)))
        if not path:
            value = draw(JSON)
            continue
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return schema, value


@settings(max_examples=400, deadline=None)
@given(mutated_examples())
def test_compiled_and_python_validators_agree(case: tuple[Any, Any]) -> None:
    schema, value = case
    if compiled.validator_for(schema) is None:
        return
    assert compiled.accepts(schema, value) == python_verdict(schema, value)


def test_every_schema_with_an_example_gets_a_compiled_validator() -> None:
    assert all(compiled.validator_for(schema) is not None for _, _, schema in EXAMPLES)


def test_nullable_becomes_a_null_type() -> None:
    schema = {"type": "object", "nullable": True, "properties": {
        "nullable": {"type": "string", "nullable": True, "enum": ["a"]}}}  # fmt: skip
    assert compiled.to_json_schema(schema) == {
        "type": ["object", "null"],
        "properties": {"nullable": {"type": ["string", "null"], "enum": ["a", None]}},
    }


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"id": {"type": "string", "readOnly": True}}},
        {"type": "string", "format": "uuid"},
    ],
)
def test_schemas_that_cannot_be_mirrored_keep_connexions_validator(schema: Any) -> None:
    assert compiled.validator_for(schema) is None


def test_lone_surrogates_fall_back_to_python() -> None:
    schema = {"type": "string", "maxLength": 3}
    assert compiled.accepts(schema, "\ud800") is False
    assert python_verdict(schema, "\ud800") is True


def test_compact_json() -> None:
    assert compiled.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert compiled.dumps({"a": "\ud800"}) == b'{"a": "\\ud800"}'
