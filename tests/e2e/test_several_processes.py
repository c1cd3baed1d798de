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

import pytest
from support.replicas import Installation, lost_or_doubled, spread_work


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

    def client() -> None:
        results["acked"], results["failed"] = spread_work(installation, tmp_path / "files", actions=200)

    worker = threading.Thread(target=client)
    worker.start()
    await asyncio.sleep(4)  # some work done on both
    assert worker.is_alive(), "the work was over before the kill: give it more actions"
    installation.apis[1].kill()
    installation.projectors[0].kill()
    await asyncio.sleep(2)
    installation.apis[1].start()
    installation.projectors[0].start()
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
