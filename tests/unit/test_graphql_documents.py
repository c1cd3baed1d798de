"""Documents are parsed and validated once, with the standard rules plus our limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphene.validation import depth_limit_validator
from graphql.utilities import TypeInfo
from graphql.validation import ValidationContext
from graphql_server.exceptions import GraphQLValidationError

from graphql import parse, validate
from modelreg.graphql.cost import QueryCost, cost_limit_validator
from modelreg.graphql.documents import ValidatedDocuments
from modelreg.graphql.schema import build_schema

SCHEMA = build_schema().graphql_schema
DEEP = '{ registeredModel(name: "m") { versions { items { artifactVersion { files { path } } } } } }'


def test_a_valid_document_is_parsed_once_and_reused() -> None:
    documents = ValidatedDocuments(SCHEMA, ())
    assert documents.get(DEEP) is documents.get(DEEP)


def test_a_document_deeper_than_the_limit_is_refused() -> None:
    documents = ValidatedDocuments(SCHEMA, (depth_limit_validator(max_depth=3),))
    with pytest.raises(GraphQLValidationError) as refused:
        documents.get(DEEP)
    assert "exceeds maximum operation depth of 3" in str(refused.value.errors[0])


def test_the_standard_rules_still_apply_next_to_ours() -> None:
    documents = ValidatedDocuments(SCHEMA, (depth_limit_validator(max_depth=10),))
    for bad, reason in [
        ('{ registeredModel(name: "m") { nope } }', "Cannot query field 'nope'"),
        ("{ x(", "Syntax Error"),
    ]:
        with pytest.raises(GraphQLValidationError) as refused:
            documents.get(bad)
        assert reason in str(refused.value.errors[0])


def _cost_of(query: str) -> int:
    document = parse(query)
    context = ValidationContext(SCHEMA, document, TypeInfo(SCHEMA), lambda error: None)
    return QueryCost(context, 500).of_operation(document.definitions[0])  # type: ignore[arg-type]


def test_a_page_counts_its_items_by_its_size() -> None:
    one_page = '{ registeredModel(name: "m") { versions(first: 20) { items { version aliases } } } }'
    bigger = '{ registeredModel(name: "m") { versions(first: 200) { items { version aliases } } } }'
    assert _cost_of(bigger) > 5 * _cost_of(one_page)


def test_a_page_size_left_out_counts_as_the_default_and_a_variable_as_the_largest_page_whatever_its_default() -> None:
    by_default = _cost_of('{ registeredModel(name: "m") { versions { items { version } } } }')
    by_variable = _cost_of(
        'query($n: Int) { registeredModel(name: "m") { versions(first: $n) { items { version } } } }'
    )
    assert by_default < by_variable
    # A default is what the variable is worth when it is not sent: sent, it may be 500. Counted as its default, 40
    # aliases of a nested page declared with defaults of 1 passed and ran with 500 (40,000 queries, 14 s).
    assert (
        _cost_of('query($n: Int = 1) { registeredModel(name: "m") { versions(first: $n) { items { version } } } }')
        == by_variable
    )


def test_nested_pages_over_the_cost_limit_are_refused_with_advice() -> None:
    documents = ValidatedDocuments(SCHEMA, (cost_limit_validator(50_000, 500),))
    greedy = (
        "{ registeredModels(first: 500) { items { versions(first: 500) "
        "{ items { artifactVersion { files { path } } } } } } }"
    )
    with pytest.raises(GraphQLValidationError) as refused:
        documents.get(greedy)
    assert "over the limit of 50,000" in str(refused.value.errors[0]) and "smaller pages" in str(
        refused.value.errors[0]
    )
    documents.get(
        "{ registeredModels(first: 50) { items { name versions(first: 50) { items { version aliases } } } } }"
    )


def test_a_page_of_runs_is_a_page_and_its_largest_is_within_the_limit() -> None:
    runs = """{{ runs(entity: "acme", project: "nature", first: {first}) {{
      items {{ runId name state config summary environment startedAt metrics {{ key step value }}
               launchedBy {{ id queue state }} }}
      endCursor hasNextPage totalCount }} }}"""
    assert _cost_of(runs.format(first=500)) > 9 * _cost_of(runs.format(first=50))
    ValidatedDocuments(SCHEMA, (cost_limit_validator(50_000, 500),)).get(runs.format(first=500))


def test_a_lineage_cluster_is_counted_by_its_page_not_by_the_fan_out_it_skips() -> None:
    page = (
        '{ lineageNeighbours(node: "artifact:x", direction: DOWNSTREAM, fanOut: 1000, first: %d) '
        "{ items { node { id run { runId } } } } }"
    )
    small, large = _cost_of(page % 10), _cost_of(page % 500)
    assert small < 100 and large > 40 * small


STYLE_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "graphql-style.md"


def test_every_example_of_the_style_guide_is_an_operation_the_schema_takes() -> None:
    """Its page example used a variable it did not declare: "Variable '$cursor' is not defined"."""
    examples = re.findall(r"```graphql\n(.*?)```", STYLE_GUIDE.read_text(), re.DOTALL)
    assert len(examples) >= 3
    for example in examples:
        assert validate(SCHEMA, parse(example)) == [], example
