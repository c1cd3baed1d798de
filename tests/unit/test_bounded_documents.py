"""A new GraphQL document costs bounded work: tokens, shapes, and our rules only after the standard ones."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from graphene.validation import depth_limit_validator
from graphql.language import Lexer, Source, TokenKind
from graphql_server.exceptions import GraphQLValidationError
from support.hostile_documents import cyclic_fragments, many_aliases

from graphql import get_introspection_query
from modelreg.graphql.cost import cost_limit_validator
from modelreg.graphql.documents import MAX_TOKENS, ValidatedDocuments
from modelreg.graphql.schema import build_schema

SCHEMA = build_schema().graphql_schema
REPO = Path(__file__).resolve().parents[2]


def _documents() -> ValidatedDocuments:
    return ValidatedDocuments(SCHEMA, (depth_limit_validator(max_depth=12), cost_limit_validator(50_000, 500)))


def _refusal(query: str) -> str:
    with pytest.raises(GraphQLValidationError) as refused:
        _documents().get(query)
    return "\n".join(e.message for e in refused.value.errors)


def _tokens(text: str) -> int:
    lexer, count = Lexer(Source(text)), 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


def _ui_and_client_documents() -> dict[str, str]:
    """The web UI's documents (template literals, their ${CONSTANTS} filled in) and the client's."""
    found = {}
    for path in (REPO / "ui").rglob("*.js"):
        if "vendor" in path.parts:
            continue
        constants = dict(re.findall(r"const (\w+) = `([^`]*)`", path.read_text()))
        for name, text in constants.items():
            text = re.sub(r"\$\{(\w+)\}", lambda m, constants=constants: constants.get(m.group(1), "x"), text)
            found[f"{path.name}:{name}"] = re.sub(r"\$\{[^}]*\}", "x", text)
    for path in (REPO / "client").rglob("*.py"):
        for n, match in enumerate(re.finditer(r'"((?:query|mutation|subscription)\b[^"]*)"', path.read_text())):
            found[f"{path.name}:{n}"] = match.group(1).replace("{{", "{").replace("}}", "}")
    return found


def test_the_web_uis_and_the_clients_documents_and_introspection_stay_far_under_the_token_limit() -> None:
    documents = _ui_and_client_documents()
    assert len(documents) > 50  # the extraction found them
    biggest = max(_tokens(text) for text in documents.values() if "{" in text)
    assert biggest * 10 < MAX_TOKENS
    assert _tokens(get_introspection_query(descriptions=True, input_value_deprecation=True)) * 5 < MAX_TOKENS


def test_a_document_of_sixty_thousand_aliases_is_refused_unread_and_a_smaller_one_by_the_token_limit() -> None:
    unread = _refusal(many_aliases(60_000))
    assert "the document has 1,308,893 characters, over this server's limit of 100,000" in unread
    message = _refusal(many_aliases(4_000))
    assert f"more than {MAX_TOKENS:,} tokens, this server's limit: split it into several requests" in message


def test_a_fragment_cycle_gets_the_standard_message_not_a_recursion_error() -> None:
    assert "Cannot spread fragment 'A' within itself via 'B'." in _refusal(cyclic_fragments())
    itself = "{ viewer { ...A } } fragment A on Principal { ...A }"
    assert "Cannot spread fragment 'A' within itself." in _refusal(itself)


def test_an_unknown_fragment_gets_the_standard_message() -> None:
    assert _refusal("{ viewer { ...Nowhere } }") == "Unknown fragment 'Nowhere'."


@pytest.mark.parametrize(
    "query, says",
    [
        ("{ viewer { " + "id " * 50 + "} }", "'id' is asked for 50 times in one selection set, over the limit of 3"),
        ("{ viewer { " + "... on Principal { id } " * 150 + "} }", "holds 300 selections, over the limit"),
        (
            "{ viewer { "
            + " ".join(f"...F{i}" for i in range(12))
            + " } } "
            + " ".join(f"fragment F{i} on Principal {{ id }}" for i in range(12)),
            "a selection set spreads 12 fragments, over the limit of 10",
        ),
        ("{" * 1500 + "}" * 1500, "Syntax Error"),
    ],
)
def test_shapes_that_make_validation_quadratic_are_refused_before_it_runs(query: str, says: str) -> None:
    assert says in _refusal(query)


def test_the_same_field_a_few_times_and_many_aliases_still_pass() -> None:
    _documents().get("{ viewer { id id role } a: viewer { id } b: viewer { id } }")
    _documents().get("{ viewer { " + " ".join(f"a{i}: id" for i in range(150)) + " } }")


def test_a_new_document_is_validated_off_the_event_loop_and_then_served_from_the_cache() -> None:
    documents = _documents()

    async def twice() -> bool:
        first = await documents.validated("{ viewer { id } }")
        return first is await documents.validated("{ viewer { id } }") and first is documents.get("{ viewer { id } }")

    assert asyncio.run(twice())
