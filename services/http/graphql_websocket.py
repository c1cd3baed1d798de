"""The websocket side of /graphql: graphql-transport-ws, subscriptions only, and where its API key comes from.

graphql-server's handler would also run queries and mutations sent over the socket, validated by the
standard rules only and with one context (and its dataloader caches) for the socket's whole life. Here a
socket serves subscriptions, validated with the same depth and cost limits as HTTP; queries and mutations
go over HTTP, where every request gets fresh loaders and read-your-writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from graphql_server.exceptions import GraphQLValidationError
from graphql_server.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from graphql_server.subscriptions.protocols.graphql_transport_ws.types import Message, SubscribeMessage
from graphql_server.utils.operation import get_operation_type

from graphql import GraphQLError, OperationType, get_operation_ast
from modelreg.graphql.documents import ValidatedDocuments
from modelreg.graphql.variables import COERCED_ON_THE_LOOP, too_many_values, values_to_coerce
from modelreg.services.http.sockets_per_principal import TOO_MANY_SOCKETS, SocketsPerPrincipal

# aiohttp pings the client this often and closes the socket when no pong comes back within half of it:
# a vanished or stuck client (one that stopped reading) loses its subscriptions and their log readers.
HEARTBEAT_S = 20.0
REVOKED = "the API key was revoked: log in with another key"
EXPIRED = "the API key expired: log in with another key"


def malformed(message: object) -> str | None:
    """Why a frame is no graphql-transport-ws message, if it is not. graphql-server's handler takes the shape on
    trust, and any frame, even before connection_init and so without a key, could raise there: a traceback in
    the log per frame, and the socket dropped (1006) instead of refused as the protocol says (4400)."""
    if not isinstance(message, dict):
        return "a message is a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "a message needs a type, a string"
    if kind in ("subscribe", "complete") and not (isinstance(message.get("id"), str) and message["id"]):
        return f"a {kind} message needs an id, a non-empty string"
    if kind == "subscribe":
        payload = message.get("payload")
        if not isinstance(payload, dict):
            return "a subscribe message needs a payload, an object"
        for name, kinds in (("query", str), ("operationName", str), ("variables", dict), ("extensions", dict)):
            if payload.get(name) is not None and not isinstance(payload[name], kinds):
                return f"a subscribe message's {name} is a{'n object' if kinds is dict else ' string'}"
    return None


def api_key_of_connection(params: Mapping[str, Any] | None) -> str | None:
    """The key a client sent in `connection_init`'s payload: `{"Authorization": "Bearer <key>"}` (what
    browser clients send, since they cannot set headers on a websocket) or `{"apiKey": "<key>"}`."""
    if not params:
        return None
    if isinstance(key := params.get("apiKey"), str) and key:
        return key
    authorization = params.get("Authorization", params.get("authorization"))
    if isinstance(authorization, str):
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            return key.strip()
    return None


class SubscriptionsOverWebSocket(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws, answering a `subscribe` that is not a valid subscription with an `error`
    message for that operation (the socket and its other subscriptions go on), closing the log readers
    of all its subscriptions when the socket closes, and closing the socket (4403) once its key is revoked.
    Each principal holds a bounded number of sockets (sockets_per_principal.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context.refuse_revoked_key = self.refuse_revoked_key
        self.context.hold_socket = self.hold_socket
        self.sockets: SocketsPerPrincipal = self.view.sockets  # type: ignore[attr-defined]
        self.principal: str | None = None  # counted among its principal's sockets once acknowledged
        self.key_ends: asyncio.Task[None] | None = None

    async def hold_socket(self) -> bool:
        """Counts the socket among its principal's at connection_init, or closes it (4429) when they hold the most
        they may."""
        principal = str(self.context.caller.actor)
        if (refusal := self.sockets.opened(principal, self)) is not None:
            await self.websocket.close(code=TOO_MANY_SOCKETS, reason=refusal)
            return False
        self.principal = principal
        await self._closed_when_the_key_expires()
        return True

    async def _closed_when_the_key_expires(self) -> None:
        # A request with the key is refused once it expired (api.py); a socket opened before would go on for days.
        key_id = self.context.caller.key_id
        key = await self.context.identity.api_key(key_id) if key_id is not None else None
        if key is None or key.get("expires_at") is None:
            return
        left_s = max(0.0, (key["expires_at"] - datetime.now(UTC)).total_seconds())
        self.key_ends = asyncio.create_task(self._close_after(left_s))

    async def _close_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        # Shielded: the close ends the socket, whose shutdown cancels this task.
        await asyncio.shield(self.websocket.close(code=4403, reason=EXPIRED))

    async def refuse_revoked_key(self) -> None:
        """The key the socket was opened with is revoked: the socket ends, as its next HTTP request would (401)."""
        await self.websocket.close(code=4403, reason=REVOKED)

    async def shutdown(self) -> None:
        if self.key_ends is not None:
            self.key_ends.cancel()
        try:
            await super().shutdown()
            await self.context.close_tails()
        finally:  # a tail that fails to close (Kafka away) must not keep the principal's place for good
            if self.principal is not None:
                self.sockets.closed(self.principal, self)

    async def handle_message(self, message: Message) -> None:
        if (problem := malformed(message)) is not None:
            await self.handle_invalid_message(problem)  # closes the socket: 4400
            return
        await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        caller = self.context.caller
        if self.connection_acknowledged and caller is not None and caller.key_id is not None:
            key = await self.context.identity.api_key(caller.key_id)
            if key is None or key["revoked_at"] is not None:  # revoked since connection_init
                await self.refuse_revoked_key()
                return
        if self.connection_acknowledged and message["id"] not in self.operations:
            payload = message["payload"]
            refusal = await self._refusal(payload.get("query"), payload.get("operationName"), payload.get("variables"))
            if refusal is not None:
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [e.formatted for e in refusal]}
                )
                return
        await super().handle_subscribe(message)

    async def _refusal(self, query: Any, operation_name: str | None, variables: Any) -> list[GraphQLError] | None:
        documents: ValidatedDocuments = self.view.documents  # type: ignore[attr-defined]
        if not isinstance(query, str):
            return [GraphQLError("a subscribe message needs a query")]
        try:
            document = await documents.validated(query)
        except GraphQLValidationError as exc:
            return list(exc.errors)
        try:
            operation_type = get_operation_type(document, operation_name)
        except RuntimeError as exc:
            return [GraphQLError(str(exc))]
        if operation_type != OperationType.SUBSCRIPTION:
            return [
                GraphQLError("this socket serves subscriptions; send queries and mutations as HTTP POST to /graphql")
            ]
        # graphql-server coerces a subscription's variables on the event loop (HTTP requests' are counted and, when
        # many, coerced off it: graphql/variables.py); a subscription needs few.
        operation = get_operation_ast(document, operation_name)
        if (
            operation is not None
            and isinstance(variables, dict)
            and values_to_coerce(self.schema, operation, variables, COERCED_ON_THE_LOOP) > COERCED_ON_THE_LOOP
        ):
            return [too_many_values(COERCED_ON_THE_LOOP, "a subscription", "subscribe to fewer event types each time")]
        return None
