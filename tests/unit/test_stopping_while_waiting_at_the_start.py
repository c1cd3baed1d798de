"""SIGTERM or Ctrl-C while a process waits at its start for PostgreSQL or Kafka (up to two minutes): it stops at
once, with one line saying so, instead of ignoring the signal until the wait ends."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import pytest

from modelreg.services.bootstrap import STOP_WAITING, StoppedWhileWaiting, database_pool
from modelreg.services.settings import Settings


def _refused_port() -> int:
    with socket.socket() as s:  # bound, never listened on: connections to it are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_wait_for_postgresql_ends_when_the_process_is_told_to_stop() -> None:
    stopping = asyncio.Event()
    STOP_WAITING.set(stopping)
    settings = Settings(database_url=f"postgresql://modelreg@127.0.0.1:{_refused_port()}/modelreg")
    waiting = asyncio.create_task(database_pool(settings, pool_size=1, durable_commits=True, wait_s=120))
    stopping.set()
    with pytest.raises(StoppedWhileWaiting, match="stopped while waiting for PostgreSQL at"):
        await waiting


def test_sigterm_stops_an_api_waiting_for_its_database_with_one_line() -> None:
    url = f"postgresql://modelreg@127.0.0.1:{_refused_port()}/modelreg"
    process = subprocess.Popen(
        [sys.executable, "-m", "modelreg.services.cli", "api", "--database-url", url, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MODELREG_LOG_JSON": ""},
    )
    assert process.stderr is not None
    for line in process.stderr:  # until it says it waits
        if "waiting for PostgreSQL" in line:
            break
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read()  # to its end: the process exits (before the fix, two minutes later)
    assert process.wait() == 0
    assert rest.strip().splitlines()[-1].startswith("modelreg: stopped while waiting for PostgreSQL at")
    assert "Traceback" not in rest
