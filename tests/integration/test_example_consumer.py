"""Another team's service reads the topic with its own consumer group and our exported JSON Schemas only
(docs/events.md, examples/consume_events.py)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.log import EventLog, LogPosition, LogRecord
from modelreg.events.registry import AliasAdded, VersionLinked, registered_model_stream
from modelreg.events.runs import RunStarted, run_stream
from modelreg.services.cli import main as modelreg_cli
from modelreg.services.settings import Settings


@pytest.fixture
def log_kind() -> str:
    return "kafka"  # the contract is the Kafka topic's


async def run_example(repo_root: Path, settings: Settings, schemas: Path, group: str, max_events: int) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(repo_root / "examples" / "consume_events.py"),
        "--bootstrap", str(settings.kafka_bootstrap_servers),
        "--topic", settings.topic,
        "--group", group,
        "--schemas", str(schemas),
        "--max-events", str(max_events),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode().splitlines()


async def test_a_service_with_its_own_group_prints_every_event_and_flags_messages_that_break_the_contract(
    event_log: EventLog, settings: Settings, repo_root: Path, tmp_path: Path
) -> None:
    schemas = tmp_path / "schemas"
    assert CliRunner().invoke(modelreg_cli, ["schemas", "export", str(schemas)]).exit_code == 0
    version_id = uuid.uuid4()
    alice = Actor(kind="user", id="alice")
    model = registered_model_stream("nature-classification")
    started = Envelope.new(
        RunStarted(entity="acme", project="nature", run_id="train-1"),
        stream=run_stream("acme", "nature", "train-1"),
        actor=alice,
    )
    linked = Envelope.new(
        VersionLinked(registered_model="nature-classification", artifact_version_id=version_id),
        stream=model,
        actor=alice,
    )
    moved = Envelope.new(
        AliasAdded(registered_model="nature-classification", artifact_version_id=version_id, alias="production"),
        stream=model,
        actor=alice,
    )
    await event_log.append([started, linked, moved])
    foreign = [
        LogRecord(LogPosition(settings.topic, 0, 0), b"registered_model:x", b"{not json", ()),
        LogRecord(
            LogPosition(settings.topic, 0, 0),
            b"registered_model:x",
            linked.model_dump_json().replace('"registered_model"', '"model"').encode(),
            (),
        ),
    ]
    await event_log.append_raw(foreign)

    lines = await run_example(repo_root, settings, schemas, "reporting-service", max_events=5)

    assert len(lines) == 5
    printed = {line.split(" ", 1)[1] for line in lines}
    assert (
        "runs.run_started v2 run:acme/nature/train-1 by user:alice "
        f"at {started.occurred_at.isoformat()} id={started.id}" in printed
    )
    assert (
        f"registry.version_linked v1 {model} by user:alice at {linked.occurred_at.isoformat()} id={linked.id}"
        in printed
    )
    assert "INVALID not JSON" in printed
    (wrong_field,) = [line for line in printed if line.startswith("INVALID registry.version_linked")]
    assert "model" in wrong_field
    # One stream, one partition, in the order appended.
    ours = [line for line in lines if f"{model} by" in line]
    assert [line.split(" ")[1] for line in ours] == ["registry.version_linked", "registry.alias_added"]
    assert len({line.split(" ")[0].rsplit("/", 2)[1] for line in ours}) == 1

    # The group committed what it handled: run again, and it sees only what is new.
    again = Envelope.new(
        RunStarted(entity="acme", project="nature", run_id="train-2"),
        stream=run_stream("acme", "nature", "train-2"),
        actor=alice,
    )
    await event_log.append([again])
    (line,) = await run_example(repo_root, settings, schemas, "reporting-service", max_events=1)
    assert f"id={again.id}" in line
