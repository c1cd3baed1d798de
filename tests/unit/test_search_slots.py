"""A caller's runs searches take turns, two at a time, so they never hold the whole connection pool."""

from __future__ import annotations

import asyncio

from modelreg.projections.search import SearchSlots


async def test_a_callers_third_search_waits_for_a_turn_while_another_callers_goes_ahead() -> None:
    slots = SearchSlots(per_caller=2)
    inside: dict[str, int] = {"mallory": 0, "alice": 0}
    most = {"mallory": 0}
    release = asyncio.Event()

    async def search(caller: str) -> None:
        async with slots.of(caller):
            inside[caller] += 1
            most[caller] = max(most.get(caller, 0), inside[caller])
            await release.wait()
            inside[caller] -= 1

    mallory = [asyncio.create_task(search("mallory")) for _ in range(5)]
    await asyncio.sleep(0)
    assert inside["mallory"] == 2  # the other three wait
    alice = asyncio.create_task(search("alice"))
    await asyncio.sleep(0)
    assert inside["alice"] == 1  # not behind mallory's
    release.set()
    await asyncio.gather(*mallory, alice)
    assert most["mallory"] == 2
    assert slots._slots == {}  # nothing kept for callers with no search


async def test_every_callers_searches_together_take_turns_below_the_pools_size() -> None:
    slots = SearchSlots(per_caller=2, in_all=3)
    inside = [0]
    most = [0]
    release = asyncio.Event()

    async def search(caller: str) -> None:
        async with slots.of(caller):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            await release.wait()
            inside[0] -= 1

    searches = [asyncio.create_task(search(f"user:{n}")) for n in range(6)]
    await asyncio.sleep(0)
    assert inside[0] == 3
    release.set()
    await asyncio.gather(*searches)
    assert most[0] == 3
