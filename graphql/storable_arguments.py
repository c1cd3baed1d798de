"""Arguments holding text PostgreSQL cannot store are refused before their field resolves (invariant 9).

Queries pass search strings and filters to SQL, where U+0000 would be a database error (a 500); mutations
are refused here too, before their command is built, with the same message the commands give. Variables
and literals alike: the middleware sees arguments after graphql-core has coerced them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo
from graphql.execution.middleware import MiddlewareManager

from modelreg.events.storable_text import UnstorableText, refuse_unstorable


def refuse_unstorable_arguments(next_: Callable[..., Any], root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    for name, value in args.items():  # most fields have none: this costs a call per resolved field
        try:
            refuse_unstorable(value, name)
        except UnstorableText as exc:
            raise GraphQLError(
                f"{info.field_name}: {exc}", extensions={"code": "INVALID_INPUT", "retriable": False}
            ) from None
    return next_(root, info, **args)


STORABLE_ARGUMENTS = MiddlewareManager(refuse_unstorable_arguments)
