"""Connection pools to the read-model database."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import orjson


def _uuid_subclass(value: object) -> str:
    """orjson writes uuid.UUID itself, not subclasses of it: asyncpg's, in an event built from ids read from
    the database and handed to the projections as it was written (events/written.py)."""
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in binary form is a version byte (1) followed by the JSON text.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: b"\x01" + orjson.dumps(value, default=_uuid_subclass),
        decoder=lambda data: orjson.loads(data[1:]),
        format="binary",
    )


# asyncpg's own reset step without its timer (a private method, asyncpg 0.30 and later): asked once, not per release.
_ASYNCPG_RESETS_UNTIMED = hasattr(asyncpg.Connection, "_reset")


class StatelessConnection(asyncpg.Connection):
    """modelreg leaves no session state on a connection (no SET, no session advisory locks, no cursors;
    listeners are removed before release), so releasing one to the pool skips asyncpg's reset query:
    one round trip less for every read."""

    def get_reset_query(self) -> str:
        return ""

    async def reset(self, *, timeout: float | None = None) -> None:
        # The pool resets a connection at each release under a timer, even with no timeout to keep (about 2% of
        # a mutation's CPU). With no reset query, what is left is asyncpg's own step: roll back a transaction
        # left open, drop listeners.
        if timeout is None and _ASYNCPG_RESETS_UNTIMED:
            await self._reset()
        else:
            await super().reset(timeout=timeout)


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, durable_commits: bool = True, schema: str | None = None
) -> asyncpg.Pool:
    """`durable_commits=False` is for projections only: the event log is the source of truth and a batch's
    positions commit with its writes, so commits lost in a Postgres crash are simply applied again from
    the log. Not waiting for the WAL flush takes a disk sync off every batch. `schema`: the only schema its
    connections name tables in (a rebuild's shadow, services/rebuild.py), set as they connect."""
    settings = {} if durable_commits else {"synchronous_commit": "off"}
    if schema is not None:
        settings["search_path"] = schema
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings=settings,
        connection_class=StatelessConnection,
    )
