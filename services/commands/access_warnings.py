"""What a change of keys or grants should tell its caller though nothing was refused (`Decision.warnings`).

Grants belong to a principal, not to a key: they outlive its keys, and a key issued later under the same id holds
them (a new hire named like someone who left inherited their private team). A grant may be made before the key it
will hold through, or before the team or model it names has anything in it, so neither is refused; but a typo
(`user:alcie`, `entity:visoin`) was accepted silently and held nowhere. These warnings name what is held, and the
nearest names that exist, among those the caller may know of: an installation admin knows every principal, a
scope's admin the principals granted a role there (docs/access.md, who holds which key and role).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from modelreg.events.envelope import Actor
from modelreg.services.commands.decisions import CommandContext

# As the topics of a mistyped one (events/kafka_log.py).
_NEAREST = 3
_CUTOFF = 0.6


def nearest(name: str, names: Iterable[str]) -> list[str]:
    """The names closest to `name` (a typo's intended one first), `name` itself left out."""
    return difflib.get_close_matches(name, [n for n in names if n != name], n=_NEAREST, cutoff=_CUTOFF)


def _did_you_mean(names: list[str]) -> str:
    return f" (did you mean {' or '.join(names)}?)" if names else ""


def roles_in_words(grants: Mapping[str, str]) -> str:
    """`admin on entity:vision, viewer on registry`."""
    return ", ".join(f"{role} on {scope}" for scope, role in sorted(grants.items()))


def keyless_creator(creator: str, action_kind: str | None) -> str:
    """What an automation of a creator with no live key does: it acts with their rights, and without a key they hold
    a viewer's on what is public only (services/automations/runner.py)."""
    does = (
        "it launches no job: each firing fails, saying so"
        if action_kind == "launch"
        else "its webhook is still sent what every key reads (public teams and models), and nothing else"
    )
    return (
        f"{creator}, its creator, holds no live key (each was revoked), and it acts with their rights: {does}. "
        f"Switch it off or delete it, or issue {creator} a key (issueApiKey) or have someone else create it again"
    )


async def issued_key_warnings(principal: Actor, limited_to: tuple[str, ...], ctx: CommandContext) -> tuple[str, ...]:
    """A principal whose keys were all revoked keeps its grants: the new key holds them, which is right for the same
    person back and wrong for another of the same name."""
    grants = await ctx.reads.identity.roles_by_scope(principal.kind, principal.id)
    if not grants:
        return ()
    keys = await ctx.reads.identity.keys_of_principal(principal.kind, principal.id)
    if not keys or any(key["revoked_at"] is None for key in keys):
        return ()  # granted before its first key, or another key of someone who holds one
    within = " within its limits" if limited_to else ""
    return (
        f"{principal} holds no other live key (each was revoked) but keeps the roles granted to it: "
        f"{roles_in_words(grants)}, which this key holds too{within}. If this is someone else of the same name, take "
        f"them back (revokeRole) or issue the key under another id",
    )


async def revoked_key_warnings(principal: Actor, key_id: str, ctx: CommandContext) -> tuple[str, ...]:
    """Revoking a principal's last live key (offboarding) leaves its grants and its automations: say which, so that
    they are taken back too, or known to stay."""
    keys = await ctx.reads.identity.keys_of_principal(principal.kind, principal.id)
    if key_id not in {key["key_id"] for key in keys}:
        return ()  # a Launch job attempt's key: its agent's own keys are what it holds
    if any(key["revoked_at"] is None and key["key_id"] != key_id for key in keys):
        return ()
    warnings = []
    grants = await ctx.reads.identity.roles_by_scope(principal.kind, principal.id)
    if grants:
        warnings.append(
            f"this was {principal}'s last live key, and the roles granted to it stay: {roles_in_words(grants)}; a key "
            f"issued to {principal} later holds them again. If {principal} is leaving, take them back (revokeRole)"
        )
    automations = await ctx.reads.launch.automations_created_by(str(principal))
    if automations:
        named = ", ".join(_automation_in_words(a) for a in automations[:5])
        more = f" and {len(automations) - 5} more" if len(automations) > 5 else ""
        warnings.append(
            f"{principal} created automations that stay: {named}{more}. Each acts with its creator's rights, and "
            f"{principal} holds no live key now: one launching jobs launches none, a webhook is still sent what "
            "every key reads. Delete them or switch them off (deleteAutomation, setAutomationEnabled)"
        )
    return tuple(warnings)


def _automation_in_words(automation: Mapping[str, Any]) -> str:
    return f"{automation['name']} ({automation['automation_id']}, {'on' if automation['enabled'] else 'off'})"


async def granted_role_warnings(principal: Actor, scope: str, ctx: CommandContext) -> tuple[str, ...]:
    """A grant to a principal nobody holds a key for, or on a scope with nothing in it yet, is taken (its key or its
    first run may come later) and said, with the nearest names that exist."""
    return tuple(await _grantee_unknown(principal, scope, ctx) + await _scope_empty(scope, ctx))


async def _grantee_unknown(principal: Actor, scope: str, ctx: CommandContext) -> list[str]:
    if not ctx.caller.may("admin", ()):
        # A scope's admin reads who is granted a role there, not who holds keys (those records are installation
        # admins'): the nearest of those, when this one holds none there.
        granted = await ctx.reads.identity.grantees_of(scope)
        near = _nearest_principals(principal, granted)
        if str(principal) in granted or not near:
            return []
        return [f"{principal} holds no role on {scope} yet{_did_you_mean(near)}"]
    keys = await ctx.reads.identity.keys_of_principal(principal.kind, principal.id)
    if any(key["revoked_at"] is None for key in keys):
        return []
    if keys:
        return [f"{principal} holds no live key (each was revoked): the grant holds once a key is issued to them"]
    near = _nearest_principals(principal, await ctx.reads.identity.principals())
    return [f"no key was ever issued to {principal}: the grant holds once one is{_did_you_mean(near)}"]


def _nearest_principals(principal: Actor, known: Iterable[str]) -> list[str]:
    """By their ids, whatever their kind (`service:ci` for `user:ci`): the shared `user:` made every user near."""
    ids: dict[str, list[str]] = {}
    for other in known:
        if other != str(principal):
            ids.setdefault(other.partition(":")[2], []).append(other)
    near = difflib.get_close_matches(principal.id, list(ids), n=_NEAREST, cutoff=_CUTOFF)
    return [other for found in near for other in sorted(ids[found])][:_NEAREST]


async def _scope_empty(scope: str, ctx: CommandContext) -> list[str]:
    if scope == "registry" or scope in await ctx.reads.identity.private_scopes():
        return []  # made private before its first run or version: someone meant it
    kind, _, name = scope.partition(":")
    readable = ctx.caller.readable()
    if kind == "entity":
        entities = await ctx.reads.registry.entities()
        if name in entities:
            return []
        near = [f"entity:{n}" for n in nearest(name, [e for e in entities if readable.entity(e)])]
        return [f"entity {name} has no run or artifact yet: the grant holds there once it does{_did_you_mean(near)}"]
    if await ctx.reads.registry.registered_model(name) is not None:
        return []
    models = await ctx.reads.registry.registered_model_names()
    near = [f"model:{n}" for n in nearest(name, [m for m in models if readable.model(m)])]
    return [
        f"no registered model {name} exists yet: the grant holds there once one is created with that name"
        f"{_did_you_mean(near)}"
    ]
