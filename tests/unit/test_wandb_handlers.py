"""What a W&B script changes after `init` (config and summary keys, name, notes, tags, group, alerts, a resume)
and what it does to a logged version (`artifact.save()` edits, `artifact.delete()`), each as an event, and
each refused with a reason when it cannot be done."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from support.write_side import MEMBER, VIEWER, WriteSide, version_id
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from modelreg.events.runs import MetricSeries
from modelreg.services.commands.commands import (
    DeleteArtifactVersion,
    DescribeRun,
    EditArtifactVersion,
    FinishRun,
    LinkVersion,
    LogArtifactVersion,
    LogMetricBatch,
    RaiseAlert,
    RecordRunHeartbeat,
    ResumeRun,
    SetVisibility,
    StartRun,
    UpdateRunConfig,
    UpdateRunSummary,
)

RUN = {"entity": "acme", "project": "fraud", "run_id": "r1"}
COLLECTION = {"entity": "acme", "project": "fraud", "name": "weights"}


async def started(**config: Any) -> WriteSide:
    registry = WriteSide()
    await registry(StartRun(**RUN, config=config))
    return registry


def the_run(registry: WriteSide) -> dict[str, Any]:
    return registry.read_models.registry.runs["acme", "fraud", "r1"]


# Run changes after init.


async def test_a_config_update_records_only_the_keys_that_changed() -> None:
    registry = await started(lr=0.1, epochs=3)
    await registry(UpdateRunConfig(**RUN, changes={"lr": 0.1, "batch": 32}), MEMBER)
    [_, updated] = registry.appended()
    assert (updated.type, updated.stream) == ("runs.config_updated", "run:acme/fraud/r1")
    assert updated.payload.changes == {"batch": 32}
    assert the_run(registry)["config"] == {"lr": 0.1, "epochs": 3, "batch": 32}


async def test_a_config_update_that_changes_nothing_appends_nothing() -> None:
    registry = await started(lr=0.1)
    same = await registry(UpdateRunConfig(**RUN, changes={"lr": 0.1}))
    assert (same.events, same.subject_id) == ([], "r1")


async def test_a_summary_update_is_an_event_with_the_keys_given() -> None:
    registry = await started()
    await registry(UpdateRunSummary(**RUN, changes={"best_acc": 0.93}))
    assert registry.appended_types() == ["runs.run_started", "runs.summary_updated"]
    assert the_run(registry)["summary"] == {"best_acc": 0.93}


def test_a_config_or_summary_update_names_at_least_one_key() -> None:
    with pytest.raises(ValidationError):
        UpdateRunConfig(**RUN, changes={})
    with pytest.raises(ValidationError):
        UpdateRunSummary(**RUN, changes={})


async def test_renaming_and_retagging_a_run_changes_only_what_is_given() -> None:
    registry = await started()
    await registry(DescribeRun(**RUN, name="baseline", tags=("resnet", "v2")))
    run = the_run(registry)
    assert (run["name"], run["tags"], run["notes"]) == ("baseline", ("resnet", "v2"), None)


async def test_describing_a_run_with_nothing_to_change_is_refused() -> None:
    registry = await started()
    with pytest.raises(InvalidInput, match="at least one of name, notes, tags or group"):
        await registry(DescribeRun(**RUN))


async def test_an_alert_is_recorded_with_its_level() -> None:
    registry = await started()
    await registry(RaiseAlert(**RUN, title="loss diverged", text="nan at step 40", level="ERROR"))
    alert = registry.appended()[-1]
    assert (alert.type, alert.payload.title, alert.payload.level) == ("runs.alert_raised", "loss diverged", "ERROR")


def test_an_alert_has_a_title_and_one_of_the_levels() -> None:
    with pytest.raises(ValidationError):
        RaiseAlert(**RUN, title="")
    with pytest.raises(ValidationError):
        RaiseAlert(**RUN, title="t", level="PANIC")


async def test_resuming_a_finished_run_makes_it_run_again() -> None:
    registry = await started()
    await registry(FinishRun(**RUN, state="crashed"))
    await registry(ResumeRun(**RUN))
    assert registry.appended_types()[-1] == "runs.run_resumed"
    assert the_run(registry)["state"] == "running"


async def test_resuming_a_running_run_changes_nothing() -> None:
    registry = await started()
    again = await registry(ResumeRun(**RUN))
    assert again.events == []


@pytest.mark.parametrize(
    "change",
    [
        UpdateRunConfig(**RUN, changes={"lr": 1}),
        UpdateRunSummary(**RUN, changes={"acc": 1}),
        DescribeRun(**RUN, notes="n"),
        ResumeRun(**RUN),
        RaiseAlert(**RUN, title="t"),
    ],
    ids=lambda change: type(change).__name__,
)
async def test_a_change_to_a_run_that_never_started_says_start_it_first(change: Any) -> None:
    with pytest.raises(NotFound, match="run acme/fraud/r1 does not exist: start it first"):
        await WriteSide()(change)


async def test_a_viewer_may_not_change_a_run() -> None:
    registry = await started()
    with pytest.raises(PermissionDenied, match="viewer of entity:acme"):
        await registry(UpdateRunConfig(**RUN, changes={"lr": 1}), VIEWER)
    with pytest.raises(PermissionDenied, match="viewer of entity:acme"):
        await registry(RaiseAlert(**RUN, title="t"), VIEWER)


@pytest.mark.parametrize(
    "change",
    [
        UpdateRunConfig(**RUN, changes={"lr": 1}),
        UpdateRunSummary(**RUN, changes={"acc": 1}),
        DescribeRun(**RUN, notes="n"),
        ResumeRun(**RUN),
        RaiseAlert(**RUN, title="t"),
    ],
    ids=lambda change: type(change).__name__,
)
async def test_a_recorded_change_sent_again_appends_nothing_twice(change: Any) -> None:
    registry = await started()
    await registry(FinishRun(**RUN))  # so that a resume has something to do
    recorded = change.model_copy(update={"command_id": uuid7()})
    await registry(recorded)
    count = len(registry.appended())
    again = await registry(recorded)
    assert again.events == [] and len(registry.appended()) == count


# Logged versions: edits and deletes.


async def logged(registry: WriteSide, content: bytes, *aliases: str) -> Any:
    file = registry.stored_file(content)
    return version_id(
        await registry(LogArtifactVersion(**COLLECTION, artifact_type="model", manifest=(file,), aliases=aliases))
    )


def version(registry: WriteSide, version_id: Any) -> dict[str, Any]:
    return registry.read_models.registry.versions[version_id]


async def test_saving_an_edited_version_moves_an_alias_to_it_and_replaces_its_description() -> None:
    registry = WriteSide()
    first = await logged(registry, b"one", "best")
    second = await logged(registry, b"two")
    edit = EditArtifactVersion(**COLLECTION, version="v1", description="retrained", aliases_added=("best", "best"))
    await registry(edit, MEMBER)
    edited = registry.appended()[-1]
    assert (edited.type, edited.payload.aliases_added, edited.payload.metadata) == (
        "artifacts.version_edited",
        ("best",),
        None,
    )
    assert (version(registry, second)["aliases"], version(registry, first)["aliases"]) == (["best"], [])
    assert version(registry, second)["description"] == "retrained"


async def test_saving_a_version_with_nothing_changed_appends_nothing() -> None:
    registry = WriteSide()
    held = await logged(registry, b"one", "best")
    same = await registry(EditArtifactVersion(**COLLECTION, version="best", aliases_added=("best",)))
    assert (same.events, same.subject_id) == ([], held)


async def test_removing_an_alias_the_version_holds_is_recorded_and_others_are_ignored() -> None:
    registry = WriteSide()
    held = await logged(registry, b"one", "best")
    await registry(EditArtifactVersion(**COLLECTION, version="v0", aliases_removed=("best", "never-held")))
    assert registry.appended()[-1].payload.aliases_removed == ("best",)
    assert version(registry, held)["aliases"] == []


async def test_an_alias_both_added_and_removed_is_refused() -> None:
    registry = WriteSide()
    await logged(registry, b"one")
    with pytest.raises(InvalidInput, match="alias 'best' is both added and removed"):
        await registry(
            EditArtifactVersion(**COLLECTION, version="v0", aliases_added=("best",), aliases_removed=("best",))
        )


@pytest.mark.parametrize("kind", [EditArtifactVersion, DeleteArtifactVersion])
async def test_editing_or_deleting_a_version_that_is_not_there_says_which(kind: Any) -> None:
    registry = WriteSide()
    await logged(registry, b"one")
    with pytest.raises(NotFound, match="no artifact version acme/fraud/weights:v7"):
        await registry(kind(**COLLECTION, version="v7"))


async def test_a_viewer_may_not_edit_or_delete_a_version() -> None:
    registry = WriteSide()
    await logged(registry, b"one")
    with pytest.raises(PermissionDenied, match="viewer of entity:acme"):
        await registry(EditArtifactVersion(**COLLECTION, version="v0", description="d"), VIEWER)
    with pytest.raises(PermissionDenied, match="viewer of entity:acme"):
        await registry(DeleteArtifactVersion(**COLLECTION, version="v0"), VIEWER)


async def test_a_deleted_version_leaves_refs_and_its_number_is_not_given_again() -> None:
    registry = WriteSide()
    first = await logged(registry, b"one")
    await registry(DeleteArtifactVersion(**COLLECTION, version="v0"), MEMBER)
    deleted = registry.appended()[-1]
    assert (deleted.type, deleted.payload.artifact_version_id) == ("artifacts.version_deleted", first)
    with pytest.raises(NotFound):
        await registry(DeleteArtifactVersion(**COLLECTION, version="v0"))
    second = await logged(registry, b"two")
    assert version(registry, second)["version_index"] == 1


async def test_a_version_holding_aliases_is_deleted_only_with_delete_aliases() -> None:
    registry = WriteSide()
    held = await logged(registry, b"one", "best")
    with pytest.raises(Conflict, match="holds the aliases best: delete it with delete_aliases=True"):
        await registry(DeleteArtifactVersion(**COLLECTION, version="best"))
    await registry(DeleteArtifactVersion(**COLLECTION, version="best", delete_aliases=True))
    assert registry.appended()[-1].payload.aliases_removed == ("best",)
    assert version(registry, held)["aliases"] == []


async def test_a_version_linked_to_the_registry_is_not_deleted() -> None:
    registry = WriteSide()
    held = await logged(registry, b"one")
    await registry(LinkVersion(registered_model="fraud-detector", artifact_version_id=held))
    with pytest.raises(Conflict, match="is linked to fraud-detector:v0: unlink it from the registry") as refused:
        await registry(DeleteArtifactVersion(**COLLECTION, version="v0"))
    # It says how: the client's call, GraphQL's mutation (with the version's id), the web UI.
    assert 'modelreg.Api().artifact("model-registry/fraud-detector:v0").unlink()' in refused.value.message
    assert f'registeredModel: "fraud-detector", artifactVersionId: "{held}"' in refused.value.message

    # Linked into a private model too: who may not read that model is not told its name.
    await registry(LinkVersion(registered_model="secret-model", artifact_version_id=held))
    await registry(SetVisibility(scope="model:secret-model", private=True))
    with pytest.raises(Conflict) as refused:
        await registry(DeleteArtifactVersion(**COLLECTION, version="v0"), registry.looked_up(MEMBER))
    assert "linked to fraud-detector:v0, 1 registered model(s) you may not read" in refused.value.message
    assert "secret" not in refused.value.message


# A run's heartbeat, and the crash mark of a silent one.


async def test_a_heartbeat_is_kept_once_a_minute_and_refused_for_a_finished_run() -> None:
    registry = await started()
    await registry(RecordRunHeartbeat(**RUN), MEMBER)
    again = await registry(RecordRunHeartbeat(**RUN), MEMBER)  # seconds later: the log keeps the first
    assert registry.appended_types() == ["runs.run_started", "runs.run_heartbeat"] and again.events == []
    assert the_run(registry)["last_heartbeat_at"] is not None
    await registry(FinishRun(**RUN))
    with pytest.raises(Conflict, match="is finished: resume it to log to it again"):
        await registry(RecordRunHeartbeat(**RUN), MEMBER)
    with pytest.raises(PermissionDenied):
        await registry(RecordRunHeartbeat(**RUN), VIEWER)


async def test_a_run_marked_crashed_that_logs_again_runs_again_and_can_be_marked_again() -> None:
    registry = await started()
    await registry(RecordRunHeartbeat(**RUN), MEMBER)
    await registry(FinishRun(**RUN, state="crashed"))  # as the run supervisor marks a silent run
    assert the_run(registry)["state"] == "crashed"
    await registry(LogMetricBatch(**RUN, series=[MetricSeries(key="loss", first_step=0, values=(0.5,))]), MEMBER)
    assert registry.appended_types()[-3:] == ["runs.run_resumed", "runs.run_heartbeat", "runs.metrics_logged"]
    run = the_run(registry)
    assert run["state"] == "running" and run["last_heartbeat_at"] is not None  # so a later silence is seen
    await registry(FinishRun(**RUN, state="crashed"))
    await registry(FinishRun(**RUN, state="finished"), MEMBER)  # alive after all: its own end is recorded
    assert the_run(registry)["state"] == "finished"
