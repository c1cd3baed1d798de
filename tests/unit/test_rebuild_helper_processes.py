"""A rebuild spread over several processes starts its helpers before it empties any table: it goes on only
once every helper has said it is connected, and a helper that dies as it starts, or never connects, stops
the rebuild with nothing reset. Real processes, spawned as the rebuild spawns them, on real pipes."""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection

import pytest

from modelreg.services.rebuild import READY, _Helper, _until_ready

SPAWN = multiprocessing.get_context("spawn")


def _fails_as_it_starts(line: Connection) -> None:
    raise SystemExit(3)


def _connects_then_waits(line: Connection) -> None:
    line.send(READY)
    line.poll(30)  # until told anything, or our end closes


def _never_connects(line: Connection) -> None:
    line.poll(30)


def _helper(target: object) -> _Helper:
    ours, theirs = SPAWN.Pipe()
    return _Helper(SPAWN.Process(target=target, args=(theirs,)), ours, theirs)


async def test_a_helper_that_dies_as_it_starts_stops_the_rebuild_before_anything_is_reset() -> None:
    helper = _helper(_fails_as_it_starts)
    helper.start()
    with pytest.raises(RuntimeError, match=r"exit 3\): nothing was reset; .* --processes 1"):
        await _until_ready([helper])
    helper.process.join()


async def test_the_rebuild_goes_on_once_every_helper_is_connected() -> None:
    helpers = [_helper(_connects_then_waits), _helper(_connects_then_waits)]
    for helper in helpers:
        helper.start()
    try:
        await _until_ready(helpers)
        assert all(helper.ready and helper.process.is_alive() for helper in helpers)
    finally:
        for helper in helpers:
            helper.line.close()
            helper.process.join(30)


async def test_a_helper_that_never_connects_stops_the_rebuild_in_time() -> None:
    helpers = [_helper(_connects_then_waits), _helper(_never_connects)]
    for helper in helpers:
        helper.start()
    try:
        # The connecting one is waited for with the rebuild's own patience first: a spawned interpreter can take
        # more than the second below to start on a loaded machine, and then both would count as not connected.
        await _until_ready(helpers[:1])
        with pytest.raises(RuntimeError, match="1 of 2 replay processes were not connected .* nothing was reset"):
            await _until_ready(helpers, timeout_s=1)
    finally:
        for helper in helpers:
            helper.line.close()
            helper.process.join(30)
