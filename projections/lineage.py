"""The lineage graph: runs and artifact versions are nodes; a run produced a version, a version was used
by a run. Edges name exact versions (never re-pointed to a newer one) and point the way data flows:
run -> version it produced, version -> run that used it.

Each node also has a label to search its neighbours by (a run's id, name and job type; a version's
name:vN and aliases, all lower case): a dataset used by 100,000 runs is browsed a page at a time and
searched, not drawn. An edge carries its target's label, as both come from the same stream (a used edge
from the run's, a produced edge from the version's), so that searching what a node leads to is one
index-only scan of its downstream edges; upstream searches look the label up by node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelreg.events.artifacts import ArtifactVersionLogged, ArtifactVersionUsed
from modelreg.events.envelope import Envelope
from modelreg.events.runs import RunStarted
from modelreg.projections.migrations import Migration
from modelreg.projections.projection import Projection, Statement, handles

SCHEMA_V1 = """
CREATE TABLE lineage_edges (
    source text NOT NULL,
    target text NOT NULL,
    kind text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (source, target, kind)
);
CREATE INDEX lineage_edges_by_target ON lineage_edges (target, recorded_at);
CREATE INDEX lineage_edges_by_source_time ON lineage_edges (source, recorded_at);
"""

# Neighbours are walked and paged oldest first, ties broken by the neighbour's id, so one index serves
# the walk's fan-out, the cluster's pages (keyset) and its count in each direction. The labels need
# events this projection did not handle before: the migration has it rebuilt from the log.
SCHEMA_V2 = """
ALTER TABLE lineage_edges ADD COLUMN target_label text;
DROP INDEX lineage_edges_by_target;
DROP INDEX lineage_edges_by_source_time;
CREATE INDEX lineage_edges_upstream ON lineage_edges (target, recorded_at, source) INCLUDE (kind);
CREATE INDEX lineage_edges_downstream ON lineage_edges (source, recorded_at, target) INCLUDE (kind, target_label);
CREATE TABLE lineage_labels (
    node text PRIMARY KEY,
    label text NOT NULL
);
CREATE TABLE lineage_collections (
    entity text NOT NULL,
    project text NOT NULL,
    name text NOT NULL,
    next_version int NOT NULL,
    PRIMARY KEY (entity, project, name)
);
-- As positions.reset() does: the position rows locked first (the order batches take), the running
-- processes told (they cache positions for read-your-writes).
DO $$
BEGIN
    IF to_regclass('projection_positions') IS NOT NULL THEN
        PERFORM 1 FROM projection_positions WHERE projection = 'lineage' FOR UPDATE;
    END IF;
    TRUNCATE lineage_edges;
    IF to_regclass('projection_positions') IS NOT NULL THEN
        UPDATE projection_positions SET next_offset = 0, updated_at = now() WHERE projection = 'lineage';
        DELETE FROM parked_events WHERE projection = 'lineage';
        DELETE FROM parked_streams WHERE projection = 'lineage';
        DELETE FROM dead_letters WHERE projection = 'lineage';
        PERFORM pg_notify('modelreg_projection_progress', 'reset:lineage');
    END IF;
END $$;
"""

# The edge takes its target's label when the label came first in the stream (the usual order); a label
# that comes after its edges fills them in (_LABELLED). Either order builds the same rows, so labels and
# edges commute (rows="labels" / "edges"): a batch runs each as one executemany, not one round trip per event.
_EDGE = """
INSERT INTO lineage_edges (source, target, kind, recorded_at, target_label)
VALUES ($1, $2, $3, $4, (SELECT label FROM lineage_labels WHERE node = $2))
ON CONFLICT DO NOTHING
"""

_LABELLED = """
WITH labelled AS (
    INSERT INTO lineage_labels (node, label) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING node, label
)
UPDATE lineage_edges e SET target_label = labelled.label FROM labelled WHERE e.target = labelled.node
"""

# A version's ordinal, counted here in stream order as the registry counts it (its own counter: a
# projection reads no other projection's tables); a version labelled already is not counted again, as the
# registry does not number it again.
_VERSION_LABELLED = """
WITH collection AS (
    INSERT INTO lineage_collections AS c (entity, project, name, next_version)
    SELECT $2::text, $3::text, $4::text, 1
    WHERE NOT EXISTS (SELECT 1 FROM lineage_labels WHERE node = $1)
    ON CONFLICT (entity, project, name) DO UPDATE SET next_version = c.next_version + 1
    RETURNING c.next_version - 1 AS version_index
), labelled AS (
    INSERT INTO lineage_labels (node, label)
    SELECT $1, lower(concat_ws(E'\\n', $4 || ':v' || collection.version_index, nullif($5, ''))) FROM collection
    ON CONFLICT DO NOTHING
    RETURNING node, label
)
UPDATE lineage_edges e SET target_label = labelled.label FROM labelled WHERE e.target = labelled.node
"""

# A batch in three statements instead of one per event (each a row of an executemany, with a counter row
# updated once per version): the labels of the batch's runs, those of its versions (each collection's
# counter read and moved once, the versions numbered on from it in log order), then its edges. Labels go
# first so that the edges read them; per event the order differs, and builds the same rows (see above).
_BATCH_RUNS_LABELLED = """
WITH labelled AS (
    INSERT INTO lineage_labels (node, label)
    SELECT node, label FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS b(node, label, n) ORDER BY n
    ON CONFLICT DO NOTHING
    RETURNING node, label
)
UPDATE lineage_edges e SET target_label = labelled.label FROM labelled WHERE e.target = labelled.node
"""

_BATCH_VERSIONS_LABELLED = """
WITH fresh AS (
    SELECT DISTINCT ON (b.node) b.*
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
        WITH ORDINALITY AS b(node, entity, project, name, aliases, n)
    WHERE NOT EXISTS (SELECT 1 FROM lineage_labels l WHERE l.node = b.node)
    ORDER BY b.node, b.n
), batch AS (
    SELECT f.*, row_number() OVER (PARTITION BY entity, project, name ORDER BY n) AS k,
           count(*) OVER (PARTITION BY entity, project, name) AS logged
    FROM fresh f
), counted AS (
    INSERT INTO lineage_collections AS c (entity, project, name, next_version)
    SELECT entity, project, name, logged FROM batch WHERE k = 1
    ON CONFLICT (entity, project, name) DO UPDATE SET next_version = c.next_version + EXCLUDED.next_version
    RETURNING c.entity, c.project, c.name, c.next_version
), labelled AS (
    INSERT INTO lineage_labels (node, label)
    SELECT b.node,
           lower(concat_ws(E'\\n', b.name || ':v' || (c.next_version - b.logged + b.k - 1), nullif(b.aliases, '')))
    FROM batch b JOIN counted c USING (entity, project, name)
    ORDER BY b.n
    ON CONFLICT DO NOTHING
    RETURNING node, label
)
UPDATE lineage_edges e SET target_label = labelled.label FROM labelled WHERE e.target = labelled.node
"""

_BATCH_EDGES = """
INSERT INTO lineage_edges (source, target, kind, recorded_at, target_label)
SELECT b.source, b.target, b.kind, b.recorded_at, l.label
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
    WITH ORDINALITY AS b(source, target, kind, recorded_at, n)
LEFT JOIN lineage_labels l ON l.node = b.target
ORDER BY b.n
ON CONFLICT DO NOTHING
"""


def run_node(entity: str, project: str, run_id: str) -> str:
    return f"run:{entity}/{project}/{run_id}"


def artifact_node(version_id: object) -> str:
    return f"artifact:{version_id}"


LABEL_ALIASES_MAX = 1000


def run_label(run_id: str, name: str | None, job_type: str | None) -> str:
    return "\n".join(part for part in (run_id, name, job_type) if part).lower()


class LineageProjection(Projection):
    name = "lineage"
    tables = ("lineage_edges", "lineage_labels", "lineage_collections")
    migrations = (Migration("lineage", 1, SCHEMA_V1), Migration("lineage", 2, SCHEMA_V2))

    def batch_statements(self, events: Sequence[Envelope]) -> list[tuple[str, Statement]]:
        if len(events) < 2:
            return super().batch_statements(events)
        sets: dict[str, tuple[list[Any], ...]] = {
            _BATCH_RUNS_LABELLED: ([], []),
            _BATCH_VERSIONS_LABELLED: ([], [], [], [], []),
            _BATCH_EDGES: ([], [], [], []),
        }
        for event in events:
            for statement in self.statements(event):
                columns = sets[_BATCHED[statement.sql]]
                for column, value in zip(columns, statement.args, strict=True):
                    column.append(value)
        return [("", Statement(sql, columns)) for sql, columns in sets.items() if columns[0]]

    @handles(RunStarted)
    def run_started(self, e: RunStarted, envelope: Envelope) -> list[Statement]:
        label = run_label(e.run_id, e.name, e.job_type)
        return [Statement(_LABELLED, (run_node(e.entity, e.project, e.run_id), label), rows="labels")]

    @handles(ArtifactVersionLogged)
    def artifact_version_logged(self, e: ArtifactVersionLogged, envelope: Envelope) -> list[Statement]:
        node = artifact_node(e.artifact_version_id)
        # Searched, not shown: cut short so that the label (also in an index's rows, ~2.7 KB at most) fits
        # however many aliases a version is logged with.
        aliases = "\n".join(e.aliases)[:LABEL_ALIASES_MAX]
        statements = [Statement(_VERSION_LABELLED, (node, e.entity, e.project, e.name, aliases), rows="labels")]
        if e.logged_by_run is not None:
            run = run_node(e.entity, e.project, e.logged_by_run)
            statements.append(Statement(_EDGE, (run, node, "produced", envelope.occurred_at), rows="edges"))
        return statements

    @handles(ArtifactVersionUsed)
    def artifact_version_used(self, e: ArtifactVersionUsed, envelope: Envelope) -> list[Statement]:
        run = run_node(e.entity, e.project, e.run_id)
        return [
            Statement(_EDGE, (artifact_node(e.artifact_version_id), run, "used", envelope.occurred_at), rows="edges")
        ]


# Each statement of one event, and the statement of a batch that takes its arguments as a row of its arrays.
_BATCHED = {_LABELLED: _BATCH_RUNS_LABELLED, _VERSION_LABELLED: _BATCH_VERSIONS_LABELLED, _EDGE: _BATCH_EDGES}
