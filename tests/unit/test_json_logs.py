"""`modelreg --log-json`: one JSON object per line, with what was passed as `extra`."""

from __future__ import annotations

import json
import logging

from modelreg.services.json_logs import JsonLines


def test_a_log_record_becomes_one_line_of_json_with_its_extra_fields() -> None:
    record = logging.LogRecord("modelreg.api", logging.WARNING, __file__, 1, "slow %s", ("request",), None)
    record.operation = "POST /graphql"
    line = JsonLines().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "slow request"
    assert (entry["level"], entry["logger"], entry["operation"]) == ("WARNING", "modelreg.api", "POST /graphql")
    assert entry["time"].endswith("+00:00")


def test_an_exception_is_kept_in_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    entry = json.loads(JsonLines().format(record))
    assert "ValueError: boom" in entry["exception"]
