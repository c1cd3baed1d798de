"""An automation's templates name what its trigger's firings carry, and nothing else: a name outside them was sent
as written ("${artifcat_ref}" into a job's config) and the job failed at every firing."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from support.write_side import ADMIN, WriteSide

from modelreg.errors import InvalidInput
from modelreg.events.artifacts import ArtifactVersionLogged, ArtifactVersionTagged, ManifestEntry
from modelreg.events.automations import TEMPLATE_VARIABLES, LaunchAction, TriggerSpec, WebhookAction
from modelreg.events.envelope import Actor, Envelope, Event
from modelreg.events.launch import JobSource
from modelreg.events.registry import AliasAdded, ModelTagged, VersionLinked
from modelreg.events.runs import MetricsLogged, RunFinished, series_from_rows
from modelreg.projections.triggers import TriggersProjection
from modelreg.services.commands.launch_commands import CreateAutomation, CreateQueue

DIGEST = "sha256:" + "ab" * 32
VERSION = uuid4()
FIRED_BY: dict[str, tuple[Event, ...]] = {
    "artifact_version_logged": (
        ArtifactVersionLogged(
            artifact_version_id=VERSION,
            entity="acme",
            project="nature",
            name="classifier",
            artifact_type="model",
            digest=DIGEST,
            manifest=(ManifestEntry(path="model.bin", size=3, digest=DIGEST),),
        ),
    ),
    "version_linked": (VersionLinked(registered_model="classifier", artifact_version_id=VERSION),),
    "alias_added": (AliasAdded(registered_model="classifier", artifact_version_id=VERSION, alias="production"),),
    "tag_added": (
        ModelTagged(registered_model="classifier", tag="reviewed"),
        ArtifactVersionTagged(artifact_version_id=VERSION, entity="acme", project="nature", name="c", tag="reviewed"),
    ),
    "run_finished": (RunFinished(entity="acme", project="nature", run_id="r1", state="finished"),),
    "metric_threshold": (
        MetricsLogged(
            entity="acme", project="nature", run_id="r1", series=series_from_rows([{"step": 0, "values": {"acc": 0.9}}])
        ),
    ),
}
# What the runner adds to a firing about an artifact version (services/automations/runner.py, _variables).
OF_A_VERSION = {"entity", "project", "collection", "artifact_version", "artifact_ref"}
# And about a registered model's version: its number there (runner.py, model_version_of).
OF_A_MODEL_VERSION = {"registered_model_version", "registered_model_ref"}
# What the trigger projection adds to a metric's firing, in SQL: the point that crossed.
OF_A_POINT = {"metric", "value", "step"}
# What the runner adds to every firing: its event's time (runner.py, _variables).
OF_EVERY_FIRING = {"occurred_at"}


def _carried(event: Event) -> set[str]:
    projection = TriggersProjection()  # knows no automation yet: matches every kind
    envelope = Envelope.new(event, stream="s", actor=Actor(kind="user", id="ada"))
    (fired, _) = projection.statements(envelope)
    names = set(fired.args[5]) | OF_EVERY_FIRING
    if "artifact_version_id" in names:
        names |= OF_A_VERSION | (OF_A_MODEL_VERSION if "registered_model" in names else set())
    if isinstance(event, MetricsLogged):
        names |= OF_A_POINT
    return names


@pytest.mark.parametrize("trigger", sorted(TEMPLATE_VARIABLES))
def test_a_trigger_provides_what_its_firings_carry(trigger: str) -> None:
    assert set().union(*(_carried(event) for event in FIRED_BY[trigger])) == TEMPLATE_VARIABLES[trigger]


async def _created(action: Any, trigger: TriggerSpec) -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="eval"))
    await registry(CreateAutomation(name="evaluate", trigger=trigger, action=action), ADMIN)


SOURCE = JobSource(
    kind="git", git_remote="https://git.example.com/acme/eval.git", entry_point=("python", "evaluate.py")
)


async def test_an_automation_naming_a_variable_its_trigger_does_not_provide_is_refused_saying_what_it_does() -> None:
    action = LaunchAction(queue="eval", entity="acme", project="nature", source=SOURCE, config={"m": "${artifcat_ref}"})
    with pytest.raises(
        InvalidInput,
        match=r"names \$\{artifcat_ref\}, which a version_linked trigger does not .*"
        r"artifact_ref, artifact_version",
    ):
        await _created(action, TriggerSpec(event="version_linked"))
    webhook = WebhookAction(url="https://hooks.example.com/x", payload={"text": "${alias} moved"})
    with pytest.raises(InvalidInput, match=r"names \$\{alias\}, which a version_linked trigger"):
        await _created(webhook, TriggerSpec(event="version_linked"))


async def test_an_automation_naming_what_its_trigger_provides_is_created() -> None:
    action = LaunchAction(
        queue="eval", entity="${entity}", project="nature", source=SOURCE, config={"ckpt": "${run_id}@${step}"}
    )
    await _created(action, TriggerSpec(event="metric_threshold", metric="acc", op=">", threshold=0.9))
    webhook = WebhookAction(
        url="http://127.0.0.1:9/hook", payload={"text": "costs $$5 at ${alias}"}, allow_private_network=True
    )
    await _created(webhook, TriggerSpec(event="alias_added"))
