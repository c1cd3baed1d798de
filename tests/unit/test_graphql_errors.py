"""One error path: whatever a resolver raises leaves as a GraphQL error with a code, and an unexpected
exception never shows its own text to the caller (it is logged under an incident id instead)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
    graphql,
    graphql_sync,
)
from modelreg.errors import Conflict
from modelreg.graphql.errors import actionable
from modelreg.graphql.schema import RESOLVER_MIDDLEWARE, build_schema
from modelreg.projections.readable import EVERYTHING

SCHEMA = build_schema().graphql_schema
SECRET = "password=hunter2 at db.internal:5432"
SAMPLES = {
    "String": "acme/nature/classifier:v1",
    "ID": "01900000-0000-7000-8000-000000000000",
    "Int": 1,
    "BigInt": 1,
    "Float": 1.0,
    "Boolean": True,
    "DateTime": "2026-01-01T00:00:00+00:00",
    "GenericScalar": {"kind": "git"},
}


class Broken:
    """A request context whose every part fails as an outage would: its reads, its caller, its command path."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Any:
        raise self._error


# Valid values by argument or field name, so that commands pass validation and the resolver reaches its context.
BY_NAME = {
    "entity": '"acme"',
    "project": '"nature"',
    "name": '"classifier"',
    "runId": '"r1"',
    "registeredModel": '"m"',
    "alias": '"production"',
    "tag": '"candidate"',
    "type": '"model"',
    "principal": '"user:bob"',
    "principalId": '"bob"',
    "scope": '"model:m"',  # registry is no scope setVisibility takes
    "agentId": '"service:ci:h1"',
    "queue": '"cpu"',
    "entities": '["acme"]',
    "projection": '"registry"',
    "stream": '"registered_model:m"',
    "reason": '"a reason"',
    "description": '"what it does"',
    "trigger": '{event: "alias_added"}',
    "action": '{kind: "webhook", url: "https://example.com/hook"}',
    "commands": "1",
    "rows": "[{step: 0, values: {loss: 0.1}}]",
    "series": '[{key: "loss", firstStep: 0, values: [0.1]}]',
    "values": "{loss: 0.1}",
    "files": '[{path: "w.bin", size: 1, digest: "sha256:' + "ab" * 32 + '"}]',
}
WHOLE_ROOT_FIELD = {"artifactVersion": '(ref: "acme/nature/classifier:v1")'}


def _literal(type_: GraphQLInputType, name: str = "") -> str:
    """A GraphQL literal of `type_`: every required field filled, so that the resolver itself runs."""
    type_ = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if name in BY_NAME and not isinstance(type_, GraphQLEnumType):
        return BY_NAME[name]
    if isinstance(type_, GraphQLList):
        return f"[{_literal(type_.of_type)}]"
    if isinstance(type_, GraphQLEnumType):
        return list(type_.values)[-1 if name == "role" else 0]
    if isinstance(type_, GraphQLInputObjectType):
        wanted = {
            n: f for n, f in type_.fields.items() if isinstance(f.type, GraphQLNonNull) or n in ("files", "changes")
        }
        return "{" + ", ".join(f"{n}: {_literal(f.type, n)}" for n, f in wanted.items()) + "}"
    assert isinstance(type_, GraphQLScalarType)
    value = SAMPLES[type_.name]
    if isinstance(value, dict):
        return '{kind: "git"}'
    return str(value).lower() if isinstance(value, bool) else f'"{value}"' if isinstance(value, str) else str(value)


def _operation(kind: str, name: str, field: GraphQLField) -> str:
    arguments = ", ".join(
        f"{n}: {_literal(a.type, n)}" for n, a in field.args.items() if isinstance(a.type, GraphQLNonNull)
    )
    selection = " { __typename }" if isinstance(get_named_type(field.type), GraphQLObjectType) else ""
    given = WHOLE_ROOT_FIELD.get(name, f"({arguments})" if arguments else "")
    return f"{kind} {{ {name}{given}{selection} }}"


def _every_root_field() -> list[tuple[str, str, GraphQLField]]:
    assert SCHEMA.query_type is not None and SCHEMA.mutation_type is not None
    return [("query", n, f) for n, f in SCHEMA.query_type.fields.items()] + [
        ("mutation", n, f) for n, f in SCHEMA.mutation_type.fields.items()
    ]


@pytest.mark.parametrize(("kind", "name", "field"), _every_root_field(), ids=lambda v: v if isinstance(v, str) else "")
async def test_an_unexpected_exception_in_any_resolver_never_leaks_its_message(
    kind: str, name: str, field: GraphQLField, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="modelreg.graphql.errors"):
        result = await graphql(
            SCHEMA,
            _operation(kind, name, field),
            context_value=Broken(RuntimeError(SECRET)),
            middleware=RESOLVER_MIDDLEWARE,
        )
    (error,) = result.errors or []
    assert SECRET not in error.message
    assert error.extensions == {"code": "INTERNAL", "retriable": True}, f"{name} did not reach its context: {error}"
    assert "incident" in error.message and SECRET in caplog.text  # the operator finds it in the log


async def test_a_modelreg_error_keeps_its_code_and_message() -> None:
    result = await graphql(
        SCHEMA,
        '{ registeredModel(name: "m") { name } }',
        context_value=Broken(Conflict("alias production is protected: ask an admin of the model")),
        middleware=RESOLVER_MIDDLEWARE,
    )
    (error,) = result.errors or []
    assert error.message == "alias production is protected: ask an admin of the model"
    assert error.extensions == {"code": "CONFLICT", "retriable": False}
    assert error.path == ["registeredModel"]


class OneModel:
    """Reads that find the registered model asked for and fail at everything else."""

    async def registered_model(self, name: str) -> dict[str, Any]:
        return {"name": name, "tags": []}

    def __getattr__(self, name: str) -> Any:
        raise KeyError(SECRET)


class ContextWith:
    def __init__(self, reads: object) -> None:
        self.reads = reads
        self.readable = EVERYTHING  # a caller who may read everything


async def test_a_nested_field_failing_hides_its_message_and_its_siblings_still_answer() -> None:
    result = await graphql(
        SCHEMA,
        '{ registeredModel(name: "m") { name tags protectedAliases } }',
        context_value=ContextWith(OneModel()),
        middleware=RESOLVER_MIDDLEWARE,
    )
    (error,) = result.errors or []
    assert error.path == ["registeredModel", "protectedAliases"] and SECRET not in error.message
    assert error.extensions == {"code": "INTERNAL", "retriable": True}
    assert result.data == {"registeredModel": None}  # a non-null field failed: its parent is null, as the spec says


def test_a_variable_its_enum_does_not_have_is_invalid_input() -> None:
    result = graphql_sync(
        SCHEMA,
        'query($s: RunState) { runs(entity: "a", project: "b", state: $s) { totalCount } }',
        variable_values={"s": "done"},
    )
    (error,) = [actionable(e) for e in result.errors or []]
    assert error.extensions == {"code": "INVALID_INPUT", "retriable": False}
    assert "Value 'done' does not exist in 'RunState' enum" in error.message
