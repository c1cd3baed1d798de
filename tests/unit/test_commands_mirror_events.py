"""A command that asks for an event accepts exactly what the event can record: the fields they share have one
definition (the field types in events/), so the two cannot drift apart again."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from modelreg.events.artifacts import (
    ArtifactVersionDeleted,
    ArtifactVersionEdited,
    ArtifactVersionLogged,
    ArtifactVersionTagged,
    ArtifactVersionUsed,
)
from modelreg.events.automations import AutomationCreated, AutomationFired, WebhookAttempted
from modelreg.events.envelope import Event
from modelreg.events.identity import ApiKeyIssued, ApiKeyRevoked, RoleGranted, RoleRevoked, ScopeMadePrivate
from modelreg.events.launch import (
    AgentHeartbeat,
    JobCancelled,
    JobClaimed,
    JobEnqueued,
    JobFinished,
    JobOutputCaptured,
    JobRequeued,
    JobStarted,
    QueueCreated,
    QueueEntitiesSet,
)
from modelreg.events.operations import EventSkipped
from modelreg.events.registry import (
    AliasAdded,
    AliasProtected,
    AliasUnprotected,
    ModelCardChanged,
    ModelTagged,
    ModelUntagged,
    VersionLinked,
    VersionUnlinked,
)
from modelreg.events.runs import (
    MetricsLogged,
    RunAlerted,
    RunConfigUpdated,
    RunDescribed,
    RunFinished,
    RunHeartbeat,
    RunResumed,
    RunStarted,
    RunSummaryUpdated,
    RunSynced,
)
from modelreg.services.commands import commands as c
from modelreg.services.commands import launch_commands as lc
from modelreg.services.commands.commands import Command
from modelreg.services.commands.parked_streams import SkipParkedEvent

MIRRORS: list[tuple[type[Command], type[Event]]] = [
    (c.StartRun, RunStarted),
    (c.FinishRun, RunFinished),
    (c.LogMetrics, MetricsLogged),
    (c.RecordSync, RunSynced),
    (c.UpdateRunConfig, RunConfigUpdated),
    (c.UpdateRunSummary, RunSummaryUpdated),
    (c.DescribeRun, RunDescribed),
    (c.ResumeRun, RunResumed),
    (c.RecordRunHeartbeat, RunHeartbeat),
    (c.RaiseAlert, RunAlerted),
    (c.EditArtifactVersion, ArtifactVersionEdited),
    (c.DeleteArtifactVersion, ArtifactVersionDeleted),
    (c.LogArtifactVersion, ArtifactVersionLogged),
    (c.UseArtifactVersion, ArtifactVersionUsed),
    (c.TagArtifactVersion, ArtifactVersionTagged),
    (c.LinkVersion, VersionLinked),
    (c.AddAlias, AliasAdded),
    (c.UnlinkVersion, VersionUnlinked),
    (c.UpdateModelCard, ModelCardChanged),
    (c.TagModel, ModelTagged),
    (c.UntagModel, ModelUntagged),
    (c.ProtectAlias, AliasProtected),
    (c.UnprotectAlias, AliasUnprotected),
    (c.IssueApiKey, ApiKeyIssued),
    (c.RevokeApiKey, ApiKeyRevoked),
    (c.GrantRole, RoleGranted),
    (c.RevokeRole, RoleRevoked),
    (c.SetVisibility, ScopeMadePrivate),
    (lc.CreateQueue, QueueCreated),
    (lc.SetQueueEntities, QueueEntitiesSet),
    (lc.EnqueueJob, JobEnqueued),
    (lc.ClaimJob, JobClaimed),
    (lc.ReportJobStarted, JobStarted),
    (lc.CaptureJobOutput, JobOutputCaptured),
    (lc.ReportJobFinished, JobFinished),
    (lc.RequeueJob, JobRequeued),
    (lc.CancelJob, JobCancelled),
    (lc.Heartbeat, AgentHeartbeat),
    (lc.CreateAutomation, AutomationCreated),
    (lc.RecordAutomationFired, AutomationFired),
    (lc.RecordWebhookAttempt, WebhookAttempted),
    (SkipParkedEvent, EventSkipped),
]


def rules(model: type[BaseModel], field: str) -> dict[str, Any]:
    """What a field accepts when it is given, as JSON Schema says it (whether it may be left out, its default
    and its wording aside: a command may let the server choose what its event must record)."""
    schema = model.model_json_schema(mode="validation")
    rule = dict(schema["properties"][field])
    for words in ("default", "title", "description"):
        rule.pop(words, None)
    given = [option for option in rule.get("anyOf", []) if option != {"type": "null"}]
    return given[0] if len(given) == 1 and len(rule) == 1 else rule


@pytest.mark.parametrize(("command", "event"), MIRRORS, ids=lambda t: t.__name__)
def test_the_fields_a_command_shares_with_its_event_accept_the_same_values(
    command: type[Command], event: type[Event]
) -> None:
    shared = command.model_fields.keys() & event.model_fields.keys()
    assert shared, f"{command.__name__} shares no field with {event.__name__}"
    for field in shared:
        assert rules(command, field) == rules(event, field), f"{command.__name__}.{field} != {event.__name__}.{field}"


@pytest.mark.parametrize(
    ("command", "event", "fields"),
    [
        (lc.CaptureJobOutput, JobOutputCaptured, {"text": ""}),  # the event took empty text, the command not
        (lc.Heartbeat, AgentHeartbeat, {"queues": ()}),  # the event took an agent of no queues
        (lc.ClaimJob, JobClaimed, {"agent_id": "no spaces/or slashes"}),  # the event took any agent name
        (SkipParkedEvent, EventSkipped, {"reason": "  "}),  # the event took a blank reason
        (c.LogArtifactVersion, ArtifactVersionLogged, {"aliases": tuple(f"a{n}" for n in range(101))}),  # no bound
    ],
)
def test_what_only_one_side_refused_before_both_refuse_now(
    command: type[Command], event: type[Event], fields: dict[str, Any]
) -> None:
    field = next(iter(fields))
    for model in (command, event):
        with pytest.raises(ValidationError) as refused:
            model.model_validate(fields)
        assert field in {str(error["loc"][0]) for error in refused.value.errors()}
