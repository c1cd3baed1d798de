"""Hostile text in every argument of every mutation and query, generated from the schema the server
introspects (issue 11): U+0000 and a lone surrogate in each String, ID and JSON position (JSON keys too),
the other arguments filled with plausible values. Each call gets a GraphQL error, INVALID_INPUT where the
field is validated, never a 5xx or an internal error; nothing with the text reaches the log; afterwards no
stream is parked and /healthz says ok. A new mutation or argument is covered without touching this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from support.log_contents import all_records
from support.stack import Stack

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_client_schema,
    get_introspection_query,
    get_named_type,
    is_leaf_type,
)
from modelreg.services.http.api import LOG

MARK = "hostile"
BAD = {"U+0000": f"{MARK}\x00text", "a lone surrogate": f"{MARK}\ud800text"}
TEXT_SCALARS = {"String", "ID", "DateTime"}
JSON_SCALARS = {"GenericScalar", "JSONString"}
# Plausible values by argument or input field name; anything else gets one by its type.
GOOD: dict[str, Any] = {
    "entity": "acme",
    "project": "nature",
    "runId": "train-1",
    "registeredModel": "nature-classification",
    "name": "classifier",
    "type": "model",
    "alias": "staging",
    "tag": "candidate",
    "queue": "gpu",
    "agentId": "agent-1",
    "stream": "STDOUT",
    "state": "FINISHED",
    "principalKind": "USER",
    "principalId": "bob",
    "principal": "user:bob",
    "role": "MEMBER",
    "scope": "entity:acme",
    "resource": "LOCAL_PROCESS",
    "ref": "acme/nature/classifier:v0",
    "digest": "sha256:" + "ab" * 32,
    "path": "weights.bin",
    "keyId": "abcdefabcdef",
    "text": "epoch 1: loss 0.3",
    "direction": "UPSTREAM",
}
BY_TYPE: dict[str, Any] = {
    "String": "x",
    "ID": "0192f6e4-7b1c-7cc3-8d2e-3f4a5b6c7d8e",
    "Int": 1,
    "Float": 1.0,
    "Boolean": True,
    "BigInt": 1,
    "GenericScalar": {},
    "JSONString": "{}",
    "Numbers": [1.0],
    "DateTime": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
}


@dataclass(frozen=True)
class Case:
    operation: str  # mutation | query
    field: str
    path: tuple[str | int, ...]  # argument name, then input fields and list indexes
    scalar: str
    where: str  # "value" or, in a JSON value, "key"
    bad: str  # which character

    def __str__(self) -> str:
        return f"{self.operation} {self.field}({'.'.join(map(str, self.path))}) with {self.bad} in a {self.where}"


def text_positions(type_: GraphQLInputType, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every place in an argument of this type where a caller can put text: (path, scalar name)."""
    if isinstance(type_, GraphQLNonNull):
        yield from text_positions(type_.of_type, path)
    elif isinstance(type_, GraphQLList):
        yield from text_positions(type_.of_type, (*path, 0))
    elif isinstance(type_, GraphQLInputObjectType):
        for name, field in type_.fields.items():
            yield from text_positions(field.type, (*path, name))
    elif isinstance(type_, GraphQLScalarType) and type_.name in TEXT_SCALARS | JSON_SCALARS:
        yield path, type_.name


def cases(schema: GraphQLSchema) -> Iterator[Case]:
    for operation, root in (("mutation", schema.mutation_type), ("query", schema.query_type)):
        assert root is not None
        for field_name, field in root.fields.items():
            for arg_name, arg in field.args.items():
                for path, scalar in text_positions(arg.type, (arg_name,)):
                    for where in ("value", "key") if scalar in JSON_SCALARS else ("value",):
                        for bad in BAD:
                            yield Case(operation, field_name, path, scalar, where, bad)


def good_value(type_: GraphQLInputType, name: str, target: tuple[str | int, ...] | None, case: Case) -> Any:
    """A plausible value of `type_`, with the case's bad text at `target` (a path inside it) when not None."""
    if isinstance(type_, GraphQLNonNull):
        return good_value(type_.of_type, name, target, case)
    if isinstance(type_, GraphQLList):
        return [good_value(type_.of_type, name, target[1:] if target else target, case)]
    if target == ():
        text = BAD[case.bad]
        if case.scalar in JSON_SCALARS:
            return {"note": text} if case.where == "value" else {text: 1}
        return text
    if isinstance(type_, GraphQLInputObjectType):
        return {
            field_name: good_value(field.type, field_name, _inside(target, field_name), case)
            for field_name, field in type_.fields.items()
            if isinstance(field.type, GraphQLNonNull) or (target and target[0] == field_name)
        }
    if isinstance(type_, GraphQLEnumType):
        return GOOD.get(name, next(iter(type_.values)))
    return GOOD.get(name, BY_TYPE[get_named_type(type_).name])


def _inside(target: tuple[str | int, ...] | None, field_name: str) -> tuple[str | int, ...] | None:
    return target[1:] if target and target[0] == field_name else None


def document(case: Case, field: GraphQLField) -> tuple[str, dict[str, Any]]:
    variables: dict[str, Any] = {}
    declared, passed = [], []
    for arg_name, arg in field.args.items():
        if arg_name != case.path[0] and not isinstance(arg.type, GraphQLNonNull):
            continue
        target = case.path[1:] if arg_name == case.path[0] else None
        variables[arg_name] = good_value(arg.type, arg_name, target, case)
        declared.append(f"${arg_name}: {arg.type}")
        passed.append(f"{arg_name}: ${arg_name}")
    selection = "" if is_leaf_type(get_named_type(field.type)) else " { __typename }"
    return f"{case.operation}({', '.join(declared)}) {{ {case.field}({', '.join(passed)}){selection} }}", variables


def refused_as_it_should_be(case: Case, answer: dict[str, Any]) -> str | None:
    """None when the answer is a clear refusal of the case's bad text, else what is wrong with it."""
    errors = answer.get("errors") or []
    if not errors:
        return f"accepted: {answer.get('data')}"
    error = errors[0]
    code = (error.get("extensions") or {}).get("code")
    message = error.get("message", "")
    if code == "INVALID_INPUT" and "cannot be stored" in message:
        return None
    if case.scalar == "DateTime" and message.startswith("Variable '$"):
        return None  # not a time at all: graphql-core refuses it while reading the variables
    return f"code {code}: {message[:300]}"


async def test_every_text_argument_of_every_mutation_and_query_refuses_nul_and_lone_surrogates(stack: Stack) -> None:
    introspection = await stack.graphql(get_introspection_query())
    schema = build_client_schema(introspection["data"])
    roots: dict[str, GraphQLObjectType] = {"mutation": schema.mutation_type, "query": schema.query_type}  # type: ignore
    all_cases = list(cases(schema))
    mutations = {c.field for c in all_cases if c.operation == "mutation"}
    assert len(mutations) == len(roots["mutation"].fields), "every mutation takes text somewhere"

    wrong: list[str] = []
    for case in all_cases:
        query, variables = document(case, roots[case.operation].fields[case.field])
        answer = await stack.graphql(query, variables)  # asserts HTTP 200: never a 5xx
        if (problem := refused_as_it_should_be(case, answer)) is not None:
            wrong.append(f"{case}: {problem}")
    assert not wrong, f"{len(wrong)} of {len(all_cases)} calls not refused as they should be:\n" + "\n".join(wrong)

    records = await all_records(stack.client.server.app[LOG])
    assert not [r for r in records if MARK.encode() in (r.value or b"")], "hostile text reached the log"
    health = await (await stack.client.get("/healthz", headers=await stack.auth())).json()
    assert health["status"] == "ok", health
    assert all(p["parked_streams"] == 0 for p in health["projections"].values()), health


async def test_hostile_text_written_into_the_document_itself_is_refused_without_a_server_error(stack: Stack) -> None:
    # Raw JSON bodies, as a hostile client writes them: the escapes reach graphql-server's JSON decoder as they are.
    search = "{ registeredModels(search: %s) { items { name } } }"
    refused_by_the_middleware = [
        search % '\\"a\\\\u0000b\\"',  # a GraphQL escape of NUL in a literal
        search % '\\"a\\u0000b\\"',  # a JSON escape: the document holds a NUL character
        search % '\\"\\"\\"a\\u0000b\\"\\"\\"',  # in a block string
    ]
    refused_by_the_parser = [
        search % '\\"a\\\\ud800b\\"',  # a GraphQL escape of a lone surrogate: a syntax error
        search % '\\"a\\ud800b\\"',  # a JSON escape: the document holds a lone surrogate
    ]
    headers = {**await stack.auth(), "Content-Type": "application/json"}
    for query in refused_by_the_middleware + refused_by_the_parser:
        response = await stack.client.post("/graphql", data=f'{{"query": "{query}"}}'.encode(), headers=headers)
        assert response.status < 500, (query, response.status, await response.text())
        (error,) = (await response.json())["errors"]
        if query in refused_by_the_middleware:
            assert (error["extensions"]["code"], response.status) == ("INVALID_INPUT", 200), (query, error)
        else:
            assert error["message"].startswith("Syntax Error"), (query, error)

    with_variables = "query($s: String) { registeredModels(search: $s) { items { name } } }"
    body = f'{{"query": "{with_variables}", "variables": {{"s": "a\\ud800b"}}}}'
    response = await stack.client.post("/graphql", data=body.encode(), headers=headers)
    assert response.status == 200, await response.text()
    (error,) = (await response.json())["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT", error
