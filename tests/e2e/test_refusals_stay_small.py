"""A refused request costs the server little: its answer is short, and the server's log keeps no traceback of it.

A viewer's key sent a metric name of 7,000,000 characters: the answer repeated it whole (7 MB), and the server
logged it three times at ERROR with a traceback (21 MB for one request). A refusal is the caller's to fix: it is
told to the caller, in a message quoting at most the start of what was sent, and the log is kept for the server's
own faults. These rules do not depend on where the event log lives: the tests run on the Postgres log only.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from support.stack import Stack

pytestmark = pytest.mark.parametrize("log_kind", ["postgres"])

LOG_METRICS = "mutation($input: LogMetricsInput!) { logMetrics(input: $input) }"
RUN = {"entity": "gamma", "project": "p", "runId": "x"}
HUGE = "a" * 7_000_000


async def sent(stack: Stack, key: str, variables: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The answer's size in bytes, and its one error."""
    assert stack.client is not None
    response = await stack.client.post(
        "/graphql",
        json={"query": LOG_METRICS, "variables": variables},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status == 200, await response.text()
    body = await response.read()
    (error,) = (await response.json())["errors"]
    return len(body), error


def faults_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_viewers_huge_metric_name_is_refused_in_a_short_answer_and_no_traceback(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    viewer = await stack.key("user:vic", "viewer")
    with caplog.at_level(logging.INFO):
        size, error = await sent(stack, viewer, {"input": {**RUN, "rows": [{"step": 1, "values": {HUGE: 1}}]}})

    assert size < 2_000, error["message"][:300]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert "metric name 'aaaa" in error["message"] and "(7,000,000 characters)" in error["message"]
    assert faults_logged(caplog) == []
    assert sum(len(r.getMessage()) for r in caplog.records) < 10_000  # the access log's line, not the name


async def test_a_key_of_a_variables_input_object_is_not_repeated_whole(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """graphql-core's own refusal (`Field '...' is not defined by type`) quotes the key whole: the answer cuts it."""
    viewer = await stack.key("user:vic", "viewer")
    with caplog.at_level(logging.INFO):
        size, error = await sent(stack, viewer, {"input": {**RUN, "rows": [], HUGE: 1}})

    assert size < 20_000, error["message"][:300]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert faults_logged(caplog) == []


async def test_refusals_for_rights_and_missing_runs_leave_no_traceback(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    viewer, member = await stack.key("user:vic", "viewer"), await stack.key("user:mia", "member")
    rows = [{"step": 1, "values": {"loss": 0.1}}]
    with caplog.at_level(logging.INFO):
        _, forbidden = await sent(stack, viewer, {"input": {**RUN, "rows": rows}})
        _, missing = await sent(stack, member, {"input": {**RUN, "rows": rows}})

    assert forbidden["extensions"]["code"] == "FORBIDDEN"
    assert missing["extensions"]["code"] == "NOT_FOUND"
    assert faults_logged(caplog) == []
