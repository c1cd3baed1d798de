"""Arguments holding text PostgreSQL cannot store are refused before their field resolves (invariant 9).

Queries pass search strings and filters to SQL, where U+0000 would be a database error (a 500); mutations
are refused here too, before their command is built, with the same message the commands give. Variables
and literals alike: the middleware sees arguments after graphql-core has coerced them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLResolveInfo,
    GraphQLType,
)
from modelreg.events.storable_text import UnstorableText, refuse_unstorable


def refuse_unstorable_arguments(next_: Callable[..., Any], root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    for name, value in args.items():  # most fields have none: this costs a call per resolved field
        try:
            refuse_unstorable(value, name)
        except UnstorableText as exc:
            named = exc.named(_as_sent(info, exc.path))
            raise GraphQLError(
                f"{info.field_name}: {named}", extensions={"code": "INVALID_INPUT", "retriable": False}
            ) from None
    return next_(root, info, **args)


def _as_sent(info: GraphQLResolveInfo, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The place with the names the caller used (registeredModel), not graphene's Python ones (registered_model)."""
    arguments = info.parent_type.fields[info.field_name].args
    sent = next(((n, a.type) for n, a in arguments.items() if (a.out_name or n) == path[0]), None)
    if sent is None:
        return path
    named: list[str | int] = [sent[0]]
    type_: GraphQLType | None = sent[1]
    for segment in path[1:]:
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if isinstance(type_, GraphQLList):
            type_ = type_.of_type
        elif isinstance(type_, GraphQLInputObjectType):
            field = next(((n, f) for n, f in type_.fields.items() if (f.out_name or n) == segment), None)
            if field is not None:
                named.append(field[0])
                type_ = field[1].type
                continue
            type_ = None
        else:
            type_ = None  # inside a JSON value: its keys are the caller's own
        named.append(segment)
    return tuple(named)
