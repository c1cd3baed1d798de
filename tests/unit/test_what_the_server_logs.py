"""The server's log holds its own faults, not its callers' bad input: any key holder sending a bad field in a loop
filled it with tracebacks, and a real fault drowned among them.

The errors are made the way a request makes them (graphql-server running the schema with the resolver middleware),
not built by hand: graphql-server logs the answer's error, whose original_error is the middleware's GraphQLError
and not the modelreg error behind it, and a filter written against the modelreg error never saw one."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from graphql_server.runtime import execute

from graphql import GraphQLError
from modelreg.errors import InvalidInput, ModelregError, NotFound, PermissionDenied
from modelreg.graphql.errors import is_refusal
from modelreg.graphql.schema import RESOLVER_MIDDLEWARE, build_schema
from modelreg.services.http.api import RefusalsAreNoFaults

SCHEMA = build_schema().graphql_schema
LOG_METRICS = (
    'mutation($values: GenericScalar!) { logMetrics(input: {entity: "acme", project: "nature", runId: "r1", '
    "rows: [{step: 1, values: $values}]}) }"
)


class Refusing:
    """A request context whose command path answers as the application would: with `error`."""

    def __init__(self, error: Exception) -> None:
        self.app, self.caller, self._error = self, None, error

    async def execute(self, command: Any, caller: Any) -> Any:
        raise self._error


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def logged_by_graphql_server() -> Iterator[list[logging.LogRecord]]:
    """What graphql-server's logger passes on, with the filter the API installs on it."""
    execution_log, kept, refusals = logging.getLogger("graphql_server.execution"), Kept(), RefusalsAreNoFaults()
    execution_log.addHandler(kept)
    execution_log.addFilter(refusals)
    try:
        yield kept.records
    finally:
        execution_log.removeFilter(refusals)
        execution_log.removeHandler(kept)


async def logged(query: str, variables: dict[str, Any], context: object) -> list[logging.LogRecord]:
    with logged_by_graphql_server() as records:
        result = await execute(SCHEMA, query, variables, context_value=context, middleware=RESOLVER_MIDDLEWARE)
    assert result.errors, "the request was not refused"
    return records


async def test_a_refusal_told_to_the_caller_is_not_logged_as_a_fault() -> None:
    for refusal in (InvalidInput("tag too long"), PermissionDenied("viewer"), NotFound("no such run")):
        assert await logged(LOG_METRICS, {"values": {"loss": 0.1}}, Refusing(refusal)) == [], refusal
    # Refused by the command's validation, before the command path is reached.
    assert await logged(LOG_METRICS, {"values": {"a" * 1000: 1}}, Refusing(RuntimeError("not reached"))) == []


async def test_a_variable_its_type_refuses_is_not_logged() -> None:
    query = "query($first: Int) { registeredModels(first: $first) { items { name } } }"
    assert await logged(query, {"first": "ten"}, Refusing(RuntimeError("not reached"))) == []


async def test_the_servers_own_faults_are_logged_with_their_traceback() -> None:
    for fault in (RuntimeError("a bug"), ModelregError("the server failed to answer this field")):  # INTERNAL
        (record,) = await logged(LOG_METRICS, {"values": {"loss": 0.1}}, Refusing(fault))
        assert record.levelno == logging.ERROR and record.exc_info is not None, fault
    # Outside any field (graphql-server's own wrapping of what execution raised): a fault too.
    assert not is_refusal(GraphQLError("a bug", original_error=RuntimeError("a bug")))
