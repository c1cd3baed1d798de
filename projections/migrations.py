"""Schema migrations for the read models, applied at start, in order, once, under an advisory lock."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

log = logging.getLogger(__name__)

# Any fixed number: it only has to be the same in every modelreg process sharing the database.
_MIGRATION_LOCK = 0x6D6F64656C726567  # "modelreg"; services/triggers.py holds another key for its lifetime


@dataclass(frozen=True)
class Migration:
    component: str
    number: int
    sql: str
    # One line for the operator, said before the migration starts: what it does, when it rewrites rows (it may then
    # take minutes on a large installation, and a silent start looked hung).
    rewrites: str = ""

    @property
    def name(self) -> str:
        return f"{self.component} {self.number}"


async def migrate(pool: asyncpg.Pool, migrations: Iterable[Migration]) -> list[Migration]:
    """Apply what is missing; safe to call from several processes at once. Returns what it applied."""
    applied: list[Migration] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   component text NOT NULL,
                   number int NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (component, number))"""
        )
        # One row that every applying of migrations bumps: a projector's batch reads it with its positions and
        # compares the migrations it was built for with the database's only when it moved (runtime.py).
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_generation (
                   one boolean PRIMARY KEY DEFAULT true CHECK (one),
                   generation bigint NOT NULL DEFAULT 0)"""
        )
        await conn.execute("INSERT INTO schema_generation DEFAULT VALUES ON CONFLICT DO NOTHING")
        done = {
            (r["component"], r["number"]) for r in await conn.fetch("SELECT component, number FROM schema_migrations")
        }
        wanted = sorted(migrations, key=lambda m: (m.component, m.number))
        missing = [m for m in wanted if (m.component, m.number) not in done]
        if missing and await conn.fetchval("SELECT to_regclass('projection_positions') IS NOT NULL"):
            # Processes of the build before may still be projecting. Each batch locks its positions first and reads
            # there which migrations it was built for (runtime.py, MigratedBeyond): this waits for the batches in
            # flight and holds the next ones until the migrations commit, so none writes rows the old way past them.
            await conn.execute("LOCK TABLE projection_positions IN EXCLUSIVE MODE")
        # A new database takes every migration at once, in a moment: one line. An upgrade says each one it applies.
        # (The event log in PostgreSQL keeps its own migrations in the same table: only these ones count.)
        upgrade = len(missing) < len(wanted)
        began = time.monotonic()
        for migration in missing:
            if upgrade and migration.rewrites:
                log.info("applying migration %s: %s; it may take a while", migration.name, migration.rewrites)
            started = time.monotonic()
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (component, number) VALUES ($1, $2)",
                migration.component,
                migration.number,
            )
            applied.append(migration)
            if upgrade:
                log.info(
                    "applied migration %s%s in %.2f s",
                    migration.name,
                    f" ({migration.rewrites})" if migration.rewrites else "",
                    time.monotonic() - started,
                )
        if applied and not upgrade:
            log.info(
                "created the schema: %d migration%s in %.2f s",
                len(applied),
                "" if len(applied) == 1 else "s",
                time.monotonic() - began,
            )
        if applied:
            await conn.execute("UPDATE schema_generation SET generation = generation + 1")
    return applied
