"""Every event type modelreg knows, by its `type` tag, and the upcasters that read old schema versions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from modelreg.events.artifacts import (
    ArtifactVersionDeleted,
    ArtifactVersionEdited,
    ArtifactVersionLogged,
    ArtifactVersionTagged,
    ArtifactVersionUntagged,
    ArtifactVersionUsed,
)
from modelreg.events.automations import (
    AutomationChanged,
    AutomationCreated,
    AutomationDeleted,
    AutomationDisabled,
    AutomationEnabled,
    AutomationFired,
    FiringRetried,
    WebhookAttempted,
    WebhookSecretRotated,
)
from modelreg.events.envelope import Event
from modelreg.events.identity import (
    ApiKeyIssued,
    ApiKeyRevoked,
    RoleGranted,
    RoleRevoked,
    ScopeMadePrivate,
    ScopeMadePublic,
)
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
    QueueDeleted,
    QueueEntitiesSet,
)
from modelreg.events.operations import EventSkipped
from modelreg.events.registry import (
    AliasAdded,
    AliasProtected,
    AliasRemoved,
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
    series_from_rows,
)

EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunStarted,
        RunFinished,
        MetricsLogged,
        RunSynced,
        RunConfigUpdated,
        RunSummaryUpdated,
        RunDescribed,
        RunAlerted,
        RunResumed,
        RunHeartbeat,
        ArtifactVersionLogged,
        ArtifactVersionEdited,
        ArtifactVersionDeleted,
        ArtifactVersionUsed,
        ArtifactVersionTagged,
        ArtifactVersionUntagged,
        VersionLinked,
        AliasAdded,
        AliasRemoved,
        VersionUnlinked,
        ModelCardChanged,
        ModelTagged,
        ModelUntagged,
        AliasProtected,
        AliasUnprotected,
        ApiKeyIssued,
        ApiKeyRevoked,
        RoleGranted,
        RoleRevoked,
        ScopeMadePrivate,
        ScopeMadePublic,
        QueueCreated,
        QueueEntitiesSet,
        QueueDeleted,
        JobEnqueued,
        JobClaimed,
        JobStarted,
        JobOutputCaptured,
        JobFinished,
        JobRequeued,
        JobCancelled,
        AgentHeartbeat,
        AutomationCreated,
        AutomationEnabled,
        AutomationDisabled,
        AutomationChanged,
        AutomationDeleted,
        AutomationFired,
        FiringRetried,
        WebhookAttempted,
        WebhookSecretRotated,
        EventSkipped,
    )
}

# (type, from_version) -> function turning that version's payload dict into the next version's.
# Old events are never rewritten on the log; they are upcast when read.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    # v2 added ManifestEntry.ref (references); a v1 manifest holds uploaded files only.
    (ArtifactVersionLogged.type, 1): lambda payload: {
        **payload,
        "manifest": [{**entry, "ref": None} for entry in payload.get("manifest", ())],
    },
    # v2 carries a batch as one series per metric (columns, what curves are read as) instead of rows.
    (MetricsLogged.type, 1): lambda payload: {
        **{k: v for k, v in payload.items() if k != "rows"},
        "series": series_from_rows(payload.get("rows") or []),
    },
    # v2 added the entities a queue takes jobs of; a v1 queue took every entity's, and still does.
    (QueueCreated.type, 1): lambda payload: {**payload, "entities": []},
    # v2 names the used version's entity when it is not the run's; a v1 record is read by the run's readers, as it was.
    (ArtifactVersionUsed.type, 1): lambda payload: {**payload, "scopes": []},
    # v2 added the keys removed; a v1 update removed none.
    (RunConfigUpdated.type, 1): lambda payload: {**payload, "removed": []},
    (RunSummaryUpdated.type, 1): lambda payload: {**payload, "removed": []},
    # v2 may give a key an end; a v1 key never ends.
    (ApiKeyIssued.type, 1): lambda payload: {**payload, "expires_at": None},
    # v2 names the role the grant gave, for the audit log; a v1 record did not say.
    (RoleRevoked.type, 1): lambda payload: {**payload, "role": None},
    # v2 added notes, tags and group; a v1 run had none.
    (RunStarted.type, 1): lambda payload: {**payload, "notes": None, "tags": [], "group": None},
    # v3 gave each attempt its own API key; a v2 attempt ran with its agent's.
    (JobClaimed.type, 2): lambda payload: {
        **payload,
        "key_id": None,
        "key_sha256": None,
        "key_role": None,
        "key_scopes": [],
    },
    # v4 names the agent's key that claimed, whose revocation ends the attempt's key; a v3 claim does not say.
    (JobClaimed.type, 3): lambda payload: {**payload, "claimed_with": None},
    # v2 added a job's time limit and the ended job it runs again; a v1 job had neither.
    (JobEnqueued.type, 1): lambda payload: {**payload, "time_limit_s": None, "retry_of": None},
    # v3 tells a job its stopping agent gave back from one whose agent vanished; a v2 requeue was the latter.
    (JobRequeued.type, 2): lambda payload: {**payload, "by_its_agent": False},
    # v2 added a launch action's time limit; a v1 action had none.
    (AutomationCreated.type, 1): lambda payload: {
        **payload,
        "action": {**payload["action"], "time_limit_s": None}
        if payload.get("action", {}).get("kind", "launch") == "launch"
        else payload["action"],
    },
    # v2 merges the summary into the run's; a v1 finish replaced it, and still does when replayed.
    (RunFinished.type, 1): lambda payload: {**payload, "summary_replaces": True},
    # v2 added the scope the event is read under (an automation's, a job's entity, a skipped event's). A v1 event
    # does not say, and its automation or job is not known here: it stays readable by everyone, as it was
    # (docs/access.md).
    **{
        (cls.type, 1): lambda payload: {**payload, "scope": None}
        for cls in (
            AutomationEnabled,
            AutomationDisabled,
            AutomationFired,
            WebhookAttempted,
            JobClaimed,
            JobStarted,
            JobOutputCaptured,
            JobFinished,
            JobRequeued,
            JobCancelled,
            EventSkipped,
        )
    },
}


def event_class(type_tag: str) -> type[Event]:
    try:
        return EVENT_TYPES[type_tag]
    except KeyError:
        raise UnknownEventType(type_tag) from None


def upcast(type_tag: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a payload written with an older schema version up to the current one."""
    current = event_class(type_tag).version
    if version > current:
        raise NewerThanThisBuild(
            f"{type_tag} v{version} was written by a newer modelreg (this one reads up to v{current}): upgrade it"
        )
    while version < current:
        step = UPCASTERS.get((type_tag, version))
        if step is None:
            raise UnknownEventType(f"{type_tag} v{version} (no upcaster to v{version + 1})")
        payload = step(payload)
        version += 1
    return payload


def all_event_classes() -> Iterator[type[Event]]:
    yield from EVENT_TYPES.values()


class UnknownEventType(LookupError):
    pass


class NewerThanThisBuild(UnknownEventType):
    pass
