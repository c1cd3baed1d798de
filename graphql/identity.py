"""Identity: who the caller is, API keys, and who holds which role where (membership)."""

from __future__ import annotations

from typing import Any

import graphene
from graphene.types.generic import GenericScalar

from modelreg.graphql.errors import reports_errors
from modelreg.graphql.inputs import parse_command
from modelreg.services.commands import GrantRole, IssueApiKey, RevokeRole


class Principal(graphene.ObjectType):
    id = graphene.String(required=True, description="user:alice, service:ci")
    role = graphene.String(required=True, description="the role of the key in use, everywhere it holds no grant")
    grants = GenericScalar(required=True, description="scope -> role, e.g. {\"model:nature-classification\": \"admin\"}")


class IssuedApiKey(graphene.ObjectType):
    key = graphene.String(required=True, description="shown once: only its hash is kept")
    principal = graphene.String(required=True)
    role = graphene.String(required=True)


class Grant(graphene.ObjectType):
    principal = graphene.String(required=True)
    scope = graphene.String(required=True)
    role = graphene.String(description="null once revoked")


class IdentityQueries(graphene.ObjectType):
    viewer = graphene.Field(Principal, required=True, description="The caller: its principal, role and grants.")

    @staticmethod
    def resolve_viewer(root: Any, info: graphene.ResolveInfo) -> dict:
        caller = info.context.caller
        return {"id": str(caller.actor), "role": caller.role, "grants": dict(caller.grants)}


class IdentityMutations(graphene.ObjectType):
    issue_api_key = graphene.Field(
        IssuedApiKey,
        required=True,
        principal_kind=graphene.String(required=True, description="user or service"),
        principal_id=graphene.String(required=True),
        role=graphene.String(default_value="member", description="admin, member or viewer"),
        label=graphene.String(),
        description="Installation admins only.",
    )
    grant_role = graphene.Field(
        Grant,
        required=True,
        principal=graphene.String(required=True, description="user:bob or service:ci"),
        scope=graphene.String(required=True, description="registry, model:<name> or entity:<name>"),
        role=graphene.String(required=True, description="admin, member or viewer"),
        description="Admins of the scope only.",
    )
    revoke_role = graphene.Field(
        Grant, required=True, principal=graphene.String(required=True), scope=graphene.String(required=True)
    )

    @staticmethod
    @reports_errors
    async def resolve_issue_api_key(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        command = parse_command(IssueApiKey, fields)
        accepted = await info.context.app.execute(command, info.context.caller)
        return {"key": accepted.subject_id, "principal": f"{command.principal_kind}:{command.principal_id}", "role": command.role}

    @staticmethod
    @reports_errors
    async def resolve_grant_role(root: Any, info: graphene.ResolveInfo, principal: str, scope: str, role: str) -> dict:
        command = parse_command(GrantRole, {**_principal(principal), "scope": scope, "role": role})
        await info.context.app.execute(command, info.context.caller)
        return {"principal": principal, "scope": scope, "role": role}

    @staticmethod
    @reports_errors
    async def resolve_revoke_role(root: Any, info: graphene.ResolveInfo, principal: str, scope: str) -> dict:
        await info.context.app.execute(parse_command(RevokeRole, {**_principal(principal), "scope": scope}), info.context.caller)
        return {"principal": principal, "scope": scope, "role": None}


def _principal(value: str) -> dict[str, str]:
    kind, _, ident = value.partition(":")
    return {"principal_kind": kind, "principal_id": ident}
