"""While PostgreSQL is away (restarting, unreachable), requests answer 503 saying so, not 500."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg
from aiohttp import web

MESSAGE = "the database (PostgreSQL) is unavailable, probably restarting: nothing was changed; retry in a few seconds"
RETRY_AFTER_S = "2"

_CLOSED_CONNECTION = ("connection is closed", "connection was closed", "pool is closing", "pool is closed")


def is_database_unavailable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says PostgreSQL cannot be reached, not that a query was wrong."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError)):
            return True
        if isinstance(current, asyncpg.exceptions.OperatorInterventionError):  # shut down, crashed, restarting
            return True
        if isinstance(current, asyncpg.InterfaceError) and any(s in str(current) for s in _CLOSED_CONNECTION):
            return True
        # A pooled connection that PostgreSQL cut while idle (a fast shutdown) is found in this state on its next use.
        if isinstance(current, asyncpg.InternalClientError) and "another operation" in str(current):
            return True
        if isinstance(current, OSError) and _raised_by_asyncpg(current):  # no socket to connect to
            return True
        # `raise ... from None` says the earlier error is not the cause (a query cancelled on timeout becomes a
        # refusal, not an outage: TimeoutError is an OSError raised in asyncpg).
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return False


def any_database_unavailable(errors: Iterable[Any]) -> bool:
    """For GraphQL results: is one of these errors (or its original error) PostgreSQL being away?"""
    for error in errors:
        original = getattr(error, "original_error", None) or error
        if isinstance(original, BaseException) and is_database_unavailable(original):
            return True
    return False


def unavailable() -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(text=MESSAGE, headers={"Retry-After": RETRY_AFTER_S})


def _raised_by_asyncpg(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if "/asyncpg/" in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
            return True
        tb = tb.tb_next
    return False


@web.middleware
async def database_unavailable_is_503(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        if is_database_unavailable(exc):
            raise unavailable() from None
        raise
