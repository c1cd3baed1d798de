"""A registry outgrows one machine (Postgres log -> Kafka), or moves between machines (export -> import),
and answers every query exactly as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.databases import create_database
from support.stack import Stack
from support.story import LOG_VERSION, demo_story, registry_answers, version_input

from modelreg.events.kafka_log import KafkaEventLog
from modelreg.events.postgres_log import PostgresEventLog
from modelreg.services.infra.event_log import event_log_for
from modelreg.services.log_transfer import export_log, import_log, migrate_log, migrate_to_kafka
from modelreg.services.settings import Settings


class Interrupted(Exception):
    pass


async def test_moving_the_log_to_kafka_keeps_every_answer_and_survives_an_interruption(
    database_url: str, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    embedded = Settings(database_url=database_url, topic=topic, blob_dir=tmp_path / "blobs")
    async with Stack(embedded) as stack:
        await demo_story(stack)
        before = await registry_answers(stack)
    on_kafka = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        topic=topic,
        partitions=3,
        blob_dir=tmp_path / "blobs",
    )

    # Interrupted after the first chunk of 3 events, then run again from the start.
    source, target = PostgresEventLog(database_url, topic), KafkaEventLog(kafka_bootstrap, topic, 3, create_topic=True)
    await source.start()
    await target.start()

    def stop_after_first_chunk(done: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        await migrate_to_kafka(source, target, stop_after_first_chunk, chunk=3)
    total = sum((await source.end_positions()).values())
    await source.close()
    await target.close()
    copied_now = await migrate_log(embedded, on_kafka, lambda done: None)

    assert copied_now == total - 3
    kafka = KafkaEventLog(kafka_bootstrap, topic, 3)
    await kafka.start()
    assert sum((await kafka.end_positions()).values()) == total  # nothing copied twice
    await kafka.close()
    assert await migrate_log(embedded, on_kafka, lambda done: None) == 0  # idempotent

    async with Stack(on_kafka) as stack:
        assert await registry_answers(stack) == before  # no wait needed: migrate-log rebuilt from Kafka
        logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"model-c")})
        assert logged["data"]["logArtifactVersion"]["version"] == "v2"  # and it carries on from there


async def test_an_export_imported_into_a_fresh_install_answers_the_same(settings: Settings, tmp_path: Path) -> None:
    async with Stack(settings) as stack:
        await demo_story(stack)
        before = await registry_answers(stack)
    source = event_log_for(settings)
    await source.start()
    exported = await export_log(source, tmp_path / "registry.jsonl.gz", lambda done: None)
    await source.close()

    fresh = Settings(
        database_url=await create_database(settings.database_url),
        topic=settings.topic + ".imported",
        blob_dir=settings.blob_dir,
    )
    target = event_log_for(fresh)
    await target.start()
    assert await import_log(target, tmp_path / "registry.jsonl.gz", lambda done: None) == exported
    with pytest.raises(RuntimeError, match="not empty"):
        await import_log(target, tmp_path / "registry.jsonl.gz", lambda done: None)
    await target.close()

    async with Stack(fresh) as stack:
        await stack.projected()
        assert await registry_answers(stack) == before
