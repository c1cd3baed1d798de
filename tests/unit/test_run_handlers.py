"""A run's own commands: start, metrics, finish, the sync record, sent once or again after a cut, online or
recorded offline with the client's clock (a claim kept beside the server's time, bounded by the run's start)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from support.write_side import ADMIN, MEMBER, VIEWER, WriteSide
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from modelreg.events.runs import MetricRow, series_of
from modelreg.services.commands.commands import (
    FinishRun,
    LinkVersion,
    LogMetricBatch,
    LogMetrics,
    RecordSync,
    ResumeRun,
    StartRun,
)

RUN = {"entity": "acme", "project": "fraud", "run_id": "r1"}


def metrics(step: int = 0) -> LogMetrics:
    return LogMetrics(**RUN, rows=(MetricRow(step=step, values={"loss": 0.5}),))


async def test_starting_a_run_records_who_started_it_with_its_config() -> None:
    registry = WriteSide()
    accepted = await registry(StartRun(**RUN, config={"lr": 0.1}), MEMBER)
    assert accepted.subject_id == "r1"
    [started] = registry.appended()
    assert (started.type, started.stream, str(started.actor)) == ("runs.run_started", "run:acme/fraud/r1", "user:mo")
    assert started.payload.config == {"lr": 0.1}
    assert started.recorded_offline_at is None


async def test_a_run_started_without_a_name_is_given_one_numbered_in_its_project_as_wandb_does() -> None:
    registry = WriteSide()
    await registry(StartRun(**RUN))
    await registry(StartRun(**{**RUN, "run_id": "r2"}, name="baseline"))
    await registry(StartRun(**{**RUN, "run_id": "r3"}))
    await registry(StartRun(**{**RUN, "project": "churn", "run_id": "r3"}))
    first, named, third, elsewhere = (e.payload.name for e in registry.appended())
    assert re.fullmatch(r"[a-z]+-[a-z]+-1", first) and named == "baseline"
    assert third.endswith("-3") and elsewhere.endswith("-1")
    assert third.rsplit("-", 1)[0] == elsewhere.rsplit("-", 1)[0]  # the words follow from the run id


async def test_a_viewer_may_not_start_a_run() -> None:
    with pytest.raises(PermissionDenied, match="viewer of entity:acme; start run needs member"):
        await WriteSide()(StartRun(**RUN), VIEWER)


async def test_a_run_id_is_taken_once_and_starting_it_again_says_how_to_continue_it() -> None:
    # A Slurm requeue with WANDB_RUN_ID set and no resume was told to choose another id, not how to go on.
    registry = WriteSide()
    await registry(StartRun(**RUN))
    with pytest.raises(Conflict, match="run acme/fraud/r1 already exists") as refused:
        await registry(StartRun(**RUN))
    assert "modelreg.init(id='r1', resume='allow'), or WANDB_RESUME=allow" in refused.value.message


async def test_a_recorded_start_sent_again_appends_nothing_twice() -> None:
    registry = WriteSide()
    start = StartRun(**RUN, command_id=uuid7())
    await registry(start)
    again = await registry(start)
    assert again.events == [] and again.subject_id == "r1"
    assert registry.appended_types() == ["runs.run_started"]


async def test_the_client_command_id_is_the_events_causation() -> None:
    registry = WriteSide()
    command_id = uuid7()
    await registry(StartRun(**RUN, command_id=command_id))
    assert registry.appended()[0].causation_id == command_id


async def test_finishing_a_run_records_its_state_once() -> None:
    registry = WriteSide()
    await registry(StartRun(**RUN))
    await registry(FinishRun(**RUN, state="failed", exit_code=3))
    assert registry.read_models.registry.runs["acme", "fraud", "r1"]["state"] == "failed"
    with pytest.raises(Conflict, match="is already failed"):
        await registry(FinishRun(**RUN))


async def test_finishing_or_syncing_a_run_that_never_started_says_start_it_first() -> None:
    registry = WriteSide()
    with pytest.raises(NotFound, match="start it first"):
        await registry(FinishRun(**RUN))
    with pytest.raises(NotFound, match="sync its start first"):
        await registry(RecordSync(**RUN, commands=3))


@pytest.mark.parametrize("command", [FinishRun(**RUN, command_id=uuid7()), metrics(), RecordSync(**RUN, commands=1)])
async def test_recorded_commands_of_a_run_sent_again_are_no_ops(command: FinishRun | LogMetrics | RecordSync) -> None:
    registry = WriteSide()
    await registry(StartRun(**RUN))
    command = command.model_copy(update={"command_id": uuid7()})
    await registry(command)
    assert (await registry(command)).events == []
    assert len(registry.appended()) == 2


async def test_metrics_go_to_a_started_run_only() -> None:
    registry = WriteSide()
    with pytest.raises(NotFound, match="run acme/fraud/r1 does not exist"):
        await registry(metrics())
    await registry(StartRun(**RUN))
    accepted = await registry(
        LogMetrics(**RUN, rows=(MetricRow(step=0, values={"a": 1}), MetricRow(step=1, values={"a": 2})))
    )
    assert accepted.subject_id == 2


def test_a_metric_must_be_a_finite_number() -> None:
    with pytest.raises(ValidationError, match="only finite numbers"):
        MetricRow(step=0, values={"loss": float("nan")})


async def test_an_offline_start_keeps_the_clients_claim_beside_the_servers_time() -> None:
    registry = WriteSide()
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await registry(StartRun(**RUN, occurred_at=hour_ago))
    [started] = registry.appended()
    assert started.recorded_offline_at == hour_ago
    assert started.occurred_at > hour_ago


async def test_a_claim_after_an_offline_start_is_kept() -> None:
    registry = WriteSide()
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await registry(StartRun(**RUN, occurred_at=hour_ago))
    await registry(metrics().model_copy(update={"occurred_at": hour_ago + timedelta(minutes=1)}))
    assert registry.appended()[-1].recorded_offline_at == hour_ago + timedelta(minutes=1)


async def test_a_claim_before_the_run_started_is_refused() -> None:
    registry = WriteSide()
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await registry(StartRun(**RUN, occurred_at=hour_ago))
    with pytest.raises(InvalidInput, match="occurredAt .* is before run acme/fraud/r1 started"):
        await registry(metrics().model_copy(update={"occurred_at": hour_ago - timedelta(seconds=1)}))


async def test_a_claim_on_an_online_run_may_be_early_by_the_clock_skew_only() -> None:
    registry = WriteSide()
    await registry(StartRun(**RUN))
    four_minutes_early = datetime.now(UTC) - timedelta(minutes=4)
    await registry(metrics().model_copy(update={"occurred_at": four_minutes_early}))
    with pytest.raises(InvalidInput, match="is before run"):
        await registry(metrics(1).model_copy(update={"occurred_at": datetime.now(UTC) - timedelta(minutes=6)}))


async def test_a_claim_for_a_run_not_started_leaves_the_refusal_to_the_handler() -> None:
    with pytest.raises(NotFound, match="start it first"):
        await WriteSide()(metrics().model_copy(update={"occurred_at": datetime.now(UTC)}))


async def test_a_claim_in_the_future_is_refused_when_the_command_is_parsed() -> None:
    with pytest.raises(ValidationError, match="is in the future"):
        StartRun(**RUN, occurred_at=datetime.now(UTC) + timedelta(hours=1))


async def test_a_sync_records_the_span_of_the_recorded_commands_and_refuses_a_future_one() -> None:
    registry = WriteSide()
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await registry(StartRun(**RUN, occurred_at=hour_ago))
    future = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(InvalidInput, match="lastOccurredAt .* is in the future"):
        await registry(RecordSync(**RUN, commands=2, first_occurred_at=hour_ago, last_occurred_at=future))
    with pytest.raises(InvalidInput, match="firstOccurredAt .* is before run"):
        await registry(RecordSync(**RUN, commands=2, first_occurred_at=hour_ago - timedelta(days=1)))
    await registry(RecordSync(**RUN, commands=2, first_occurred_at=hour_ago, last_occurred_at=hour_ago))
    synced = registry.appended()[-1]
    assert (synced.type, synced.payload.commands, synced.recorded_offline_at) == ("runs.offline_run_synced", 2, None)


async def test_a_link_cannot_be_backdated() -> None:
    link = LinkVersion(registered_model="fraud", artifact_version_id=uuid7(), occurred_at=datetime.now(UTC))
    with pytest.raises(InvalidInput, match="a link version is recorded at the server's time of receipt"):
        await WriteSide()(link)


def test_text_postgresql_cannot_store_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="name\n  U\\+D800, a lone surrogate, cannot be stored"):
        StartRun(**RUN, name="half a surrogate \ud800")
    with pytest.raises(ValidationError, match=r"U\+0000 cannot be stored \(in config.note\)"):
        StartRun(**RUN, config={"note": "nul \x00 byte"})


async def test_a_metric_batch_goes_to_a_started_run_once_and_counts_its_points() -> None:
    batch = LogMetricBatch(
        **RUN,
        command_id=uuid7(),
        series=(series_of("loss", {0: 0.9, 1: 0.7}), series_of("acc", {0: 0.1, 5: 0.6})),
    )
    registry = WriteSide()
    with pytest.raises(NotFound, match="run acme/fraud/r1 does not exist"):
        await registry(batch)
    await registry(StartRun(**RUN))
    assert (await registry(batch)).subject_id == 4
    assert (await registry(batch)).events == []  # the sender retried after a cut: nothing twice


def test_a_metric_batch_names_each_metric_once() -> None:
    with pytest.raises(ValidationError, match="each metric may appear once"):
        LogMetricBatch(**RUN, series=(series_of("loss", {0: 1.0}), series_of("loss", {1: 0.5})))


@pytest.mark.parametrize("command", [metrics(), LogMetricBatch(**RUN, series=(series_of("loss", {7: 0.1}),))])
async def test_points_after_a_run_ended_come_through_its_resume(command: LogMetrics | LogMetricBatch) -> None:
    registry = WriteSide()
    await registry(StartRun(**RUN))
    await registry(FinishRun(**RUN))
    with pytest.raises(Conflict, match="run acme/fraud/r1 is finished: resume it to log to it again"):
        await registry(command)
    await registry(ResumeRun(**RUN))
    await registry(command)
    assert registry.appended_types()[-2:] == ["runs.run_resumed", "runs.metrics_logged"]


async def test_a_command_id_someone_else_sent_first_leaves_mine_to_be_done() -> None:
    # Command ids show in the audit log (causationId), and a sync record's is derived from one: sent first by
    # another, mine was answered as done and never recorded.
    registry = WriteSide()
    command_id = uuid7()
    await registry(StartRun(entity="lynx", project="den", run_id="theirs", command_id=command_id), ADMIN)
    accepted = await registry(StartRun(**RUN, command_id=command_id), MEMBER)
    assert [e.stream for e in accepted.events] == ["run:acme/fraud/r1"]
    assert (await registry(StartRun(**RUN, command_id=command_id), MEMBER)).events == []  # mine again: once
