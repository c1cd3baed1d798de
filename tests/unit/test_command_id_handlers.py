"""A command sent again under its `commandId` (CI retrying after a timeout) changes nothing and is answered as the
first was; another command sent under the same id is refused (services/commands/command_identity.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from support.write_side import MEMBER, WriteSide, caller
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, Unavailable
from modelreg.events.artifacts import ArtifactVersionLogged, artifact_stream
from modelreg.events.envelope import Envelope
from modelreg.events.launch import JobSource
from modelreg.events.log import EventLogNotAnswering, LogPosition
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.runs import RunStarted, run_stream
from modelreg.services.commands.commands import (
    AddAlias,
    FinishRun,
    LinkVersion,
    LogArtifactVersion,
    RemoveAlias,
    StartRun,
    UnlinkVersion,
    version_turn,
)
from modelreg.services.commands.decisions import CommandContext
from modelreg.services.commands.handlers import manifest_digest
from modelreg.services.commands.launch_commands import (
    CancelJob,
    CaptureJobOutput,
    ClaimJob,
    CreateQueue,
    EnqueueJob,
    ReportJobFinished,
    RetryJob,
)

CI = caller("member", "ci")
RUN = {"entity": "acme", "project": "rp", "run_id": "r1"}
SOURCE = JobSource(kind="git", git_remote="https://git.example.com/acme/train.git", entry_point=("python", "train.py"))


def log(registry: WriteSide, content: bytes, **fields: object) -> LogArtifactVersion:
    manifest = (registry.stored_file(content),)
    return LogArtifactVersion(entity="acme", project="rp", name="m", artifact_type="model", manifest=manifest, **fields)


async def linked(registry: WriteSide, *aliases: str) -> UUID:
    version = (await registry(log(registry, b"weights"), CI)).subject_id
    await registry(LinkVersion(registered_model="m", artifact_version_id=version, aliases=aliases), CI)
    return version


async def test_a_version_logged_again_under_its_command_id_after_another_writer_is_the_first_version() -> None:
    registry = WriteSide()
    first = log(registry, b"files A", command_id=uuid7())
    v0 = (await registry(first, CI)).subject_id
    await registry(log(registry, b"files B"), MEMBER)  # v1, by another writer
    retried = await registry(first, CI)  # the CI job's answer was lost: it sends the same command again
    assert retried.subject_id == v0 and retried.events == []
    assert registry.appended_types() == ["artifacts.version_logged"] * 2
    latest = await registry.read_models.registry.artifact_version_by_ref("acme", "rp", "m", "latest")
    assert latest is not None and latest["digest"] == manifest_digest(log(registry, b"files B").manifest)


async def test_a_command_id_used_again_to_log_into_another_collection_is_refused() -> None:
    registry = WriteSide()
    command_id = uuid7()
    await registry(log(registry, b"files A", command_id=command_id), CI)
    other = log(registry, b"files A", command_id=command_id).model_copy(update={"name": "other"})
    with pytest.raises(Conflict, match=f"commandId {command_id} was already used for a different command") as refused:
        await registry(other, CI)
    assert "artifacts.version_logged on artifact:acme/rp/m" in refused.value.message
    assert "use a new commandId for a new command" in refused.value.message
    assert not refused.value.retriable
    assert registry.appended_types() == ["artifacts.version_logged"]


async def test_a_finish_sent_under_the_id_of_another_finish_is_refused_not_answered_as_it() -> None:
    registry = WriteSide()
    await registry(StartRun(**RUN), CI)
    command_id = uuid7()
    await registry(FinishRun(**RUN, state="failed", exit_code=1, command_id=command_id), CI)
    with pytest.raises(Conflict, match="was already used for a different command \\(accepted as runs.run_finished"):
        await registry(FinishRun(**RUN, state="finished", exit_code=0, command_id=command_id), CI)
    assert registry.read_models.registry.runs["acme", "rp", "r1"]["state"] == "failed"
    again = await registry(FinishRun(**RUN, state="failed", exit_code=1, command_id=command_id), CI)
    assert again.events == [] and again.subject_id == "r1"


async def test_a_start_under_the_id_of_another_runs_start_is_refused() -> None:
    registry = WriteSide()
    command_id = uuid7()
    await registry(StartRun(**RUN, command_id=command_id), CI)
    with pytest.raises(Conflict, match=f"commandId {command_id} was already used"):
        await registry(StartRun(**{**RUN, "run_id": "r2"}, command_id=command_id), CI)
    assert registry.appended_types() == ["runs.run_started"]


async def test_an_offline_start_synced_under_the_id_its_online_start_was_tried_with_is_that_start() -> None:
    # mode="auto": the online start's answer was lost and the run was recorded offline under the same id; the
    # claimed time is no part of what the command asks.
    registry = WriteSide()
    command_id = uuid7()
    await registry(StartRun(**RUN, config={"lr": 0.1}, command_id=command_id), CI)
    recorded_at = datetime.now(UTC) - timedelta(minutes=1)
    synced = await registry(StartRun(**RUN, config={"lr": 0.1}, command_id=command_id, occurred_at=recorded_at), CI)
    assert synced.events == [] and registry.appended_types() == ["runs.run_started"]


async def test_a_link_sent_under_its_id_with_other_aliases_or_another_version_is_refused() -> None:
    registry = WriteSide()
    staging = await registry(log(registry, b"v0"), CI)
    other = await registry(log(registry, b"v1"), CI)
    command_id = uuid7()
    link = LinkVersion(registered_model="m", artifact_version_id=staging.subject_id, aliases=("staging",))
    await registry(link.model_copy(update={"command_id": command_id}), CI)
    for changed in ({"aliases": ("production",)}, {"artifact_version_id": other.subject_id}):
        with pytest.raises(Conflict, match="accepted as registry.version_linked on registered_model:m and 1 more"):
            await registry(link.model_copy(update={"command_id": command_id, **changed}), CI)
    assert await registry.read_models.registry.alias_target("m", "production") is None
    assert await registry.read_models.registry.model_version_of("m", other.subject_id) is None


async def test_the_same_command_id_of_another_caller_is_another_command() -> None:
    registry = WriteSide()
    command_id = uuid7()
    await registry(StartRun(**RUN, command_id=command_id), CI)
    await registry(StartRun(**{**RUN, "run_id": "r2"}, command_id=command_id), MEMBER)
    assert registry.appended_types() == ["runs.run_started"] * 2


async def test_a_commands_events_keep_their_order_and_time_in_their_ids() -> None:
    registry = WriteSide()
    version = (await registry(log(registry, b"weights"), CI)).subject_id
    before = datetime.now(UTC)
    link = LinkVersion(registered_model="m", artifact_version_id=version, aliases=("a", "b", "c"), command_id=uuid7())
    events = (await registry(link, CI)).events
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert len({e.id for e in events}) == 4 and {e.id.version for e in events} == {7}
    milliseconds = {e.id.int >> 80 for e in events}
    assert all(abs(ms - before.timestamp() * 1000) < 5_000 for ms in milliseconds)
    assert {e.correlation_id for e in events} == {events[0].id}


async def test_a_command_accepted_before_commands_kept_their_identity_is_taken_for_its_copy() -> None:
    # Its events' ids are plain UUIDv7s: a copy sent again across the upgrade is answered as it was then.
    registry = WriteSide()
    command_id = uuid7()
    context = CommandContext(registry.read_models.protocols(), CI, causation_id=command_id)
    await registry.log.append([context.event(RunStarted(**RUN), run_stream("acme", "rp", "r1"))])
    registry.projections.catch_up()
    again = await registry(StartRun(**RUN, command_id=command_id), CI)
    assert again.events == [] and registry.appended_types() == ["runs.run_started"]


async def test_an_alias_move_sent_again_does_not_take_back_an_alias_moved_on_since() -> None:
    registry = WriteSide()
    v0 = await linked(registry)
    v1 = (await registry(log(registry, b"v1"), MEMBER)).subject_id
    await registry(LinkVersion(registered_model="m", artifact_version_id=v1), MEMBER)
    move = AddAlias(registered_model="m", artifact_version_id=v0, alias="prod", command_id=uuid7())
    await registry(move, CI)
    await registry(AddAlias(registered_model="m", artifact_version_id=v1, alias="prod"), MEMBER)
    again = await registry(move, CI)
    assert again.events == [] and again.subject_id == v0
    assert await registry.read_models.registry.alias_target("m", "prod") == v1


async def test_an_alias_removal_sent_again_answers_the_version_it_was_taken_off() -> None:
    registry = WriteSide()
    version = await linked(registry, "prod")
    removal = RemoveAlias(registered_model="m", alias="prod", command_id=uuid7())
    assert (await registry(removal, CI)).subject_id == version
    again = await registry(removal, CI)  # was: NOT_FOUND "'m' has no alias 'prod'"
    assert again.events == [] and again.subject_id == version


async def test_an_unlink_sent_again_answers_as_the_first_did() -> None:
    registry = WriteSide()
    version = await linked(registry)
    unlink = UnlinkVersion(registered_model="m", artifact_version_id=version, command_id=uuid7())
    await registry(unlink, CI)
    again = await registry(unlink, CI)  # was: NOT_FOUND "... is not linked"
    assert again.events == [] and registry.appended_types()[-1] == "registry.version_unlinked"


async def test_an_enqueue_sent_again_is_the_job_it_enqueued_not_a_second_one() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    enqueue = EnqueueJob(queue="cpu", entity="acme", project="rp", source=SOURCE, command_id=uuid7())
    job = (await registry(enqueue, CI)).subject_id
    assert (await registry(enqueue, CI)).subject_id == job
    assert list(registry.read_models.launch.jobs) == [job]
    with pytest.raises(Conflict, match="was already used for a different command"):
        await registry(enqueue.model_copy(update={"priority": 5}), CI)


async def test_a_retry_or_cancel_of_a_job_sent_again_changes_nothing() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    job = (await registry(EnqueueJob(queue="cpu", entity="acme", project="rp", source=SOURCE), CI)).subject_id
    cancel = CancelJob(job_id=job, reason="wrong data", command_id=uuid7())
    await registry(cancel, CI)
    assert (await registry(cancel, CI)).events == []  # was: CONFLICT "job ... is already cancelled"
    retry = RetryJob(job_id=job, command_id=uuid7())
    retried = (await registry(retry, CI)).subject_id
    assert (await registry(retry, CI)).subject_id == retried
    assert len(registry.read_models.launch.jobs) == 2


async def test_a_jobs_output_and_end_sent_again_by_its_agent_after_an_api_restart_are_recorded_once() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    job = (await registry(EnqueueJob(queue="cpu", entity="acme", project="rp", source=SOURCE), CI)).subject_id
    attempt = {"job_id": job, "agent_id": "user:ci:host-1", "attempt": 1}
    await registry(ClaimJob(job_id=job, agent_id="user:ci:host-1"), CI)
    output = CaptureJobOutput(**attempt, stream="stdout", text="epoch 1\n", command_id=uuid7())
    finished = ReportJobFinished(**attempt, state="finished", exit_code=0, command_id=uuid7())
    for report in (output, output, finished, finished):  # each answer lost once
        await registry(report, CI)  # the second end was refused: CONFLICT "attempt 1 ... is void"
    assert registry.appended_types()[-2:] == ["launch.job_output_captured", "launch.job_finished"]
    assert registry.read_models.launch.jobs[job]["state"] == "finished"
    with pytest.raises(Conflict, match="was already used for a different command"):
        await registry(finished.model_copy(update={"exit_code": 1}), CI)


async def test_aliases_asked_of_a_version_logged_again_beside_a_newer_one_are_refused_not_said_accepted() -> None:
    # The newest version changed while the command waited for its turn: nothing is written, and NOT_YET_VISIBLE
    # (accepted, do not send it again) would be a lie.
    registry = WriteSide()
    await registry(log(registry, b"files A"), CI)
    v1 = (await registry(log(registry, b"files B"), CI)).subject_id
    await registry.app.copies.let_go()
    someone_else = uuid7()
    assert not await registry.in_flight.claim([version_turn(v1)], someone_else)
    logging = asyncio.create_task(registry(log(registry, b"files A", aliases=("best",)), CI))
    await asyncio.sleep(0.05)  # it took v1 for the newest, and waits for v1's turn
    files_a = (registry.stored_file(b"files A"),)
    v2 = ArtifactVersionLogged(
        artifact_version_id=uuid7(),
        entity="acme",
        project="rp",
        name="m",
        artifact_type="model",
        digest=manifest_digest(files_a),
        manifest=files_a,
    )
    context = CommandContext(registry.read_models.protocols(), MEMBER)
    await registry.log.append([context.event(v2, artifact_stream("acme", "rp", "m"))])  # another process's log
    registry.projections.catch_up()
    await registry.in_flight.release([version_turn(v1)], someone_else)
    with pytest.raises(Conflict, match="changed while this command waited.*nothing was written") as refused:
        await logging
    assert refused.value.retriable
    assert registry.appended_types() == ["artifacts.version_logged"] * 3


class ALogWhoseBrokerHangs(InMemoryEventLog):
    """The first append is answered UNAVAILABLE while its events are still held, as a producer holds them for a broker
    that hangs: they are written once `broker_answers` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.broker_answers = asyncio.Event()
        self.holding: asyncio.Task[list[LogPosition]] | None = None

    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        if self.holding is not None:
            return await super().append(events)

        async def written_when_the_broker_answers() -> list[LogPosition]:
            await self.broker_answers.wait()
            return await super(ALogWhoseBrokerHangs, self).append(events)

        self.holding = asyncio.create_task(written_when_the_broker_answers())
        raise EventLogNotAnswering(
            "the event log (Kafka) is not answering, and the change may or may not be recorded",
            "no acknowledgement within 5 s",
            still_held=self.holding,
        )


async def test_a_copy_sent_while_the_first_copys_events_are_held_is_refused_then_answered_as_the_first() -> None:
    held_by_the_log = ALogWhoseBrokerHangs()
    registry = WriteSide(held_by_the_log)
    registry.app.read_your_writes_timeout_s = 0.2
    first = log(registry, b"files A", command_id=uuid7())
    with pytest.raises(Unavailable, match="may or may not be recorded"):
        await registry(first, CI)

    # Decided again, it found no version yet and was appended behind the first copy's events: both written.
    # Refused on its id's claim, or its collection's turn, whichever it asks for first: either kept by the first copy.
    with pytest.raises(Conflict, match=r"being carried out, so this .*was not \(nothing was written\)") as refused:
        await registry(first, CI)
    assert refused.value.retriable and registry.appended_types() == []

    held_by_the_log.broker_answers.set()
    async with asyncio.timeout(5):
        while registry.app.copies.kept():
            await asyncio.sleep(0.01)
    retried = await registry(first, CI)

    assert retried.events == [] and registry.appended_types() == ["artifacts.version_logged"]
    assert retried.subject_id == registry.appended()[0].payload.artifact_version_id  # type: ignore[attr-defined]
    await registry.app.close()
