"""Identity: who the caller is, API keys, and who holds which role where (membership).

Installation admins (an admin key) list every principal with its keys and grants; everyone sees their own
through `viewer { access }`, and the audit log and live events show identity events on the same terms
(projections/readable.py). A key is listed by its id (the public part, `mr_<id>_...`), never the key
itself or its hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import graphene
from pydantic import TypeAdapter, ValidationError

from modelreg.errors import InvalidInput, quoted
from modelreg.events.identity import ApiKeyIssued, Scope
from modelreg.graphql.enums import PrincipalKind, Role
from modelreg.graphql.inputs import parse_command
from modelreg.graphql.json_value import JSONValue
from modelreg.graphql.pages import Cursors, key_page, page_of, page_size, paged
from modelreg.graphql.references import parse_principal
from modelreg.graphql.warnings import given_warnings, warnings_field
from modelreg.projections.identity_queries import PrincipalKey
from modelreg.services.commands.access import RANK
from modelreg.services.commands.commands import GrantRole, IssueApiKey, RevokeApiKey, RevokeRole, scopes_of_scope


class ApiKey(graphene.ObjectType):
    """An API key as admins see it: who holds it, with which role, who issued and revoked it, when."""

    id = graphene.ID(required=True, description="the key's public part: the key reads mr_<id>_...")
    prefix = graphene.String(required=True, description="mr_<id>_, how the key starts (to recognise one)")
    principal = graphene.String(required=True)
    role = graphene.Field(Role, required=True, description="holds everywhere its principal has no grant")
    label = graphene.String()
    issued_at = graphene.DateTime(required=True)
    issued_by = graphene.String(required=True)
    revoked_at = graphene.DateTime(description="null while the key works")
    revoked_by = graphene.String()
    live = graphene.Boolean(required=True, description="neither revoked nor expired: requests with it are accepted")
    expires_at = graphene.DateTime(description="refused from then on; null: it never expires")
    last_used_at = graphene.DateTime(
        description="when a request last presented it (within 30 s), accepted or refused as expired; null: never "
        "since modelreg began recording uses"
    )
    unused_since = graphene.DateTime(
        required=True,
        description="since when no request presented it: its last use, else the later of its issue and when modelreg "
        "began recording uses (a key used only before that is not taken for one never used)",
    )
    scopes = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="the scopes the key is limited to (its role holds there only); empty: not limited",
    )
    warnings = warnings_field(
        "In the answer of revokeApiKey: what the caller should know though it was accepted (it was its "
        "principal's last live key, and the roles granted to it and the automations it created stay). Empty when "
        "the key is read otherwise."
    )
    resolve_warnings = staticmethod(given_warnings)

    @staticmethod
    def resolve_last_used_at(root: dict[str, Any], info: graphene.ResolveInfo) -> datetime | None:
        written, uses = root.get("last_used_at"), info.context.key_uses
        return uses.last_used(root["id"], written) if uses is not None else written

    @staticmethod
    def resolve_unused_since(root: dict[str, Any], info: graphene.ResolveInfo) -> datetime:
        if (used := ApiKey.resolve_last_used_at(root, info)) is not None:
            return used
        recorded_since = root.get("uses_recorded_since")
        return max(root["issued_at"], recorded_since) if recorded_since is not None else root["issued_at"]


def _api_key(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["key_id"],
        "prefix": f"mr_{row['key_id']}_",
        "principal": f"{row['principal_kind']}:{row['principal_id']}",
        "role": row["role"],
        "label": row["label"],
        "issued_at": row["issued_at"],
        "issued_by": row["issued_by"],
        "revoked_at": row["revoked_at"],
        "revoked_by": row["revoked_by"],
        "live": row["revoked_at"] is None and not _expired(row),
        "scopes": row.get("scopes") or [],
        "expires_at": row.get("expires_at"),
        "last_used_at": row.get("last_used_at"),
        "uses_recorded_since": row.get("uses_recorded_since"),
    }


def _expired(row: dict[str, Any]) -> bool:
    return (expires_at := row.get("expires_at")) is not None and expires_at <= datetime.now(UTC)


class Grant(graphene.ObjectType):
    principal = graphene.String(required=True)
    scope = graphene.String(required=True)
    role = graphene.Field(Role, description="null once revoked")
    granted_at = graphene.DateTime()
    granted_by = graphene.String()
    warnings = warnings_field(
        "In the answer of grantRole: what the caller should know though it was accepted (no key was ever "
        "issued to the principal, or its entity or registered model holds nothing yet: a typo maybe, and the nearest "
        "names that exist). Empty when the grant is read otherwise."
    )
    resolve_warnings = staticmethod(given_warnings)


def _grant(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "principal": f"{row['principal_kind']}:{row['principal_id']}",
        "scope": row["scope"],
        "role": row["role"],
        "granted_at": row["granted_at"],
        "granted_by": row["granted_by"],
    }


class PrincipalAccess(graphene.ObjectType):
    """A principal with every key it was issued (live or revoked) and every grant it holds."""

    id = graphene.String(required=True, description="user:alice, service:ci")
    kind = graphene.Field(PrincipalKind, required=True)
    role = graphene.Field(Role, description="the highest role among its live keys; null when it has none")
    keys = graphene.List(graphene.NonNull(ApiKey), required=True, description="newest first")
    grants = graphene.List(graphene.NonNull(Grant), required=True, description="by scope")


async def _access(info: graphene.ResolveInfo, principals: list[PrincipalKey]) -> list[dict[str, Any]]:
    """Two queries for a whole page of principals, whatever its size."""
    keys = await info.context.identity.keys_of(principals)
    grants = await info.context.identity.grants_of(principals)
    found = []
    for principal in principals:
        live = [k["role"] for k in keys[principal] if k["revoked_at"] is None and not _expired(k)]
        found.append(
            {
                "id": f"{principal[0]}:{principal[1]}",
                "kind": principal[0],
                "role": max(live, key=RANK.__getitem__) if live else None,
                "keys": [_api_key(k) for k in keys[principal]],
                "grants": [_grant(g) for g in grants[principal]],
            }
        )
    return found


class Principal(graphene.ObjectType):
    """The caller."""

    id = graphene.String(required=True, description="user:alice, service:ci")
    role = graphene.Field(Role, required=True, description="the role of the key in use, everywhere it holds no grant")
    grants = JSONValue(required=True, description='scope -> role, e.g. {"model:nature-classification": "admin"}')
    key_id = graphene.ID(description="the id of the key in use")
    access = graphene.Field(
        PrincipalAccess, required=True, description="the caller's own keys and grants, with who issued them and when"
    )

    @staticmethod
    async def resolve_access(root: dict, info: graphene.ResolveInfo) -> dict:
        caller = info.context.caller
        (own,) = await _access(info, [(caller.actor.kind, caller.actor.id)])
        return own


PrincipalAccessPage = page_of(PrincipalAccess)
GrantPage = page_of(Grant)


class IssuedApiKey(graphene.ObjectType):
    key = graphene.String(required=True, description="shown once: only its hash is kept")
    id = graphene.ID(required=True, description="the key's public part (revokeApiKey takes it)")
    principal = graphene.String(required=True)
    role = graphene.Field(Role, required=True)
    label = graphene.String()
    scopes = graphene.List(graphene.NonNull(graphene.String), required=True, description="empty: not limited")
    expires_at = graphene.DateTime(description="refused from then on; null: it never expires")
    grants = graphene.List(
        graphene.NonNull(Grant),
        required=True,
        description="the roles its principal already holds on scopes, which this key holds too (within its scopes, "
        "when limited): grants belong to the principal, not to a key, and outlive its keys",
    )
    warnings = warnings_field(
        "what the caller should know though it was issued (its principal's keys were all revoked, and it kept roles "
        "this key holds: someone else of the same name?)"
    )


class IdentityQueries(graphene.ObjectType):
    viewer = graphene.Field(Principal, required=True, description="The caller: its principal, role and grants.")
    principals = paged(
        PrincipalAccessPage,
        search=graphene.String(description="part of the principal, e.g. zoe or service:"),
        description="Everyone who holds a key or a grant, by kind and id, with their keys and grants. "
        "Installation admins only; anyone sees their own with viewer { access }.",
    )

    grants_on = paged(
        GrantPage,
        scope=graphene.String(required=True, description="entity:<name>, model:<name> or registry"),
        description="Who holds a role on the scope, by principal: a team's members granted there. Admins of the scope "
        "(a team admin) and installation admins; who holds keys stays with installation admins (principals).",
    )

    @staticmethod
    async def resolve_grants_on(
        root: Any, info: graphene.ResolveInfo, scope: str, first: int, after: str | None = None
    ) -> dict:
        try:
            TypeAdapter(Scope).validate_python(scope)
        except ValidationError:
            raise InvalidInput(
                f"{quoted(scope)} is not a scope: registry, model:<registered model> or entity:<entity>"
            ) from None
        info.context.caller.require("admin", scopes_of_scope(scope), f"listing who holds a role on {scope}")
        limit = page_size(first)
        cursors = Cursors.of(info)
        position = cursors.decode(after, str, str)
        rows = await info.context.identity.grants_on(
            scope, after=(position[0], position[1]) if position else None, limit=limit + 1
        )
        return key_page(
            [_grant(r) | {"kind_and_id": (r["principal_kind"], r["principal_id"])} for r in rows],
            limit,
            after,
            lambda last: cursors.encode(*last["kind_and_id"]),
        )

    @staticmethod
    def resolve_viewer(root: Any, info: graphene.ResolveInfo) -> dict:
        caller = info.context.caller
        return {"id": str(caller.actor), "role": caller.role, "grants": dict(caller.grants), "key_id": caller.key_id}

    @staticmethod
    async def resolve_principals(
        root: Any, info: graphene.ResolveInfo, first: int, search: str | None = None, after: str | None = None
    ) -> dict:
        info.context.caller.require("admin", (), "listing principals, their keys and grants")
        limit = page_size(first)
        cursors = Cursors.of(info)
        position = cursors.decode(after, str, str)
        found = await info.context.identity.principals_page(
            search=search, after=(position[0], position[1]) if position else None, limit=limit + 1
        )
        shown = found[:limit]
        end = cursors.encode(*shown[-1]) if shown else after
        return {"items": await _access(info, shown), "end_cursor": end, "has_next_page": len(found) > limit}


class IssueApiKeyInput(graphene.InputObjectType):
    principal_kind = PrincipalKind(required=True)
    principal_id = graphene.String(required=True)
    role = Role(description="MEMBER unless given")
    label = graphene.String()
    scopes = graphene.List(
        graphene.NonNull(graphene.String),
        description="limit the key to these scopes (registry, model:<name>, entity:<name>, queue:<name>): a leaked "
        "key does harm there only",
    )
    expires_in_s = graphene.Int(
        description="refused this many seconds from now (at most five years): a contractor's key, a CI key rotated "
        "each quarter; left out: it never expires"
    )


class GrantRoleInput(graphene.InputObjectType):
    principal = graphene.String(required=True, description="user:bob or service:ci")
    scope = graphene.String(required=True, description="registry, model:<name> or entity:<name>")
    role = Role(required=True)


class RevokeRoleInput(graphene.InputObjectType):
    principal = graphene.String(required=True, description="user:bob or service:ci")
    scope = graphene.String(required=True)


class RevokeApiKeyInput(graphene.InputObjectType):
    key_id = graphene.ID(required=True, description="the key's id (mr_<id>_...), as principals lists it")


class IdentityMutations(graphene.ObjectType):
    issue_api_key = graphene.Field(
        IssuedApiKey, required=True, input=IssueApiKeyInput(required=True), description="Installation admins only."
    )
    grant_role = graphene.Field(
        Grant, required=True, input=GrantRoleInput(required=True), description="Admins of the scope only."
    )
    revoke_role = graphene.Field(Grant, required=True, input=RevokeRoleInput(required=True))
    revoke_api_key = graphene.Field(
        ApiKey,
        required=True,
        input=RevokeApiKeyInput(required=True),
        description="Installation admins only. Requests with the key are refused (401) from the moment this "
        "returns; revoking one already revoked changes nothing. The last live admin key is not revoked.",
    )

    @staticmethod
    async def resolve_issue_api_key(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        fields = dict(input)
        # The command's `scopes` is every command's method saying where it acts: the limits are `limited_to`.
        fields["limited_to"] = fields.pop("scopes", None)
        command = parse_command(IssueApiKey, fields)
        accepted = await info.context.app.execute(command, info.context.caller)
        issued = accepted.events[0].payload
        assert isinstance(issued, ApiKeyIssued)
        principal = (command.principal_kind, command.principal_id)
        grants = (await info.context.identity.grants_of([principal]))[principal]
        return {
            "key": accepted.subject_id,
            "id": issued.key_id,
            "principal": f"{command.principal_kind}:{command.principal_id}",
            "role": command.role,
            "label": command.label,
            "scopes": list(issued.scopes),
            "expires_at": issued.expires_at,
            "grants": [_grant(g) for g in grants],
            "warnings": accepted.warnings,
        }

    @staticmethod
    async def resolve_revoke_api_key(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        accepted = await info.context.app.execute(parse_command(RevokeApiKey, input), info.context.caller)
        row = await info.context.identity.api_key(input["key_id"])
        assert row is not None  # the command found it
        return {**_api_key(row), "warnings": accepted.warnings}

    @staticmethod
    async def resolve_grant_role(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        principal, scope = input["principal"], input["scope"]
        command = parse_command(GrantRole, {**_principal(principal), "scope": scope, "role": input["role"]})
        accepted = await info.context.app.execute(command, info.context.caller)
        row = await info.context.identity.grant((command.principal_kind, command.principal_id), scope)
        granted = _grant(row) if row else {"principal": principal, "scope": scope, "role": command.role}
        return {**granted, "warnings": accepted.warnings}

    @staticmethod
    async def resolve_revoke_role(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        principal, scope = input["principal"], input["scope"]
        await info.context.app.execute(
            parse_command(RevokeRole, {**_principal(principal), "scope": scope}), info.context.caller
        )
        return {"principal": principal, "scope": scope, "role": None}


def _principal(value: str) -> dict[str, str]:
    kind, ident = parse_principal(value)
    return {"principal_kind": kind, "principal_id": ident}
