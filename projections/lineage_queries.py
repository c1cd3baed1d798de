"""Walking the lineage graph: from one node, upstream, downstream or both, within a depth and a fan-out;
and one node's neighbours in one direction, searched and paged, for the fan-outs a walk leaves out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg

from modelreg.errors import InvalidInput
from modelreg.events.names import count_in
from modelreg.projections.readable import EVERYTHING, Readable
from modelreg.projections.search import like_pattern

Direction = Literal["upstream", "downstream"]

# `near` and `far` name the edge ends to follow (target->source goes upstream). Neighbours come oldest
# first, ties broken by id: the order of the index on (near, recorded_at, far), of the walk's fan-out
# and of a cluster's pages, so that the walk's first `fanOut` and the cluster's members never overlap.
_ENDS: dict[Direction, tuple[str, str]] = {"upstream": ("target", "source"), "downstream": ("source", "target")}

# One recursive walk. Each node expands at most $3 edges, so a dataset used by 100,000 runs stays cheap; and
# it stops after $4 steps (a node reached at a depth), breadth first: PostgreSQL evaluates a recursive query only
# as far as its rows are fetched. A node reached at several depths is grouped in Python.
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
SELECT node, depth FROM walk LIMIT $4
"""


def node_readable(node: str, hidden_entities: str, hidden_models: str) -> str:
    """SQL: whether the caller may read lineage node `node` (projections/readable.py): a run by its entity;
    a version by its entity, or by a registered model it is linked into. The other two name text[] arguments
    (the hidden entities and models)."""
    return f"""CASE WHEN {node} LIKE 'run:%' THEN split_part(substr({node}, 5), '/', 1) <> ALL({hidden_entities})
        ELSE NOT EXISTS (
            SELECT 1 FROM artifact_versions av
            WHERE av.id = substr({node}, 10)::uuid AND av.entity = ANY({hidden_entities})
            AND NOT EXISTS (SELECT 1 FROM model_versions mv WHERE mv.artifact_version_id = av.id
                            AND mv.registered_model <> ALL({hidden_models})))
        END"""


def start_shown(node: str, hidden_entities: str, hidden_models: str) -> str:
    """SQL: whether the walk's start is there for the caller. A run's was looked up before the walk; a version
    must exist and be readable, as the version loader reads it (graphql/context.py): a version of a hidden
    entity that a readable registered model links is shown."""
    return f"""CASE WHEN {node} LIKE 'run:%' THEN split_part(substr({node}, 5), '/', 1) <> ALL({hidden_entities})
        ELSE EXISTS (
            SELECT 1 FROM artifact_versions av
            WHERE av.id = substr({node}, 10)::uuid
            AND (av.entity <> ALL({hidden_entities})
                 OR EXISTS (SELECT 1 FROM model_versions mv WHERE mv.artifact_version_id = av.id
                            AND mv.registered_model <> ALL({hidden_models}))))
        END"""


# The walk for a caller with hidden scopes: a node it may not read is drawn but not walked through. Readability
# is computed for the fan-out's first $3 only (the LIMIT is inside), so a hidden hub costs what a public one does.
# The start is checked in the same statement (one round trip less than looking it up first); one not shown is
# not walked from.
_WALK_READABLE = (
    """
WITH RECURSIVE walk(node, depth, readable) AS (
    SELECT $1::text, 0, """
    + start_shown("$1::text", "$4::text[]", "$5::text[]")
    + """
    UNION
    SELECT next.node, walk.depth + 1, next.readable
    FROM walk
    CROSS JOIN LATERAL (
        SELECT n.node, """
    + node_readable("n.node", "$4::text[]", "$5::text[]")
    + """ AS readable
        FROM (SELECT e.{far} AS node FROM lineage_edges e WHERE e.{near} = walk.node
              ORDER BY e.recorded_at, e.{far} LIMIT $3) AS n
    ) AS next
    WHERE walk.depth < $2 AND walk.readable
)
SELECT node, depth, readable FROM walk LIMIT $6
"""
)

# Every edge among the nodes drawn, also those no walk followed (past a node's fan-out): at most $2 of them.
_EDGES_AMONG = """
SELECT source, target, kind, recorded_at FROM lineage_edges
WHERE source = ANY($1::text[]) AND target = ANY($1::text[]) LIMIT $2
"""


class WalkTooBig(Exception):
    """The walk reaches more nodes and edges than it may answer with (LineageQueries.walk's `most`)."""


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

    async def walk(
        self,
        start: str,
        directions: list[Direction],
        depth: int,
        fan_out: int,
        readable: Readable = EVERYTHING,
        *,
        most: int = 1_000_000,
    ) -> dict[str, Any] | None:
        """Nodes (with their distance) and the edges between them. `hidden` says, for each node the walk
        expanded in a direction, how many of its neighbours there it left out (beyond `fan_out`);
        `truncated` lists those nodes. WalkTooBig when its steps, or its nodes and edges together, are over `most`
        (found without reading further). A node the caller may not read (`readable`) is in `nodes` as
        `{"id": "hidden:<n>", "kind": ..., "hidden": True}`, and the walk does not go through it.
        None when the caller hides something and the start is not there for it (a version that does not
        exist, or that it may not read): the caller must not tell the two apart."""
        nodes: dict[str, int] = {start: 0}
        unreadable: set[str] = set()
        hidden: list[dict[str, Any]] = []
        async with self.pool.acquire() as conn:
            for direction in directions:
                near, far = _ENDS[direction]
                if readable.hides_nothing:
                    rows = await conn.fetch(_WALK.format(near=near, far=far), start, depth, fan_out, most + 1)
                else:
                    rows = await conn.fetch(
                        _WALK_READABLE.format(near=near, far=far),
                        start,
                        depth,
                        fan_out,
                        sorted(readable.hidden_entities),
                        sorted(readable.hidden_models),
                        most + 1,
                    )
                    if any(r["node"] == start and not r["readable"] for r in rows):
                        return None
                    unreadable |= {r["node"] for r in rows if not r["readable"]}
                if len(rows) > most:
                    raise WalkTooBig()
                reached: dict[str, int] = {}
                for row in rows:
                    reached[row["node"]] = min(reached.get(row["node"], row["depth"]), row["depth"])
                    nodes[row["node"]] = min(nodes.get(row["node"], row["depth"]), row["depth"])
                expanded = [n for n, d in reached.items() if d < depth and n not in unreadable]
                counts = await conn.fetch(_FAN_OUT.format(near=near), expanded)
                hidden += [
                    {"node": r["node"], "direction": direction, "count": r["n"] - fan_out}
                    for r in counts
                    if r["n"] > fan_out
                ]
            if len(nodes) > most:
                raise WalkTooBig()
            edges = await conn.fetch(_EDGES_AMONG, list(nodes), most - len(nodes) + 1)
            if len(nodes) + len(edges) > most:
                raise WalkTooBig()
        ordered = sorted(nodes.items(), key=lambda item: (item[1], item[0]))
        # A hidden node keeps its kind and its place in the graph, never its name nor its id.
        alias = {node: f"hidden:{n}" for n, node in enumerate((node for node, _ in ordered if node in unreadable), 1)}
        return {
            "nodes": [
                {"id": alias[n], "kind": n.split(":", 1)[0], "depth": d, "hidden": True}
                if n in alias
                else {"id": n, "depth": d}
                for n, d in ordered
            ],
            "edges": [
                {**e, "source": alias.get(e["source"], e["source"]), "target": alias.get(e["target"], e["target"])}
                for e in edges
                if not (e["source"] in alias and e["target"] in alias)
            ],
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
        readable: Readable = EVERYTHING,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of `node`'s neighbours in `direction` (each with the edge to it), oldest first, past
        the first `beyond` (what a walk with that fan-out drew) and after the `after` neighbour; and how
        many there are past `beyond` that match `search`.

        With scopes hidden (`readable`), each row says whether it is `readable`; a search matches readable
        neighbours only (a count must not tell a hidden name). A hidden neighbour's position is given as
        `#<n>`, its rank among the neighbours recorded at the same instant, so that a cursor need not carry
        its id; `after` may be such a position."""
        near, far = _ENDS[direction]
        conditions = [f"e.{near} = $1"]
        args: list[Any] = [node]

        def bound(key: tuple[datetime, str]) -> None:
            args.extend(key)
            conditions.append(f"(e.recorded_at, e.{far}) > (${len(args) - 1}, ${len(args)})")

        placeholders: list[str] = []

        def hidden_placeholders() -> list[str]:
            """The hidden entities and models as arguments, added where a statement first uses them (an
            argument no statement uses has no type PostgreSQL could infer)."""
            if not placeholders:
                args.extend([sorted(readable.hidden_entities), sorted(readable.hidden_models)])
                placeholders.extend([f"${len(args) - 1}::text[]", f"${len(args)}::text[]"])
            return placeholders

        async with self.pool.acquire() as conn:
            if after is not None and not after[1].startswith("#") and not readable.hides_nothing:
                # Compared against hidden rows, an id the caller made up would tell by what comes back where a
                # hidden id sorts: an oracle that reads it character by character. So a cursor must name a
                # neighbour the caller was shown.
                shown = await conn.fetchval(
                    f"SELECT {node_readable(f'e.{far}', '$4::text[]', '$5::text[]')} FROM lineage_edges e "
                    f"WHERE e.{near} = $1 AND e.recorded_at = $2 AND e.{far} = $3",
                    node,
                    after[0],
                    after[1],
                    sorted(readable.hidden_entities),
                    sorted(readable.hidden_models),
                )
                if not shown:
                    raise InvalidInput(
                        "this cursor names no neighbour you were shown: pass a page's endCursor, or start again "
                        "from the first page"
                    )
            if after is not None and after[1].startswith("#"):
                rank = count_in(after[1][1:])
                if rank is None:  # else the raw text would be compared against hidden ids, as above
                    raise InvalidInput("this cursor is not one this API returned: pass a page's endCursor")
                tie = await conn.fetchval(
                    f"SELECT {far} FROM lineage_edges WHERE {near} = $1 AND recorded_at = $2 ORDER BY {far} "
                    "OFFSET $3 LIMIT 1",
                    node,
                    after[0],
                    max(rank - 1, 0),
                )
                after = (after[0], tie or "")
            if beyond:
                nth = await conn.fetchrow(_NTH.format(near=near, far=far), node, beyond - 1)
                if nth is None:
                    return [], 0
                bound((nth["recorded_at"], nth["node"]))
            if search:
                args.append(like_pattern(search))
                conditions.append(f"{_LABEL[direction]} LIKE ${len(args)}")
                if not readable.hides_nothing:
                    conditions.append(node_readable(f"e.{far}", *hidden_placeholders()))
            where = " AND ".join(conditions)
            total = await conn.fetchval(f"SELECT count(*) FROM lineage_edges e WHERE {where}", *args)
            if after is not None:
                bound(after)
                where = " AND ".join(conditions)
            page = (
                f"SELECT e.source, e.target, e.kind, e.recorded_at, e.{far} AS node FROM lineage_edges e "
                f"WHERE {where} ORDER BY e.recorded_at, e.{far} LIMIT {int(limit)}"
            )
            if readable.hides_nothing:
                rows = await conn.fetch(page, *args)
                return [dict(r) for r in rows], total
            rows = await conn.fetch(
                f"""SELECT p.*, {node_readable("p.node", *hidden_placeholders())} AS readable,
                           (SELECT count(*) FROM lineage_edges t WHERE t.{near} = $1 AND t.recorded_at = p.recorded_at
                            AND t.{far} <= p.node) AS tie_rank
                    FROM ({page}) AS p ORDER BY p.recorded_at, p.node""",
                *args,
            )
        return [dict(r) for r in rows], total
