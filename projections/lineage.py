"""The lineage graph: runs and artifact versions are nodes; a run produced a version, a version was used
by a run. Edges name exact versions (never re-pointed to a newer one) and point the way data flows:
run -> version it produced, version -> run that used it."""

from __future__ import annotations

from modelreg.events.artifacts import ArtifactVersionLogged, ArtifactVersionUsed
from modelreg.events.envelope import Envelope
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

_EDGE = """
INSERT INTO lineage_edges (source, target, kind, recorded_at) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
"""


def run_node(entity: str, project: str, run_id: str) -> str:
    return f"run:{entity}/{project}/{run_id}"


def artifact_node(version_id: object) -> str:
    return f"artifact:{version_id}"


class LineageProjection(Projection):
    name = "lineage"
    tables = ("lineage_edges",)
    migrations = (Migration("lineage", 1, SCHEMA_V1),)

    @handles(ArtifactVersionLogged)
    def artifact_version_logged(self, e: ArtifactVersionLogged, envelope: Envelope) -> list[Statement]:
        if e.logged_by_run is None:
            return []
        run = run_node(e.entity, e.project, e.logged_by_run)
        return [Statement(_EDGE, (run, artifact_node(e.artifact_version_id), "produced", envelope.occurred_at))]

    @handles(ArtifactVersionUsed)
    def artifact_version_used(self, e: ArtifactVersionUsed, envelope: Envelope) -> list[Statement]:
        run = run_node(e.entity, e.project, e.run_id)
        return [Statement(_EDGE, (artifact_node(e.artifact_version_id), run, "used", envelope.occurred_at))]
