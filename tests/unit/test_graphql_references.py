"""Ids, refs and cursors are read in one place each, and a bad one is refused naming what was sent."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from modelreg.errors import InvalidInput
from modelreg.events.names import count_in
from modelreg.graphql.pages import Cursors
from modelreg.graphql.references import as_uuid, parse_ref, parse_uuid, parse_version_name
from modelreg.graphql.schema import build_schema

ID = "01900000-0000-7000-8000-000000000000"


def test_an_id_that_is_not_a_uuid_is_refused_naming_the_argument_and_the_value() -> None:
    assert parse_uuid("artifactVersionId", ID) == UUID(ID)
    with pytest.raises(InvalidInput) as refused:
        parse_uuid("artifactVersionId", "v3")
    assert refused.value.message.startswith("artifactVersionId: 'v3' is not an id")
    assert as_uuid("v3") is None and as_uuid(ID) == UUID(ID)


def test_an_artifact_ref_defaults_to_latest_and_a_malformed_one_says_how_it_looks() -> None:
    assert parse_ref("acme/nature/classifier") == ("acme", "nature", "classifier", "latest")
    assert parse_ref("acme/nature/classifier:production") == ("acme", "nature", "classifier", "production")
    with pytest.raises(InvalidInput, match="entity/project/name:v3"):
        parse_ref("classifier:v3")


def test_a_model_version_is_named_v_and_its_number() -> None:
    assert parse_version_name("v12") == 12
    with pytest.raises(InvalidInput, match="v0, v1"):
        parse_version_name("latest")


@pytest.mark.parametrize("name", ["v²", "v١", "v99999999999999999999", "v-1", "v"])
def test_a_version_name_with_other_digits_or_too_many_is_refused_not_an_internal_error(name: str) -> None:
    # "²" and "١" pass str.isdigit but not int(); twenty digits overflow the database's integer
    with pytest.raises(InvalidInput, match="a model version is named v0, v1"):
        parse_version_name(name)


def test_a_count_is_plain_ascii_digits_that_the_database_holds() -> None:
    assert [count_in(t) for t in ("0", "42", "999999999", "1000000000", "²", "١٢", " 1", "")] == [
        0,
        42,
        999999999,
        None,
        None,
        None,
        None,
        None,
    ]
    assert count_in("1" * 18, digits=18) == int("1" * 18)


def test_a_cursor_reads_back_its_typed_parts_and_refuses_any_other() -> None:
    at = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)
    waiting = Cursors("waitingJobs")
    cursor = waiting.encode(3, at, UUID(ID))
    assert waiting.decode(cursor, int, datetime.fromisoformat, UUID) == (3, at, UUID(ID))
    assert waiting.decode(None, int) is None
    for foreign in (waiting.encode("x", at, ID), waiting.encode(at, ID), Cursors("jobs").encode(3, at, ID), "bm9wZQ=="):
        with pytest.raises(InvalidInput, match="pass a page's endCursor"):
            waiting.decode(foreign, int, datetime.fromisoformat, UUID)


def test_every_list_is_a_page_with_first_and_after_and_every_mutation_takes_one_input() -> None:
    schema = build_schema().graphql_schema
    for type_name, type_ in schema.type_map.items():
        fields = getattr(type_, "fields", None)
        if type_name.startswith("__") or not fields or type_name.endswith("Input"):
            continue
        for name, field in fields.items():
            if type_name.endswith("Page") and name == "items":
                continue
            returns = str(field.type)
            if returns.endswith("Page!"):
                assert {"first", "after"} <= field.args.keys(), f"{type_name}.{name} pages without first/after"
            if "first" in field.args:
                assert returns.endswith("Page!"), f"{type_name}.{name} takes first but is not a page"
    assert schema.mutation_type is not None
    for name, field in schema.mutation_type.fields.items():
        assert list(field.args) == ["input"], f"{name} takes {list(field.args)}, not one input"
        assert str(field.args["input"].type).endswith("Input!"), name
