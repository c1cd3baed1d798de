"""How deep a request body nests, counted before anything walks it recursively."""

from __future__ import annotations

import json

import pytest
from graphql_server.http.exceptions import HTTPException

from modelreg.services.http.graphql_bodies import MAX_NESTING, graphql_body, nesting, websocket_message


def test_nesting_counts_objects_and_arrays_not_the_brackets_inside_strings() -> None:
    assert (nesting(3), nesting([]), nesting({"a": [{"b": []}]})) == (0, 1, 4)
    assert nesting(json.loads('{"path": "[[[[{{{{"}')) == 1


def test_a_body_at_the_limit_is_read_and_one_past_it_is_refused() -> None:
    def nested(depth: int) -> str:
        return '{"query": "{ viewer { id } }", "variables": ' + '{"a": ' * (depth - 1) + "1" + "}" * depth

    assert nesting(graphql_body(nested(MAX_NESTING))) == MAX_NESTING
    with pytest.raises(HTTPException, match=f"nests objects and arrays over {MAX_NESTING} deep"):
        graphql_body(nested(MAX_NESTING + 1))


def test_a_long_flat_metric_batch_is_read() -> None:
    batch = {"query": "m", "variables": {"values": [0.5] * 100_000, "steps": list(range(100_000))}}
    assert graphql_body(json.dumps(batch)) == batch


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_which_json_does_not_have_are_refused_with_what_to_send(constant: str) -> None:
    # Python's json reads and writes them: a run's config stored them as null, and a filter on them failed inside
    # PostgreSQL as an internal (retriable) error.
    body = '{"query": "q", "variables": {"config": {"lr": CONSTANT}}}'.replace("CONSTANT", constant)
    with pytest.raises(
        HTTPException, match=f'the body holds {constant}, which JSON does not have.*"{constant}", or null'
    ):
        graphql_body(body)


def test_a_websocket_message_with_nan_is_not_json_either() -> None:
    message = '{"type": "subscribe", "id": "1", "payload": {"query": "q", "variables": {"x": NaN}}}'
    with pytest.raises(json.JSONDecodeError, match="NaN is not JSON"):
        websocket_message(message)
    assert websocket_message('{"type": "ping"}') == {"type": "ping"}
