"""Past one machine: two `modelreg api` and two `modelreg projector` processes share one Kafka, one PostgreSQL
and one object store. A client spreads its work over both APIs while one API and one projector are killed
with SIGKILL and started again: every acknowledged action is there exactly once, and every file downloads
from either API and verifies."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from support.live_events import PROTOCOL, GraphQLSocket
from support.replicas import Installation, log_one, lost_or_doubled, spread_work

from modelreg.transport import Transport

LOGGED_IN_ACME = """subscription($types: [String!]) {
  events(types: $types, entity: "acme") { type actor payload }
}"""


@pytest.fixture
def installation(
    kafka_bootstrap: str, database_url: str, topic: str, object_store_url: str, tmp_path: Path
) -> Iterator[Installation]:
    running = Installation(database_url, kafka_bootstrap, topic, object_store_url, tmp_path)
    try:
        yield running.start(apis=2, projectors=2)
    finally:
        running.stop()


async def test_killing_an_api_and_a_projector_loses_no_acknowledged_action(
    installation: Installation, tmp_path: Path
) -> None:
    (tmp_path / "files").mkdir()
    results: dict[str, object] = {}
    # The client works until told to stop, so that it is still working at the kill however fast the machine
    # (a fixed number of actions was once over before it).
    stop = threading.Event()

    def client() -> None:
        results["acked"], results["failed"] = spread_work(installation, tmp_path / "files", actions=100_000, stop=stop)

    worker = threading.Thread(target=client)
    worker.start()
    await asyncio.sleep(4)  # some work done on both
    assert worker.is_alive(), f"the client stopped before the kill: {results}"
    installation.apis[1].kill()
    installation.projectors[0].kill()
    await asyncio.sleep(2)
    installation.apis[1].start()
    installation.projectors[0].start()
    await asyncio.sleep(4)  # and some after the restarts
    stop.set()
    await asyncio.to_thread(worker.join, 600)
    assert not worker.is_alive()
    acked = results["acked"]
    assert isinstance(acked, list) and len(acked) >= 20, results

    deadline = time.monotonic() + 120
    while True:  # the killed projector's partitions are applied by the other one, or by it once it is back
        problems = await asyncio.to_thread(lost_or_doubled, installation, acked, tmp_path)
        if not problems or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert problems == []


async def test_a_subscriber_on_one_api_hears_what_is_done_through_the_other(
    installation: Installation, tmp_path: Path
) -> None:
    (tmp_path / "files").mkdir()
    listening, acting = installation.apis
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(listening.url.replace("http", "ws", 1) + "/graphql", protocols=(PROTOCOL,)) as ws,
    ):
        socket = GraphQLSocket(ws)
        answer = await socket.init({"Authorization": f"Bearer {installation.admin_key}"})
        assert answer["type"] == "connection_ack", answer
        await socket.subscribe("acme", LOGGED_IN_ACME, {"types": ["artifacts.version_logged"]})
        transport = Transport(acting.url, installation.admin_key)
        logged: list[str] = []
        heard: dict | None = None
        try:
            # A subscription hears what is appended once its reader is placed at the log's end, a moment after
            # `subscribe`: the other API logs a version a second until the first one is heard.
            for n in range(60):
                content = f"live {n}".encode() * 100
                acked = await asyncio.to_thread(log_one, transport, tmp_path / "files", f"live-{n}", content)
                logged.append(acked.version_id)
                try:
                    heard = await socket.receive(timeout_s=1)
                    break
                except TimeoutError:
                    continue
        finally:
            transport.close()
    assert heard is not None, "the listening API heard none of the versions logged through the other"
    assert heard["type"] == "next", heard
    event = heard["payload"]["data"]["events"]
    assert (event["type"], event["payload"]["artifact_version_id"] in logged) == ("artifacts.version_logged", True)
