"""Walking the lineage graph: from one node, upstream, downstream or both, within a depth and a fan-out."""

from __future__ import annotations

from typing import Any, Literal

import asyncpg

Direction = Literal["upstream", "downstream"]

# One recursive walk; `near` and `far` name the edge ends to follow (target->source goes upstream).
# Each node expands at most $3 edges (oldest first), so a dataset used by 100,000 runs stays cheap.
_WALK = """
WITH RECURSIVE walk(node, depth) AS (
    SELECT $1::text, 0
    UNION
    SELECT next.node, walk.depth + 1
    FROM walk
    CROSS JOIN LATERAL (
        SELECT e.{far} AS node FROM lineage_edges e WHERE e.{near} = walk.node ORDER BY e.recorded_at LIMIT $3
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


class LineageQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def walk(self, start: str, directions: list[Direction], depth: int, fan_out: int) -> dict[str, Any]:
        """Nodes (with their distance) and the edges between them; `truncated` lists nodes that have more
        neighbours than `fan_out` in a direction walked."""
        nodes: dict[str, int] = {start: 0}
        truncated: set[str] = set()
        async with self.pool.acquire() as conn:
            for direction in directions:
                near, far = ("target", "source") if direction == "upstream" else ("source", "target")
                rows = await conn.fetch(_WALK.format(near=near, far=far), start, depth, fan_out)
                for row in rows:
                    nodes[row["node"]] = min(nodes.get(row["node"], row["depth"]), row["depth"])
                inner = [n for n, d in nodes.items() if d < depth]
                counts = await conn.fetch(_FAN_OUT.format(near=near), inner)
                truncated |= {r["node"] for r in counts if r["n"] > fan_out}
            edges = await conn.fetch(_EDGES_AMONG, list(nodes))
        return {
            "nodes": [{"id": n, "depth": d} for n, d in sorted(nodes.items(), key=lambda item: (item[1], item[0]))],
            "edges": [dict(e) for e in edges],
            "truncated": sorted(truncated),
        }
