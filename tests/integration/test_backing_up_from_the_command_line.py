"""`modelreg export` and `modelreg import`, as an operator runs them: a backup of one log loads into another, and a
mistyped topic is refused rather than made (it was created, and exported as a log of 0 events, exit 0)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from click.testing import CliRunner, Result
from support.history import registry_history
from support.log_contents import all_records

from modelreg.events.log import EventLog
from modelreg.services.cli import main
from modelreg.services.infra.event_log import event_log_for
from modelreg.services.settings import Settings


async def test_an_export_loads_into_a_fresh_log_with_its_progress_shown(
    settings: Settings, event_log: EventLog, tmp_path: Path
) -> None:
    await event_log.append(registry_history(30))
    where = ["--database-url", settings.database_url]
    if settings.kafka_bootstrap_servers:
        where += ["--kafka", settings.kafka_bootstrap_servers]
    backup = tmp_path / "backup.jsonl.gz"
    copy = f"{settings.topic}.copy"

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "exported 30 events" in await asyncio.to_thread(
        run, "export", *where, "--topic", settings.topic, str(backup)
    )
    imported_said = await asyncio.to_thread(run, "import", *where, "--topic", copy, str(backup))
    assert "imported 30 events" in imported_said
    assert "the artifact files are not in it: copy the blob store" in imported_said  # a restore found none

    target = event_log_for(Settings(settings.database_url, settings.kafka_bootstrap_servers, topic=copy))
    await target.start()
    try:
        imported = sorted((r.key, r.value) for r in await all_records(target))
    finally:
        await target.close()
    assert imported == sorted((r.key, r.value) for r in await all_records(event_log))


async def test_an_export_of_a_topic_that_does_not_exist_names_those_that_do_and_creates_none(
    settings: Settings, event_log: EventLog, tmp_path: Path
) -> None:
    if not settings.kafka_bootstrap_servers:
        pytest.skip("a topic of the log in PostgreSQL is a name in its rows, made by nothing")
    mistyped = settings.topic.replace("events", "evnts")
    where = ["--database-url", settings.database_url, "--kafka", settings.kafka_bootstrap_servers, "--topic", mistyped]

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    exported = await asyncio.to_thread(run, "export", *where, str(tmp_path / "backup.jsonl.gz"))
    rebuilt = await asyncio.to_thread(run, "rebuild", *where, "--processes", "1", "registry")

    for refused in (exported, rebuilt):
        assert refused.exit_code == 1, refused.output
        assert f"has no topic {mistyped}" in refused.output and settings.topic in refused.output
        assert "MODELREG_TOPIC or --topic" in refused.output
    assert "exported" not in exported.output
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {mistyped, f"{mistyped}.deadletter"} & topics == set()
