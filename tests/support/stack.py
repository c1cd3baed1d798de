"""The API and the projector running in the test's process, talked to over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from modelreg.services.api import create_app
from modelreg.services.projector import run_projector
from modelreg.services.settings import Settings


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stopping = asyncio.Event()
        self._projector: asyncio.Task[None] | None = None
        self.client: TestClient | None = None

    async def __aenter__(self) -> Stack:
        self.client = TestClient(TestServer(create_app(self.settings)))
        await self.client.start_server()  # runs migrations before the projector starts
        self._projector = asyncio.create_task(run_projector(self.settings, self._stopping))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._projector is not None:
            await self._projector
        if self.client is not None:
            await self.client.close()

    async def projected(self) -> None:
        """Wait until every projection has applied the whole log (after an import, say)."""
        from support.tables import positions
        from support.waiting import wait_until

        from modelreg.services.event_log import event_log_for
        from modelreg.services.projections_catalog import PROJECTIONS

        log = event_log_for(self.settings)
        await log.start()
        ends = await log.end_positions()
        await log.close()

        async def caught_up() -> bool:
            for name in PROJECTIONS:
                done = await positions(self.settings.database_url, name, self.settings.topic)
                if any(done.get(p, 0) < end for p, end in ends.items()):
                    return False
            return True

        await wait_until(caught_up)

    async def graphql(self, query: str, variables: dict[str, Any] | None = None, actor: str = "user:alice") -> dict[str, Any]:
        assert self.client is not None
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers={"X-Modelreg-Actor": actor}
        )
        assert response.status == 200, await response.text()
        return await response.json()
