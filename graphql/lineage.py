"""The lineage graph: from a model version back to the data and the runs that made it, or forward; and
the neighbours a walk left out (a dataset used by 10,000 runs), searched and paged."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import graphene

from modelreg.errors import InvalidInput, NotFound, quoted
from modelreg.graphql.answer_budget import MAX_LINEAGE_PER_REQUEST
from modelreg.graphql.artifacts import ArtifactVersion
from modelreg.graphql.enums import LineageDirection, LineageEdgeKind, LineageNodeKind, value_of
from modelreg.graphql.pages import Cursors, page_of, page_size, paged
from modelreg.graphql.references import as_uuid, parse_ref
from modelreg.graphql.runs import Run
from modelreg.projections.lineage import artifact_node
from modelreg.projections.lineage_queries import WalkTooBig
from modelreg.projections.timestamps import parsed_time

MAX_DEPTH = 50
MAX_FAN_OUT = 1000
# The cost limit prices a walk by its fanOut, but what it draws grows as fanOut to the power of depth, and its edges
# are every edge among the nodes drawn (a run that used a thousand of the versions drawn brings a thousand):
# aliases of one walk answered with millions of objects. So the walks of one request draw MAX_LINEAGE_PER_REQUEST
# nodes and edges together at most (answer_budget.py), and one walk reads at most this many edges (a step reads up
# to fanOut of them).
MAX_WALK_SCAN = 5_000_000


class LineageNode(graphene.ObjectType):
    id = graphene.ID(
        required=True,
        description="run:<entity>/<project>/<run_id> or artifact:<version id>; hidden:<n> for a node you may not read",
    )
    kind = graphene.Field(LineageNodeKind, required=True)
    depth = graphene.Int(required=True, description="edges from the node the walk started at")
    hidden = graphene.Boolean(
        required=True,
        description="in a private entity you may not read: only its kind is shown, and the walk stops there",
    )
    run = graphene.Field(Run)
    artifact_version = graphene.Field(ArtifactVersion)

    @staticmethod
    def resolve_kind(node: dict, info: graphene.ResolveInfo) -> str:
        return node.get("kind") or node["id"].split(":", 1)[0]

    @staticmethod
    def resolve_hidden(node: dict, info: graphene.ResolveInfo) -> bool:
        return bool(node.get("hidden"))

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
    kind = graphene.Field(LineageEdgeKind, required=True)
    recorded_at = graphene.DateTime(required=True)


class LineageHidden(graphene.ObjectType):
    node = graphene.ID(required=True)
    direction = graphene.Field(LineageDirection, required=True, description="UPSTREAM or DOWNSTREAM")
    count = graphene.Int(
        required=True, description="neighbours there beyond fanOut: lineageNeighbours(fanOut:) lists them"
    )


class Lineage(graphene.ObjectType):
    nodes = graphene.List(graphene.NonNull(LineageNode), required=True)
    edges = graphene.List(graphene.NonNull(LineageEdge), required=True)
    hidden = graphene.List(
        graphene.NonNull(LineageHidden),
        required=True,
        description="per node and direction walked, the neighbours left out",
    )
    truncated = graphene.List(
        graphene.NonNull(graphene.ID), required=True, description="nodes with more neighbours than fanOut allowed"
    )


class LineageNeighbour(graphene.ObjectType):
    node = graphene.Field(LineageNode, required=True, description="depth 1: one edge from the node asked about")
    edge = graphene.Field(LineageEdge, required=True, description="the edge between them, in the way data flows")


LineageNeighbourPage = page_of(
    LineageNeighbour,
    total_count=graphene.Int(required=True, description="neighbours past fanOut that match the search, over all pages"),
)


class LineageQueries(graphene.ObjectType):
    lineage = graphene.Field(
        Lineage,
        required=True,
        ref=graphene.String(
            required=True,
            description="an artifact version (entity/project/name:v3, or its id) or run:entity/project/run_id",
        ),
        direction=LineageDirection(default_value="both"),
        depth=graphene.Int(default_value=5),
        fan_out=graphene.Int(default_value=100),
    )
    lineage_neighbours = paged(
        LineageNeighbourPage,
        node=graphene.ID(
            required=True,
            description="a lineage node id (run:entity/project/run_id, artifact:<version id>) or a version ref",
        ),
        direction=LineageDirection(required=True, description="UPSTREAM or DOWNSTREAM"),
        search=graphene.String(
            description="part of a run's id, name or job type, or of a version's name:vN or an alias; any case"
        ),
        fan_out=graphene.Int(
            default_value=0,
            description="leave out the first fanOut neighbours, which a lineage walk with that fanOut drew",
        ),
        description="One node's neighbours in one direction, oldest first: the members of a cluster a walk left out.",
    )

    @staticmethod
    async def resolve_lineage(
        root: Any, info: graphene.ResolveInfo, ref: str, direction: str, depth: int, fan_out: int
    ) -> dict:
        if not 1 <= depth <= MAX_DEPTH or not 1 <= fan_out <= MAX_FAN_OUT:
            raise InvalidInput(f"depth must be 1 to {MAX_DEPTH} and fanOut 1 to {MAX_FAN_OUT}")
        # The walk checks that a version given by its id is there for the caller, in its own statement.
        start = await _node_of(info, ref, checked_by_the_walk=True)
        direction = value_of(direction)
        directions = ["upstream", "downstream"] if direction == "both" else [direction]
        budget = info.context.answer_budget
        async with budget.lineage_turn:
            most = min(budget.lineage_left, MAX_WALK_SCAN // fan_out)
            try:
                walked = await info.context.lineage.walk(
                    start, directions, depth, fan_out, info.context.readable, most=most
                )
            except WalkTooBig:
                # The request's other walks drew the rest of what it may draw.
                shared = most == budget.lineage_left < MAX_LINEAGE_PER_REQUEST
                others = " with the other walks of this request" if shared else ""
                raise InvalidInput(
                    f"this walk (depth {depth}, fanOut {fan_out}) draws over {most:,} nodes and edges{others}: lower "
                    "depth or fanOut, walk from a node further along, or page a node's neighbours (lineageNeighbours)"
                ) from None
            if walked is None:
                raise NotFound(f"no artifact version {quoted(ref)}")  # or one in an entity the caller may not read
            budget.lineage_left -= len(walked["nodes"]) + len(walked["edges"])
        return walked

    @staticmethod
    async def resolve_lineage_neighbours(
        root: Any,
        info: graphene.ResolveInfo,
        node: str,
        direction: str,
        fan_out: int,
        first: int,
        search: str | None = None,
        after: str | None = None,
    ) -> dict:
        direction = value_of(direction)
        if direction == "both":
            raise InvalidInput("direction must be UPSTREAM or DOWNSTREAM: a cluster's neighbours lie one way")
        if not 0 <= fan_out <= MAX_FAN_OUT:
            raise InvalidInput(f"fanOut must be 0 to {MAX_FAN_OUT}")
        limit = page_size(first)
        cursors = Cursors.of(info)
        position = cursors.decode(after, parsed_time, str)
        found = await _node_of(info, node.removeprefix("artifact:"))
        rows, total = await info.context.lineage.neighbours(
            found,
            direction,
            search=search or None,
            beyond=fan_out,
            after=position,
            limit=limit + 1,
            readable=info.context.readable,
        )
        shown = rows[:limit]
        end = cursors.encode(shown[-1]["recorded_at"], _position(shown[-1])) if shown else after
        items = [_neighbour(r, n) for n, r in enumerate(shown, 1)]
        return {"items": items, "end_cursor": end, "has_next_page": len(rows) > limit, "total_count": total}


def _position(row: dict) -> str:
    """Where a neighbour is, for a cursor: its id, or for a hidden one its rank among its instant's neighbours."""
    return row["node"] if row.get("readable", True) else f"#{row['tie_rank']}"


def _neighbour(row: dict, n: int) -> dict:
    """A neighbour and the edge to it; one the caller may not read keeps its kind and nothing else."""
    if row.get("readable", True):
        return {"node": {"id": row["node"], "depth": 1}, "edge": row}
    alias = f"hidden:{n}"
    edge = {**row, "source": alias if row["source"] == row["node"] else row["source"]}
    edge["target"] = alias if row["target"] == row["node"] else row["target"]
    return {"node": {"id": alias, "kind": row["node"].split(":", 1)[0], "depth": 1, "hidden": True}, "edge": edge}


async def _node_of(info: graphene.ResolveInfo, ref: str, checked_by_the_walk: bool = False) -> str:
    """The lineage node `ref` names, if it is there for the caller; `checked_by_the_walk`: a version given by
    its id is left to LineageQueries.walk to check."""
    if ref.startswith("run:"):
        key = tuple(ref.removeprefix("run:").split("/"))
        if len(key) != 3 or await info.context.runs.load(key) is None:
            raise NotFound(f"no run {quoted(ref)} (a run is named run:entity/project/run_id)")
        return ref
    version_id = as_uuid(ref)
    if version_id is None:
        found = await info.context.version_by_ref(*parse_ref(ref))
        if found is None:
            raise NotFound(f"no artifact version {quoted(ref)}")
        version_id = found["id"]
    elif (
        not checked_by_the_walk
        and not info.context.readable.hides_nothing
        and await info.context.artifact_versions.load(version_id) is None
    ):
        raise NotFound(f"no artifact version {quoted(ref)}")  # or one in an entity the caller may not read
    return artifact_node(version_id)
