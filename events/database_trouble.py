"""PostgreSQL errors about the installation, not about the statement or the event that met them.

Disk full, out of memory, no connection free, a connection broken, a shutdown, a read-only standby: the same event
applies once PostgreSQL is mended, and the same command succeeds. So a projection waits and tries again instead of
parking the stream (a handler's bug) or trying event by event, a command answers UNAVAILABLE (retriable) naming the
cause instead of INTERNAL under an incident id, and /healthz says `degraded` with the reason while it lasts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class DatabaseTrouble:
    """What is wrong (said to a caller) and what the operator does about it."""

    what: str
    remedy: str

    def __str__(self) -> str:
        return f"{self.what}: {self.remedy}"


_BY_SQLSTATE = {
    "53100": DatabaseTrouble("the registry's database is out of disk space", "free space on PostgreSQL's disk"),
    "53200": DatabaseTrouble("the registry's database is out of memory", "give PostgreSQL more memory"),
    "53300": DatabaseTrouble(
        "the registry's database has no connection free",
        "raise its max_connections, or stop what holds its connections (pg_stat_activity lists them)",
    ),
    "25006": DatabaseTrouble(
        "the registry's database is read-only (a standby, or default_transaction_read_only)",
        "point DATABASE_URL at the primary",
    ),
    "57P01": DatabaseTrouble("the registry's database is shutting down", "start PostgreSQL again"),
    "57P02": DatabaseTrouble("the registry's database is restarting (crash recovery)", "see PostgreSQL's log"),
    "57P03": DatabaseTrouble("the registry's database is starting", "wait for it"),
    "58030": DatabaseTrouble("the registry's database cannot read or write its files", "check PostgreSQL's disk"),
}
# By SQLSTATE class, for the codes not named above.
_BY_CLASS = {
    "53": DatabaseTrouble("the registry's database lacks resources", "see PostgreSQL's log"),
    "08": DatabaseTrouble("the connection to the registry's database broke", "check that PostgreSQL is up"),
}
_CONNECTION_LOST = _BY_CLASS["08"]
# In those classes, but the statement's own doing each time it runs: waiting would stall its projection for good,
# where applying its events one by one parks the one at fault (temp_file_limit exceeded; a message PostgreSQL could
# not take, too large).
_THE_STATEMENTS_OWN = {"53400", "08P01"}


def database_trouble(exc: BaseException | None) -> DatabaseTrouble | None:
    """What is wrong with PostgreSQL when `exc` (or what caused it) is about the installation; None when it is
    about the statement or the data (a handler's bug, a constraint), which waiting does not mend."""
    seen = 0
    while exc is not None and seen < 5:  # a command's error may wrap the database's
        if isinstance(exc, asyncpg.PostgresError):
            state = exc.sqlstate or ""
            if state in _THE_STATEMENTS_OWN:
                return None
            return _BY_SQLSTATE.get(state) or _BY_CLASS.get(state[:2])
        if isinstance(exc, (asyncpg.ConnectionDoesNotExistError, ConnectionError)):
            return _CONNECTION_LOST
        exc, seen = exc.__cause__, seen + 1
    return None


# How long a trouble is shown after it was last met, unless a projection applies a batch before.
SHOWN_FOR_S = 30.0


class TroublesSeen:
    """The last trouble this process met with its PostgreSQL, for /healthz (one per process, as the log is)."""

    def __init__(self) -> None:
        self._trouble: DatabaseTrouble | None = None
        self._at = 0.0

    def met(self, trouble: DatabaseTrouble, now: float | None = None) -> None:
        self._trouble, self._at = trouble, time.monotonic() if now is None else now

    def mended(self) -> None:
        self._trouble = None

    def current(self, now: float | None = None) -> DatabaseTrouble | None:
        now = time.monotonic() if now is None else now
        return self._trouble if self._trouble is not None and now - self._at < SHOWN_FOR_S else None


TROUBLES_SEEN = TroublesSeen()
