"""When a client says a command happened: a claim kept beside the server's time, never instead of it.

An offline run records each command with its client's time (`occurredAt`) and `modelreg sync` sends them
later. Every event's `occurred_at` is the server's time of receipt: audit filters, history and "linked at"
go by it. The claim is kept as the envelope's `recorded_offline_at`, for the run's own history, when:

- the command is one of a run's own (start, metrics, finish, a version it logs or uses, its sync record).
  A link, or a version logged outside a run, is the registry's history, not a run's: a claim there is
  refused, so that nobody can backdate a link (`modelreg sync` sends links without one);
- it is not in the future beyond CLOCK_SKEW (checked when the command is parsed, services/commands/commands.py);
- it is not before the run's start: its recorded start when the run was recorded offline, else the
  server's start less CLOCK_SKEW (the client's clock against ours).
A claimed start has no lower bound: it is the run's own say, shown labelled as such, beside the server's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from modelreg.errors import InvalidInput
from modelreg.projections.registry_queries import RegistryQueries
from modelreg.services.commands.commands import CLOCK_SKEW, Recordable, RecordSync, StartRun


async def bounded_claim(command: Recordable, reads: RegistryQueries) -> datetime | None:
    """The time to keep as `recorded_offline_at` (None: no claim), or InvalidInput saying what to fix."""
    offered = {"occurredAt": command.occurred_at}
    if isinstance(command, RecordSync):
        offered |= {"firstOccurredAt": command.first_occurred_at, "lastOccurredAt": command.last_occurred_at}
    claims = {name: at for name, at in offered.items() if at is not None}
    if not claims:
        return None
    run = command.claiming_run()
    if run is None:
        raise InvalidInput(
            f"occurredAt is kept only for a run's own commands (start, metrics, finish, artifacts it logs or "
            f"uses): a {command.describe()} is recorded at the server's time of receipt; send it without occurredAt"
        )
    for name, at in claims.items():
        if at > datetime.now(UTC) + CLOCK_SKEW:
            raise InvalidInput(
                f"{name} {at.isoformat()} is in the future: check the clock of the machine that recorded it"
            )
    if isinstance(command, StartRun):
        return command.occurred_at
    started = await reads.run(*run)
    if started is None:
        return command.occurred_at  # the handler says that the run must be started first
    earliest = started["started_offline_at"] or started["started_at"] - CLOCK_SKEW
    for name, at in claims.items():
        if at < earliest:
            raise InvalidInput(
                f"{name} {at.isoformat()} is before run {'/'.join(run)} started ({earliest.isoformat()}): "
                "check the clock of the machine that recorded it"
            )
    return command.occurred_at
