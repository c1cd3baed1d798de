"""A projector's name in Kafka's groups (`--instance-id`) is held by one live process at a time: a second
process under a taken name stands by instead of taking the partitions back and forth with the first."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

import asyncpg
import pytest

from modelreg.services.instance_name import InstanceNameLost, instance_name_held, until_done_or_lost
from modelreg.services.projector import run_projector
from modelreg.services.settings import Settings


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def test_a_second_process_under_a_taken_name_stands_by_and_says_why_until_the_first_stops(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelreg.services.instance_name")
    stopping = asyncio.Event()
    second_holds = asyncio.Event()

    async def second() -> None:
        async with instance_name_held(database_url, "projector-1", stopping):
            second_holds.set()

    async with instance_name_held(database_url, "projector-1", stopping):
        standing_by = asyncio.create_task(second())
        await _until(lambda: "another live process runs under the name 'projector-1'" in caplog.text, "said why")
        assert not second_holds.is_set()
    await asyncio.wait_for(second_holds.wait(), 10)
    await standing_by
    assert "took over the name 'projector-1'" in caplog.text


async def test_projectors_under_different_names_or_in_different_groups_run_side_by_side(database_url: str) -> None:
    stopping = asyncio.Event()
    async with instance_name_held(database_url, "projector-1", stopping, scope="events modelreg.projections.audit"):
        async with asyncio.timeout(10):
            async with instance_name_held(
                database_url, "projector-2", stopping, scope="events modelreg.projections.audit"
            ):
                pass
            # Kafka keeps names per group: the same name in another group (other projections) is another member.
            async with instance_name_held(
                database_url, "projector-1", stopping, scope="events modelreg.projections.lineage"
            ):
                pass


async def test_a_process_whose_name_is_lost_stops_its_work_to_take_the_name_again(database_url: str) -> None:
    stopping = asyncio.Event()
    working = asyncio.Event()

    async def work() -> None:
        working.set()
        await asyncio.sleep(3600)

    async with instance_name_held(database_url, "projector-1", stopping) as lost:
        running = asyncio.create_task(until_done_or_lost(work, lost))
        await asyncio.wait_for(working.wait(), 10)
        conn = await asyncpg.connect(database_url)
        try:  # PostgreSQL restarting, as seen from the name's connection
            await conn.execute(
                """SELECT pg_terminate_backend(pid) FROM pg_locks
                   WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
            )
        finally:
            await conn.close()
        with pytest.raises(InstanceNameLost):
            await asyncio.wait_for(running, 10)


@pytest.fixture
def log_kind() -> str:
    return "kafka"


async def test_a_second_projector_under_the_same_name_stands_by_while_the_first_projects(
    settings: Settings, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    named = dataclasses.replace(settings, kafka_instance_id="projector-1")
    first_stopping, second_stopping = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(run_projector(named, first_stopping, ["audit"]))
    try:
        await _until(lambda: "projector 'projector-1': running audit" in caplog.text, "the first projects")
        second = asyncio.create_task(run_projector(named, second_stopping, ["audit"]))
        await _until(lambda: "another live process runs under the name 'projector-1'" in caplog.text, "said why")
        first_stopping.set()
        await asyncio.wait_for(first, 30)
        await _until(lambda: "took over the name 'projector-1'" in caplog.text, "the second took over")
        second_stopping.set()
        await asyncio.wait_for(second, 30)
    finally:
        first_stopping.set()
        second_stopping.set()
