"""The trigger read model: automations, and which events fired which automation (exactly once).

Matching happens here, in the projection's transaction: a firing row per (automation, event) is written
with the batch's positions, so redelivery or a restart never records one twice. The action itself is
carried out by services/automations/runner.py, which reads the pending firings; the events it appends
(a job enqueued, a webhook attempted, the automation fired) come back here and close the firing.

Cooldown: an automation that fired less than `cooldown_s` before (by event time) on an event of the same
team (entity) or registered model records the firing as skipped, which also stops loops (a job that logs the
very artifact that triggers it). Per team: an automation watching every team fires for each, and one team's
activity neither holds up another's nor shows to it as a skipped firing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from modelreg.events.artifacts import ArtifactVersionLogged, ArtifactVersionTagged
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
from modelreg.events.envelope import Envelope
from modelreg.events.launch import JobEnqueued
from modelreg.events.registry import AliasAdded, ModelTagged, VersionLinked
from modelreg.events.runs import MetricsLogged, RunFinished
from modelreg.projections.migrations import Migration
from modelreg.projections.projection import Projection, Statement, handles

SCHEMA_V1 = """
CREATE TABLE automations (
    automation_id uuid PRIMARY KEY,
    name text NOT NULL,
    description text,
    trigger jsonb NOT NULL,
    action jsonb NOT NULL,
    trigger_event text NOT NULL,
    cooldown_s double precision NOT NULL,
    enabled boolean NOT NULL,
    secret_generation int NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    last_fired_at timestamptz
);
CREATE INDEX automations_by_trigger ON automations (trigger_event) WHERE enabled;
CREATE TABLE automation_firings (
    automation_id uuid NOT NULL,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    stream text NOT NULL,
    actor text NOT NULL,
    variables jsonb NOT NULL,
    status text NOT NULL,
    job_id uuid,
    detail text,
    occurred_at timestamptz NOT NULL,
    done_at timestamptz,
    PRIMARY KEY (automation_id, event_id)
);
CREATE INDEX automation_firings_pending ON automation_firings (occurred_at) WHERE status = 'pending';
CREATE TABLE webhook_deliveries (
    event_id uuid PRIMARY KEY,
    automation_id uuid NOT NULL,
    trigger_event_id uuid NOT NULL,
    attempt int NOT NULL,
    url text NOT NULL,
    status_code int,
    error text,
    duration_ms double precision NOT NULL,
    attempted_at timestamptz NOT NULL
);
CREATE INDEX webhook_deliveries_by_automation ON webhook_deliveries (automation_id, attempted_at DESC);
"""

_CREATED = """
INSERT INTO automations (automation_id, name, description, trigger, action, trigger_event, cooldown_s, enabled,
                         secret_generation, created_at, created_by, switched_at, switched_on)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ARRAY[$10::timestamptz], ARRAY[$8::boolean])
ON CONFLICT DO NOTHING
"""

# A trigger's pattern, matched whole. One PostgreSQL refuses (automations created before patterns were checked
# by PostgreSQL at the door, or beyond a limit it reaches only on some subjects) matches nothing: an error
# here would park the stream of every event of the trigger's kind.
TRIGGERS_V2 = """
CREATE FUNCTION modelreg_whole_match(subject text, pattern text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN subject ~ ('^(?:' || pattern || ')$');
EXCEPTION WHEN invalid_regular_expression OR program_limit_exceeded THEN
    RETURN false;
END
$$;
"""

# A pattern with a back-reference (events/automations.py, has_back_reference; refused at the door since this version)
# matches nothing: matching one can take time exponential in the subject's length, and one such trigger held up
# every projection of the process for 45 s on a 40-character alias.
TRIGGERS_V3 = r"""
CREATE OR REPLACE FUNCTION modelreg_whole_match(subject text, pattern text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF pattern ~ '(^|[^\\])(\\\\)*\\[1-9]' THEN
        RETURN false;
    END IF;
    RETURN subject ~ ('^(?:' || pattern || ')$');
EXCEPTION WHEN invalid_regular_expression OR program_limit_exceeded THEN
    RETURN false;
END
$$;
"""

# A cooldown is per team or registered model: its firings are looked up by automation and time.
TRIGGERS_V4 = """
CREATE INDEX automation_firings_fired ON automation_firings (automation_id, occurred_at) WHERE status <> 'skipped';
"""

# A metric threshold fires once per run, when the run first crosses it: its firings are looked up by run.
TRIGGERS_V5 = """
CREATE INDEX automation_firings_by_run ON automation_firings (automation_id, (variables ->> 'run_id'))
    WHERE event_type = 'runs.metrics_logged';
"""

# A deleted automation fires no more and is listed no more; its firings stay.
TRIGGERS_V6 = """
ALTER TABLE automations ADD COLUMN deleted_at timestamptz;
"""
# A failed or skipped firing may be carried out again (retryFiring): how many times it was, which also tells the
# runner a retried firing from the same firing carried out before.
TRIGGERS_V7 = """
ALTER TABLE automation_firings ADD COLUMN retries int NOT NULL DEFAULT 0;
CREATE INDEX webhook_deliveries_by_firing ON webhook_deliveries (automation_id, trigger_event_id, attempt);
"""
# When an automation was switched on and off, for matching an event by the time it happened rather than by when the
# projection reads it: a replay of several partitions may read an event before a switch that came earlier, or after
# one that came later. Rows from before keep one switch, at their creation, to their state now.
TRIGGERS_V8 = """
ALTER TABLE automations ADD COLUMN switched_at timestamptz[], ADD COLUMN switched_on boolean[];
UPDATE automations SET switched_at = ARRAY[created_at], switched_on = ARRAY[enabled];
ALTER TABLE automations ALTER COLUMN switched_at SET NOT NULL, ALTER COLUMN switched_on SET NOT NULL;
CREATE INDEX automations_by_kind ON automations (trigger_event);
DROP INDEX automations_by_trigger;
"""

# A webhook's rotated secret: the generation it replaced, and until when that one signs beside it.
TRIGGERS_V9 = """
ALTER TABLE automations ADD COLUMN previous_secret_generation int, ADD COLUMN previous_secret_until timestamptz;
"""


def was_on_at(automation: Mapping[str, Any], at: datetime) -> bool:
    """Whether the automation was switched on when an event happened at `at`: the last switch recorded at or
    before it decides (its creation is the first). _FIRED_BY asks the same in SQL."""
    state = False
    for switched_at, on in zip(automation["switched_at"], automation["switched_on"], strict=True):
        if switched_at <= at:
            state = on
    return state


_CHANGED = """
UPDATE automations SET name = $2, description = $3, trigger = $4, action = $5, trigger_event = $6, cooldown_s = $7
WHERE automation_id = $1
"""
_DELETED = """
UPDATE automations
SET enabled = false, deleted_at = $2, switched_at = switched_at || $2::timestamptz, switched_on = switched_on || false
WHERE automation_id = $1
"""

# Rotated again while the previous secret still signs (its new secret lost with an answer, say), the one receivers
# may still hold stays the previous: the one in between never reached them.
_ROTATED = """
UPDATE automations
SET previous_secret_generation = CASE WHEN previous_secret_until > $4 THEN previous_secret_generation
                                      ELSE secret_generation END,
    secret_generation = $2, previous_secret_until = $3
WHERE automation_id = $1
"""

_ENABLED = """
UPDATE automations
SET enabled = $2, switched_at = switched_at || $3::timestamptz, switched_on = switched_on || $2::boolean
WHERE automation_id = $1
"""

# $1 trigger kind, $2 event id, $3 event type, $4 stream, $5 actor, $6 variables, $7 occurred_at,
# then the facts a trigger's scope and filter are checked against; $16-$18 a metrics batch's lowest and highest
# value of each metric, with their steps.
_FIRED_BY = """
WITH matched AS (
    SELECT a.automation_id, crossed.point,
           a.cooldown_s > 0 AND EXISTS (
               SELECT 1 FROM automation_firings f
               WHERE f.automation_id = a.automation_id AND f.status <> 'skipped'
                 AND f.occurred_at > $7::timestamptz - make_interval(secs => a.cooldown_s)
                 AND CASE WHEN $12::text IS NOT NULL THEN f.variables ->> 'registered_model' = $12
                          ELSE NOT f.variables ? 'registered_model' AND f.variables ->> 'entity' = $8 END
           ) AS cooling
    FROM automations a
    -- The batch's point furthest past the threshold (its highest value for > and >=, its lowest for < and <=).
    LEFT JOIN LATERAL (
        SELECT jsonb_build_object('metric', m.key, 'value', m.value, 'step', m.step) AS point
        FROM unnest($16::text[], $17::float8[], $18::bigint[]) AS m(key, value, step)
        WHERE a.trigger->>'metric' IS NOT NULL AND m.key = a.trigger->>'metric' AND CASE a.trigger->>'op'
            WHEN '>' THEN m.value > (a.trigger->>'threshold')::float8
            WHEN '>=' THEN m.value >= (a.trigger->>'threshold')::float8
            WHEN '<' THEN m.value < (a.trigger->>'threshold')::float8
            WHEN '<=' THEN m.value <= (a.trigger->>'threshold')::float8 END
        ORDER BY CASE WHEN a.trigger->>'op' IN ('>', '>=') THEN -m.value ELSE m.value END
        LIMIT 1
    ) crossed ON true
    WHERE a.trigger_event = $1
      AND coalesce((SELECT s.is_on FROM unnest(a.switched_at, a.switched_on) WITH ORDINALITY AS s(at, is_on, n)
                    WHERE s.at <= $7 ORDER BY s.n DESC LIMIT 1), false)
      AND (a.trigger->>'entity' IS NULL OR a.trigger->>'entity' = $8)
      AND (a.trigger->>'project' IS NULL OR a.trigger->>'project' = $9)
      AND (a.trigger->>'collection' IS NULL OR a.trigger->>'collection' = $10)
      AND (a.trigger->>'artifact_type' IS NULL OR a.trigger->>'artifact_type' = $11)
      AND (a.trigger->>'registered_model' IS NULL OR a.trigger->>'registered_model' = $12)
      AND (a.trigger->>'alias_pattern' IS NULL OR modelreg_whole_match($13, a.trigger->>'alias_pattern'))
      AND (a.trigger->>'tag_pattern' IS NULL OR modelreg_whole_match($14, a.trigger->>'tag_pattern'))
      AND (a.trigger->>'run_state' IS NULL OR a.trigger->>'run_state' = $15)
      -- Once per run, when it first crosses: a run above the threshold for 10,000 steps fired once per batch.
      -- The run by its team and project too: another team's run of that id kept it from firing (and told so).
      AND (a.trigger->>'metric' IS NULL OR crossed.point IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM automation_firings f
            WHERE f.automation_id = a.automation_id AND f.event_type = 'runs.metrics_logged'
              AND f.variables ->> 'run_id' = $6::jsonb ->> 'run_id'
              AND f.variables ->> 'entity' = $8 AND f.variables ->> 'project' = $9))
),
recorded AS (
    INSERT INTO automation_firings AS f
        (automation_id, event_id, event_type, stream, actor, variables, status, detail, occurred_at)
    SELECT automation_id, $2, $3, $4, $5, $6::jsonb || coalesce(point, '{}'),
           CASE WHEN cooling THEN 'skipped' ELSE 'pending' END,
           CASE WHEN cooling THEN 'cooldown: fired less than cooldown_s before for this team or model' END, $7
    FROM matched
    ON CONFLICT (automation_id, event_id) DO UPDATE
        SET event_type = EXCLUDED.event_type, stream = EXCLUDED.stream, actor = EXCLUDED.actor,
            variables = EXCLUDED.variables, occurred_at = EXCLUDED.occurred_at
        WHERE f.stream = ''
    RETURNING automation_id, status
)
UPDATE automations a SET last_fired_at = $7
FROM recorded r WHERE a.automation_id = r.automation_id AND r.status <> 'skipped'
"""

# The event that fired the automation may be read after the one that closed the firing: they are on two streams,
# which a replay of several partitions applies in no set order (a rebuild, an imported registry). The firing is then
# recorded closed, its event's facts to come (stream ''; _FIRED_BY fills them in): left out, it was recorded
# pending when its event came, and carried out again.
_CLOSED = """
INSERT INTO automation_firings AS f
    (automation_id, event_id, event_type, stream, actor, variables, status, job_id, detail, occurred_at, done_at)
VALUES ($1, $2, $7, '', '', '{}', $3, $4, $5, $6, $6)
ON CONFLICT (automation_id, event_id) DO UPDATE
    SET status = EXCLUDED.status, job_id = coalesce(EXCLUDED.job_id, f.job_id), detail = EXCLUDED.detail,
        done_at = EXCLUDED.done_at
    WHERE f.status = 'pending'
"""

_RETRIED = """
UPDATE automation_firings SET status = 'pending', detail = NULL, done_at = NULL, retries = retries + 1
WHERE automation_id = $1 AND event_id = $2 AND status IN ('failed', 'skipped')
"""

_JOB_OF_FIRING = """
UPDATE automation_firings SET job_id = $3 WHERE automation_id = $1 AND event_id = $2 AND job_id IS NULL
"""

_ATTEMPTED = """
INSERT INTO webhook_deliveries
    (event_id, automation_id, trigger_event_id, attempt, url, status_code, error, duration_ms, attempted_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING
"""

_KINDS = "SELECT DISTINCT trigger_event FROM automations"

_WAKE_RUNNER = Statement("SELECT pg_notify('modelreg_firings', '')", ())


def _facts(**known: Any) -> dict[str, Any]:
    facts: dict[str, Any] = dict.fromkeys(
        ("entity", "project", "collection", "artifact_type", "registered_model", "alias", "tag", "run_state")
    )
    facts.update(known)
    return facts


class TriggersProjection(Projection):
    name = "triggers"
    tables = ("automations", "automation_firings", "webhook_deliveries")
    migrations = (
        Migration("triggers", 1, SCHEMA_V1),
        Migration("triggers", 2, TRIGGERS_V2),
        Migration("triggers", 3, TRIGGERS_V3),
        Migration("triggers", 4, TRIGGERS_V4),
        Migration("triggers", 5, TRIGGERS_V5),
        Migration("triggers", 6, TRIGGERS_V6),
        Migration("triggers", 7, TRIGGERS_V7),
        Migration("triggers", 8, TRIGGERS_V8, rewrites="records when each automation was switched"),
        Migration("triggers", 9, TRIGGERS_V9),
    )

    def shown_to_commands(self) -> set[str]:
        """Only automations' own settings and retried firings: for registry events it records what to do, and
        commands do not wait for that (the automation runner does the rest)."""
        return {
            AutomationCreated.type,
            AutomationChanged.type,
            AutomationEnabled.type,
            AutomationDisabled.type,
            AutomationDeleted.type,
            WebhookSecretRotated.type,
            FiringRetried.type,
        }

    def __init__(self) -> None:
        super().__init__()
        # The trigger kinds some automation (enabled or not) listens to, read at the start of each batch:
        # matching an event no automation can match is left out. Automations are never deleted, so the set
        # only grows, and the batch's own creations join it as they come. None: not read, match everything.
        self._kinds: set[str] | None = None

    async def prepare(self, conn: Any, events: Sequence[Envelope] = ()) -> None:
        self._kinds = {r["trigger_event"] for r in await conn.fetch(_KINDS)}

    def batch_statements(self, events: Sequence[Envelope]) -> list[tuple[str, Statement]]:
        """One wake of the runner a batch, at its end (PostgreSQL sends it at the commit whatever its place). One per
        event stood between two closed firings of an automation, on one stream: each close was a round trip of its
        own instead of one executemany for the batch's."""
        statements = super().batch_statements(events)
        kept = [(stream, statement) for stream, statement in statements if statement is not _WAKE_RUNNER]
        return kept if len(kept) == len(statements) else [*kept, ("", _WAKE_RUNNER)]

    def _fire(
        self,
        kind: str,
        envelope: Envelope,
        facts: dict[str, Any],
        metrics: tuple[list[str], list[float], list[int]] = ([], [], []),
    ) -> list[Statement]:
        if self._kinds is not None and kind not in self._kinds:
            return []  # the SQL below would match no automation
        variables = {
            **{k: v for k, v in facts.items() if v is not None},
            "event_id": str(envelope.id),
            "event_type": envelope.type,
            "actor": str(envelope.actor),
            "correlation_id": str(envelope.correlation_id),  # a launched job's id, for what it did
            **{k: str(v) for k, v in envelope.payload.model_dump().items() if k.endswith("_id") and v is not None},
        }
        args = (
            kind,
            envelope.id,
            envelope.type,
            envelope.stream,
            str(envelope.actor),
            variables,
            envelope.occurred_at,
            facts["entity"],
            facts["project"],
            facts["collection"],
            facts["artifact_type"],
            facts["registered_model"],
            facts["alias"],
            facts["tag"],
            facts["run_state"],
            *metrics,
        )
        return [Statement(_FIRED_BY, args), _WAKE_RUNNER]

    @handles(AutomationCreated)
    def automation_created(self, e: AutomationCreated, envelope: Envelope) -> list[Statement]:
        if self._kinds is not None:
            self._kinds.add(e.trigger.event)
        args = (
            e.automation_id,
            e.name,
            e.description,
            e.trigger.model_dump(mode="json", exclude_none=True),
            e.action.model_dump(mode="json"),
            e.trigger.event,
            e.cooldown_s,
            e.enabled,
            e.secret_generation,
            envelope.occurred_at,
            str(envelope.actor),
        )
        return [Statement(_CREATED, args)]

    @handles(AutomationEnabled)
    def automation_enabled(self, e: AutomationEnabled, envelope: Envelope) -> list[Statement]:
        return [Statement(_ENABLED, (e.automation_id, True, envelope.occurred_at))]

    @handles(AutomationDisabled)
    def automation_disabled(self, e: AutomationDisabled, envelope: Envelope) -> list[Statement]:
        return [Statement(_ENABLED, (e.automation_id, False, envelope.occurred_at))]

    @handles(AutomationChanged)
    def automation_changed(self, e: AutomationChanged, envelope: Envelope) -> list[Statement]:
        if self._kinds is not None:
            self._kinds.add(e.trigger.event)
        args = (
            e.automation_id,
            e.name,
            e.description,
            e.trigger.model_dump(mode="json", exclude_none=True),
            e.action.model_dump(mode="json"),
            e.trigger.event,
            e.cooldown_s,
        )
        return [Statement(_CHANGED, args)]

    @handles(AutomationDeleted)
    def automation_deleted(self, e: AutomationDeleted, envelope: Envelope) -> list[Statement]:
        return [Statement(_DELETED, (e.automation_id, envelope.occurred_at))]

    @handles(WebhookSecretRotated)
    def webhook_secret_rotated(self, e: WebhookSecretRotated, envelope: Envelope) -> list[Statement]:
        args = (e.automation_id, e.secret_generation, e.previous_signs_until, envelope.occurred_at)
        return [Statement(_ROTATED, args)]

    @handles(ArtifactVersionLogged)
    def artifact_version_logged(self, e: ArtifactVersionLogged, envelope: Envelope) -> list[Statement]:
        facts = _facts(entity=e.entity, project=e.project, collection=e.name, artifact_type=e.artifact_type)
        return self._fire("artifact_version_logged", envelope, facts)

    @handles(VersionLinked)
    def version_linked(self, e: VersionLinked, envelope: Envelope) -> list[Statement]:
        return self._fire("version_linked", envelope, _facts(registered_model=e.registered_model))

    @handles(AliasAdded)
    def alias_added(self, e: AliasAdded, envelope: Envelope) -> list[Statement]:
        return self._fire("alias_added", envelope, _facts(registered_model=e.registered_model, alias=e.alias))

    @handles(ModelTagged)
    def model_tagged(self, e: ModelTagged, envelope: Envelope) -> list[Statement]:
        return self._fire("tag_added", envelope, _facts(registered_model=e.registered_model, tag=e.tag))

    @handles(ArtifactVersionTagged)
    def artifact_version_tagged(self, e: ArtifactVersionTagged, envelope: Envelope) -> list[Statement]:
        facts = _facts(entity=e.entity, project=e.project, collection=e.name, tag=e.tag)
        return self._fire("tag_added", envelope, facts)

    @handles(RunFinished)
    def run_finished(self, e: RunFinished, envelope: Envelope) -> list[Statement]:
        facts = _facts(entity=e.entity, project=e.project, run_state="finished" if e.state == "finished" else "failed")
        return self._fire("run_finished", envelope, facts)

    @handles(MetricsLogged)
    def metrics_logged(self, e: MetricsLogged, envelope: Envelope) -> list[Statement]:
        if self._kinds is not None and "metric_threshold" not in self._kinds:
            return []  # the common case, and a batch may hold thousands of points
        # A threshold is crossed in a batch when its lowest or its highest value crosses it: two points per
        # metric say as much as every point would.
        keys, values, steps = [], [], []
        for s in e.series:
            lowest = min(range(len(s.values)), key=s.values.__getitem__)
            highest = max(range(len(s.values)), key=s.values.__getitem__)
            for at in (lowest, highest):
                keys.append(s.key)
                values.append(s.values[at])
                steps.append(s.steps[at] if s.steps is not None else s.first_step + at)
        facts = _facts(entity=e.entity, project=e.project)
        return self._fire("metric_threshold", envelope, facts, (keys, values, steps))

    @handles(JobEnqueued)
    def job_enqueued(self, e: JobEnqueued, envelope: Envelope) -> list[Statement]:
        if e.triggered_by is None:
            return []
        return [Statement(_JOB_OF_FIRING, (e.triggered_by.automation_id, e.triggered_by.event_id, e.job_id))]

    @handles(AutomationFired)
    def automation_fired(self, e: AutomationFired, envelope: Envelope) -> list[Statement]:
        args = (e.automation_id, e.event_id, e.outcome, e.job_id, e.detail, envelope.occurred_at, e.event_type)
        # The runner takes a few pending firings per automation a pass: one closed lets the next in.
        return [Statement(_CLOSED, args), _WAKE_RUNNER]

    @handles(FiringRetried)
    def firing_retried(self, e: FiringRetried, envelope: Envelope) -> list[Statement]:
        return [Statement(_RETRIED, (e.automation_id, e.event_id)), _WAKE_RUNNER]

    @handles(WebhookAttempted)
    def webhook_attempted(self, e: WebhookAttempted, envelope: Envelope) -> list[Statement]:
        args = (
            envelope.id,
            e.automation_id,
            e.event_id,
            e.attempt,
            e.url,
            e.status_code,
            e.error,
            e.duration_ms,
            envelope.occurred_at,
        )
        return [Statement(_ATTEMPTED, args)]
