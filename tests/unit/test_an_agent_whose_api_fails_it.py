"""An agent whose API stops answering its heartbeats (restarting, upgraded) waits longer between tries instead of
asking a thousand times a second, and one whose key the API stops taking (revoked) stops, saying so in a line: it
asked again at once, for ever, each try a warning in its log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from modelreg.services.agent.agent import LaunchAgent

_QUEUES = {"items": [{"name": "cpu", "resource": "LOCAL_PROCESS"}], "endCursor": None, "hasNextPage": False}
_NO_JOBS = {"items": [], "endCursor": None, "hasNextPage": False}


def _api(heartbeat: Callable[[], web.Response], heartbeats: list[float]) -> web.Application:
    async def graphql(request: web.Request) -> web.Response:
        query = (await request.json())["query"]
        if "agentHeartbeat" in query:
            heartbeats.append(asyncio.get_running_loop().time())
            return heartbeat()
        if "viewer" in query:
            return web.json_response({"data": {"viewer": {"id": "service:ci:agent"}}})
        if "launchQueues" in query:
            return web.json_response({"data": {"launchQueues": _QUEUES}})
        return web.json_response({"data": {"waitingJobs": _NO_JOBS}})

    app = web.Application()
    app.router.add_post("/graphql", graphql)
    return app


async def test_an_agent_whose_heartbeats_fail_waits_longer_between_tries() -> None:
    heartbeats: list[float] = []
    app = _api(lambda: web.Response(status=502, text="upstream restarting"), heartbeats)
    async with TestServer(app) as server:
        agent = LaunchAgent(url=str(server.make_url("/")), api_key="mr_x", queues=["cpu"], cancel_check_s=0.05)
        stopping = asyncio.Event()
        running = asyncio.create_task(agent.run(stopping))
        await asyncio.sleep(4)
        stopping.set()
        await running
    # Tried again after 1, 2, 4 s...: five at most in 4 s (it was one per cancel check, 80 here, and with no job
    # running none at all between tries: over a thousand a second).
    assert 2 <= len(heartbeats) <= 5, heartbeats
    gaps = [later - earlier for earlier, later in zip(heartbeats, heartbeats[1:], strict=False)]
    assert gaps == sorted(gaps)


async def test_an_agent_whose_key_is_revoked_while_it_runs_stops_and_says_what_to_do() -> None:
    heartbeats: list[float] = []
    app = _api(lambda: web.Response(status=401, text="unknown or revoked API key"), heartbeats)
    async with TestServer(app) as server:
        agent = LaunchAgent(url=str(server.make_url("/")), api_key="mr_x", queues=["cpu"])
        async with asyncio.timeout(30):  # it asked again for ever
            with pytest.raises(SystemExit, match="no longer takes this agent's key .*revoked.*Issue a new key"):
                await agent.run(asyncio.Event())
    assert len(heartbeats) == 1


async def test_an_agent_beats_on_after_more_failures_than_a_float_can_double() -> None:
    """0.5 * 2**1024 is past a float: the 1024th failure killed the heartbeats, and once the API was back the
    supervisor took the agent for gone and requeued the jobs it still ran."""
    heartbeats: list[float] = []
    app = _api(lambda: web.Response(status=502, text="upstream restarting"), heartbeats)
    async with TestServer(app) as server:
        agent = LaunchAgent(
            url=str(server.make_url("/")), api_key="mr_x", queues=["cpu"], heartbeat_s=0.0, cancel_check_s=0.0
        )
        stopping = asyncio.Event()
        running = asyncio.create_task(agent.run(stopping))
        async with asyncio.timeout(60):
            while len(heartbeats) < 1100:
                await asyncio.sleep(0.05)
        stopping.set()
        await running
