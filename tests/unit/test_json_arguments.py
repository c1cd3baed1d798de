"""Free-form JSON arguments written into a query keep what the same values sent as variables keep, and what the
log cannot hold is refused with a message (graphene's GenericScalar stored it as null)."""

from __future__ import annotations

import pytest

from graphql import GraphQLError, parse_value
from modelreg.graphql.json_value import JSONValue


def test_a_literal_keeps_64_bit_integers_nesting_and_the_variables_inside_it() -> None:
    literal = parse_value('{seed: 3000000000, n: -9223372036854775808, lr: 0.5, tags: ["a", $tag, null], on: true}')
    assert JSONValue.parse_literal(literal, {"tag": "b"}) == {
        "seed": 3_000_000_000,
        "n": -(2**63),
        "lr": 0.5,
        "tags": ["a", "b", None],
        "on": True,
    }


@pytest.mark.parametrize(
    ("literal", "problem"),
    [
        ("{big: 9223372036854775808}", "beyond a 64-bit integer"),
        ("[1e400]", "beyond a 64-bit float"),
        ("{x: {y: -1e999}}", "beyond a 64-bit float"),
    ],
)
def test_a_literal_the_log_cannot_hold_is_refused_saying_why(literal: str, problem: str) -> None:
    with pytest.raises(GraphQLError, match=problem):
        JSONValue.parse_literal(parse_value(literal))


@pytest.mark.parametrize(
    ("variable", "problem"),
    [
        ({"seed": 2**64}, "beyond a 64-bit integer"),
        ({"lr": {"$gt": float("inf")}}, "beyond a 64-bit float"),  # JSON's 1e400, read by Python's json
        ([[{"x": -(2**63) - 1}]], "beyond a 64-bit integer"),
    ],
)
def test_a_variable_the_log_cannot_hold_is_refused_as_a_literal_is(variable: object, problem: str) -> None:
    # Passed as they came, they failed a runs filter inside the database (INTERNAL) or were stored as null.
    with pytest.raises(GraphQLError, match=problem):
        JSONValue.parse_value(variable)
    kept = {"seed": 2**63 - 1, "hash": 2**64 - 1, "low": -(2**63), "lr": 1e308, "on": True}  # the log holds them
    assert JSONValue.parse_value(kept) == kept
