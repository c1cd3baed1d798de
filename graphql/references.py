"""What callers name things by, parsed in one place: ids (UUIDs), artifact refs, principals, version names.

Each refusal names the argument, what was sent and what it should look like, the same way everywhere.
"""

from __future__ import annotations

from uuid import UUID

from modelreg.errors import InvalidInput, quoted
from modelreg.events.names import count_in


def parse_uuid(name: str, value: str) -> UUID:
    """`value` of the argument `name` (e.g. "artifactVersionId") as a UUID."""
    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"{name}: {quoted(value)} is not an id of ours (a UUID like 0190a1b2-...)") from None


def as_uuid(value: object) -> UUID | None:
    """`value` as a UUID when it is one, else None: for names that may be an id or something else."""
    try:
        return UUID(str(value))
    except ValueError:
        return None


def parse_ref(ref: str) -> tuple[str, str, str, str]:
    """`entity/project/name:selector`, the selector being v<N>, latest or an alias (default latest)."""
    path, _, selector = ref.partition(":")
    parts = path.split("/")
    if len(parts) != 3 or not all(parts):
        raise InvalidInput(f"artifact ref {quoted(ref)} must look like entity/project/name:v3 (or :latest, :<alias>)")
    return parts[0], parts[1], parts[2], selector or "latest"


def parse_principal(value: str) -> tuple[str, str]:
    """`user:alice` or `service:ci` as (kind, id); the command checks the kind."""
    kind, _, ident = value.partition(":")
    return kind, ident


def parse_version_name(name: str) -> int:
    """A model version's name, v0, v1, ..., as its number."""
    number = count_in(name.removeprefix("v"))
    if number is None:
        raise InvalidInput(f"a model version is named v0, v1, ..., not {quoted(name)}")
    return number
