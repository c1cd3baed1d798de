"""Walking the lineage graph: from one node, upstream, downstream or both, within a depth and a fan-out;
and one node's neighbours in one direction, searched and paged, for the fan-outs a walk leaves out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg

from modelreg.projections.search import like_pattern

Direction = Literal["upstream", "downstream"]

# `near` and `far` name the edge ends to follow (target->source goes upstream). Neighbours come oldest
# first, ties broken by id: the order of the index on (near, recorded_at, far), of the walk's fan-out
# and of a cluster's pages, so that the walk's first `fanOut` and the cluster's members never overlap.
_ENDS: dict[Direction, tuple[str, str]] = {"upstream": ("target", "source"), "downstream": ("source", "target")}

# One recursive walk. Each node expands at most $3 edges, so a dataset used by 100,000 runs stays cheap.
_WALK = """
WITH RECURSIVE walk(node, depth) AS (
    SELECT $1::text, 0
    UNION
    SELECT next.node, walk.depth + 1
    FROM walk
    CROSS JOIN LATERAL (
        SELECT e.{far} AS node FROM lineage_edges e WHERE e.{near} = walk.node ORDER BY e.recorded_at, e.{far} LIMIT $3
    ) AS next
    WHERE walk.depth < $2
)
SELECT node, min(depth) AS depth FROM walk GROUP BY node
"""

_EDGES_AMONG = """
SELECT source, target, kind, recorded_at FROM lineage_edges
WHERE source = ANY($1::text[]) AND target = ANY($1::text[])
"""

_FAN_OUT = "SELECT {near} AS node, count(*) AS n FROM lineage_edges WHERE {near} = ANY($1::text[]) GROUP BY {near}"

# The neighbour that ends a walk's fan-out: a cluster's members come after it.
_NTH = (
    "SELECT recorded_at, {far} AS node FROM lineage_edges WHERE {near} = $1 "
    "ORDER BY recorded_at, {far} OFFSET $2 LIMIT 1"
)

# What a search matches: downstream, the label the edge carries (an index-only scan of the node's
# edges); upstream, the neighbour's label by its key. A neighbour with no label (a run never started
# here) matches by its id.
_LABEL = {
    "downstream": "coalesce(e.target_label, lower(e.target))",
    "upstream": "coalesce((SELECT l.label FROM lineage_labels l WHERE l.node = e.source), lower(e.source))",
}


class LineageQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def walk(self, start: str, directions: list[Direction], depth: int, fan_out: int) -> dict[str, Any]:
        """Nodes (with their distance) and the edges between them. `hidden` says, for each node the walk
        expanded in a direction, how many of its neighbours there it left out (beyond `fan_out`);
        `truncated` lists those nodes."""
        nodes: dict[str, int] = {start: 0}
        hidden: list[dict[str, Any]] = []
        async with self.pool.acquire() as conn:
            for direction in directions:
                near, far = _ENDS[direction]
                rows = await conn.fetch(_WALK.format(near=near, far=far), start, depth, fan_out)
                for row in rows:
                    nodes[row["node"]] = min(nodes.get(row["node"], row["depth"]), row["depth"])
                expanded = [r["node"] for r in rows if r["depth"] < depth]
                counts = await conn.fetch(_FAN_OUT.format(near=near), expanded)
                hidden += [
                    {"node": r["node"], "direction": direction, "count": r["n"] - fan_out}
                    for r in counts
                    if r["n"] > fan_out
                ]
            edges = await conn.fetch(_EDGES_AMONG, list(nodes))
        return {
            "nodes": [{"id": n, "depth": d} for n, d in sorted(nodes.items(), key=lambda item: (item[1], item[0]))],
            "edges": [dict(e) for e in edges],
            "hidden": sorted(hidden, key=lambda h: (nodes[h["node"]], h["node"], h["direction"])),
            "truncated": sorted({h["node"] for h in hidden}),
        }

    async def neighbours(
        self,
        node: str,
        direction: Direction,
        *,
        search: str | None,
        beyond: int,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of `node`'s neighbours in `direction` (each with the edge to it), oldest first, past
        the first `beyond` (what a walk with that fan-out drew) and after the `after` neighbour; and how
        many there are past `beyond` that match `search`."""
        near, far = _ENDS[direction]
        conditions = [f"e.{near} = $1"]
        args: list[Any] = [node]

        def bound(key: tuple[datetime, str]) -> None:
            args.extend(key)
            conditions.append(f"(e.recorded_at, e.{far}) > (${len(args) - 1}, ${len(args)})")

        async with self.pool.acquire() as conn:
            if beyond:
                nth = await conn.fetchrow(_NTH.format(near=near, far=far), node, beyond - 1)
                if nth is None:
                    return [], 0
                bound((nth["recorded_at"], nth["node"]))
            if search:
                args.append(like_pattern(search))
                conditions.append(f"{_LABEL[direction]} LIKE ${len(args)}")
            where = " AND ".join(conditions)
            total = await conn.fetchval(f"SELECT count(*) FROM lineage_edges e WHERE {where}", *args)
            if after is not None:
                bound(after)
                where = " AND ".join(conditions)
            rows = await conn.fetch(
                f"SELECT e.source, e.target, e.kind, e.recorded_at, e.{far} AS node FROM lineage_edges e "
                f"WHERE {where} ORDER BY e.recorded_at, e.{far} LIMIT {int(limit)}",
                *args,
            )
        return [dict(r) for r in rows], total
