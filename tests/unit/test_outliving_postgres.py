"""What keeps `modelreg server` up while PostgreSQL is away: telling an outage from a bad query, running a
part again after it failed, and forgetting the processes that died without leaving an embedded server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from modelreg.projections.runtime import MigratedBeyond
from modelreg.services.http.database_unavailable import any_database_unavailable, is_database_unavailable
from modelreg.services.infra.embedded_postgres import HANDLE_PIDS, EmbeddedPostgresKeeper, forget_dead_users
from modelreg.services.restart_on_failure import restart_on_failure, until_stopped


def test_postgres_going_away_is_told_apart_from_a_bad_query() -> None:
    assert is_database_unavailable(asyncpg.CannotConnectNowError("the database system is starting up"))
    assert is_database_unavailable(asyncpg.exceptions.AdminShutdownError("terminating connection"))
    assert is_database_unavailable(asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"))
    assert is_database_unavailable(asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"))
    assert is_database_unavailable(asyncpg.InternalClientError("cannot switch to state 12; another operation (2)..."))
    wrapped = RuntimeError("resolver failed")
    wrapped.__cause__ = asyncpg.CannotConnectNowError("starting up")
    assert is_database_unavailable(wrapped)

    assert not is_database_unavailable(asyncpg.UndefinedTableError("relation does not exist"))
    assert not is_database_unavailable(asyncpg.InterfaceError("another operation is in progress"))
    assert not is_database_unavailable(FileNotFoundError("a blob that is not there"))  # not raised by asyncpg
    assert not any_database_unavailable([ValueError("bad input")])


async def test_a_part_that_fails_is_run_again_until_the_process_stops() -> None:
    stopping = asyncio.Event()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ConnectionRefusedError("PostgreSQL is restarting")
        stopping.set()  # the third run goes well, until the process is told to stop

    await asyncio.wait_for(restart_on_failure("projector", flaky, stopping, first_delay_s=0.01), 10)
    assert runs == 3


def test_the_pids_of_processes_that_died_without_leaving_are_forgotten(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / HANDLE_PIDS).write_text(json.dumps([dead_pid, os.getpid()]))

    assert forget_dead_users(tmp_path) == [dead_pid]
    assert json.loads((tmp_path / HANDLE_PIDS).read_text()) == [os.getpid()]
    assert forget_dead_users(tmp_path / "nothing-here") == []


@pytest.mark.parametrize("text", ["", "[]"])
def test_an_empty_handle_list_is_left_alone(tmp_path: Path, text: str) -> None:
    (tmp_path / HANDLE_PIDS).write_text(text)
    assert forget_dead_users(tmp_path) == []


@pytest.mark.parametrize("unreadable", ["a folder", "half written"])
def test_the_embedded_postgres_keeper_watches_on_when_it_cannot_check_for_a_while(
    tmp_path: Path, unreadable: str
) -> None:
    # Out of file descriptors (twenty thousand connections held open), reading postmaster.pid raised and ended the
    # keeper's thread: PostgreSQL was no longer started again when it died, for the rest of the process's life.
    pid_file = tmp_path / "postmaster.pid"
    if unreadable == "a folder":
        pid_file.mkdir()  # reading it raises an OSError, as a process out of file descriptors gets
    else:
        pid_file.write_text("4242\n/data\n1700000000\n5432\n")  # PostgreSQL writes its eight lines in steps
    restarted = []
    keeper = EmbeddedPostgresKeeper(tmp_path, server=None, every_s=0.01)
    keeper._restart = lambda: restarted.append(True)  # type: ignore[method-assign]
    with keeper:
        time.sleep(0.2)
        assert keeper._thread.is_alive() and not restarted
        if pid_file.is_dir():  # readable again, and no server runs there
            pid_file.rmdir()
        else:
            pid_file.unlink()
        deadline = time.monotonic() + 10
        while not restarted and time.monotonic() < deadline:
            time.sleep(0.01)
    assert restarted


async def test_a_projector_of_a_build_older_than_the_database_exits_with_the_upgrade_message() -> None:
    runs = 0

    async def older() -> None:
        nonlocal runs
        runs += 1
        raise MigratedBeyond("registry", 18, ["registry_files 4"])

    with pytest.raises(MigratedBeyond, match="upgrade this process"):
        await asyncio.wait_for(restart_on_failure("projector", older, asyncio.Event(), first_delay_s=0.01), 10)
    assert runs == 1


async def test_a_server_whose_part_ends_unexpectedly_exits_for_its_supervisor_to_start_it_again() -> None:
    async def broken() -> None:
        raise SystemError("a bug outside what restart_on_failure catches")

    async def stopped_for_good() -> None:
        return None

    stopping = asyncio.Event()
    parts = [asyncio.create_task(stopped_for_good()), asyncio.create_task(broken())]
    with pytest.raises(SystemError, match="a bug"):
        await asyncio.wait_for(until_stopped(stopping, parts), 10)

    calm = asyncio.create_task(stopped_for_good())
    stopping.set()
    await asyncio.wait_for(until_stopped(stopping, [calm]), 10)  # a part stopped for good does not end the process
