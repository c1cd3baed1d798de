"""/metrics (with the metrics token) and /healthz (by anyone): however often they are asked, the installation's
figures are read at most once a second, so that a caller scraping without pause does not hold the health check's
connections (/readyz, /healthz)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from modelreg.services.http.api import HEALTH_POOL, HEALTH_READING, LOG, STALLS, TRIGGERS, healthz, read_health
from modelreg.services.http.metrics import SharedReading, add_operations_routes
from modelreg.services.http.operator_views import METRICS_TOKEN
from modelreg.services.http.projection_stalls import ProjectionStalls
from modelreg.services.http.triggers_presence import TriggersPresence

POOL: web.AppKey[Any] = web.AppKey("test_health_pool")
SCRAPER = {"Authorization": "Bearer the-metrics-token"}


class SlowInstallation:
    """The health pool and the event log in one: each reading of the figures takes a while, and is counted."""

    topic = "modelreg.events"

    def __init__(self) -> None:
        self.readings = 0

    async def end_positions(self) -> dict[int, int]:
        self.readings += 1
        await asyncio.sleep(0.05)
        return {0: 42}

    def acquire(self, timeout: float | None = None) -> SlowInstallation:
        return self

    async def __aenter__(self) -> SlowInstallation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def fetch(self, sql: str, *args: object) -> list[dict[str, Any]]:
        await asyncio.sleep(0.01)
        return []

    async def fetchval(self, sql: str, *args: object) -> bool:
        return True  # a triggers process holds its lock


async def test_a_flood_of_scrapes_reads_the_installation_once() -> None:
    installation = SlowInstallation()
    app = web.Application()
    app[POOL] = app[LOG] = installation
    app[METRICS_TOKEN] = "the-metrics-token"
    add_operations_routes(app, POOL, LOG, ["registry"])
    async with TestClient(TestServer(app)) as client:
        answers = await asyncio.gather(*(client.get("/metrics", headers=SCRAPER) for _ in range(50)))
        texts = [await answer.text() for answer in answers]

    assert {answer.status for answer in answers} == {200}
    assert all('modelreg_event_log_end_offset{partition="0"} 42.0' in text for text in texts)
    assert installation.readings == 1


async def test_a_scrape_a_second_after_the_last_reads_the_installation_again() -> None:
    installation = SlowInstallation()
    app = web.Application()
    app[POOL] = app[LOG] = installation
    app[METRICS_TOKEN] = "the-metrics-token"
    add_operations_routes(app, POOL, LOG, ["registry"])
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/metrics", headers=SCRAPER)).status == 200
        await asyncio.sleep(1.1)
        assert (await client.get("/metrics", headers=SCRAPER)).status == 200

    assert installation.readings == 2


async def test_health_checks_arriving_together_share_one_reading() -> None:
    installation = SlowInstallation()
    app = web.Application()
    app[HEALTH_POOL] = app[LOG] = installation
    app[METRICS_TOKEN] = "the-metrics-token"
    app[HEALTH_READING] = SharedReading(lambda: read_health(installation, installation), fresh_for_s=0.0)
    app[STALLS] = ProjectionStalls()
    app[TRIGGERS] = TriggersPresence()
    app.router.add_get("/healthz", healthz)
    async with TestClient(TestServer(app)) as client:
        answers = await asyncio.gather(*(client.get("/healthz", headers=SCRAPER) for _ in range(50)))
        reports = [await answer.json() for answer in answers]

    assert {answer.status for answer in answers} == {200}
    assert {report["event_log"]["events"] for report in reports} == {42}
    assert installation.readings <= 3  # one at a time, each shared by who arrived while it was read
