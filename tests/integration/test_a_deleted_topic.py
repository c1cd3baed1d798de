"""The event log's topic deleted under an installation (by hand, by a cluster's clean-up): made again empty, by an API
starting or by a producer where the broker creates the topics it is asked for, its first events would be skipped by
every projection, which had applied the old ones up to further offsets. Each write acknowledged and never shown. An
API does not make it again, a process does not start on a log that ends before what its read models applied, and
/healthz says the log is down and how to mend it: restore the events, rebuild the read models."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from support.stack import Stack

from modelreg.services.bootstrap import NeverReached, open_parts, process_parts
from modelreg.services.projections_catalog import PROJECTIONS
from modelreg.services.rebuild import rebuild
from modelreg.services.settings import Settings

ON_KAFKA = pytest.mark.parametrize("log_kind", ["kafka"])


async def _an_installation(settings: Settings) -> None:
    """An installation on the test's topic, its read models built from it (the first admin's key applied)."""
    async with Stack(settings, with_triggers=False) as stack:
        await stack.key("user:ada")


async def _deleted(settings: Settings, *, made_again: bool = False) -> None:
    assert settings.kafka_bootstrap_servers is not None
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        partitions = len((await admin.describe_topics([settings.topic]))[0]["partitions"])
        await admin.delete_topics([settings.topic])
        for _ in range(100):
            if settings.topic not in await admin.list_topics():
                break
            await asyncio.sleep(0.1)
        if made_again:  # as a producer's first append does where the broker creates topics it is asked for
            for _ in range(100):
                try:
                    await admin.create_topics([NewTopic(settings.topic, partitions, 1)])
                    break
                except Exception:  # the deletion is still under way on the broker
                    await asyncio.sleep(0.1)
    finally:
        await admin.close()


@ON_KAFKA
async def test_an_api_does_not_make_a_deleted_topic_again_empty_beside_read_models_built_from_it(
    settings: Settings,
) -> None:
    await _an_installation(settings)
    await _deleted(settings)

    with pytest.raises(NeverReached) as refused:
        await open_parts(settings)  # an API's settings: missing_topic="create"

    line = str(refused.value)
    assert "\n" not in line
    assert f"has no topic {settings.topic}, though this process's database holds read models built from it" in line
    assert "`modelreg import`" in line and "`modelreg rebuild`" in line


@ON_KAFKA
async def test_a_topic_made_again_empty_is_refused_at_start_until_the_read_models_are_rebuilt_from_it(
    settings: Settings,
) -> None:
    await _an_installation(settings)
    await _deleted(settings, made_again=True)

    with pytest.raises(NeverReached) as refused:
        await open_parts(settings)
    line = str(refused.value)
    assert f"the event log {settings.topic} ends before what the read models applied (partition " in line
    assert "the events written to it now would be skipped" in line

    await rebuild(settings, list(PROJECTIONS))  # its remedy, from what the topic holds (here nothing)
    async with process_parts(settings):
        pass


@pytest.mark.parametrize("log_kind", ["postgres"])
async def test_healthz_says_the_log_is_down_when_it_ends_before_what_the_read_models_applied(stack: Stack) -> None:
    # As after a restore of an older export: the read models applied further than the log now goes.
    await stack.key("user:ada")
    assert stack.client is not None
    assert (await (await stack.client.get("/healthz")).json())["status"] == "ok"
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        await conn.execute("UPDATE projection_positions SET next_offset = next_offset + 1000")
    finally:
        await conn.close()

    answer = await stack.client.get("/healthz", headers=await stack.auth())  # an admin reads why
    health = await answer.json()
    assert (answer.status, health["status"], health["event_log"]["ok"]) == (503, "down", False)
    assert "ends before what the read models applied" in health["event_log"]["error"]
