"""A refusal quotes what the caller sent, shortened: a metric name of 7,000,000 characters came back whole in the
answer (and went three times into the server's log). A message shows the first 100 characters of a value and
its length, lists the first ten problems of an input and counts the rest."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from graphql import GraphQLError
from modelreg.errors import SHOWN_CHARS, quoted, shortened, validation_problems
from modelreg.events.artifacts import ManifestEntry
from modelreg.events.runs import MetricRow
from modelreg.events.storable_text import UnstorableText, refuse_unstorable
from modelreg.graphql.errors import MAX_MESSAGE_CHARS, actionable

HUGE = "a" * 7_000_000


def refusal_of(model: object, value: object) -> str:
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(model).validate_python(value)
    return validation_problems(refused.value)


def test_a_long_value_is_quoted_by_its_start_and_its_length() -> None:
    assert quoted(HUGE) == repr("a" * SHOWN_CHARS) + "... (7,000,000 characters)"
    assert quoted("loss") == "'loss'"  # as !r wrote it
    assert quoted("a" * SHOWN_CHARS) == repr("a" * SHOWN_CHARS)
    assert len(quoted({HUGE: [HUGE] * 1000})) < 1_000  # reprlib: a few items, each shortened
    assert shortened(HUGE) == "a" * SHOWN_CHARS + "... (7,000,000 characters)"


def test_a_huge_metric_name_is_refused_in_a_short_message() -> None:
    said = refusal_of(MetricRow, {"step": 1, "values": {HUGE: 1.0}})
    assert "metric name 'aaaa" in said and "(7,000,000 characters) must have 1 to 200 characters" in said
    assert len(said) < 500


def test_a_huge_json_key_is_shortened_where_the_problem_is_placed() -> None:
    said = refusal_of(MetricRow, {"step": 1, "values": {HUGE: "not a number"}})
    assert said.startswith("values." + "a" * SHOWN_CHARS + "... (7,000,000 characters): ")
    assert len(said) < 500
    with pytest.raises(UnstorableText) as unstorable:
        refuse_unstorable({HUGE: {"b\x00": 1}}, "config")
    assert len(str(unstorable.value)) < 500 and "(7,000,000 characters)" in str(unstorable.value)


def test_a_refusal_lists_ten_problems_and_counts_the_rest() -> None:
    entries = [{"path": f"/shard-{n}", "size": 1, "digest": "sha256:" + "ab" * 32} for n in range(50_000)]
    said = refusal_of(tuple[ManifestEntry, ...], entries)
    assert said.count("must be relative to the artifact's root") == 10
    assert said.endswith("; and 49,990 more problems like these")


def test_an_answers_message_from_graphql_core_is_cut() -> None:
    error = actionable(GraphQLError(f"Field '{HUGE}' is not defined by type 'LogMetricsInput'."))
    assert len(error.message) < MAX_MESSAGE_CHARS + 100 and error.message.endswith("(7,000,050 characters)")
