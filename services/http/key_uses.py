"""When each API key was last presented: what an admin checks before revoking a key nobody seems to use, and what
shows that something still presents a key after its end.

A use is noted in memory on the request's path (one dict assignment) and written every FLUSH_S, all of them in one
statement; each API process writes its own, and the latest time wins. The process that answers a read adds the uses
it has not written yet, so its own are never behind; another process's are at most FLUSH_S behind.

Not an event: a use changes nothing in the registry, and one event per request would be most of the log. The table
is no read model either (a rebuild of the identity projection leaves it as it is): a crash loses at most the last
FLUSH_S of uses, which the next request with the key notes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from modelreg.projections.migrations import Migration

log = logging.getLogger(__name__)

FLUSH_S = 30.0
# A write PostgreSQL does not answer (a partition, a failover gone silent) is given up: the uses wait for the next, and
# a stopping API does not wait until TCP gives up.
WRITE_WITHIN_S = 5.0

MIGRATIONS = (
    Migration(
        "key_uses",
        1,
        """
        CREATE TABLE api_key_uses (
            key_id text PRIMARY KEY,
            last_used_at timestamptz NOT NULL
        );
        """,
    ),
)

_WRITE = """
INSERT INTO api_key_uses (key_id, last_used_at) SELECT * FROM unnest($1::text[], $2::timestamptz[])
ON CONFLICT (key_id) DO UPDATE SET last_used_at = greatest(api_key_uses.last_used_at, excluded.last_used_at)
"""


class KeyLookup(Protocol):
    async def principal_of_key(self, key_sha256: str) -> dict[str, Any] | None: ...


class KeyUses:
    def __init__(self, pool: asyncpg.Pool, flush_s: float = FLUSH_S) -> None:
        self.pool = pool
        self.flush_s = flush_s
        self._unwritten: dict[str, datetime] = {}
        self._writing: dict[str, datetime] = {}  # taken by the write under way: shown until it commits

    def note(self, key_id: str) -> None:
        self._unwritten[key_id] = datetime.now(UTC)

    def last_used(self, key_id: str, written: datetime | None) -> datetime | None:
        """The key's last use: the one written, or this process's own if it has not written it yet."""
        mine = self._unwritten.get(key_id) or self._writing.get(key_id)
        if mine is None or (written is not None and written >= mine):
            return written
        return mine

    async def write(self) -> None:
        uses, self._unwritten = self._unwritten, {}
        if not uses:
            return
        # In key order: two APIs writing the same keys at once lock their rows in one order, never in opposite ones.
        key_ids = sorted(uses)
        self._writing = uses
        try:
            async with asyncio.timeout(WRITE_WITHIN_S):
                await self.pool.execute(_WRITE, key_ids, [uses[k] for k in key_ids])
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            log.debug("the API keys' last uses wait for PostgreSQL: %s", e)
            self._keep(uses)
        except asyncio.CancelledError:  # the process stops: its last write comes next
            self._keep(uses)
            raise
        finally:
            self._writing = {}

    def _keep(self, uses: dict[str, datetime]) -> None:
        """Unwritten uses wait for the next write, beside the ones noted meanwhile (the newer of two wins)."""
        for key_id, at in uses.items():
            if self._unwritten.get(key_id, at) <= at:
                self._unwritten[key_id] = at

    def noting(self, lookup: KeyLookup) -> KeyLookup:
        """`lookup`, noting a use of every key it finds (a subscription's, looked up without the kept keys)."""
        return _Noting(lookup, self)

    @contextlib.asynccontextmanager
    async def written(self) -> AsyncIterator[KeyUses]:
        """Writes the uses every flush_s while open, and what is left when it closes."""

        async def every_interval() -> None:
            while True:
                await asyncio.sleep(self.flush_s)
                await self.write()

        task = asyncio.create_task(every_interval(), name="key-uses")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.write()


class _Noting:
    def __init__(self, lookup: KeyLookup, uses: KeyUses) -> None:
        self.lookup = lookup
        self.uses = uses

    async def principal_of_key(self, key_sha256: str) -> dict[str, Any] | None:
        found = await self.lookup.principal_of_key(key_sha256)
        if found is not None:
            self.uses.note(found["key_id"])
        return found
