"""Which PostgreSQL errors are about the installation (waited out, answered UNAVAILABLE) and which are about the
statement or the event (a bug: parked, answered INTERNAL under an incident id)."""

from __future__ import annotations

import asyncpg
import pytest

from modelreg.events.database_trouble import SHOWN_FOR_S, TroublesSeen, database_trouble
from modelreg.graphql.errors import reported


@pytest.mark.parametrize(
    ("error", "what"),
    [
        (asyncpg.DiskFullError("could not extend file"), "the registry's database is out of disk space"),
        (asyncpg.OutOfMemoryError("out of memory"), "the registry's database is out of memory"),
        (asyncpg.TooManyConnectionsError("too many clients"), "the registry's database has no connection free"),
        (asyncpg.ReadOnlySQLTransactionError("read-only"), "the registry's database is read-only"),
        (asyncpg.AdminShutdownError("terminating connection"), "the registry's database is shutting down"),
        (asyncpg.ConnectionFailureError("connection failure"), "the connection to the registry's database broke"),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), "the connection to the registry's database"),
        (ConnectionResetError("reset by peer"), "the connection to the registry's database broke"),
    ],
)
def test_an_error_of_the_installation_names_its_cause(error: Exception, what: str) -> None:
    trouble = database_trouble(error)
    assert trouble is not None and trouble.what.startswith(what)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.DivisionByZeroError("division by zero"),
        asyncpg.UndefinedColumnError("no such column"),
        # Classes 53 and 08, but the statement's own doing: its events are applied one by one, the culprit parked.
        asyncpg.exceptions.ConfigurationLimitExceededError("temporary file size exceeds temp_file_limit"),
        asyncpg.exceptions.ProtocolViolationError("invalid message length"),
        KeyError("run_id"),
    ],
)
def test_an_error_of_the_statement_or_the_event_is_not_the_installations(error: Exception) -> None:
    assert database_trouble(error) is None


def test_a_command_failing_for_want_of_disk_answers_unavailable_naming_it_not_an_incident() -> None:
    try:
        try:
            raise asyncpg.DiskFullError("could not extend file")
        except asyncpg.DiskFullError as exc:
            raise RuntimeError("appending failed") from exc
    except RuntimeError as wrapped:
        answer = reported(wrapped, "logArtifactVersion")
    assert answer.extensions == {"code": "UNAVAILABLE", "retriable": True}
    assert answer.message == "the registry's database is out of disk space: retry later"
    assert "incident" not in answer.message


def test_a_trouble_is_shown_while_it_is_met_and_not_once_mended_or_gone_quiet() -> None:
    seen = TroublesSeen()
    trouble = database_trouble(asyncpg.DiskFullError("full"))
    assert trouble is not None
    seen.met(trouble, now=100.0)
    assert seen.current(now=100.0 + SHOWN_FOR_S - 1) == trouble
    assert seen.current(now=100.0 + SHOWN_FOR_S + 1) is None
    seen.met(trouble, now=200.0)
    seen.mended()
    assert seen.current(now=200.0) is None
