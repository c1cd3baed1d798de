"""The projector and the triggers process answer a liveness probe on a port of their own while they run: a
supervisor saw them alive as long as they had not exited, an event loop held for good included."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from click.testing import CliRunner

from modelreg.services.cli import main
from modelreg.services.liveness_probe import ProbePortTaken, probed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_livez_answers_while_the_process_runs_and_the_port_closes_with_it() -> None:
    port, running, done = _free_port(), asyncio.Event(), asyncio.Event()

    async def work() -> None:
        running.set()
        await done.wait()

    process = asyncio.create_task(probed(port, work()))
    await running.wait()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/livez") as answer:
            assert (answer.status, await answer.text()) == (200, "ok\n")
        done.set()
        await process
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"http://127.0.0.1:{port}/livez")


async def test_a_port_already_served_is_said_and_the_work_never_starts() -> None:
    started = False

    async def work() -> None:
        nonlocal started
        started = True

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ProbePortTaken, match=f"the liveness probe's port {port} cannot be served"):
            await probed(port, work())
    assert not started


def test_a_projector_whose_probe_port_is_taken_exits_with_one_line_saying_so() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        database = "postgresql://nobody@127.0.0.1:1/none"  # never reached: the probe is served first
        for process in ("projector", "triggers"):
            result = CliRunner().invoke(main, [process, "--database-url", database, "--probe-port", str(port)])
            assert result.exit_code == 1, result.output
            assert f"Error: the liveness probe's port {port} cannot be served" in result.output
            assert "Traceback" not in result.output
