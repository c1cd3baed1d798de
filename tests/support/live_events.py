"""A GraphQL subscription client for tests, speaking graphql-transport-ws by hand over aiohttp's websocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from modelreg.services.http.api import SOCKETS, TAILS
from support.stack import Stack
from support.waiting import wait_until

PROTOCOL = "graphql-transport-ws"


class GraphQLSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._unread: dict[str, list[dict[str, Any]]] = {}  # next messages of the other subscriptions

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_json(message)

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """connection_init; returns the server's answer (connection_ack, or the close)."""
        await self.send({"type": "connection_init", **({"payload": payload} if payload is not None else {})})
        return await self.receive()

    async def subscribe(self, operation_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        await self.send(
            {"id": operation_id, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}
        )

    async def receive(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """The next protocol message, or {"type": "closed", "code": ...} when the server closed the socket."""
        while True:
            message = await self.ws.receive(timeout=timeout_s)
            if message.type == aiohttp.WSMsgType.TEXT:
                decoded = message.json()
                if decoded["type"] == "ping":
                    await self.send({"type": "pong"})
                    continue
                return decoded
            if message.type == aiohttp.WSMsgType.CLOSE:
                # The code the server's close frame carried, as a browser reports it (aiohttp's own close_code
                # turns 1006 when the server drops the connection before the client's reply).
                return {"type": "closed", "code": message.data, "reason": message.extra}
            if message.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return {"type": "closed", "code": self.ws.close_code, "reason": message.extra}
            raise AssertionError(f"unexpected websocket message {message!r}")

    async def next_events(self, operation_id: str, count: int) -> list[dict[str, Any]]:
        """The data of the next `count` events of one subscription (messages of others are kept aside)."""
        unread = self._unread.setdefault(operation_id, [])
        while len(unread) < count:
            message = await self.receive()
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            (field,) = message["payload"]["data"].values()
            self._unread.setdefault(message["id"], []).append(field)
        events, unread[:] = unread[:count], unread[count:]
        return events


@asynccontextmanager
async def graphql_socket(stack: Stack, headers: dict[str, str] | None = None) -> AsyncIterator[GraphQLSocket]:
    assert stack.client is not None
    async with stack.client.ws_connect("/graphql", protocols=(PROTOCOL,), headers=headers or {}) as ws:
        assert ws.protocol == PROTOCOL
        yield GraphQLSocket(ws)


async def log_readers_reach(stack: Stack, count: int) -> None:
    """Wait until the API holds `count` live log readers: a subscription reads from the log's end as of
    when its reader is positioned, so a test acts only after that."""
    assert stack.client is not None
    tails = stack.client.server.app[TAILS]

    async def reached() -> bool:
        return tails.reading == count

    await wait_until(reached, timeout_s=30)
    await asyncio.sleep(0)


async def sends_block(stack: Stack) -> None:
    """Wait until the API has more to send to some socket than the network takes: its client stopped
    reading, the kernel's buffers are full, and the API's writes to it wait."""
    assert stack.client is not None
    sockets = stack.client.server.app[SOCKETS]

    async def blocked() -> bool:
        # aiohttp does not expose a websocket's transport; its request's is the one.
        return any(
            (transport := ws._req and ws._req.transport) and transport.get_write_buffer_size() > 0 for ws in sockets
        )  # type: ignore[union-attr]

    await wait_until(blocked, timeout_s=60)
