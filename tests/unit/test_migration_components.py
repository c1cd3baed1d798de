"""Each batch of a projection refuses to apply when the database has migrations of its components that this
process does not know (projections/runtime.py, MigratedBeyond), and it finds them by name: a component belongs to
the projection its name starts with (`registry_files` to `registry`). A component named after another projection
would stop that one for ever, so every component's name says whose it is."""

from __future__ import annotations

from modelreg.projections.positions import RUNTIME_MIGRATIONS
from modelreg.services.projections_catalog import PROJECTIONS


def test_every_migration_component_is_named_after_the_projection_that_owns_it() -> None:
    owners = {"runtime": [m.component for m in RUNTIME_MIGRATIONS]}
    owners.update({name: [m.component for m in cls.migrations] for name, cls in PROJECTIONS.items()})
    misnamed = sorted(
        f"{component} (of {owner})"
        for owner, components in owners.items()
        for component in components
        if component.split("_")[0] != owner
    )
    assert not misnamed, f"name these components <projection>_<what>: {', '.join(misnamed)}"
