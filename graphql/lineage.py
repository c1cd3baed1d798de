"""The lineage graph: from a model version back to the data and the runs that made it, or forward."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import graphene

from modelreg.errors import InvalidInput, NotFound
from modelreg.graphql.artifacts import ArtifactVersion, parse_ref
from modelreg.graphql.errors import reports_errors
from modelreg.graphql.runs import Run
from modelreg.projections.lineage import artifact_node

MAX_DEPTH = 50
MAX_FAN_OUT = 1000


class LineageDirection(graphene.Enum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"


class LineageNode(graphene.ObjectType):
    id = graphene.ID(required=True, description="run:<entity>/<project>/<run_id> or artifact:<version id>")
    kind = graphene.String(required=True, description="run or artifact")
    depth = graphene.Int(required=True, description="edges from the node the walk started at")
    run = graphene.Field(Run)
    artifact_version = graphene.Field(ArtifactVersion)

    @staticmethod
    def resolve_kind(node: dict, info: graphene.ResolveInfo) -> str:
        return node["id"].split(":", 1)[0]

    @staticmethod
    async def resolve_run(node: dict, info: graphene.ResolveInfo) -> dict | None:
        kind, _, key = node["id"].partition(":")
        if kind != "run":
            return None
        entity, project, run_id = key.split("/", 2)
        return await info.context.runs.load((entity, project, run_id))

    @staticmethod
    async def resolve_artifact_version(node: dict, info: graphene.ResolveInfo) -> dict | None:
        kind, _, key = node["id"].partition(":")
        return await info.context.artifact_versions.load(UUID(key)) if kind == "artifact" else None


class LineageEdge(graphene.ObjectType):
    source = graphene.ID(required=True)
    target = graphene.ID(required=True)
    kind = graphene.String(required=True, description="produced (run -> version) or used (version -> run)")
    recorded_at = graphene.DateTime(required=True)


class Lineage(graphene.ObjectType):
    nodes = graphene.List(graphene.NonNull(LineageNode), required=True)
    edges = graphene.List(graphene.NonNull(LineageEdge), required=True)
    truncated = graphene.List(
        graphene.NonNull(graphene.ID), required=True, description="nodes with more neighbours than fanOut allowed"
    )


class LineageQueries(graphene.ObjectType):
    lineage = graphene.Field(
        Lineage,
        required=True,
        ref=graphene.String(
            required=True, description="an artifact version (entity/project/name:v3, or its id) or run:entity/project/run_id"
        ),
        direction=LineageDirection(default_value="both"),
        depth=graphene.Int(default_value=5),
        fan_out=graphene.Int(default_value=100),
    )

    @staticmethod
    @reports_errors
    async def resolve_lineage(
        root: Any, info: graphene.ResolveInfo, ref: str, direction: str, depth: int, fan_out: int
    ) -> dict:
        if not 1 <= depth <= MAX_DEPTH or not 1 <= fan_out <= MAX_FAN_OUT:
            raise InvalidInput(f"depth must be 1 to {MAX_DEPTH} and fanOut 1 to {MAX_FAN_OUT}")
        start = await _node_of(info, ref)
        directions = ["upstream", "downstream"] if direction == "both" else [direction]
        return await info.context.lineage.walk(start, directions, depth, fan_out)  # type: ignore[arg-type]


async def _node_of(info: graphene.ResolveInfo, ref: str) -> str:
    if ref.startswith("run:"):
        key = tuple(ref.removeprefix("run:").split("/"))
        if len(key) != 3 or await info.context.runs.load(key) is None:
            raise NotFound(f"no run {ref!r} (a run is named run:entity/project/run_id)")
        return ref
    try:
        version_id = UUID(ref)
    except ValueError:
        found = await info.context.reads.artifact_version_by_ref(*parse_ref(ref))
        if found is None:
            raise NotFound(f"no artifact version {ref!r}") from None
        version_id = found["id"]
    return artifact_node(version_id)
