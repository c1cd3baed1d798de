"""The server's log holds its own faults, not its callers' bad input: any key holder sending a bad field in a loop
filled it with tracebacks, and a real fault drowned among them."""

from __future__ import annotations

import logging

from modelreg.errors import InvalidInput, ModelregError, NotFound, PermissionDenied
from modelreg.services.http.api import RefusalsAreNoFaults


def logged(error: BaseException | None) -> bool:
    exc_info = (type(error), error, None) if error is not None else None
    record = logging.LogRecord("graphql_server.execution", logging.ERROR, __file__, 1, "x", (), exc_info)
    return RefusalsAreNoFaults().filter(record)


def test_a_refusal_told_to_the_caller_is_not_logged_as_a_fault() -> None:
    for refusal in (InvalidInput("tag too long"), PermissionDenied("viewer"), NotFound("no such model")):
        assert not logged(refusal)
    assert not logged(None)  # a document the schema refused


def test_the_servers_own_faults_are_logged() -> None:
    assert logged(RuntimeError("a bug"))
    assert logged(ModelregError("the server failed to answer this field"))  # INTERNAL
