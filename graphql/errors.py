"""One error path for every resolver: a graphql-core middleware, installed where the schema is executed.

A modelreg error (InvalidInput, NotFound, PermissionDenied, Conflict, ...) becomes a GraphQL error with its
`code` and `retriable` in the extensions; anything else is a bug or an outage whose own text (asyncpg's, a
KeyError's "None") says nothing to the caller and may say too much: it is logged under an incident id, and
the caller gets an INTERNAL error naming that id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from graphql.pyutils import is_awaitable

from graphql import GraphQLError, GraphQLResolveInfo
from modelreg.errors import ModelregError, Unavailable, shortened
from modelreg.events.database_trouble import TROUBLES_SEEN, database_trouble

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 10_000  # of an error in an answer: ten problems of a refused input, each quoting its value


def reported(exc: Exception, where: str) -> GraphQLError:
    """The GraphQL error a caller gets for `exc`, raised while resolving `where` (a field's path)."""
    if isinstance(exc, GraphQLError):
        return exc
    if isinstance(exc, ModelregError):
        return GraphQLError(exc.message, original_error=exc, extensions={"code": exc.code, "retriable": exc.retriable})
    if (trouble := database_trouble(exc)) is not None:  # the installation's, not a bug: retrying later succeeds
        # One line, no traceback: every request meets it while it lasts, and the cause is known.
        log.error("%s could not be answered: %s (%r)", where, trouble, exc)
        TROUBLES_SEEN.met(trouble)
        unavailable = Unavailable(f"{trouble.what}: retry later")
        unavailable.__cause__ = exc
        return reported(unavailable, where)
    incident = uuid.uuid4().hex[:12]
    log.error("incident %s at %s: %r", incident, where, exc, exc_info=exc)
    return GraphQLError(
        f"the server failed to answer this field (incident {incident}, in its log): retry, and report the "
        "incident id if it happens again",
        original_error=exc,
        extensions={"code": "INTERNAL", "retriable": True},
    )


def report_errors(next_: Callable[..., Any], root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """The middleware: every field's resolver, sync or async, runs inside it."""
    try:
        result = next_(root, info, **args)
    except Exception as exc:
        raise reported(exc, _path(info)) from exc
    if is_awaitable(result):  # graphql-core's own check: much faster than inspect's on every field
        return _awaited(result, info)
    return result


async def _awaited(result: Awaitable[Any], info: GraphQLResolveInfo) -> Any:
    try:
        return await result
    except Exception as exc:
        raise reported(exc, _path(info)) from exc


def _path(info: GraphQLResolveInfo) -> str:
    return ".".join(map(str, info.path.as_list()))


def is_refusal(error: GraphQLError) -> bool:
    """Whether an error of an answer is the caller's to fix (a refusal told to them), not a fault of the server's.

    The middleware's error stands for the modelreg error it reports (its original_error), and graphql-core wraps
    that once more with the field's path: the refusal is found at the end of that chain, not on its first link."""
    cause: BaseException | None = error.original_error
    if error.path is None and (cause is None or isinstance(cause, GraphQLError)):
        return True  # the request itself: a variable its type refuses, an operation it does not have
    while isinstance(cause, GraphQLError):
        if cause.original_error is None:  # raised as such: refused with a code (graphql/storable_arguments.py)
            return (cause.extensions or {}).get("code", "INTERNAL") != "INTERNAL"
        cause = cause.original_error
    return isinstance(cause, ModelregError) and cause.code != "INTERNAL"


def actionable(error: GraphQLError) -> GraphQLError:
    """The same rule for what fails outside a resolver (a value its type cannot serialize): applied to
    a result's errors, it hides what the middleware did not see, and gives a refused request its code."""
    # Ours quote a caller's values with modelreg.errors.quoted; graphql-core quotes some whole (`Field '<name>' is
    # not defined by type ...` for a key of a variable's input object).
    error.message = shortened(error.message, MAX_MESSAGE_CHARS)
    original = error.original_error
    if error.path is None and not error.extensions and (original is None or isinstance(original, GraphQLError)):
        # The request itself: a variable its type refuses (an enum value it does not have), no operation.
        error.extensions = {"code": "INVALID_INPUT", "retriable": False}
        return error
    if original is None or isinstance(original, (GraphQLError, ModelregError)):
        return error
    hidden = reported(original, ".".join(map(str, error.path or ())))
    return GraphQLError(
        hidden.message, error.nodes, error.source, error.positions, error.path, original, extensions=hidden.extensions
    )
