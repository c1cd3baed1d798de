"""The access log: one line per request, with its status, size and time, and the same facts as JSON fields."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from modelreg.services.http.access_log import AccessLog
from modelreg.services.json_logs import JsonLines


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello", status=201)


@asynccontextmanager
async def serving() -> AsyncIterator[str]:
    """A server as `modelreg server` runs its API (services/cli.py), on a free port: its address."""
    app = web.Application()
    app.router.add_post("/graphql", _hello)
    runner = web.AppRunner(app, access_log_class=AccessLog)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_request_is_logged_with_its_status_size_and_time_and_without_its_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving() as url, aiohttp.ClientSession() as http:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with http.post(f"{url}/graphql?query=secret", headers={"User-Agent": "train.py"}) as response:
                assert response.status == 201
    [record] = [r for r in caplog.records if r.name == "aiohttp.access"]
    line = record.getMessage()
    assert line.startswith('127.0.0.1 "POST /graphql" 201 ') and line.endswith(' ms "train.py"')
    assert "secret" not in line
    entry = json.loads(JsonLines().format(record))
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/graphql", 201)
    assert entry["bytes"] > len("hello")  # sent, headers included, as aiohttp's own access log counts
    assert entry["ms"] >= 0 and "secret" not in json.dumps(entry)


async def test_nothing_is_logged_when_the_log_level_is_above_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aiohttp.access"):
        async with serving() as url, aiohttp.ClientSession() as http, http.post(f"{url}/graphql") as response:
            assert response.status == 201
    assert not [r for r in caplog.records if r.name == "aiohttp.access"]


async def test_a_line_break_in_a_path_cannot_write_a_line_of_its_own(caplog: pytest.LogCaptureFixture) -> None:
    async with serving() as url, aiohttp.ClientSession() as http:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            forged = f"{url}/graphql%0AINFO%20127.0.0.1%20%22POST%20/admin%22%20200"
            async with http.get(forged, skip_auto_headers=["User-Agent"]) as response:
                assert response.status == 404
    [record] = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert "\n" not in record.getMessage() and "/graphql%0AINFO" in record.getMessage()
