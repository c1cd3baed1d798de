"""A process started while its broker is away (restarting, or starting beside it) waits for it instead of exiting,
and says what to check when it never comes. A topic that does not exist is waited for alike by the processes
started beside the API that creates it, and refused at once by a command that only reads."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiokafka.errors import KafkaConnectionError

from modelreg.events.log import TopicMissing
from modelreg.services.bootstrap import started
from modelreg.services.settings import Settings

SETTINGS = Settings(database_url="postgresql://unused", kafka_bootstrap_servers="127.0.0.1:9")


class ABrokerComingUp:
    """An event log whose broker answers after `refusals` attempts (None: never)."""

    def __init__(self, refusals: int | None) -> None:
        self.refusals, self.starts, self.closes = refusals, 0, 0

    async def start(self) -> None:
        self.starts += 1
        if self.refusals is None or self.starts <= self.refusals:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9, <AddressFamily.AF_INET: 2>)]")

    async def close(self) -> None:
        self.closes += 1


async def test_a_process_waits_for_a_broker_that_comes_up_after_it() -> None:
    log = ABrokerComingUp(refusals=2)
    await started(log, SETTINGS)  # type: ignore[arg-type]
    assert (log.starts, log.closes) == (3, 2)


async def test_a_broker_that_never_answers_is_reported_with_what_to_check() -> None:
    log = ABrokerComingUp(refusals=None)
    with pytest.raises(
        RuntimeError, match=r"Kafka at 127.0.0.1:9 did not answer for 1 s .*check KAFKA_BOOTSTRAP_SERVERS"
    ):
        await started(log, SETTINGS, wait_s=1.0)  # type: ignore[arg-type]
    assert log.starts >= 2


class ATopicMadeLater:
    """An event log whose topic another process creates after `missing` attempts (None: never)."""

    def __init__(self, missing: int | None) -> None:
        self.missing, self.starts = missing, 0

    async def start(self) -> None:
        self.starts += 1
        if self.missing is None or self.starts <= self.missing:
            raise TopicMissing("Kafka at 127.0.0.1:9 has no topic hd.evnts: its topics are hd.events")

    async def close(self) -> None:
        pass


async def test_a_projector_started_beside_the_first_api_waits_for_the_topic_it_creates() -> None:
    log = ATopicMadeLater(missing=2)
    await started(log, replace(SETTINGS, missing_topic="wait"))  # type: ignore[arg-type]
    assert log.starts == 3


async def test_a_topic_never_made_is_reported_with_the_topics_there_are() -> None:
    log = ATopicMadeLater(missing=None)
    with pytest.raises(RuntimeError, match=r"waited 1 s for the topic: .* no topic hd.evnts: its topics are hd.events"):
        await started(log, replace(SETTINGS, missing_topic="wait"), wait_s=1.0)  # type: ignore[arg-type]


async def test_a_command_that_only_reads_refuses_a_missing_topic_at_once() -> None:
    log = ATopicMadeLater(missing=None)
    with pytest.raises(TopicMissing, match="no topic hd.evnts"):
        await started(log, SETTINGS)  # type: ignore[arg-type]
    assert log.starts == 1
