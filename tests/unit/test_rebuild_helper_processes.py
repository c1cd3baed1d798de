"""A rebuild spread over several processes starts its helpers before it empties any table: it goes on only
once every helper is connected, and a helper that dies as it starts stops the rebuild with nothing reset.
Real processes (spawned as the rebuild spawns them)."""

from __future__ import annotations

import multiprocessing

import pytest

from modelreg.services.rebuild import _Helper, _until_ready

SPAWN = multiprocessing.get_context("spawn")


def _fails_as_it_starts(code: int) -> None:
    raise SystemExit(code)


def _connects_then_waits(ready: object, release: object) -> None:
    ready.set()  # type: ignore[attr-defined]
    release.wait(30)  # type: ignore[attr-defined]


async def test_a_helper_that_dies_as_it_starts_stops_the_rebuild_before_anything_is_reset() -> None:
    helper = _Helper(SPAWN.Process(target=_fails_as_it_starts, args=(3,)), SPAWN.Event())
    helper.process.start()
    with pytest.raises(RuntimeError, match=r"exit 3.*nothing was reset"):
        await _until_ready([helper])
    helper.process.join()


async def test_the_rebuild_goes_on_once_every_helper_is_connected() -> None:
    release = SPAWN.Event()
    helpers = [
        _Helper(SPAWN.Process(target=_connects_then_waits, args=(ready, release)), ready)
        for ready in (SPAWN.Event(), SPAWN.Event())
    ]
    for helper in helpers:
        helper.process.start()
    try:
        await _until_ready(helpers)
        assert all(helper.ready.is_set() and helper.process.is_alive() for helper in helpers)
    finally:
        release.set()
        for helper in helpers:
            helper.process.join(30)


async def test_a_helper_that_never_connects_stops_the_rebuild_in_time() -> None:
    release = SPAWN.Event()
    elsewhere, never = SPAWN.Event(), SPAWN.Event()  # the helper sets another event than the one watched
    helper = _Helper(SPAWN.Process(target=_connects_then_waits, args=(elsewhere, release)), never)
    helper.process.start()
    try:
        with pytest.raises(RuntimeError, match="not ready in 1 s: nothing was reset"):
            await _until_ready([helper], timeout_s=1)
    finally:
        release.set()
        helper.process.join(30)
