"""The projections this build runs, and every migration the read-model database needs."""

from __future__ import annotations

from modelreg.projections.audit import AuditProjection
from modelreg.projections.identity import IdentityProjection
from modelreg.projections.launch import LaunchProjection
from modelreg.projections.lineage import LineageProjection
from modelreg.projections.migrations import Migration
from modelreg.projections.positions import RUNTIME_MIGRATIONS
from modelreg.projections.projection import Projection
from modelreg.projections.registry import RegistryProjection
from modelreg.projections.triggers import TriggersProjection
from modelreg.services.automations.webhook_key_fingerprint import MIGRATIONS as WEBHOOK_KEY
from modelreg.services.commands.in_flight import MIGRATIONS as COMMANDS_IN_FLIGHT
from modelreg.services.http.key_uses import MIGRATIONS as KEY_USES

PROJECTIONS: dict[str, type[Projection]] = {
    cls.name: cls
    for cls in (
        RegistryProjection,
        AuditProjection,
        IdentityProjection,
        LineageProjection,
        LaunchProjection,
        TriggersProjection,
    )
}


def shown_to_commands() -> dict[str, set[str]]:
    """The projections a command waits for (read-your-writes), with the event types each shows."""
    return {name: shown for name, cls in PROJECTIONS.items() if (shown := cls().shown_to_commands())}


def all_migrations() -> list[Migration]:
    projections = (m for cls in PROJECTIONS.values() for m in cls.migrations)
    return [*RUNTIME_MIGRATIONS, *COMMANDS_IN_FLIGHT, *WEBHOOK_KEY, *KEY_USES, *projections]


def projection(name: str) -> Projection:
    try:
        return PROJECTIONS[name]()
    except KeyError:
        raise LookupError(f"no projection {name!r}; known: {', '.join(sorted(PROJECTIONS))}") from None
