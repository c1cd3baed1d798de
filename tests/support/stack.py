"""The API and the projector running in the test's process, talked to over real HTTP."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from modelreg.services.commands.access import service_caller
from modelreg.services.commands.commands import IssueApiKey
from modelreg.services.http.api import APP, create_app
from modelreg.services.http.blob_routes import BLOBS
from modelreg.services.projector import run_projector
from modelreg.services.settings import Settings
from modelreg.services.triggers import run_triggers


class Stack:
    def __init__(self, settings: Settings, *, with_triggers: bool = True) -> None:
        self.settings = settings
        self.with_triggers = with_triggers
        self._stopping = asyncio.Event()
        self._projector: asyncio.Task[None] | None = None
        self._triggers: asyncio.Task[None] | None = None
        self.client: TestClient | None = None
        self._keys: dict[tuple[str, str], str] = {}
        self._key_before: str | None = None

    async def __aenter__(self) -> Stack:
        self.client = TestClient(TestServer(create_app(self.settings)))
        await self.client.start_server()  # runs migrations before the projector starts
        self._projector = asyncio.create_task(run_projector(self.settings, self._stopping))
        if self.with_triggers:
            self._triggers = asyncio.create_task(run_triggers(self.settings, self._stopping, webhook_backoff_s=0.05))
        # Training scripts in tests find their key where users' scripts do.
        self._key_before = os.environ.get("MODELREG_API_KEY")
        os.environ["MODELREG_API_KEY"] = await self.key("user:alice")
        return self

    async def key(self, principal: str, role: str = "admin") -> str:
        """An API key of `principal` (user:bob) with `role`, issued on first use as an installation admin would."""
        if (principal, role) not in self._keys:
            assert self.client is not None
            kind, _, ident = principal.partition(":")
            command = IssueApiKey(principal_kind=kind, principal_id=ident, role=role)  # type: ignore[arg-type]
            accepted = await self.client.server.app[APP].execute(command, service_caller("tests"))
            self._keys[principal, role] = accepted.subject_id
        return self._keys[principal, role]

    async def auth(self, principal: str = "user:alice", role: str = "admin") -> dict[str, str]:
        """Headers for plain HTTP calls (artifact files) as `principal`."""
        return {"Authorization": f"Bearer {await self.key(principal, role)}"}

    async def __aexit__(self, *exc: object) -> None:
        if self._key_before is None:
            os.environ.pop("MODELREG_API_KEY", None)
        else:
            os.environ["MODELREG_API_KEY"] = self._key_before
        self._stopping.set()
        if self._projector is not None:
            await self._projector
        if self._triggers is not None:
            await self._triggers
        if self.client is not None:
            await self.client.close()

    async def projected(self) -> None:
        """Wait until every projection has applied the whole log (after an import, say)."""
        from modelreg.services.infra.event_log import event_log_for
        from modelreg.services.projections_catalog import PROJECTIONS
        from support.tables import positions
        from support.waiting import wait_until

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

    async def graphql(
        self, query: str, variables: dict[str, Any] | None = None, actor: str = "user:alice", *, key: str | None = None
    ) -> dict[str, Any]:
        """As `actor` (an admin, unless `key` says who and with which role)."""
        assert self.client is not None
        key = key or await self.key(actor)
        await self.store_described_files(variables)
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status == 200, await response.text()
        return await response.json()

    async def store_described_files(self, variables: Any) -> None:
        """The files of `variables` that tests described with story.file_entry, put in the blob store first
        (a manifest must name stored blobs), as the client uploads a version's files before logging it."""
        from support.story import CONTENTS

        assert self.client is not None
        store = self.client.server.app[BLOBS]
        for digest in _digests_in(variables):
            if digest in CONTENTS and not store.has(digest):
                await store.put(digest, _once(CONTENTS[digest]))


def _digests_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["digest"]] if isinstance(value.get("digest"), str) else []
        return found + [d for v in value.values() for d in _digests_in(v)]
    if isinstance(value, list):
        return [d for v in value for d in _digests_in(v)]
    return []


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content
