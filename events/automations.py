"""Events of automations: when <event> happens in <scope> and <filter> holds, do <action>.
Stream: `automation:<id>` (its settings, each firing and each webhook delivery attempt).

Webhook secrets are never on the log: each is derived from the server's secret key and the automation
(see services/automations/webhook_signing.py), so an event carries only which generation of it is in use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from modelreg.errors import quoted
from modelreg.events.envelope import Event
from modelreg.events.identity import ReadScope
from modelreg.events.launch import JobSource

TriggerEvent = Literal[
    "artifact_version_logged",  # a new version in a collection
    "version_linked",  # a version linked to a registered model
    "alias_added",  # an alias (matching a pattern) set on a registered model's version
    "tag_added",  # a tag on a registered model or an artifact version
    "run_finished",  # a run finished or failed
    "metric_threshold",  # a logged metric crossed a threshold
]

# What an automation's templates may name ("${artifact_ref}"), by trigger: the trigger projection fills them in from
# the event (projections/triggers.py), the runner a version's reference (services/automations/runner.py). A name
# outside them would be sent as written, "${artifcat_ref}" into a job's config, so an automation naming one is
# refused.
# `occurred_at` orders a receiver's webhooks: each firing is retried on its own, so an older one retried may arrive
# after a newer one.
EVERY_FIRING = frozenset({"event_id", "event_type", "actor", "correlation_id", "occurred_at"})
_A_VERSION = frozenset({"artifact_version_id", "entity", "project", "collection", "artifact_version", "artifact_ref"})
# The version as the registered model numbers it (v3 of nature-classification, `model-registry/<model>:v3`);
# artifact_version is the logged artifact's own number (v0 of nature-classifier), another number.
_A_MODEL_VERSION = frozenset({"registered_model", "registered_model_version", "registered_model_ref"})
TEMPLATE_VARIABLES: dict[str, frozenset[str]] = {
    "artifact_version_logged": EVERY_FIRING | _A_VERSION | {"artifact_type"},
    "version_linked": EVERY_FIRING | _A_VERSION | _A_MODEL_VERSION,
    "alias_added": EVERY_FIRING | _A_VERSION | _A_MODEL_VERSION | {"alias"},
    # A registered model's tag gives registered_model; an artifact version's, the version's names.
    "tag_added": EVERY_FIRING | _A_VERSION | {"registered_model", "tag"},
    "run_finished": EVERY_FIRING | {"entity", "project", "run_id", "run_state"},
    # The batch's point furthest past the threshold: its metric, value and step.
    "metric_threshold": EVERY_FIRING | {"entity", "project", "run_id", "metric", "value", "step"},
}

# What became of one firing of an automation's action.
FiringOutcome = Literal["enqueued", "delivered", "failed"]


# Field types shared with the automation commands (services/commands/launch_commands.py).
AutomationName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
AutomationDescription = Annotated[str, StringConstraints(max_length=10_000)]
Cooldown = Annotated[float, Field(ge=0, le=86_400 * 30)]
Note = Annotated[str, StringConstraints(max_length=2000)]  # a firing's detail, a delivery's error
WebhookUrl = Annotated[str, StringConstraints(max_length=2000)]


def watched_scope(trigger: Mapping[str, Any], action: Mapping[str, Any]) -> str | None:
    """The scope an automation's switches, firings and deliveries are read under: the registered model or
    entity it watches (as its creation is: scope_of reads the trigger), else the entity it launches jobs in."""
    if isinstance(model := trigger.get("registered_model"), str):
        return f"model:{model}"
    if isinstance(entity := trigger.get("entity"), str):
        return f"entity:{entity}"
    launches_in = action.get("entity") if action.get("kind") == "launch" else None
    if isinstance(launches_in, str) and "${" not in launches_in:
        return f"entity:{launches_in}"
    return None


# A back-reference (\1 to \9) after an odd number of backslashes. Matching one can take time exponential in the
# subject's length (PostgreSQL's engine backtracks for them alone): one trigger could hold up every projection.
_BACK_REFERENCE = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")


def has_back_reference(pattern: str) -> bool:
    """Whether a trigger's pattern refers back to a group; the trigger projection's SQL applies the same rule."""
    return _BACK_REFERENCE.search(pattern) is not None


def automation_stream(automation_id: UUID) -> str:
    return f"automation:{automation_id}"


class TriggerSpec(BaseModel):
    """Which events fire the automation. Scope fields left out match everything."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: TriggerEvent
    entity: str | None = Field(default=None, max_length=64)
    project: str | None = Field(default=None, max_length=128)
    collection: str | None = Field(default=None, max_length=128, description="artifact name")
    artifact_type: str | None = Field(default=None, max_length=64)
    registered_model: str | None = Field(default=None, max_length=128)
    alias_pattern: str | None = Field(default=None, max_length=200, description="a regex the whole alias must match")
    tag_pattern: str | None = Field(default=None, max_length=200)
    run_state: Literal["finished", "failed"] | None = None
    metric: str | None = Field(default=None, max_length=200)
    op: Literal[">", ">=", "<", "<="] | None = None
    threshold: float | None = Field(default=None, allow_inf_nan=False)  # NaN would reach the log as null

    @field_validator("alias_pattern", "tag_pattern")
    @classmethod
    def _a_valid_regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{quoted(pattern)} is not a regular expression: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _threshold_complete(self) -> TriggerSpec:
        if self.event == "metric_threshold" and (self.metric is None or self.op is None or self.threshold is None):
            raise ValueError("a metric_threshold trigger needs metric, op and threshold")
        return self


class LaunchAction(BaseModel):
    """Enqueue a job. `config` is a template: "${artifact_ref}" and the like are filled from the event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["launch"] = "launch"
    queue: str = Field(max_length=100)
    entity: str = Field(max_length=64)
    project: str = Field(max_length=128)
    source: JobSource
    config: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=-1000, le=1000)
    time_limit_s: int | None = Field(default=None, ge=1, le=30 * 24 * 3600)


class WebhookAction(BaseModel):
    """POST a JSON payload (a template, like LaunchAction.config), signed with HMAC-SHA256."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://", max_length=2000)
    payload: dict[str, Any] = Field(default_factory=dict)  # none: the firing's variables are sent as they are
    # Only an admin may point a webhook at loopback or private addresses (SSRF into the cluster).
    allow_private_network: bool = False
    max_attempts: int = Field(default=5, ge=1, le=20)


class AutomationCreated(Event):
    type = "automations.automation_created"
    version = 2

    automation_id: UUID
    name: AutomationName
    description: AutomationDescription | None = None
    trigger: TriggerSpec
    action: LaunchAction | WebhookAction = Field(discriminator="kind")
    cooldown_s: Cooldown = Field(default=0, description="fires at most once per this many seconds")
    enabled: bool = True
    secret_generation: int = 1


class AutomationEnabled(Event):
    type = "automations.automation_enabled"
    version = 2

    automation_id: UUID
    scope: ReadScope = None


class AutomationDisabled(Event):
    type = "automations.automation_disabled"
    version = 2

    automation_id: UUID
    scope: ReadScope = None


class AutomationChanged(Event):
    """Its whole new spec, by its creator. Its id, creator, secret and whether it is on stay."""

    type = "automations.automation_changed"
    version = 1

    automation_id: UUID
    name: AutomationName
    description: AutomationDescription | None = None
    trigger: TriggerSpec
    action: LaunchAction | WebhookAction = Field(discriminator="kind")
    cooldown_s: Cooldown = Field(default=0, description="fires at most once per this many seconds")
    scope: ReadScope = None


class AutomationDeleted(Event):
    """It fires no more and is listed no more; its firings and deliveries stay, for the audit."""

    type = "automations.automation_deleted"
    version = 1

    automation_id: UUID
    scope: ReadScope = None


class WebhookSecretRotated(Event):
    """A webhook's secret is replaced by its next generation (the old one leaked, or a receiver moved): deliveries
    are signed with the new one, and with the previous one too until `previous_signs_until`, so that a receiver
    switches over without missing a delivery. By its creator."""

    type = "automations.webhook_secret_rotated"
    version = 1

    automation_id: UUID
    secret_generation: int = Field(ge=2)
    previous_signs_until: datetime | None = Field(description="null: the previous secret signs nothing from now on")
    scope: ReadScope = None


class AutomationFired(Event):
    """The automation's action for one event is done (a job enqueued, a webhook delivered or given up)."""

    type = "automations.automation_fired"
    version = 2

    automation_id: UUID
    event_id: UUID
    event_type: str
    outcome: FiringOutcome
    job_id: UUID | None = None
    detail: Note | None = None
    # The event that fired it is about this scope (else the automation's): the firing tells as much as it.
    scope: ReadScope = None


class FiringRetried(Event):
    """A firing that failed or was skipped (its cooldown), to be carried out again: the webhook delivered anew,
    under the same delivery id, or the job enqueued. By its automation's creator or an admin."""

    type = "automations.firing_retried"
    version = 1

    automation_id: UUID
    event_id: UUID
    scope: ReadScope = None


class WebhookAttempted(Event):
    type = "automations.webhook_attempted"
    version = 2

    automation_id: UUID
    event_id: UUID
    attempt: int = Field(ge=1)
    url: WebhookUrl
    status_code: int | None = None
    error: Note | None = None
    duration_ms: float
    scope: ReadScope = None
