"""Whether any `modelreg triggers` replica (or a server's own) is carrying out automations, as /healthz sees it.
A triggers process that exited left /healthz saying ok for as long as nobody noticed, while no webhook was delivered,
no job of an automation enqueued, no vanished agent's job requeued and no silent run marked crashed. The active
replica holds a PostgreSQL advisory lock for its whole life (services/triggers.py): nobody holding it for
MISSING_AFTER_S (a replica starting again takes it within seconds) makes the installation degraded."""

from __future__ import annotations

from modelreg.services.triggers import ACTIVE_LOCK

MISSING_AFTER_S = 30.0

# Whether a session holds the active replica's lock (a bigint advisory lock shows as its two halves).
ACTIVE_REPLICA = f"""SELECT EXISTS (
    SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND classid::bigint = {ACTIVE_LOCK >> 32} AND objid::bigint = {ACTIVE_LOCK & 0xFFFFFFFF} AND objsubid = 1)"""

MISSING = (
    "no `modelreg triggers` process is carrying out automations: webhooks are not delivered, automations enqueue no "
    "job, the jobs of vanished agents are not requeued and silent runs are not marked crashed: start one "
    "(`modelreg triggers`, or `modelreg server` runs its own)"
)


class TriggersPresence:
    """Since when nobody has held the lock, as successive /healthz readings saw it."""

    def __init__(self, missing_after_s: float | None = None) -> None:
        self.missing_after_s = MISSING_AFTER_S if missing_after_s is None else missing_after_s
        self._unheld_since: float | None = None

    def missing_for(self, held: bool, now: float) -> float | None:
        """How long nobody has held the lock, once that is MISSING_AFTER_S or more."""
        if held:
            self._unheld_since = None
            return None
        if self._unheld_since is None:
            self._unheld_since = now
        missing = now - self._unheld_since
        return missing if missing >= self.missing_after_s else None
