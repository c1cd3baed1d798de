"""Reads of the registry read model, for resolvers and for validating commands. Never writes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from modelreg.events.names import count_in
from modelreg.projections.readable import EVERYTHING, Readable, Visibility
from modelreg.projections.run_order import RunOrder, RunPosition
from modelreg.projections.run_query import RunQuery
from modelreg.projections.search import SearchSlots, like_pattern

_VERSION_COLUMNS = """
    id, entity, project, name, artifact_type, version_index, digest, manifest, description, metadata,
    aliases, tags, logged_by_run, created_at, created_by, deleted_at
"""
# What a list of versions reads: each version's files and metadata may be as big as an event (8 MiB), and a page
# of 500 read whole took gigabytes whatever fields were asked for. They are read when asked, a few versions at a
# time (artifact_version_contents; graphql/context.py's VersionContentsLoader).
_LISTED_VERSION_COLUMNS_IN = """
    {v}id, {v}entity, {v}project, {v}name, {v}artifact_type, {v}version_index, {v}digest, {v}description,
    {v}aliases, {v}tags, {v}logged_by_run, {v}created_at, {v}created_by, {v}deleted_at
"""
_LISTED_VERSION_COLUMNS = _LISTED_VERSION_COLUMNS_IN.format(v="")
_LISTED_VERSION_COLUMNS_OF_V = _LISTED_VERSION_COLUMNS_IN.format(v="v.")
# Likewise a list of runs leaves out each run's config, summary and environment (each may be as big as an event),
# and keeps from the environment only the Launch job that started it (Run.launchedBy).
_LISTED_RUN_COLUMNS_IN = """
    {r}entity, {r}project, {r}run_id, {r}name, {r}job_type, {r}state, {r}exit_code, {r}started_at, {r}started_by,
    {r}finished_at, {r}synced_at, {r}started_offline_at, {r}finished_offline_at, {r}notes, {r}tags, {r}group_name,
    {r}last_heartbeat_at, {r}environment->'launch'->>'job_id' AS launch_job_id
"""
_LISTED_RUN_COLUMNS = _LISTED_RUN_COLUMNS_IN.format(r="")
_LISTED_RUN_COLUMNS_OF_R = _LISTED_RUN_COLUMNS_IN.format(r="r.")
RUN_CONTENTS = ("config", "summary", "environment")
# A deleted version keeps its row (lineage, audit) but no ref or list finds it.
_LIVE = "deleted_at IS NULL"


def _columns_of(keys: list[tuple[str, str, str]]) -> tuple[list[str], list[str], list[str]]:
    """Three-part keys as the three arrays a query unnests."""
    return [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]


@dataclass(frozen=True)
class RunFilters:
    """Which runs of a project: `search` is part of the run id, name or job type, in any case."""

    entity: str
    project: str
    search: str | None = None
    state: str | None = None
    job_type: str | None = None
    # W&B's MongoDB-style filters (projections/run_query.py), and a launch job whose runs these are.
    query: dict[str, Any] | None = None
    launch_job_id: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """Only the conditions given, so that each combination is its own prepared statement and its plan
        uses the index of its filter (a generic plan of `$3 IS NULL OR state = $3` could use none)."""
        conditions, args = ["entity = $1", "project = $2"], [self.entity, self.project]
        for condition, value in [
            ("strpos(search_text, lower(${})) > 0", self.search),
            ("state = ${}", self.state),
            ("job_type = ${}", self.job_type),
            ("environment->'launch'->>'job_id' = ${}", self.launch_job_id),
        ]:
            if value is not None:
                args.append(value)
                conditions.append(condition.format(len(args)))
        if self.query:
            translated = RunQuery(first_parameter=len(args) + 1)
            conditions.append(f"({translated.where(self.query)})")
            args += translated.args
        return " AND ".join(conditions), args


# A model version with the aliases it holds, in one round trip.
_LINKS_WITH_ALIASES = """
SELECT mv.*, coalesce(
    (SELECT array_agg(ma.alias ORDER BY ma.alias) FROM model_aliases ma
     WHERE ma.registered_model = mv.registered_model AND ma.artifact_version_id = mv.artifact_version_id),
    '{}') AS aliases
FROM model_versions mv"""


class RegistryQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        # A runs search runs a caller's filters, $regex patterns included, and some patterns (backreferences)
        # take PostgreSQL minutes: past this the query is cancelled (TimeoutError), freeing its connection.
        self.search_timeout_s = 15.0
        self.run_searches = SearchSlots(per_caller=2)

    async def artifact_version(self, version_id: UUID) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(f"SELECT {_VERSION_COLUMNS} FROM artifact_versions WHERE id = $1", version_id)
        return dict(row) if row else None

    async def artifact_versions_by_ids(self, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {_LISTED_VERSION_COLUMNS} FROM artifact_versions WHERE id = ANY($1::uuid[])", ids
        )
        return {r["id"]: dict(r) for r in rows}

    async def artifact_version_contents(self, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        """The files (`manifest`) and `metadata` of versions listed without them, with `read_bytes`: their size as
        JSON, to count against a request's budget (read as text: a compressed size in the table says little)."""
        rows = await self.pool.fetch(
            "SELECT id, manifest::text AS manifest, metadata::text AS metadata FROM artifact_versions "
            "WHERE id = ANY($1::uuid[])",
            ids,
        )
        return {
            r["id"]: {
                "manifest": orjson.loads(r["manifest"]),
                "metadata": orjson.loads(r["metadata"]),
                "read_bytes": len(r["manifest"]) + len(r["metadata"]),
            }
            for r in rows
        }

    async def newest_version_indexes(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], int]:
        """The newest live version of each (entity, project, name) collection: the one `latest` names."""
        rows = await self.pool.fetch(
            "SELECT k.entity, k.project, k.name, (SELECT v.version_index FROM artifact_versions v "
            "  WHERE v.entity = k.entity AND v.project = k.project AND v.name = k.name AND v.deleted_at IS NULL "
            "  ORDER BY v.version_index DESC LIMIT 1) AS newest "
            "FROM unnest($1::text[], $2::text[], $3::text[]) AS k(entity, project, name)",
            *_columns_of(keys),
        )
        return {(r["entity"], r["project"], r["name"]): r["newest"] for r in rows if r["newest"] is not None}

    async def artifact_version_by_ref(
        self, entity: str, project: str, name: str, selector: str
    ) -> dict[str, Any] | None:
        """`selector` is `v<N>`, `latest`, or an alias logged with the version."""
        base = (
            f"SELECT {_VERSION_COLUMNS} FROM artifact_versions "
            f"WHERE entity = $1 AND project = $2 AND name = $3 AND {_LIVE}"
        )
        if selector == "latest":
            row = await self.pool.fetchrow(base + " ORDER BY version_index DESC LIMIT 1", entity, project, name)
        elif selector[:1] == "v" and (index := count_in(selector[1:])) is not None:
            row = await self.pool.fetchrow(base + " AND version_index = $4", entity, project, name, index)
        else:
            row = await self.pool.fetchrow(
                base + " AND $4 = ANY(aliases) ORDER BY version_index DESC LIMIT 1", entity, project, name, selector
            )
        return dict(row) if row else None

    async def artifact_versions_page(
        self, entity: str, project: str, name: str, *, after_index: int | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {_LISTED_VERSION_COLUMNS} FROM artifact_versions "
            f"WHERE entity = $1 AND project = $2 AND name = $3 "
            f"AND version_index > $4 AND {_LIVE} ORDER BY version_index LIMIT $5",
            entity,
            project,
            name,
            -1 if after_index is None else after_index,
            limit,
        )
        return [dict(r) for r in rows]

    async def artifact_collections_page(
        self, entity: str, project: str, artifact_type: str | None, *, after_name: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """A project's collections (of one type), by name, with how many live versions each has."""
        rows = await self.pool.fetch(
            """SELECT c.entity, c.project, c.name, c.artifact_type, c.created_at,
                      (SELECT count(*) FROM artifact_versions v WHERE v.entity = c.entity AND v.project = c.project
                       AND v.name = c.name AND v.deleted_at IS NULL) AS version_count
               FROM artifact_collections c
               WHERE c.entity = $1 AND c.project = $2 AND ($3::text IS NULL OR c.artifact_type = $3)
                 AND ($4::text IS NULL OR c.name > $4)
               ORDER BY c.name LIMIT $5""",
            entity,
            project,
            artifact_type,
            after_name,
            limit,
        )
        return [dict(r) for r in rows]

    async def artifact_types(self, entity: str, project: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT DISTINCT artifact_type FROM artifact_collections WHERE entity = $1 AND project = $2 ORDER BY 1",
            entity,
            project,
        )
        return [r["artifact_type"] for r in rows]

    async def run_artifacts_page(
        self,
        entity: str,
        project: str,
        run_id: str,
        *,
        used: bool,
        after: tuple[datetime, UUID] | None,
        limit: int,
        readable: Readable = EVERYTHING,
    ) -> list[dict[str, Any]]:
        """The live versions a run logged (or used), oldest first; `after` is the last one's (time, id). Only
        those `readable` reads: a version of its entity, or one published into a registered model it reads
        (Visibility.readable_versions, in SQL, so that a page and its cursor hold only what is shown)."""
        if used:
            source = (
                f"SELECT {_LISTED_VERSION_COLUMNS_OF_V}, u.used_at AS at FROM artifact_usages u "
                "JOIN artifact_versions v ON v.id = u.artifact_version_id "
                "WHERE u.entity = $1 AND u.project = $2 AND u.run_id = $3"
            )
        else:
            source = (
                f"SELECT {_LISTED_VERSION_COLUMNS_OF_V}, v.created_at AS at FROM artifact_versions v "
                "WHERE v.entity = $1 AND v.project = $2 AND v.logged_by_run = $3"
            )
        rows = await self.pool.fetch(
            f"""SELECT * FROM ({source}) found
                WHERE deleted_at IS NULL AND ($4::timestamptz IS NULL OR (at, id) > ($4, $5::uuid))
                  AND (found.entity <> ALL($7::text[]) OR EXISTS (
                       SELECT 1 FROM model_versions mv
                       WHERE mv.artifact_version_id = found.id AND mv.registered_model <> ALL($8::text[])))
                ORDER BY at, id LIMIT $6""",
            entity,
            project,
            run_id,
            after[0] if after else None,
            after[1] if after else None,
            limit,
            sorted(readable.hidden_entities),
            sorted(readable.hidden_models),
        )
        return [dict(r) for r in rows]

    async def runs_of_job(self, job_id: str, readable: Readable = EVERYTHING) -> list[str]:
        """The runs a Launch job's processes started (their environment names the job), oldest first; only
        those of entities `readable` reads (a run's environment is its script's to write)."""
        rows = await self.pool.fetch(
            "SELECT run_id FROM runs WHERE environment->'launch'->>'job_id' = $1 AND entity <> ALL($2::text[]) "
            "ORDER BY started_at, run_id",
            job_id,
            sorted(readable.hidden_entities),
        )
        return [r["run_id"] for r in rows]

    async def latest_model_version(self, name: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            _LINKS_WITH_ALIASES + " WHERE mv.registered_model = $1 ORDER BY mv.version_index DESC LIMIT 1", name
        )
        return dict(row) if row else None

    async def runs_page_ordered(
        self, filters: RunFilters, order: RunOrder, *, after: RunPosition | None, limit: int
    ) -> list[dict[str, Any]]:
        """In a W&B `order` (projections/run_order.py), after the position where the previous page ended; each run
        with the `sort_value` a cursor carries."""
        where, args = filters.where()
        statement, args = order.page(_LISTED_RUN_COLUMNS, where, args, after=after, limit=limit)
        rows = await self.pool.fetch(statement, *args, timeout=self.search_timeout_s)
        return [dict(r) for r in rows]

    async def run(self, entity: str, project: str, run_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM runs WHERE entity = $1 AND project = $2 AND run_id = $3", entity, project, run_id
        )
        return dict(row) if row else None

    async def runs_in_project(self, entity: str, project: str) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM runs WHERE entity = $1 AND project = $2", entity, project)

    async def projects(
        self,
        entity: str | None = None,
        project: str | None = None,
        *,
        by_name: bool = False,
        after: tuple[Any, ...] | None = None,
        limit: int | None = None,
        hidden: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Entity/project pairs that have runs, with how many and when the last one started or finished; the most
        recently active first, or `by_name` (entity, then project). One pass over the leaves of `runs_newest` (no
        row is read), over the range of the entity or project when one is given; by name a page reads only its
        projects' leaves. `after` is the sort key of the last one of the previous page: (last_activity_at, entity,
        project), or (entity, project) by name. `hidden`: private entities the caller may not read
        (projections/readable.py)."""
        given = [(column, value) for column, value in (("entity", entity), ("project", project)) if value is not None]
        conditions = [f"{column} = ${n}" for n, (column, _) in enumerate(given, 1)]
        args: list[Any] = [value for _, value in given]
        if hidden:
            args.append(list(hidden))
            conditions.append(f"entity <> ALL(${len(args)}::text[])")
        having = ""
        if after is not None and by_name:
            args += list(after)
            conditions.append(f"(entity, project) > (${len(args) - 1}, ${len(args)})")
        elif after is not None:
            args += list(after)
            n = len(args)
            # Newest first, then by name: (activity, entity, project) before the cursor in that order. Activity
            # changes: a project active between pages moves to the front, past the cursor (docs/graphql-style.md).
            having = (
                f"HAVING max(greatest(started_at, finished_at)) < ${n - 2} OR (max(greatest(started_at, finished_at)) "
                f"= ${n - 2} AND (entity, project) > (${n - 1}, ${n}))"
            )
        where = " AND ".join(conditions) or "true"
        order = "entity, project" if by_name else "last_activity_at DESC, entity, project"
        args.append(limit)
        rows = await self.pool.fetch(
            "SELECT entity, project, count(*) AS run_count, max(greatest(started_at, finished_at)) AS last_activity_at "
            f"FROM runs WHERE {where} GROUP BY entity, project {having} ORDER BY {order} LIMIT ${len(args)}",
            *args,
        )
        return [dict(r) for r in rows]

    async def job_types(self, entity: str, project: str) -> list[str]:
        """The project's distinct job types, one index probe each (a loose scan of `runs_newest_by_job_type`)."""
        rows = await self.pool.fetch(
            """WITH RECURSIVE found AS (
                   (SELECT job_type FROM runs WHERE entity = $1 AND project = $2 AND job_type IS NOT NULL
                    ORDER BY job_type LIMIT 1)
                   UNION ALL
                   SELECT (SELECT r.job_type FROM runs r
                           WHERE r.entity = $1 AND r.project = $2 AND r.job_type > found.job_type
                           ORDER BY r.job_type LIMIT 1)
                   FROM found WHERE found.job_type IS NOT NULL
               )
               SELECT job_type FROM found WHERE job_type IS NOT NULL""",
            entity,
            project,
        )
        return [r["job_type"] for r in rows]

    async def runs_page(
        self, filters: RunFilters, *, before: tuple[datetime, str] | None, limit: int
    ) -> list[dict[str, Any]]:
        """Newest first; `before` is the (started_at, run_id) of the last run of the previous page. The page is
        found in an index alone (search included), then only its rows are read."""
        where, args = filters.where()
        if before is not None:
            args += list(before)
            where += f" AND (started_at, run_id) < (${len(args) - 1}, ${len(args)})"
        args.append(limit)
        rows = await self.pool.fetch(
            f"""WITH page AS MATERIALIZED (
                    SELECT run_id, started_at FROM runs WHERE {where}
                    ORDER BY started_at DESC, run_id DESC LIMIT ${len(args)}
                )
                SELECT {_LISTED_RUN_COLUMNS_OF_R} FROM page
                JOIN runs r ON r.entity = $1 AND r.project = $2 AND r.run_id = page.run_id
                ORDER BY page.started_at DESC, page.run_id DESC""",
            *args,
            timeout=self.search_timeout_s,
        )
        return [dict(r) for r in rows]

    async def silent_runs(self, silent_since: datetime, limit: int) -> list[dict[str, Any]]:
        """Running runs whose client beats and has not been heard from (a heartbeat, a metric batch) since."""
        rows = await self.pool.fetch(
            """SELECT r.entity, r.project, r.run_id, r.last_heartbeat_at FROM runs r
               WHERE r.state = 'running' AND r.last_heartbeat_at IS NOT NULL AND r.last_heartbeat_at < $1
               AND NOT EXISTS (SELECT 1 FROM run_metric_chunks c WHERE c.entity = r.entity AND c.project = r.project
                               AND c.run_id = r.run_id AND c.logged_at >= $1)
               ORDER BY r.last_heartbeat_at LIMIT $2""",
            silent_since,
            limit,
        )
        return [dict(r) for r in rows]

    async def runs_of_ended_attempts(self, silent_since: datetime, limit: int) -> list[dict[str, Any]]:
        """Running runs a Launch job's process started whose attempt is over (the job ended, or was requeued or
        claimed again after the run started), silent since `silent_since`: the process went with its attempt (its
        agent killed it, or died), so the run waits for no beat."""
        rows = await self.pool.fetch(
            # From the few running runs of jobs (runs_running_of_jobs) to their jobs by key. A run's environment is
            # its script's to write: an id that is no uuid finds no job rather than failing the cast, and the pass.
            """SELECT r.entity, r.project, r.run_id, j.job_id, j.state AS job_state FROM runs r
               JOIN launch_jobs j ON j.job_id = CASE WHEN r.environment -> 'launch' ->> 'job_id'
                   ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
                   THEN (r.environment -> 'launch' ->> 'job_id')::uuid END
               WHERE r.state = 'running' AND r.environment -> 'launch' ->> 'job_id' IS NOT NULL
               AND coalesce(r.last_heartbeat_at, r.started_at) < $1
               AND (j.state IN ('finished', 'failed', 'cancelled', 'queued') OR r.started_at < j.claimed_at)
               AND NOT EXISTS (SELECT 1 FROM run_metric_chunks c WHERE c.entity = r.entity AND c.project = r.project
                               AND c.run_id = r.run_id AND c.logged_at >= $1)
               ORDER BY r.started_at LIMIT $2""",
            silent_since,
            limit,
        )
        return [dict(r) for r in rows]

    async def runs_count(self, filters: RunFilters) -> int:
        where, args = filters.where()
        return await self.pool.fetchval(
            f"SELECT count(*) FROM runs WHERE {where}", *args, timeout=self.search_timeout_s
        )

    async def registered_model(self, name: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM registered_models WHERE name = $1", name)
        return dict(row) if row else None

    async def registered_model_names(self) -> list[str]:
        return [r["name"] for r in await self.pool.fetch("SELECT name FROM registered_models ORDER BY name")]

    async def entities(self) -> list[str]:
        """By a skip over the indexes that lead with the entity, one probe per entity: a DISTINCT over millions of
        runs read every row's index entry."""
        rows = await self.pool.fetch(
            f"""SELECT entity FROM ({_distinct_entities("runs")}) r
                UNION SELECT entity FROM ({_distinct_entities("artifact_collections")}) c ORDER BY entity"""
        )
        return [r["entity"] for r in rows]

    async def model_versions_page(
        self,
        name: str,
        *,
        after_index: int | None,
        limit: int,
        alias: str | None = None,
        tag: str | None = None,
        metadata: dict[str, Any] | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """In link order (`newest_first`: the reverse, `after_index` then the last one of the previous page's that
        was newer); filtered by an alias the version holds, a tag and metadata it contains."""
        beyond, order = ("<", "DESC") if newest_first else (">", "")
        start = 2**31 if newest_first else -1  # past every version_index (a PostgreSQL int) either way
        rows = await self.pool.fetch(
            """SELECT mv.*, coalesce(held.aliases, '{}') AS aliases
               FROM model_versions mv
               JOIN artifact_versions av ON av.id = mv.artifact_version_id
               LEFT JOIN LATERAL (
                   SELECT array_agg(ma.alias ORDER BY ma.alias) AS aliases FROM model_aliases ma
                   WHERE ma.registered_model = mv.registered_model AND ma.artifact_version_id = mv.artifact_version_id
               ) held ON true
               WHERE mv.registered_model = $1 AND mv.version_index """
            + beyond
            + """ $2::bigint
                 AND ($4::text IS NULL OR $4 = ANY(held.aliases))
                 AND ($5::text IS NULL OR av.tags @> ARRAY[$5])
                 AND ($6::jsonb IS NULL OR av.metadata @> $6)
               ORDER BY mv.version_index """
            + order
            + """ LIMIT $3""",
            name,
            start if after_index is None else after_index,
            limit,
            alias,
            tag,
            metadata,
        )
        return [dict(r) for r in rows]

    async def model_version_count(self, name: str) -> int:
        """How many versions are linked to the model (an unlinked one is not)."""
        return int(await self.pool.fetchval("SELECT count(*) FROM model_versions WHERE registered_model = $1", name))

    async def protected_aliases(self, name: str) -> set[str]:
        rows = await self.pool.fetch("SELECT alias FROM protected_aliases WHERE registered_model = $1", name)
        return {r["alias"] for r in rows}

    async def files_hidden(self, digests: Collection[str], readable: Readable) -> set[str]:
        return await Visibility(self.pool).blobs_hidden(digests, readable)

    async def model_version_of(self, name: str, artifact_version_id: UUID) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM model_versions WHERE registered_model = $1 AND artifact_version_id = $2",
            name,
            artifact_version_id,
        )
        return dict(row) if row else None

    async def model_version_with_aliases(self, name: str, artifact_version_id: UUID) -> dict[str, Any] | None:
        """The link and the aliases it holds, in one round trip (what a mutation answers with)."""
        row = await self.pool.fetchrow(
            _LINKS_WITH_ALIASES + " WHERE mv.registered_model = $1 AND mv.artifact_version_id = $2",
            name,
            artifact_version_id,
        )
        return dict(row) if row else None

    async def models_linking(self, artifact_version_id: UUID) -> list[str]:
        """The registered models this version is linked into, by name."""
        rows = await self.pool.fetch(
            "SELECT registered_model FROM model_versions WHERE artifact_version_id = $1 ORDER BY registered_model",
            artifact_version_id,
        )
        return [r["registered_model"] for r in rows]

    async def links_of(self, artifact_version_id: UUID) -> list[dict[str, Any]]:
        """Every registered model that links this artifact version, with the aliases it holds there."""
        rows = await self.pool.fetch(
            _LINKS_WITH_ALIASES + " WHERE mv.artifact_version_id = $1 ORDER BY mv.registered_model",
            artifact_version_id,
        )
        return [dict(r) for r in rows]

    async def alias_target(self, name: str, alias: str) -> UUID | None:
        return await self.pool.fetchval(
            "SELECT artifact_version_id FROM model_aliases WHERE registered_model = $1 AND alias = $2", name, alias
        )

    async def aliases_of(self, name: str, artifact_version_id: UUID) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT alias FROM model_aliases WHERE registered_model = $1 AND artifact_version_id = $2 ORDER BY alias",
            name,
            artifact_version_id,
        )
        return [r["alias"] for r in rows]

    async def runs_by_keys(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {_LISTED_RUN_COLUMNS} FROM runs JOIN unnest($1::text[], $2::text[], $3::text[]) "
            "AS k(entity, project, run_id) USING (entity, project, run_id)",
            *_columns_of(keys),
        )
        return {(r["entity"], r["project"], r["run_id"]): dict(r) for r in rows}

    async def run_contents(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The config, summary and environment of runs listed without them, with `read_bytes`: their size as JSON,
        to count against a request's budget."""
        rows = await self.pool.fetch(
            "SELECT entity, project, run_id, config::text AS config, summary::text AS summary, "
            "environment::text AS environment FROM runs JOIN unnest($1::text[], $2::text[], $3::text[]) "
            "AS k(entity, project, run_id) USING (entity, project, run_id)",
            *_columns_of(keys),
        )
        return {
            (r["entity"], r["project"], r["run_id"]): {
                **{column: orjson.loads(r[column]) for column in RUN_CONTENTS},
                "read_bytes": sum(len(r[column]) for column in RUN_CONTENTS),
            }
            for r in rows
        }

    async def registered_models_page(
        self,
        *,
        search: str | None,
        tag: str | None,
        after_name: str | None,
        limit: int,
        hidden: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """`hidden`: private models the caller may not read (projections/readable.py)."""
        rows = await self.pool.fetch(
            "SELECT * FROM registered_models WHERE ($1::text IS NULL OR name ILIKE $1) "
            "AND ($2::text IS NULL OR tags @> ARRAY[$2]) AND ($3::text IS NULL OR name > $3) "
            "AND name <> ALL($5::text[]) ORDER BY name LIMIT $4",
            like_pattern(search) if search else None,
            tag,
            after_name,
            limit,
            list(hidden),
        )
        return [dict(r) for r in rows]


def _distinct_entities(table: str) -> str:
    return f"""WITH RECURSIVE e(entity) AS (
                   (SELECT entity FROM {table} ORDER BY entity LIMIT 1)
                   UNION ALL
                   SELECT (SELECT entity FROM {table} WHERE entity > e.entity ORDER BY entity LIMIT 1)
                   FROM e WHERE e.entity IS NOT NULL)
               SELECT entity FROM e WHERE entity IS NOT NULL"""
