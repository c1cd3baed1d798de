"""Keeping the planner's view of a projection's tables no older than half their size.

A table filled from empty (a rebuild, a new registry) has no statistics until autovacuum comes round, and
the planner then takes any index on a statement's leading columns: a finished run was found through
runs_newest_by_job_type, reading every run of its project (664 us per run instead of 82 in a 2,500-run batch).

And PostgreSQL caches the plan of a prepared statement (asyncpg prepares every statement it runs), planning
it again only when a table it reads is analyzed or altered. A plan made while a table was small reads it
sequentially, and keeps doing so as the table grows: with eight clients linking and aliasing on a new
registry, the lookups of a link by its registered model and artifact version read every row of
`model_versions`, 2.3 times per mutation (4,100 rows per mutation after 4,000 links), although the table's
unique index answers them (docs/benchmarks-journal.md, "Plans made while a table was empty").

So a runner analyzes a table of its projection once the table has twice the pages it had when it was last
analyzed. That replaces the cached plans that read it; with the doubling, a plan never outlives a table
twice the size it was made for. Autovacuum analyzes too, but only after its naptime (a minute), which a
table filled by a rebuild or a new registry outgrows many times over.

A table below `MIN_PAGES` is left alone: until analyzed, the planner takes it for ten pages, at which an
index lookup already wins; analyzed while empty, it would be taken for empty and read sequentially.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import asyncpg

log = logging.getLogger(__name__)

# The size the planner assumes for a table never analyzed, and below which reading a table is about as
# cheap as one index lookup.
MIN_PAGES = 10

_GROWN = """
SELECT c.relname
FROM unnest($1::text[]) AS t(name)
JOIN pg_class AS c ON c.oid = to_regclass(t.name)
WHERE pg_relation_size(c.oid) / current_setting('block_size')::int >= greatest($2::int, 2 * c.relpages)
"""


class PlannerStatistics:
    """The statistics of one projection's tables, refreshed as they double."""

    def __init__(
        self, pool: asyncpg.Pool, tables: Sequence[str], *, every_s: float = 1.0, every_events: int = 1000
    ) -> None:
        self.pool = pool
        self.tables = list(tables)
        # How often the tables' sizes are looked at (a query on pg_class): after `every_events` applied events
        # (a rebuild's large batches, which grow the tables fastest), or `every_s` (a command's small ones).
        self.every_s = every_s
        self.every_events = every_events
        self._looked_at = float("-inf")
        self._applied_since = 0

    async def refresh_grown(self, applied: int) -> list[str]:
        """Analyze the tables that doubled since their last analysis; returns their names. A runner calls this
        after each batch, with the events it applied."""
        self._applied_since += applied
        if not self.tables or not applied:
            return []
        if self._applied_since < self.every_events and time.monotonic() - self._looked_at < self.every_s:
            return []
        self._looked_at = time.monotonic()
        self._applied_since = 0
        try:
            async with self.pool.acquire() as conn:
                grown = [r["relname"] for r in await conn.fetch(_GROWN, self.tables, MIN_PAGES)]
                if grown:
                    async with conn.transaction():
                        # Row counts and sizes are what the planner was missing: a 3,000-row sample shows
                        # them for a tenth of the default's cost.
                        await conn.execute("SET LOCAL default_statistics_target = 10")
                        await conn.execute("ANALYZE " + ", ".join(grown))
        except Exception as exc:  # statistics are an optimisation: a failure costs speed, never an event
            log.warning("ANALYZE of %s failed (%s)", ", ".join(self.tables), exc)
            return []
        return grown
