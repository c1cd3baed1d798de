"""The registry read model: runs, artifact collections and versions, registered models, links, aliases.

Ordinals (v0, v1, ...) are assigned here, in stream order, from per-collection counters; an event's own
time (never now()) is what gets stored, so a replay rebuilds identical tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from modelreg.events.artifacts import (
    ArtifactVersionDeleted,
    ArtifactVersionEdited,
    ArtifactVersionLogged,
    ArtifactVersionTagged,
    ArtifactVersionUntagged,
    ArtifactVersionUsed,
)
from modelreg.events.envelope import Envelope
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
    RunConfigUpdated,
    RunDescribed,
    RunFinished,
    RunHeartbeat,
    RunResumed,
    RunStarted,
    RunSummaryUpdated,
    RunSynced,
)
from modelreg.projections.metric_batches import LAST_CHUNKS, Folded, last_chunks, metrics_of
from modelreg.projections.metric_chunks import (
    CHUNK_POINTS,
    METRICS_LOGGED,
    SCHEMA_CHUNK_SUMMARIES,
    SCHEMA_CHUNKS,
    packed_series,
)
from modelreg.projections.migrations import Migration
from modelreg.projections.projection import Projection, Statement, handles
from modelreg.projections.readable import FILES_V1, FILES_V2, FILES_V3, FILES_V4

SCHEMA_V1 = """
CREATE TABLE runs (
    entity text NOT NULL,
    project text NOT NULL,
    run_id text NOT NULL,
    name text,
    job_type text,
    config jsonb NOT NULL,
    environment jsonb NOT NULL,
    state text NOT NULL,
    exit_code int,
    summary jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at timestamptz NOT NULL,
    started_by text NOT NULL,
    finished_at timestamptz,
    PRIMARY KEY (entity, project, run_id)
);
CREATE TABLE artifact_collections (
    entity text NOT NULL,
    project text NOT NULL,
    name text NOT NULL,
    artifact_type text NOT NULL,
    next_version int NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (entity, project, name)
);
CREATE TABLE artifact_versions (
    id uuid PRIMARY KEY,
    entity text NOT NULL,
    project text NOT NULL,
    name text NOT NULL,
    artifact_type text NOT NULL,
    version_index int NOT NULL,
    digest text NOT NULL,
    manifest jsonb NOT NULL,
    description text,
    metadata jsonb NOT NULL,
    aliases text[] NOT NULL,
    logged_by_run text,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    UNIQUE (entity, project, name, version_index)
);
CREATE TABLE artifact_usages (
    artifact_version_id uuid NOT NULL,
    entity text NOT NULL,
    project text NOT NULL,
    run_id text NOT NULL,
    used_at timestamptz NOT NULL,
    PRIMARY KEY (artifact_version_id, entity, project, run_id)
);
CREATE TABLE registered_models (
    name text PRIMARY KEY,
    next_version int NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL
);
CREATE TABLE model_versions (
    registered_model text NOT NULL,
    version_index int NOT NULL,
    artifact_version_id uuid NOT NULL,
    linked_at timestamptz NOT NULL,
    linked_by text NOT NULL,
    PRIMARY KEY (registered_model, version_index),
    UNIQUE (registered_model, artifact_version_id)
);
CREATE TABLE model_aliases (
    registered_model text NOT NULL,
    alias text NOT NULL,
    artifact_version_id uuid NOT NULL,
    set_at timestamptz NOT NULL,
    set_by text NOT NULL,
    PRIMARY KEY (registered_model, alias)
);
"""

_RUN_STARTED = """
INSERT INTO runs (entity, project, run_id, name, job_type, config, environment, state, started_at, started_by,
                  started_offline_at, notes, tags, group_name)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, $9, $10, $11, $12, $13)
ON CONFLICT DO NOTHING
"""

# The summary a run finishes with is merged into what it set while running: a key only a `summary_updated`
# event carried (a client that sends only the numbers it logged, a resumed run's earlier keys) stays. A v1
# finish replaced it ($9), and a rebuild replays it so.
_RUN_FINISHED = """
UPDATE runs SET state = $4, exit_code = $5, summary = CASE WHEN $9 THEN $6 ELSE summary || $6 END,
                finished_at = $7, finished_offline_at = $8
WHERE entity = $1 AND project = $2 AND run_id = $3
"""

# The collection's counter hands out the next ordinal; the version row takes it. One statement per version:
# what a version applied alone (a batch being searched for its failing event, a parked stream) runs. A version
# id already logged (the same event copied to the log again, or copies of one command accepted at once) takes
# nothing: parking the collection's stream would hold up its owner for what any caller can send.
_VERSION_LOGGED = """
WITH collection AS (
    INSERT INTO artifact_collections AS c (entity, project, name, artifact_type, next_version, created_at)
    SELECT $2::text, $3::text, $4::text, $5::text, 1, $11::timestamptz
    WHERE NOT EXISTS (SELECT 1 FROM artifact_versions WHERE id = $1)
    ON CONFLICT (entity, project, name) DO UPDATE SET next_version = c.next_version + 1
    RETURNING c.next_version - 1 AS version_index
)
INSERT INTO artifact_versions (id, entity, project, name, artifact_type, version_index, digest, manifest,
                               description, metadata, aliases, logged_by_run, created_at, created_by, file_digests)
SELECT $1, $2, $3, $4, $5, collection.version_index, $6, $7, $8, $9, $10, $12, $11, $13, $14 FROM collection
"""

# A batch's versions take their ordinals from counters read once (RegistryProjection.prepare) and each
# collection's counter is written once: updating one counter row per version, hundreds of times in one
# transaction, cost more than inserting the versions.
_VERSION_NUMBERED = """
INSERT INTO artifact_versions (id, entity, project, name, artifact_type, version_index, digest, manifest,
                               description, metadata, aliases, logged_by_run, created_at, created_by, file_digests)
VALUES ($1, $2, $3, $4, $5, $15, $6, $7, $8, $9, $10, $12, $11, $13, $14)
"""

_COLLECTION_COUNTED = """
INSERT INTO artifact_collections AS c (entity, project, name, artifact_type, next_version, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (entity, project, name) DO UPDATE SET next_version = EXCLUDED.next_version
"""

_COUNTERS = """
SELECT c.entity, c.project, c.name, c.next_version
FROM artifact_collections c
JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(entity, project, name) USING (entity, project, name)
"""

_VERSION_USED = """
INSERT INTO artifact_usages (artifact_version_id, entity, project, run_id, used_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
"""


# An alias is unique per registered model: setting it on a version moves it there. Adding and removing
# share one statement (the last argument says which) so that a model's alias moves pipeline together.
_ALIAS_CHANGED = """
WITH removed AS (
    DELETE FROM model_aliases
    WHERE $6 AND registered_model = $1 AND alias = $2 AND artifact_version_id = $3
)
INSERT INTO model_aliases (registered_model, alias, artifact_version_id, set_at, set_by)
SELECT $1, $2, $3, $4, $5 WHERE NOT $6
ON CONFLICT (registered_model, alias)
DO UPDATE SET artifact_version_id = EXCLUDED.artifact_version_id, set_at = EXCLUDED.set_at, set_by = EXCLUDED.set_by
"""


SCHEMA_V2 = """
CREATE TABLE run_metrics (
    entity text NOT NULL,
    project text NOT NULL,
    run_id text NOT NULL,
    key text NOT NULL,
    step int NOT NULL,
    value double precision NOT NULL,
    logged_at timestamptz NOT NULL,
    PRIMARY KEY (entity, project, run_id, key, step)
);
"""

SCHEMA_V3 = """
ALTER TABLE registered_models
    ADD COLUMN description text,
    ADD COLUMN inputs text,
    ADD COLUMN outputs text,
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}',
    ADD COLUMN updated_at timestamptz;
CREATE INDEX registered_models_by_tag ON registered_models USING gin (tags);
"""


# A link, a card change and a tag change each may create the registered_models row, so they keep log
# order among themselves (rows="model"). As three statements, a stream that interleaves them (link, tag,
# link, card...) ran one round trip per change; as one statement (the second argument says which change,
# each part guarded by it) a batch's model changes run as one executemany. $1 model, $2 change, $3 version,
# $4 time, $5 actor, $6-$8 card, $9 tag. Linking the same version twice is a no-op and burns no ordinal; the
# card or a tag may come before the first link (the model then exists with no version yet).
_MODEL_CHANGED = """
WITH model AS (
    INSERT INTO registered_models AS m (name, next_version, created_at, created_by)
    SELECT $1, 1, $4, $5
    WHERE $2 = 'link'
      AND NOT EXISTS (SELECT 1 FROM model_versions WHERE registered_model = $1 AND artifact_version_id = $3)
    ON CONFLICT (name) DO UPDATE SET next_version = m.next_version + 1
    RETURNING m.next_version - 1 AS version_index
), linked AS (
    INSERT INTO model_versions (registered_model, version_index, artifact_version_id, linked_at, linked_by)
    SELECT $1, model.version_index, $3, $4, $5 FROM model
), card AS (
    INSERT INTO registered_models AS m (name, next_version, created_at, created_by, description, inputs, outputs,
                                        updated_at)
    SELECT $1, 0, $4, $5, $6, $7, $8, $4 WHERE $2 = 'card'
    ON CONFLICT (name) DO UPDATE
    SET description = EXCLUDED.description, inputs = EXCLUDED.inputs, outputs = EXCLUDED.outputs,
        updated_at = EXCLUDED.updated_at
)
INSERT INTO registered_models AS m (name, next_version, created_at, created_by, tags, updated_at)
SELECT $1, 0, $4, $5, CASE WHEN $2 = 'tag' THEN ARRAY[$9::text] ELSE '{}'::text[] END, $4
WHERE $2 IN ('tag', 'untag')
ON CONFLICT (name) DO UPDATE
SET tags = CASE WHEN $2 = 'tag' THEN (SELECT array_agg(DISTINCT t ORDER BY t) FROM unnest(m.tags || $9::text) AS t)
                ELSE array_remove(m.tags, $9::text) END,
    updated_at = EXCLUDED.updated_at
"""


def _version_rows(e: ArtifactVersionLogged | ArtifactVersionTagged | ArtifactVersionUntagged) -> str:
    """A version's insert and its tag changes keep their order, and commute with other versions': a batch's
    versions then go in one executemany however tags interleave in their collection's stream, instead of one
    round trip per interleaving. Safe because a version's row is written from its own event alone: its ordinal
    comes from counters read before the batch (`_VERSION_NUMBERED`), or from the counter it moves itself when
    it is its collection's only version in the batch. An edit or a deletion, which moves aliases between
    versions, still orders with everything of the stream."""
    return f"version {e.artifact_version_id}"


def _heard_from(e: MetricsLogged, envelope: Envelope) -> Statement:
    return Statement(_RUN_HEARD_FROM, (e.entity, e.project, e.run_id, envelope.occurred_at), rows="run")


def _model_changed(
    model: str,
    change: str,
    envelope: Envelope,
    *,
    version: object = None,
    card: tuple[str | None, str | None, str | None] = (None, None, None),
    tag: str | None = None,
) -> Statement:
    args = (model, change, version, envelope.occurred_at, str(envelope.actor), *card, tag)
    return Statement(_MODEL_CHANGED, args, rows="model")


_VERSION_UNLINKED = """
WITH unaliased AS (
    DELETE FROM model_aliases WHERE registered_model = $1 AND artifact_version_id = $2
)
DELETE FROM model_versions WHERE registered_model = $1 AND artifact_version_id = $2
"""


# Version tags and metadata are what versions are searched by (`tags @> ...`, `metadata @> ...`).
SCHEMA_V4 = """
ALTER TABLE artifact_versions ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
CREATE INDEX artifact_versions_by_tag ON artifact_versions USING gin (tags);
CREATE INDEX artifact_versions_by_metadata ON artifact_versions USING gin (metadata jsonb_path_ops);
CREATE TABLE protected_aliases (
    registered_model text NOT NULL,
    alias text NOT NULL,
    protected_at timestamptz NOT NULL,
    protected_by text NOT NULL,
    PRIMARY KEY (registered_model, alias)
);
"""

_VERSION_TAGS_CHANGED = """
UPDATE artifact_versions
SET tags = CASE WHEN $3 THEN (SELECT array_agg(DISTINCT t ORDER BY t) FROM unnest(tags || $2::text) AS t)
                ELSE array_remove(tags, $2::text) END
WHERE id = $1
"""

# Protecting and unprotecting share one statement (the last argument says which), as alias moves do: a
# model's protections changed back and forth in one batch then run as one executemany, not one round trip
# per change.
_PROTECTION_CHANGED = """
WITH unprotected AS (
    DELETE FROM protected_aliases WHERE NOT $5::boolean AND registered_model = $1 AND alias = $2
)
INSERT INTO protected_aliases (registered_model, alias, protected_at, protected_by)
SELECT $1, $2, $3::timestamptz, $4::text WHERE $5::boolean
ON CONFLICT DO NOTHING
"""


# A run recorded offline says when it reached the server (since SCHEMA_V8 every time here is the server's).
SCHEMA_V5 = """
ALTER TABLE runs ADD COLUMN synced_at timestamptz;
"""

_RUN_SYNCED = """
UPDATE runs SET synced_at = $4 WHERE entity = $1 AND project = $2 AND run_id = $3
"""


# Finding a project's runs, newest first, among 100,000 (`runs(...)` in graphql/runs.py). Search is a
# substring of the run id, name or job type, in any case: no b-tree finds that, and pg_trgm is not in
# every PostgreSQL (nor in the embedded one), so the lowercased text it looks in is kept in the row and
# in the indexes, whose leaves are then all a search reads (an index-only scan: no wide row, config and
# environment, is touched until the page is known). One index per filter keeps its pages an index range.
SCHEMA_V6 = """
ALTER TABLE runs ADD COLUMN search_text text
    GENERATED ALWAYS AS (lower(run_id || E'\\n' || coalesce(name, '') || E'\\n' || coalesce(job_type, ''))) STORED;
CREATE INDEX runs_newest ON runs (entity, project, started_at DESC, run_id DESC)
    INCLUDE (search_text, state, job_type, finished_at);
CREATE INDEX runs_newest_by_state ON runs (entity, project, state, started_at DESC, run_id DESC)
    INCLUDE (search_text, job_type);
CREATE INDEX runs_newest_by_job_type ON runs (entity, project, job_type, started_at DESC, run_id DESC)
    INCLUDE (search_text, state);
"""

# Which registered models link a version (its artifact page says so).
SCHEMA_V7 = """
CREATE INDEX IF NOT EXISTS model_versions_by_artifact_version ON model_versions (artifact_version_id);
"""

# Every time above is the server's time of receipt. A run recorded offline also keeps when its client says
# it started and finished (envelope.recorded_offline_at): its own history, shown labelled as such.
SCHEMA_V8 = """
ALTER TABLE runs ADD COLUMN started_offline_at timestamptz, ADD COLUMN finished_offline_at timestamptz;
"""


# What W&B scripts set and search runs by (modelreg.Api().runs(filters=...), projections/run_query.py): notes,
# tags and group from init; config and summary searched by containment (GIN, jsonb_path_ops also answers the
# jsonpath `@?`/`@@` operators); the runs a Launch job produced. Deleted artifact versions stay as rows
# (lineage and audit name them) but leave every ref and list.
SCHEMA_V10 = """
ALTER TABLE runs ADD COLUMN notes text, ADD COLUMN tags text[] NOT NULL DEFAULT '{}', ADD COLUMN group_name text;
CREATE INDEX runs_by_tag ON runs USING gin (tags);
CREATE INDEX runs_by_config ON runs USING gin (config jsonb_path_ops);
CREATE INDEX runs_by_summary ON runs USING gin (summary jsonb_path_ops);
CREATE INDEX runs_by_launch_job ON runs ((environment->'launch'->>'job_id'))
    WHERE environment->'launch'->>'job_id' IS NOT NULL;
ALTER TABLE artifact_versions ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_by text;
"""

# When a run's process last said it was alive (runs.run_heartbeat): a running run that beats, silent for long,
# is marked crashed (services/automations/runner.py). Runs of clients that never beat are never marked.
SCHEMA_V11 = """
ALTER TABLE runs ADD COLUMN last_heartbeat_at timestamptz;
CREATE INDEX runs_beating ON runs (last_heartbeat_at) WHERE state = 'running' AND last_heartbeat_at IS NOT NULL;
"""

# The running runs Launch jobs started, which the run supervisor looks over every few seconds for those whose
# attempt is over: few at any time, however many runs and jobs there were.
SCHEMA_V12 = """
CREATE INDEX runs_running_of_jobs ON runs ((environment -> 'launch' ->> 'job_id'))
    WHERE state = 'running' AND environment -> 'launch' ->> 'job_id' IS NOT NULL;
"""

# A version logged with aliases took them without taking them from its collection's other versions: several listed
# one alias, deleting an old one was refused for an alias its ref did not give, and an alias removed with the newest
# came back on an older one. The projection now moves them (_ALIASES_TAKEN); this keeps each stored alias on the
# newest version that holds it, as refs already read it.
SCHEMA_V13 = """
UPDATE artifact_versions o
SET aliases = (SELECT coalesce(array_agg(a ORDER BY a), '{}') FROM unnest(o.aliases) a WHERE NOT EXISTS (
    SELECT 1 FROM artifact_versions n
    WHERE n.entity = o.entity AND n.project = o.project AND n.name = o.name AND n.deleted_at IS NULL
      AND n.version_index > o.version_index AND a = ANY(n.aliases)))
WHERE o.deleted_at IS NULL AND o.aliases <> '{}';
"""

# An alias names one version of a collection: logged with one, a version takes it from the others, as an edit adding
# it does. Only the aliases the version holds as this runs: a copy of its event read again later (the log holds it
# twice) must not take back an alias moved on since.
_ALIASES_TAKEN = """
UPDATE artifact_versions o
SET aliases = (SELECT coalesce(array_agg(a ORDER BY a), '{}') FROM unnest(o.aliases) a WHERE a <> ALL(t.aliases))
FROM artifact_versions t
WHERE t.id = $1 AND t.deleted_at IS NULL AND o.entity = t.entity AND o.project = t.project AND o.name = t.name
  AND o.id <> t.id AND o.aliases && t.aliases
"""

_RUN_CONFIG_UPDATED = """
UPDATE runs SET config = (config || $4) - $5::text[] WHERE entity = $1 AND project = $2 AND run_id = $3
"""

# Written at finish too (RunFinished.summary is merged in): these are the values set while the run runs.
_RUN_SUMMARY_UPDATED = """
UPDATE runs SET summary = (summary || $4) - $5::text[] WHERE entity = $1 AND project = $2 AND run_id = $3
"""

_RUN_HEARTBEAT = """
UPDATE runs SET last_heartbeat_at = $4 WHERE entity = $1 AND project = $2 AND run_id = $3
"""

# A metric batch of a run whose client beats is word from it too (the client skips its beat then): its
# heartbeatAt moves on. A run that never beat keeps none, so that another tool's run is never marked crashed.
_RUN_HEARD_FROM = """
UPDATE runs SET last_heartbeat_at = $4
WHERE entity = $1 AND project = $2 AND run_id = $3 AND last_heartbeat_at < $4
"""

_RUN_RESUMED = """
UPDATE runs SET state = 'running', exit_code = NULL, finished_at = NULL, finished_offline_at = NULL,
                last_heartbeat_at = NULL
WHERE entity = $1 AND project = $2 AND run_id = $3
"""

_RUN_DESCRIBED = """
UPDATE runs SET name = coalesce($4, name), notes = coalesce($5, notes), tags = coalesce($6, tags),
                group_name = coalesce($7, group_name)
WHERE entity = $1 AND project = $2 AND run_id = $3
"""

# An alias names one version of a collection: added here, it leaves the others. A deleted version is edited no more
# (a log written before edits took the version's turn may hold an edit after the deletion: it changes nothing).
_VERSION_EDITED = """
WITH moved AS (
    UPDATE artifact_versions o SET aliases = (SELECT coalesce(array_agg(a), '{}') FROM unnest(o.aliases) a
                                              WHERE a <> ALL($4::text[]))
    WHERE o.entity = $6 AND o.project = $7 AND o.name = $8 AND o.id <> $1 AND o.aliases && $4::text[]
      AND EXISTS (SELECT 1 FROM artifact_versions t WHERE t.id = $1 AND t.deleted_at IS NULL)
)
UPDATE artifact_versions v
SET description = coalesce($2, v.description),
    metadata = coalesce($3, v.metadata),
    aliases = (SELECT coalesce(array_agg(DISTINCT a ORDER BY a), '{}') FROM unnest(v.aliases || $4::text[]) a
               WHERE a <> ALL($5::text[]))
WHERE v.id = $1 AND v.deleted_at IS NULL
"""

_VERSION_DELETED = """
UPDATE artifact_versions SET deleted_at = $2, deleted_by = $3, aliases = '{}' WHERE id = $1
"""


class RegistryProjection(Projection):
    name = "registry"
    tables = (
        "runs",
        "artifact_collections",
        "artifact_versions",
        "artifact_usages",
        "registered_models",
        "model_versions",
        "model_aliases",
        "run_metric_chunks",
        "protected_aliases",
    )
    migrations = (
        Migration("registry", 1, SCHEMA_V1),
        Migration("registry", 2, SCHEMA_V2),
        Migration("registry", 3, SCHEMA_V3),
        Migration("registry", 4, SCHEMA_V4),
        Migration("registry", 5, SCHEMA_V5),
        Migration("registry", 6, SCHEMA_V6),
        Migration("registry", 7, SCHEMA_V7),
        Migration("registry", 8, SCHEMA_V8),
        Migration("registry", 9, SCHEMA_CHUNKS),
        Migration("registry", 10, SCHEMA_V10),
        Migration("registry", 11, SCHEMA_V11),
        Migration("registry", 12, SCHEMA_V12),
        Migration("registry", 13, SCHEMA_V13, rewrites="keeps each alias on the newest version holding it"),
        Migration("registry", 14, SCHEMA_CHUNK_SUMMARIES),
        # Which versions hold a file, for /blobs downloads of callers with private scopes hidden (readable.py).
        Migration("registry_files", 1, FILES_V1),
        Migration("registry_files", 2, FILES_V2, rewrites="lists the file digests of every version"),
        Migration("registry_files", 3, FILES_V3, rewrites="drops the digests of references from every version's files"),
        Migration("registry_files", 4, FILES_V4),
    )

    def __init__(self) -> None:
        super().__init__()
        # Per collection, the next ordinal as stored when the batch began (None: not read for this batch).
        self._counters: dict[tuple[str, str, str], int] | None = None
        # The batch's metrics folded into their chunks (None: each event writes its own).
        self._metrics: Folded | None = None

    async def prepare(self, conn: Any, events: Sequence[Envelope] = ()) -> None:
        await self._read_counters(conn, events)
        # Two events of metrics or more: each metric's last chunk read once (metric_batches.py).
        metrics = [e.payload for e in events if isinstance(e.payload, MetricsLogged)]
        self._metrics = None
        if len(metrics) > 1:
            entities, projects, runs, keys = (list(column) for column in zip(*metrics_of(metrics), strict=True))
            self._metrics = last_chunks(await conn.fetch(LAST_CHUNKS, entities, projects, runs, keys))

    async def _read_counters(self, conn: Any, events: Sequence[Envelope]) -> None:
        logged = Counter(
            (e.payload.entity, e.payload.project, e.payload.name)
            for e in events
            if isinstance(e.payload, ArtifactVersionLogged)
        )
        # A collection with one version in the batch keeps the one-statement path: reading its counter
        # first would be a round trip more, not less.
        numbered = [key for key, versions in logged.items() if versions > 1]
        if not numbered:
            self._counters = None
            return
        entities, projects, names = (list(column) for column in zip(*numbered, strict=True))
        rows = await conn.fetch(_COUNTERS, entities, projects, names)
        self._counters = dict.fromkeys(numbered, 0)
        self._counters.update({(r["entity"], r["project"], r["name"]): r["next_version"] for r in rows})

    def batch_statements(self, events: Sequence[Envelope]) -> list[tuple[str, Statement]]:
        counters, metrics = self._counters, self._metrics
        self._counters = self._metrics = None  # read for this batch only
        if counters is None and metrics is None:
            return super().batch_statements(events)
        statements: list[tuple[str, Statement]] = []
        # Per numbered collection: its stream, and the type and time its row takes if this batch creates it.
        first_logged: dict[tuple[str, str, str], tuple[str, str, Any]] = {}
        for event in events:
            e = event.payload
            if metrics is not None and isinstance(e, MetricsLogged):
                metrics.add(e, event.occurred_at)  # no other statement reads or writes the chunks
                statements.append((event.stream, _heard_from(e, event)))
                continue
            for statement in self.statements(event):
                if (
                    counters is not None
                    and statement.sql is _VERSION_LOGGED  # not the statement moving its aliases that may follow
                    and isinstance(e, ArtifactVersionLogged)
                    and (key := (e.entity, e.project, e.name)) in counters
                ):
                    first_logged.setdefault(key, (event.stream, e.artifact_type, event.occurred_at))
                    statement = Statement(_VERSION_NUMBERED, (*statement.args, counters[key]), rows=statement.rows)
                    counters[key] += 1
                statements.append((event.stream, statement))
        for key, (stream, artifact_type, created_at) in first_logged.items():
            assert counters is not None
            args = (*key, artifact_type, counters[key], created_at)
            statements.append((stream, Statement(_COLLECTION_COUNTED, args, rows="collection")))
        if metrics is not None:
            statements += [("", Statement(sql, columns, rows="metrics")) for sql, columns in metrics.statements()]
        return statements

    @handles(RunStarted)
    def run_started(self, e: RunStarted, envelope: Envelope) -> list[Statement]:
        args = (e.entity, e.project, e.run_id, e.name, e.job_type, e.config, e.environment)
        received = (envelope.occurred_at, str(envelope.actor), envelope.recorded_offline_at)
        described = (e.notes, list(e.tags), e.group)
        return [Statement(_RUN_STARTED, (*args, *received, *described), rows="run")]

    @handles(RunConfigUpdated)
    def run_config_updated(self, e: RunConfigUpdated, envelope: Envelope) -> list[Statement]:
        args = (e.entity, e.project, e.run_id, e.changes, list(e.removed))
        return [Statement(_RUN_CONFIG_UPDATED, args, rows="run")]

    @handles(RunSummaryUpdated)
    def run_summary_updated(self, e: RunSummaryUpdated, envelope: Envelope) -> list[Statement]:
        args = (e.entity, e.project, e.run_id, e.changes, list(e.removed))
        return [Statement(_RUN_SUMMARY_UPDATED, args, rows="run")]

    @handles(RunHeartbeat)
    def run_heartbeat(self, e: RunHeartbeat, envelope: Envelope) -> list[Statement]:
        return [Statement(_RUN_HEARTBEAT, (e.entity, e.project, e.run_id, envelope.occurred_at), rows="run")]

    @handles(RunResumed)
    def run_resumed(self, e: RunResumed, envelope: Envelope) -> list[Statement]:
        return [Statement(_RUN_RESUMED, (e.entity, e.project, e.run_id), rows="run")]

    @handles(RunDescribed)
    def run_described(self, e: RunDescribed, envelope: Envelope) -> list[Statement]:
        tags = None if e.tags is None else list(e.tags)
        args = (e.entity, e.project, e.run_id, e.name, e.notes, tags, e.group)
        return [Statement(_RUN_DESCRIBED, args, rows="run")]

    @handles(RunFinished)
    def run_finished(self, e: RunFinished, envelope: Envelope) -> list[Statement]:
        args = (
            e.entity,
            e.project,
            e.run_id,
            e.state,
            e.exit_code,
            e.summary,
            envelope.occurred_at,
            envelope.recorded_offline_at,
            e.summary_replaces,
        )
        return [Statement(_RUN_FINISHED, args, rows="run")]

    @handles(RunSynced)
    def run_synced(self, e: RunSynced, envelope: Envelope) -> list[Statement]:
        return [Statement(_RUN_SYNCED, (e.entity, e.project, e.run_id, envelope.occurred_at), rows="run")]

    @handles(MetricsLogged)
    def metrics_logged(self, e: MetricsLogged, envelope: Envelope) -> list[Statement]:
        args = (e.entity, e.project, e.run_id, *packed_series(e.series), envelope.occurred_at, CHUNK_POINTS)
        return [Statement(METRICS_LOGGED, args, rows="metrics"), _heard_from(e, envelope)]

    @handles(ArtifactVersionLogged)
    def artifact_version_logged(self, e: ArtifactVersionLogged, envelope: Envelope) -> list[Statement]:
        manifest = [entry.model_dump() for entry in e.manifest]
        args = (
            e.artifact_version_id,
            e.entity,
            e.project,
            e.name,
            e.artifact_type,
            e.digest,
            manifest,
            e.description,
            e.metadata,
            list(e.aliases),
            envelope.occurred_at,
            e.logged_by_run,
            str(envelope.actor),
            # Uploaded files only: a reference's digest was never checked against the store (its bytes are
            # elsewhere), so it must not make a stored file of the same digest readable (FILES_V3).
            list(dict.fromkeys(entry.digest for entry in e.manifest if entry.ref is None)),
        )
        logged = Statement(_VERSION_LOGGED, args, rows=_version_rows(e))
        # Ordered with everything of the stream, as an edit: it changes other versions' rows.
        return [logged, Statement(_ALIASES_TAKEN, (e.artifact_version_id,))] if e.aliases else [logged]

    @handles(ArtifactVersionEdited)
    def artifact_version_edited(self, e: ArtifactVersionEdited, envelope: Envelope) -> list[Statement]:
        args = (
            e.artifact_version_id,
            e.description,
            e.metadata,
            list(e.aliases_added),
            list(e.aliases_removed),
            e.entity,
            e.project,
            e.name,
        )
        return [Statement(_VERSION_EDITED, args)]

    @handles(ArtifactVersionDeleted)
    def artifact_version_deleted(self, e: ArtifactVersionDeleted, envelope: Envelope) -> list[Statement]:
        return [Statement(_VERSION_DELETED, (e.artifact_version_id, envelope.occurred_at, str(envelope.actor)))]

    @handles(ArtifactVersionUsed)
    def artifact_version_used(self, e: ArtifactVersionUsed, envelope: Envelope) -> list[Statement]:
        args = (e.artifact_version_id, e.entity, e.project, e.run_id, envelope.occurred_at)
        return [Statement(_VERSION_USED, args, rows="usages")]

    @handles(VersionLinked)
    def version_linked(self, e: VersionLinked, envelope: Envelope) -> list[Statement]:
        return [_model_changed(e.registered_model, "link", envelope, version=e.artifact_version_id)]

    @handles(AliasAdded)
    def alias_added(self, e: AliasAdded, envelope: Envelope) -> list[Statement]:
        args = (e.registered_model, e.alias, e.artifact_version_id, envelope.occurred_at, str(envelope.actor), False)
        return [Statement(_ALIAS_CHANGED, args, rows="aliases")]

    @handles(VersionUnlinked)
    def version_unlinked(self, e: VersionUnlinked, envelope: Envelope) -> list[Statement]:
        # Link, card and tags share rows="model": each may create the registered_models row, and which one
        # does (its time, its actor) must follow the log. Aliases commute with them; an unlink touches
        # both versions and aliases, so it orders with the whole stream (rows="").
        return [Statement(_VERSION_UNLINKED, (e.registered_model, e.artifact_version_id))]

    @handles(ModelCardChanged)
    def model_card_changed(self, e: ModelCardChanged, envelope: Envelope) -> list[Statement]:
        return [_model_changed(e.registered_model, "card", envelope, card=(e.description, e.inputs, e.outputs))]

    @handles(ModelTagged)
    def model_tagged(self, e: ModelTagged, envelope: Envelope) -> list[Statement]:
        return [_model_changed(e.registered_model, "tag", envelope, tag=e.tag)]

    @handles(ModelUntagged)
    def model_untagged(self, e: ModelUntagged, envelope: Envelope) -> list[Statement]:
        return [_model_changed(e.registered_model, "untag", envelope, tag=e.tag)]

    @handles(AliasRemoved)
    def alias_removed(self, e: AliasRemoved, envelope: Envelope) -> list[Statement]:
        args = (e.registered_model, e.alias, e.artifact_version_id, envelope.occurred_at, str(envelope.actor), True)
        return [Statement(_ALIAS_CHANGED, args, rows="aliases")]

    @handles(ArtifactVersionTagged)
    def artifact_version_tagged(self, e: ArtifactVersionTagged, envelope: Envelope) -> list[Statement]:
        return [Statement(_VERSION_TAGS_CHANGED, (e.artifact_version_id, e.tag, True), rows=_version_rows(e))]

    @handles(ArtifactVersionUntagged)
    def artifact_version_untagged(self, e: ArtifactVersionUntagged, envelope: Envelope) -> list[Statement]:
        return [Statement(_VERSION_TAGS_CHANGED, (e.artifact_version_id, e.tag, False), rows=_version_rows(e))]

    @handles(AliasProtected)
    def alias_protected(self, e: AliasProtected, envelope: Envelope) -> list[Statement]:
        args = (e.registered_model, e.alias, envelope.occurred_at, str(envelope.actor), True)
        return [Statement(_PROTECTION_CHANGED, args, rows="protection")]

    @handles(AliasUnprotected)
    def alias_unprotected(self, e: AliasUnprotected, envelope: Envelope) -> list[Statement]:
        return [Statement(_PROTECTION_CHANGED, (e.registered_model, e.alias, None, None, False), rows="protection")]
