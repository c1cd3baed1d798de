"""What a GraphQL request body must be, and the 400 answer (with what to send instead) when it is not."""

from __future__ import annotations

import json
from typing import Any

from graphql_server.http.exceptions import HTTPException

EXPECTED = 'send a JSON object such as {"query": "{ viewer { id } }", "variables": {}}'


def graphql_body(data: str | bytes) -> Any:
    """The JSON value of a body (or of a GET's `variables`), or HTTPException 400 saying what is wrong."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"the body is not UTF-8 text (byte {exc.start} cannot be decoded): {EXPECTED}"
            raise HTTPException(400, reason) from None
    try:
        body = json.loads(data, parse_constant=_not_json)
    except _NotANumber as exc:
        reason = (
            f"the body holds {exc}, which JSON does not have (Python's json.dumps writes it): send a string such as "
            f'"{exc}", or null'
        )
        raise HTTPException(400, reason) from None
    except json.JSONDecodeError as exc:
        reason = f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {EXPECTED}"
        raise HTTPException(400, reason) from None
    except (ValueError, RecursionError) as exc:  # an integer of over 4,300 digits; arrays nested thousands deep
        raise HTTPException(400, f"the body is JSON this server does not read ({exc}): {EXPECTED}") from None
    # Counting brackets is cheap where walking is not (a metric batch is one long array of numbers), and a body
    # with few of them cannot nest deep.
    if data.count("[") + data.count("{") > MAX_NESTING and nesting(body) > MAX_NESTING:
        # Every layer after this one (validation, the event's encoding, the projections) walks values recursively.
        raise HTTPException(400, f"the body nests objects and arrays over {MAX_NESTING} deep: flatten the value")
    return body


MAX_NESTING = 100


def websocket_message(data: str | bytes) -> Any:
    """A websocket message's JSON value, NaN and Infinity refused as they are in bodies (as not JSON, which
    closes the socket saying so)."""
    try:
        return json.loads(data, parse_constant=_not_json)
    except _NotANumber as exc:
        raise json.JSONDecodeError(f"{exc} is not JSON", data if isinstance(data, str) else "", 0) from None


class _NotANumber(Exception):
    pass


def _not_json(constant: str) -> Any:
    """NaN and Infinity, which Python's json reads: a filter on them failed in PostgreSQL (INTERNAL, retriable), and a
    run's config stored them as null without a word."""
    raise _NotANumber(constant)


def nesting(value: Any) -> int:
    """How deep objects and arrays nest in `value`, counted without recursion, stopping past MAX_NESTING."""
    if type(value) not in (dict, list):
        return 0
    deepest, stack = 1, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if depth > MAX_NESTING:
                return depth
        for child in item.values() if type(item) is dict else item:
            if type(child) is dict or type(child) is list:  # json.loads makes exactly these
                stack.append((child, depth + 1))
    return deepest


def graphql_request_fields(data: Any, *, needs_query: bool) -> dict[str, Any]:
    """The request's fields, checked for shape: an object, with a query string when one is needed."""
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")
        batched = " (batches of operations are not supported: send one request each)" if isinstance(data, list) else ""
        raise HTTPException(400, f"the body is {kind}, not an object{batched}: {EXPECTED}")
    query = data.get("query")
    if needs_query and query is None:
        raise HTTPException(400, f'the body has no "query": {EXPECTED}')
    if query is not None and not isinstance(query, str):
        raise HTTPException(400, f'"query" must be a string holding the GraphQL document: {EXPECTED}')
    name = data.get("operationName")
    if name is not None and not isinstance(name, str):
        raise HTTPException(400, '"operationName" must be a string naming one operation of the document, or left out')
    return data
