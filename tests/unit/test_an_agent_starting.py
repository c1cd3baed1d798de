"""An agent started before its API answers (started beside it, the server restarting, a typo in --url) waits
for it as the server's processes wait for Kafka, then says in a line what to check; a refused key is said in a
line too. It died with a two-exception traceback."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from modelreg.services.agent.agent import LaunchAgent


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_agent_whose_api_never_answers_says_what_to_check() -> None:
    url = f"http://127.0.0.1:{_unused_port()}"
    agent = LaunchAgent(url=url, api_key="mr_x", queues=["cpu"], start_wait_s=0.5)
    with pytest.raises(SystemExit, match=f"the modelreg API at {url} did not answer for 0 s .*check --url"):
        await agent.run(asyncio.Event())


async def test_an_agent_whose_api_comes_up_after_it_goes_on() -> None:
    port = _unused_port()
    agent = LaunchAgent(url=f"http://127.0.0.1:{port}", api_key="mr_x", queues=["nope"], start_wait_s=30)

    async def graphql(request: web.Request) -> web.Response:
        query = (await request.json())["query"]
        if "viewer" in query:
            return web.json_response({"data": {"viewer": {"id": "service:ci:agent"}}})
        page = {"items": [{"name": "cpu", "resource": "LOCAL_PROCESS"}], "endCursor": None, "hasNextPage": False}
        return web.json_response({"data": {"launchQueues": page}})

    async def comes_up() -> TestServer:
        await asyncio.sleep(1.0)  # refused meanwhile
        app = web.Application()
        app.router.add_post("/graphql", graphql)
        server = TestServer(app, port=port)
        await server.start_server()
        return server

    up = asyncio.create_task(comes_up())
    with pytest.raises(SystemExit, match="no such queue"):  # it got that far: it reached the API
        await agent.run(asyncio.Event())
    await (await up).close()
    assert agent.agent_id is not None and agent.agent_id.startswith("service:ci:agent:")


async def test_an_agent_whose_key_is_refused_says_so_in_a_line() -> None:
    async def unauthorized(request: web.Request) -> web.Response:
        return web.Response(status=401, text="unknown or revoked API key")

    app = web.Application()
    app.router.add_post("/graphql", unauthorized)
    async with TestServer(app) as server:
        agent = LaunchAgent(url=str(server.make_url("/")), api_key="mr_typo", queues=["cpu"])
        with pytest.raises(SystemExit, match="refused this agent's key .*unknown or revoked.*check MODELREG_API_KEY"):
            await agent.run(asyncio.Event())
