"""/metrics counts GraphQL requests by what they do, named from the schema, never from what the caller chose."""

from __future__ import annotations

from graphql import parse
from modelreg.services.http.metrics import graphql_operation


def test_a_mutation_is_counted_by_its_field() -> None:
    document = parse('mutation { addAlias(input: {registeredModel: "m", alias: "prod"}) { version } }')
    assert graphql_operation(document, None) == "mutation addAlias"


def test_the_callers_operation_name_and_aliases_never_become_a_series() -> None:
    document = parse('query WhateverTheyLike { mine: registeredModel(name: "m") { name } runs { total } }')
    assert graphql_operation(document, "WhateverTheyLike") == "query registeredModel and more"


def test_the_operation_named_in_the_request_is_the_one_counted() -> None:
    document = parse('query A { projects { total } } mutation B { finishRun(input: {id: "r"}) { id } }')
    assert graphql_operation(document, "B") == "mutation finishRun"
    assert graphql_operation(document, "A") == "query projects"
    assert graphql_operation(document, "C") is None


def test_fields_behind_top_level_fragments_are_found() -> None:
    document = parse("query { ...Models } fragment Models on Query { ... on Query { registeredModels { total } } }")
    assert graphql_operation(document, None) == "query registeredModels"
