"""Private entities and registered models: which are private, and the admin action that makes them so.

What a caller may read is enforced where the reads are (projections/readable.py); this is only the switch
and the list, which shows a caller the private scopes it may read (an admin: all of them).
"""

from __future__ import annotations

from typing import Any

import graphene

from modelreg.graphql.enums import Visibility, value_of
from modelreg.graphql.inputs import parse_command
from modelreg.graphql.pages import Cursors, key_page, page_of, page_size, paged
from modelreg.services.commands.commands import SetVisibility


class ScopeVisibility(graphene.ObjectType):
    scope = graphene.String(required=True, description="entity:<name> or model:<name>")
    visibility = graphene.Field(Visibility, required=True)


ScopeVisibilityPage = page_of(ScopeVisibility)


class SetVisibilityInput(graphene.InputObjectType):
    scope = graphene.String(required=True, description="entity:<name> (a team) or model:<name> (a registered model)")
    visibility = Visibility(required=True)


class VisibilityQueries(graphene.ObjectType):
    private_scopes = paged(
        ScopeVisibilityPage,
        description="The private entities and registered models you may read, by name (an admin: all of them).",
    )

    @staticmethod
    async def resolve_private_scopes(
        root: Any, info: graphene.ResolveInfo, first: int, after: str | None = None
    ) -> dict:
        limit = page_size(first)
        cursors = Cursors.of(info)
        position = cursors.decode(after, str)
        readable = info.context.readable
        shown = sorted(
            s for s in info.context.caller.private if readable.scope(s) and (not position or s > position[0])
        )
        rows = [{"scope": s, "visibility": "private"} for s in shown[: limit + 1]]
        return key_page(rows, limit, after, lambda last: cursors.encode(last["scope"]))


class VisibilityMutations(graphene.ObjectType):
    set_visibility = graphene.Field(
        ScopeVisibility,
        required=True,
        input=SetVisibilityInput(required=True),
        description="Admins of the scope only. PRIVATE: only principals with a grant there (any role) or an admin "
        "key read it; PUBLIC (the default): every key reads it.",
    )

    @staticmethod
    async def resolve_set_visibility(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        visibility = value_of(input["visibility"])
        command = parse_command(SetVisibility, {"scope": input["scope"], "private": visibility == "private"})
        await info.context.app.execute(command, info.context.caller)
        return {"scope": command.scope, "visibility": visibility}
