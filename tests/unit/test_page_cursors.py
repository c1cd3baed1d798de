"""A page cursor is read back as this API wrote it, by the list that wrote it, or refused as one it did not return."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from modelreg.errors import InvalidInput
from modelreg.graphql.pages import Cursors, ordinal
from modelreg.projections.run_order import MAX_CARRIED, RunPosition, order_by

MODELS, QUEUES = Cursors("registeredModels"), Cursors("launchQueues")


def test_a_cursor_holding_u0000_or_a_lone_surrogate_is_not_one_this_api_returned() -> None:
    # They passed UTF-8 decoding, and PostgreSQL's text refused them inside the query (INTERNAL, retriable).
    for part in ("a\\u0000b", "a\\ud800b"):
        cursor = base64.urlsafe_b64encode(f'["registeredModels", "{part}"]'.encode()).decode()
        with pytest.raises(InvalidInput, match="is not one this API returned"):
            MODELS.decode(cursor, str)
    assert MODELS.decode(MODELS.encode("ab"), str) == ("ab",)


def test_a_cursor_names_its_list_and_another_lists_is_refused_though_its_parts_fit() -> None:
    with pytest.raises(InvalidInput) as refused:
        QUEUES.decode(MODELS.encode("nature-classification"), str)
    assert "pass a page's endCursor, from launchQueues asked with the same arguments" in refused.value.message
    versions, model_versions = Cursors("artifactVersions"), Cursors("RegisteredModel.versions")
    with pytest.raises(InvalidInput):
        versions.decode(model_versions.encode(3), ordinal)
    assert versions.decode(versions.encode(3), ordinal) == (3,)


def test_a_cursor_from_before_cursors_named_their_list_is_refused() -> None:
    # An upgrade refuses the cursors in flight: a caller starts again from the first page.
    for old in (b"k:nature-classification", b"o:3", b"k:2026-01-01T00:00:00+00:00\x1fabc"):
        with pytest.raises(InvalidInput, match="is not one this API returned"):
            MODELS.decode(base64.urlsafe_b64encode(old).decode(), str)


def test_a_part_holding_any_text_reads_back() -> None:
    # Parts were joined with U+001F: a name holding it made a cursor this API could not read back.
    for name in ("a\x1fb", 'a"b', "k:x", "日本"):
        assert MODELS.decode(MODELS.encode(name), str) == (name,)


def test_a_run_order_cursor_carries_the_last_runs_value_as_postgresql_reads_it_back() -> None:
    by_lr = order_by("+config.lr")
    assert by_lr is not None and by_lr.name == "+config.lr" and order_by("config.lr.value") == by_lr
    for value in ("0.1", '"auto"', "null", '[1, {"a": true}]', "1e-5", "123456789012345678901234567890.5"):
        at, text, run_id = by_lr.cursor_parts({"sort_value": value, "run_id": "r1"})
        assert by_lr.position(at, text, run_id) == RunPosition("r1", value)
    assert by_lr.position(*by_lr.cursor_parts({"sort_value": None, "run_id": "r1"})) == RunPosition("r1")
    long = {"sort_value": '"' + "x" * MAX_CARRIED + '"', "run_id": "r1"}
    assert by_lr.position(*by_lr.cursor_parts(long)) == RunPosition("r1", read_again=True)
    heard = order_by("-heartbeat_at")
    at = datetime(2026, 12, 1, 7, 30, 0, 123456, tzinfo=UTC)
    assert heard is not None and heard.position(*heard.cursor_parts({"sort_value": at, "run_id": "r"})).value == at
    tags = order_by("tags")
    assert tags is not None and tags.position(*tags.cursor_parts({"sort_value": ["a", "b"], "run_id": "r"})) == (
        RunPosition("r", ["a", "b"])
    )


@pytest.mark.parametrize(
    "text", ["NaN", "Infinity", "1e999999", "1e-99999", '"\\u0000"', '"\\ud800"', "[" * 5000 + "]" * 5000, "{"]
)
def test_a_run_order_cursor_holding_a_value_postgresql_would_refuse_is_refused(text: str) -> None:
    """Refused in the query, it was an INTERNAL error (retriable, a traceback in the log) for a made-up cursor."""
    by_lr = order_by("+config.lr")
    assert by_lr is not None
    with pytest.raises(ValueError):
        by_lr.position("value", text, "r1")
    for at, value in (("elsewhere", ""), ("missing", "0.1"), ("run", "0.1")):
        with pytest.raises(ValueError):
            by_lr.position(at, value, "r1")
