"""Turns modelreg errors into GraphQL errors with a `code` (and `retriable`) in their extensions."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from graphql import GraphQLError
from modelreg.errors import ModelregError

R = TypeVar("R")


def reports_errors(resolver: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    @functools.wraps(resolver)
    async def wrapped(*args: Any, **kwargs: Any) -> R:
        try:
            return await resolver(*args, **kwargs)
        except ModelregError as exc:
            raise GraphQLError(exc.message, extensions={"code": exc.code, "retriable": exc.retriable}) from exc

    return wrapped
