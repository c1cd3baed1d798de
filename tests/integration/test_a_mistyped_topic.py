"""A process started with a mistyped topic (`--topic modelreg.evnets`) on an installation's database: the database
says which topic its read models were built from. An API refuses to create the new topic, in one line naming that
one (it made it, took commands no projector would apply, and a projector on it wrote them beside the real log's);
a projector waiting for the topic says which one its database knows."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Literal

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from support.stack import Stack

from modelreg.services.bootstrap import STOP_WAITING, NeverReached, StoppedWhileWaiting, open_parts, process_parts
from modelreg.services.settings import Settings

ON_KAFKA = pytest.mark.parametrize("log_kind", ["kafka"])


async def _topics(bootstrap_servers: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _an_installation(settings: Settings) -> None:
    """An installation on the test's topic, its read models built from it (the first admin's key applied)."""
    async with Stack(settings, with_triggers=False) as stack:
        await stack.key("user:ada")


@ON_KAFKA
async def test_an_api_started_on_a_mistyped_topic_refuses_to_create_it_beside_the_installations_database(
    settings: Settings,
) -> None:
    await _an_installation(settings)
    mistyped = settings.topic.replace(".events", ".evnets")

    with pytest.raises(NeverReached) as refused:
        await open_parts(replace(settings, topic=mistyped))  # an API's settings: missing_topic="create"

    line = str(refused.value)
    assert "\n" not in line
    assert f"has no topic {mistyped}" in line and f"database was built from topic {settings.topic}" in line
    assert "Check --topic / MODELREG_TOPIC" in line
    assert settings.kafka_bootstrap_servers is not None
    assert mistyped not in await _topics(settings.kafka_bootstrap_servers)
    async with process_parts(settings):  # its own topic starts as before
        pass


class _StopOnceWaiting(logging.Handler):
    """Stops the process's wait at its start once it has said what it waits for."""

    def __init__(self, stop: asyncio.Event) -> None:
        super().__init__()
        self.stop, self.said = stop, ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("waiting for Kafka"):
            self.said = record.getMessage()
            self.stop.set()


@ON_KAFKA
async def test_a_projector_waiting_for_a_mistyped_topic_says_which_topic_its_database_was_built_from(
    settings: Settings,
) -> None:
    await _an_installation(settings)
    mistyped = settings.topic.replace(".events", ".evnets")
    stop = asyncio.Event()
    waiting = _StopOnceWaiting(stop)
    logging.getLogger("modelreg.services.bootstrap").addHandler(waiting)
    told_to_stop = STOP_WAITING.set(stop)
    try:
        with pytest.raises(StoppedWhileWaiting):
            await open_parts(replace(settings, topic=mistyped, missing_topic="wait"))  # a projector's settings
    finally:
        STOP_WAITING.reset(told_to_stop)
        logging.getLogger("modelreg.services.bootstrap").removeHandler(waiting)

    assert f"has no topic {mistyped}" in waiting.said
    assert f"this process's database was built from topic {settings.topic}" in waiting.said


@pytest.mark.parametrize("log_kind", ["postgres"])
@pytest.mark.parametrize("missing_topic", ["create", "wait"])  # an API's, a projector's
async def test_a_process_on_a_mistyped_topic_of_the_log_in_postgresql_refuses_to_start_it(
    settings: Settings, missing_topic: Literal["create", "wait"]
) -> None:
    # The log in PostgreSQL starts a topic at its first append: the API took commands into a second log, and the
    # read models were built from both.
    await _an_installation(settings)
    mistyped = settings.topic.replace(".events", ".evnets")

    with pytest.raises(NeverReached) as refused:
        await open_parts(replace(settings, topic=mistyped, missing_topic=missing_topic))

    line = str(refused.value)
    assert "\n" not in line and "waited" not in line
    assert f"the event log in PostgreSQL has no topic {mistyped}" in line
    assert f"database was built from topic {settings.topic}" in line and f"the log's topics: {settings.topic})" in line
    async with process_parts(settings):  # its own topic starts as before
        pass
