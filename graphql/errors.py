"""Turns modelreg errors into GraphQL errors with a `code` (and `retriable`) in their extensions."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from graphql import GraphQLError
from modelreg.errors import ModelregError

R = TypeVar("R")
log = logging.getLogger(__name__)


def reports_errors(resolver: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    @functools.wraps(resolver)
    async def wrapped(*args: Any, **kwargs: Any) -> R:
        try:
            return await resolver(*args, **kwargs)
        except ModelregError as exc:
            raise GraphQLError(exc.message, extensions={"code": exc.code, "retriable": exc.retriable}) from exc

    return wrapped


def actionable(error: GraphQLError) -> GraphQLError:
    """An error a person can act on: an internal failure's own text (asyncpg's, a KeyError's "None") says
    nothing to the caller and may say too much, so it is logged under an incident id that the caller gets."""
    original = error.original_error
    if original is None or isinstance(original, (GraphQLError, ModelregError)):
        return error
    incident = uuid.uuid4().hex[:12]
    log.error("incident %s at %s: %r", incident, ".".join(map(str, error.path or ())), original, exc_info=original)
    return GraphQLError(
        f"the server failed to answer this field (incident {incident}, in its log): retry, and report the "
        "incident id if it happens again",
        error.nodes,
        error.source,
        error.positions,
        error.path,
        original,
        extensions={"code": "INTERNAL", "retriable": True},
    )
