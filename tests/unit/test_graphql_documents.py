"""Documents are parsed and validated once, with the standard rules plus our limits."""

from __future__ import annotations

import pytest
from graphene.validation import depth_limit_validator
from graphql_server.exceptions import GraphQLValidationError

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
    for bad, reason in [('{ registeredModel(name: "m") { nope } }', "Cannot query field 'nope'"), ("{ x(", "Syntax Error")]:
        with pytest.raises(GraphQLValidationError) as refused:
            documents.get(bad)
        assert reason in str(refused.value.errors[0])
