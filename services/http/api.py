"""The API process: GraphQL at /graphql (GraphiQL in a browser), /healthz, and the command path."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeGuard

import asyncpg
from aiohttp import WSCloseCode, hdrs, web
from graphene.validation import depth_limit_validator
from graphql_server.aiohttp.views import AiohttpHTTPRequestAdapter, GraphQLView
from graphql_server.exceptions import ConnectionRejectionError, GraphQLValidationError
from graphql_server.http import GraphQLRequestData, simple_renderer
from graphql_server.http.exceptions import HTTPException
from graphql_server.runtime import execute
from graphql_server.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from graphql_server.utils.operation import get_operation_type

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from modelreg.errors import PermissionDenied
from modelreg.events.database_trouble import TROUBLES_SEEN
from modelreg.events.envelope import Actor
from modelreg.events.log import EventLog, LogPosition
from modelreg.events.tail import LogTails
from modelreg.graphql.context import RequestContext
from modelreg.graphql.cost import cost_limit_validator
from modelreg.graphql.documents import ValidatedDocuments
from modelreg.graphql.errors import actionable, is_refusal
from modelreg.graphql.pages import MAX_PAGE
from modelreg.graphql.schema import RESOLVER_MIDDLEWARE, build_schema
from modelreg.graphql.subscriptions import SubscriberContext
from modelreg.graphql.variables import ExecutionOfCoercedVariables, VariableCoercion, VariablesRefused
from modelreg.projections.identity_queries import IdentityQueries
from modelreg.projections.positions import log_shorter_than_applied
from modelreg.projections.progress import ProjectionLagging
from modelreg.projections.readable import Visibility
from modelreg.services.automations.webhook_signing import WebhookSecrets
from modelreg.services.bootstrap import ProcessParts, given_or_own
from modelreg.services.commands.access import Caller, service_caller
from modelreg.services.commands.api_keys import key_sha256
from modelreg.services.commands.application import Application
from modelreg.services.commands.commands import IssueApiKey
from modelreg.services.http.blob_routes import add_blob_routes
from modelreg.services.http.blob_visibility import (
    HIDDEN_FROM_CALLER,
    LISTED_BY_A_VERSION,
    LISTED_OUT_OF_SIGHT,
    SENDER,
    hidden_from,
)
from modelreg.services.http.body_limits import LIMITS, BodyLimits, bodies_within_limits, read_bounded, refusal
from modelreg.services.http.database_unavailable import MESSAGE as DATABASE_UNAVAILABLE
from modelreg.services.http.database_unavailable import (
    any_database_unavailable,
    database_unavailable_is_503,
    is_database_unavailable,
)
from modelreg.services.http.graphql_bodies import graphql_body, graphql_request_fields, websocket_message
from modelreg.services.http.graphql_websocket import HEARTBEAT_S, SubscriptionsOverWebSocket, api_key_of_connection
from modelreg.services.http.key_uses import KeyLookup, KeyUses
from modelreg.services.http.known_keys import KnownKeys
from modelreg.services.http.metrics import (
    GRAPHQL_OPERATION,
    METRICS,
    STOPPED_PARTS,
    SharedReading,
    add_operations_routes,
    graphql_operation,
    log_end_positions,
    projection_tables,
)
from modelreg.services.http.object_store_routes import add_object_store_routes, opened
from modelreg.services.http.operator_views import ASKED_BY_AN_ADMIN, METRICS_TOKEN, SEEN_WITH, sees_the_figures
from modelreg.services.http.projection_stalls import ProjectionStalls
from modelreg.services.http.requests_in_flight import (
    IN_FLIGHT,
    RETRY_AFTER_S,
    RequestsInFlight,
    requests_within_capacity,
)
from modelreg.services.http.security_headers import secure_every_answer
from modelreg.services.http.sockets_per_principal import SocketsPerPrincipal
from modelreg.services.http.triggers_presence import ACTIVE_REPLICA, TriggersPresence
from modelreg.services.http.triggers_presence import MISSING as TRIGGERS_MISSING
from modelreg.services.http.unread_answers import (
    UNREAD_ANSWERS,
    AnswersNotTaken,
    UnreadAnswers,
    answers_taken_in_time,
)
from modelreg.services.http.web_ui import add_ui_routes, graphiql_page, page_policy
from modelreg.services.infra.blob_store import DIGEST
from modelreg.services.infra.blob_store_url import blob_store_at
from modelreg.services.infra.database import create_pool
from modelreg.services.infra.object_store import ObjectBlobStore
from modelreg.services.projections_catalog import PROJECTIONS
from modelreg.services.settings import Settings

log = logging.getLogger(__name__)

MAX_QUERY_DEPTH = 12
MAX_QUERY_COST = 50_000  # the registry UI's heaviest page asks for about 5,000
# An open connection with no request under way (between requests, or one whose headers never end) is closed after
# this long. aiohttp keeps it an hour, to outlast a proxy in front; the API is served without one
# (deploy/k8s), and one caller's connections, each sending a header line it never finishes, held a file
# descriptor each for that hour: a few thousand of them and the process could accept no one else.
IDLE_CONNECTION_TIMEOUT_S = 75.0
NO_KEY = (
    "send an API key as 'Authorization: Bearer <key>' (MODELREG_API_KEY for the client, `modelreg login`); "
    "the server's first start wrote an admin key to <data-dir>/admin-api-key"
)

APP: web.AppKey[Application] = web.AppKey("application", Application)
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)
KEYS: web.AppKey[KnownKeys] = web.AppKey("known_keys", KnownKeys)
KEY_USES: web.AppKey[KeyUses] = web.AppKey("key_uses", KeyUses)
# /healthz's own connections: requests that exhaust the shared pool cannot make the health check wait.
HEALTH_POOL: web.AppKey[asyncpg.Pool] = web.AppKey("health_pool", asyncpg.Pool)
HEALTH_READING: web.AppKey[SharedReading] = web.AppKey("health_reading", SharedReading)
STALLS: web.AppKey[ProjectionStalls] = web.AppKey("projection_stalls", ProjectionStalls)
TRIGGERS: web.AppKey[TriggersPresence] = web.AppKey("triggers_presence", TriggersPresence)
LOG: web.AppKey[EventLog] = web.AppKey("log")
SECRETS: web.AppKey[WebhookSecrets] = web.AppKey("webhook_secrets", WebhookSecrets)
TAILS: web.AppKey[LogTails] = web.AppKey("tails", LogTails)
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")
SOCKETS_PER_PRINCIPAL = web.AppKey("sockets_per_principal", SocketsPerPrincipal)


async def caller_of(request: web.Request, identity: KeyLookup) -> Caller | None:
    """The principal of the request's API key (`Authorization: Bearer mr_...`), None when it sent none."""
    if request.headers.get("Authorization") is None:
        return None
    return await caller_of_key(bearer_key(request), identity)


def bearer_key(request: web.Request) -> str | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else None


async def caller_of_key(key: str | None, identity: KeyLookup) -> Caller:
    """The principal of a live API key; PermissionDenied for anything else."""
    found = await identity.principal_of_key(key_sha256(key)) if key else None
    if found is None:
        raise PermissionDenied("unknown or revoked API key: check MODELREG_API_KEY, or ask an admin for a new key")
    revoked_at = found.get("revoked_at")
    if revoked_at is not None and revoked_at <= datetime.now(UTC):  # a cancelled job's key, kept a few seconds
        raise PermissionDenied("unknown or revoked API key: check MODELREG_API_KEY, or ask an admin for a new key")
    # Checked at each request, not by the lookup: a looked-up key is kept until keys change, and an end changes none.
    if (expires_at := found.get("expires_at")) is not None and expires_at <= datetime.now(UTC):
        raise PermissionDenied(
            f"API key mr_{found['key_id']}_ expired at {expires_at:%Y-%m-%d %H:%M} UTC: ask an admin for a new key"
        )
    limits, job_id = tuple(found["scopes"]), found.get("job_id")
    return Caller(
        Actor(kind=found["principal_kind"], id=found["principal_id"]),
        found["role"],
        found["grants"],
        key_id=found["key_id"],
        private=frozenset(found["private"]),
        limits=limits,
        job_id=job_id,
        job_attempt=found.get("job_attempt"),
        job_cancelled=revoked_at is not None,
    )


class BoundedRequestAdapter(AiohttpHTTPRequestAdapter):
    """graphql-server reads the body itself (aiohttp's client_max_size does not apply): read it within the limit."""

    async def get_body(self) -> bytes:  # type: ignore[override]
        return await read_bounded(self.request)


class RefusalsAreNoFaults(logging.Filter):
    """graphql-server logs every error of an answer at ERROR with its traceback, a caller's bad input too: any
    key holder filled the log with tracebacks, and the server's own faults drowned among them. A refusal
    (a modelreg error other than INTERNAL, a variable its type refuses) is told to the caller, not logged.

    graphql-server logs the answer's error (the record's msg) with its original_error as exc_info: for a
    resolver's refusal that is the middleware's GraphQLError, not the modelreg error behind it, so the error
    itself is judged (graphql/errors.py, is_refusal)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, GraphQLError) and is_refusal(record.msg))


_REFUSALS_ARE_NO_FAULTS = RefusalsAreNoFaults()


# What would end a script element or a JavaScript string in a page, as JSON may write it instead.
_INSIDE_A_SCRIPT = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


class ModelregGraphQLView(GraphQLView):
    """Queries and mutations over HTTP; subscriptions over a websocket (graphql-transport-ws only: the
    legacy graphql-ws protocol has no place to refuse a connection without a key)."""

    graphql_transport_ws_handler_class = SubscriptionsOverWebSocket
    request_adapter_class = BoundedRequestAdapter

    def __init__(self, schema: GraphQLSchema, tails: LogTails, sockets: SocketsPerPrincipal, **options: Any) -> None:
        super().__init__(
            schema,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            **options,
        )
        self.tails = tails
        self.sockets = sockets
        self.documents = ValidatedDocuments(
            schema, (depth_limit_validator(max_depth=MAX_QUERY_DEPTH), cost_limit_validator(MAX_QUERY_COST, MAX_PAGE))
        )
        self.variables = VariableCoercion(schema)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.run(request=request)
        except HTTPException as e:
            if e.status_code == 400:  # a bad body or request: a GraphQL error, which clients show
                return refusal(request, 400, e.reason)
            if e.status_code == 401:  # in the one error shape too (it was plain text)
                headers = {"WWW-Authenticate": "Bearer"}
                return refusal(request, 401, e.reason, code="UNAUTHENTICATED", headers=headers)
            if isinstance(e, AnswersNotTaken):
                headers = {"Retry-After": RETRY_AFTER_S}
                return refusal(request, 503, e.reason, code="UNAVAILABLE", retriable=True, headers=headers)
            return web.Response(body=e.reason, status=e.status_code)

    def parse_json(self, data: str | bytes) -> Any:
        return graphql_body(data)

    def decode_json(self, data: str | bytes) -> object:
        return websocket_message(data)  # bodies go through parse_json; the library reads websocket messages here

    @property
    def graphql_ide_html(self) -> str:
        """Our own GraphiQL page (ui/graphiql.html): the library's loaded React and GraphiQL from unpkg.com, which
        an installation without internet access cannot reach (a blank page), and kept the headers, a key among
        them, in the address."""
        return graphiql_page()

    def is_websocket_request(self, request: web.Request) -> TypeGuard[web.Request]:
        # The library asks a new WebSocketResponse about every request (about 1% of a mutation's CPU); a request
        # without an Upgrade header is never a websocket's.
        return hdrs.UPGRADE in request.headers and super().is_websocket_request(request)

    async def render_graphql_ide(self, request: web.Request, request_data: GraphQLRequestData) -> web.Response:
        """GraphiQL, filled in from the link's query, variables and operation name as JSON that cannot end its
        script: the library's template put them in as they came, and a link holding `</script><script>` ran its
        script on this origin, where the web UI keeps its key."""
        values = {name: value.translate(_INSIDE_A_SCRIPT) for name, value in request_data.to_template_context().items()}
        page = simple_renderer(self.graphql_ide_html, **values)
        policy = page_policy(page)
        return web.Response(text=page, content_type="text/html", headers={"Content-Security-Policy": policy})

    async def process_result(self, request: web.Request, result: ExecutionResult, strict: bool = False) -> Any:
        if result.errors:
            result.errors = [actionable(error) for error in result.errors]
        return await super().process_result(request, result, strict)

    async def get_context(self, request: web.Request, response: Any) -> RequestContext:  # type: ignore[override]
        app = request.app[APP]
        if isinstance(response, web.WebSocketResponse):
            # The socket is open already: a missing or bad key is refused at connection_init (4403), where
            # a browser client, which cannot set headers on a websocket, sends its key.
            identity = request.app[KEY_USES].noting(IdentityQueries(app.reads.pool))
            try:
                caller = await caller_of(request, identity)
            except PermissionDenied:
                caller = None
            context = SubscriberContext(
                app=app, reads=app.reads, caller=caller, tails=self.tails, key_uses=request.app[KEY_USES]
            )
            key = bearer_key(request)
            context.look_up_caller = lambda: caller_of_key(key, identity)
            return context
        try:
            caller = await caller_of(request, request.app[KEYS])
        except PermissionDenied as exc:
            raise HTTPException(401, exc.message) from None
        if caller is None and request.method == "POST":
            # Refused before its body is read (a GET still loads GraphiQL's page): anyone could make the server take
            # in 8 MiB and parse it on the event loop (2 s and 190 MiB for `[{},{},...]`) only to refuse it then.
            raise HTTPException(401, NO_KEY)
        return RequestContext(
            app=app,
            reads=app.reads,
            caller=caller,
            webhook_secrets=request.app[SECRETS],
            key_uses=request.app[KEY_USES],
        )

    async def setup_connection_params(self, connection_params, websocket, context, root_value) -> None:
        """A key in connection_init's payload stands for the socket, whatever its HTTP headers said."""
        key = api_key_of_connection(connection_params)
        if key is None:
            if connection_params and {"apiKey", "Authorization", "authorization"} & connection_params.keys():
                context.caller = None  # a key was sent but is not one: refuse rather than fall back
            return
        identity = context.key_uses.noting(context.identity) if context.key_uses else context.identity
        try:
            context.caller = await caller_of_key(key, identity)
        except PermissionDenied:
            context.caller = None
        context.look_up_caller = lambda: caller_of_key(key, identity)

    async def on_ws_connect(self, context: SubscriberContext) -> dict[str, object]:  # type: ignore[override]
        if context.caller is None:
            raise ConnectionRejectionError()  # closes the socket with 4403 Forbidden
        if context.hold_socket is not None and not await context.hold_socket():
            raise ConnectionRejectionError()  # the socket is closed already (4429, the reason says the limit)
        return {"principal": str(context.caller.actor), "role": context.caller.role}

    async def get_graphql_request_data(self, request, context, data, protocol) -> GraphQLRequestData:
        if protocol != "subscription":  # GET without a query shows GraphiQL
            data = graphql_request_fields(data, needs_query=request.method == "POST")
        request_data = await super().get_graphql_request_data(request, context, data, protocol)
        if protocol == "subscription" and request_data.query:
            # SubscriptionsOverWebSocket validated it with our rules (a refused one never gets here but for a
            # duplicate id, which the handler refuses next): take the cached document.
            with suppress(GraphQLValidationError):
                request_data.document = self.documents.get(request_data.query)
        return request_data

    async def create_websocket_response(self, request: web.Request, subprotocol: str | None) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            protocols=[subprotocol] if subprotocol else [],
            heartbeat=HEARTBEAT_S,
            max_msg_size=request.app[LIMITS].max_body_bytes,
        )
        await ws.prepare(request)
        request.app[SOCKETS].add(ws)
        return ws

    async def execute_operation(self, request_adapter, request_data, context, root_value, allowed_operation_types):
        if context.caller is None:  # checked here, not in get_context, so that GraphiQL's page still loads
            raise HTTPException(401, NO_KEY)
        document = request_data.document
        if document is None and request_data.query:
            document = await self.documents.validated(request_data.query)
        if document is not None and (named := graphql_operation(document, request_data.operation_name)):
            request_adapter.request[GRAPHQL_OPERATION] = named
            unread = request_adapter.request.app[UNREAD_ANSWERS]
            # Refused before it is made: made, its answer would be sent whatever the bound (a GET's is refused next).
            if named.startswith("mutation") and OperationType.MUTATION in allowed_operation_types and unread.full():
                raise AnswersNotTaken(unread.busy_message("nothing was done"))
        if document is not None and request_data.operation_name is None and len(names := _operations(document)) > 1:
            # The library raised a bare Exception for it: an INTERNAL error marked retriable, which clients retried.
            listed = ", ".join(names[:10])
            raise HTTPException(400, f"the document holds several operations ({listed}): name one in operationName")
        if (
            document is not None
            and _operation_type(document, request_data.operation_name) == OperationType.SUBSCRIPTION
        ):
            raise HTTPException(
                400, "subscriptions are served over a websocket at /graphql (protocol graphql-transport-ws)"
            )
        variables = request_data.variables
        operation = get_operation_ast(document, request_data.operation_name) if document is not None else None
        if operation is not None and operation.operation in allowed_operation_types and isinstance(variables, dict):
            try:
                variables = await self.variables.ready(operation, variables)
            except VariablesRefused as refused:
                return ExecutionResult(data=None, errors=refused.errors)
        result = await execute(
            schema=self.schema,
            query=document,
            root_value=root_value,
            variable_values=variables,
            context_value=context,
            operation_name=request_data.operation_name,
            allowed_operation_types=allowed_operation_types,
            operation_extensions=request_data.extensions,
            validate_document=False,  # ValidatedDocuments did, once per distinct document
            middleware=RESOLVER_MIDDLEWARE,
            execution_context_class=ExecutionOfCoercedVariables,
        )
        if (errors := getattr(result, "errors", None)) and any_database_unavailable(errors):
            raise HTTPException(503, DATABASE_UNAVAILABLE)  # PostgreSQL restarting: retry, not a bug
        return result


def _operations(document: Any) -> list[str]:
    """The names of the document's operations, "(unnamed)" for one without."""
    return [
        d.name.value if d.name else "(unnamed)" for d in document.definitions if isinstance(d, OperationDefinitionNode)
    ]


def _operation_type(document: Any, operation_name: str | None) -> OperationType | None:
    try:
        return get_operation_type(document, operation_name)
    except RuntimeError:
        return None  # execute() reports it


async def close_open_sockets(app: web.Application) -> None:
    """On shutdown, before the event log closes: subscribers are told the server is going away (1001) and
    their log readers close, instead of the shutdown waiting for them until its timeout."""
    sockets = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the server is shutting down")


async def read_health(pool: asyncpg.Pool, event_log: EventLog) -> dict[str, Any]:
    """What /healthz reports, as read from the log and PostgreSQL (an error's text where one could not be read)."""
    reading: dict[str, Any] = {}
    # The positions before the ends: events appended and applied between the two readings would otherwise look like
    # a log that ends before what was applied.
    try:
        # Bounded as the event log's reading is: a PostgreSQL that hangs must not hang the probe (docs/operations.md).
        reading |= await asyncio.wait_for(_read_postgres(pool, event_log.topic), HEALTH_READ_TIMEOUT_S)
    except TimeoutError:
        reading["postgres_error"] = f"PostgreSQL did not answer within {HEALTH_READ_TIMEOUT_S:g} s"
    except Exception as exc:
        reading["postgres_error"] = str(exc)
    try:
        reading["ends"] = await log_end_positions(event_log)
    except Exception as exc:
        reading["event_log_error"] = str(exc) or type(exc).__name__
    return reading


HEALTH_READ_TIMEOUT_S = 3.0


async def _read_postgres(pool: asyncpg.Pool, topic: str) -> dict[str, Any]:
    async with pool.acquire(timeout=HEALTH_READ_TIMEOUT_S) as conn:
        return {
            **await projection_tables(conn, topic),
            "triggers_active": bool(await conn.fetchval(ACTIVE_REPLICA)),
            # Which streams, not only how many: what an operator releases with `modelreg parked`.
            "parked_list": await conn.fetch(
                "SELECT projection, stream, error, parked_at FROM parked_streams "
                "ORDER BY parked_at, projection, stream LIMIT 100"
            ),
        }


async def healthz(request: web.Request) -> web.Response:
    event_log = request.app[LOG]
    # Needs no key: requests arriving together share one reading, so that a caller asking without pause holds
    # one of the health check's two connections at most (/readyz and /metrics read on them too).
    reading = await request.app[HEALTH_READING]()
    report: dict[str, Any] = {"status": "ok"}
    ends = reading.get("ends", {})
    if "event_log_error" in reading:
        # Down, not degraded: every mutation appends to the log, so while it does not answer nothing can be
        # recorded (reads still answer, from PostgreSQL), and /readyz already takes the replica out of service.
        # "degraded" is for a part of the work held back (a parked stream) while the registry takes changes.
        report["status"] = "down"
        report["event_log"] = {"ok": False, "kind": type(event_log).__name__, "error": reading["event_log_error"]}
    else:
        report["event_log"] = {
            "ok": True,
            "kind": type(event_log).__name__,
            "topic": event_log.topic,
            "events": sum(ends.values()),
        }
    if "postgres_error" in reading:
        report["status"] = "down"
        report["postgres"] = {"ok": False, "error": reading["postgres_error"]}
        return await _health_as_seen_by(request, report, 503)
    positions, parked_list = reading["positions"], reading["parked_list"]
    report["postgres"] = {"ok": True}
    applied: dict[int, int] = {}
    for r in positions:
        applied[r["partition"]] = max(applied.get(r["partition"], 0), r["next_offset"])
    if ends and (short := log_shorter_than_applied(event_log.topic, ends, applied)):
        report["status"] = "down"  # every write now would be acknowledged and never shown
        report["event_log"] |= {"ok": False, "error": short}
    parked_by = {r["projection"]: r["n"] for r in reading["parked"]}
    dead_by = {r["projection"]: r["n"] for r in reading["dead"]}
    projections = {}
    for name in PROJECTIONS:
        applied = {r["partition"]: r["next_offset"] for r in positions if r["projection"] == name}
        lag = sum(max(end - applied.get(p, 0), 0) for p, end in ends.items()) if ends else None
        projections[name] = {"lag": lag, "parked_streams": parked_by.get(name, 0), "dead_letters": dead_by.get(name, 0)}
        if parked_by.get(name):
            _at_worst(report, "degraded")
        stalled = request.app[STALLS].stalled_for(name, sum(applied.values()), lag, time.monotonic())
        if stalled is not None:
            projections[name]["stalled_for_s"] = round(stalled)
    if stalled_names := [name for name, seen in projections.items() if "stalled_for_s" in seen]:
        _at_worst(report, "degraded")
        longest = max(projections[name]["stalled_for_s"] for name in stalled_names)
        report["stalled"] = (
            f"projections {', '.join(stalled_names)} have applied nothing for up to {longest} s while events wait, so "
            "writes answer NOT_YET_VISIBLE (sent with a commandId, a retriable CONFLICT): is a projector running "
            "(modelreg projector, or modelreg server)?"
        )
    report["projections"] = projections
    missing = request.app[TRIGGERS].missing_for(reading["triggers_active"], time.monotonic())
    report["automations"] = {"active": reading["triggers_active"]}
    if missing is not None:
        _at_worst(report, "degraded")
        report["automations"]["missing_for_s"] = round(missing)
        report["no_automations"] = TRIGGERS_MISSING
    if (trouble := TROUBLES_SEEN.current()) is not None:  # PostgreSQL answers, but cannot write (its disk full...)
        _at_worst(report, "degraded")
        report["postgres"]["trouble"] = f"{trouble.what}: projections and writes wait; {trouble.remedy}"
    if stopped := request.app.get(STOPPED_PARTS):
        _at_worst(report, "degraded")
        report["stopped_parts"] = stopped  # e.g. a projector that met a newer build's migration: upgrade this process
    # A stream's name can name a private entity or model: the list goes to an admin key only (the metrics token
    # sees the counts, a probe or a monitor without either the status).
    if await _asked_by_an_admin(request):
        report["parked_streams"] = [
            {
                "projection": r["projection"],
                "stream": r["stream"],
                "error": r["error"],
                "since": r["parked_at"].isoformat(),
            }
            for r in parked_list
        ]
        return web.json_response(report, status=_http_status(report))
    if parked_list:
        report["parked_streams_listed_for"] = "an admin key (Authorization: Bearer ...), or `modelreg parked`"
    return await _health_as_seen_by(request, report, _http_status(report))


def _at_worst(report: dict[str, Any], status: str) -> None:
    """A part held back makes the report `degraded`, unless it is `down` already (the log not answering)."""
    if report["status"] != "down":
        report["status"] = status


def _http_status(report: dict[str, Any]) -> int:
    return 503 if report["status"] == "down" else 200


async def _health_as_seen_by(request: web.Request, report: dict[str, Any], status: int) -> web.Response:
    """The whole report for the metrics token or an admin key; without them the status and what answers: the
    error texts (a database's host and user), the topic, the log's length and each projection's figures are
    the installation's own (services/http/operator_views.py)."""
    if await sees_the_figures(request):
        return web.json_response(report, status=status)
    public = {
        "status": report["status"],
        "event_log": {"ok": report["event_log"]["ok"]},
        "postgres": {"ok": report["postgres"]["ok"]},
        "details_for": SEEN_WITH,
    }
    return web.json_response(public, status=status)


async def _asked_by_an_admin(request: web.Request) -> bool:
    keys = request.app.get(KEYS)
    if "Authorization" not in request.headers or keys is None:
        return False
    try:
        # Within a moment: /healthz answers while the shared pool is exhausted or PostgreSQL is away.
        async with asyncio.timeout(2):
            caller = await caller_of(request, keys)
    except PermissionDenied:
        return False
    except Exception as exc:
        if isinstance(exc, TimeoutError) or is_database_unavailable(exc):
            return False
        raise
    return caller is not None and caller.role == "admin" and not caller.limits


async def issue_first_admin_key(app: web.Application, key_file: Path) -> str | None:
    """On an installation's first start, issue an admin key and keep it in `key_file` (mode 600).

    Only when the installation has no live admin key: an API replica whose key file was not on lasting storage, or a
    restored installation, minted another working admin key at each start. With every admin key lost, the operator
    asks for one by starting once with MODELREG_ISSUE_ADMIN_KEY=1.

    The file is written before waiting for the read models: an API without its projector (compose) must
    not lose a key it appended because the projector is still starting. The key works once the identity
    projection has it, which is waited for (briefly) so that a user who reads the file can use it at once.
    """
    if key_file.exists():
        return None
    application = app[APP]
    asked = os.environ.get("MODELREG_ISSUE_ADMIN_KEY") == "1"
    if not asked and not await _no_admin_key_yet(application, key_file):
        return None
    accepted = await application.execute(
        IssueApiKey(principal_kind="user", principal_id="admin", role="admin", label="created on first start"),
        service_caller("modelreg-server"),
        wait_for_read_models=False,
    )
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.touch(mode=0o600)
    key_file.write_text(accepted.subject_id + "\n")
    try:
        await application.progress.wait_for(["identity"], accepted.positions, application.read_your_writes_timeout_s)
    except ProjectionLagging:
        log.warning(
            "the admin key in %s works once the identity projection has applied it (is a projector running?)", key_file
        )
    return str(key_file)


async def _no_admin_key_yet(application: Application, key_file: Path) -> bool:
    """Whether the installation holds no live admin key: its log is empty, or its identity read model, caught up
    with the log, counts none."""
    ends = await application.log.end_positions()
    if not any(ends.values()):
        return True
    last = [LogPosition(application.log.topic, partition, end - 1) for partition, end in ends.items() if end]
    try:
        await application.progress.wait_for(["identity"], last, application.read_your_writes_timeout_s)
    except ProjectionLagging:
        log.warning(
            "%s does not exist, and whether this installation has an admin key cannot be told yet (the identity "
            "projection is behind the log): no key was issued; start again once it caught up",
            key_file,
        )
        return False
    if await application.read_models.identity.live_admin_keys():
        log.warning(
            "%s does not exist, but this installation has an admin key already: no other was issued. Use one you "
            "hold (an admin issues keys with issueApiKey); with every admin key lost, start once with "
            "MODELREG_ISSUE_ADMIN_KEY=1",
            key_file,
        )
        return False
    return True


@web.middleware
async def blobs_need_a_key(request: web.Request, handler: Any) -> web.StreamResponse:
    """Artifact files are read and written by holders of a live key (any role reads; writers are checked
    when they log the version that names the files)."""
    if request.path.startswith("/blobs"):
        try:
            caller = await caller_of(request, request.app[KEYS])
        except PermissionDenied as exc:
            raise web.HTTPUnauthorized(text=exc.message) from None
        if caller is None:
            raise web.HTTPUnauthorized(text=NO_KEY)
        if request.method not in ("GET", "HEAD") and not caller.writes_somewhere():
            raise web.HTTPForbidden(text=f"{caller.actor} is a viewer: uploading artifact files needs member")
        visibility, readable, application = Visibility(request.app[APP].reads.pool), caller.readable(), request.app[APP]
        if application.blobs is None:
            raise web.HTTPServiceUnavailable(text="this process has no blob store")
        hidden = hidden_from(visibility, readable, application.blobs, caller.holder)
        request[HIDDEN_FROM_CALLER] = hidden
        request[LISTED_OUT_OF_SIGHT] = lambda digest: visibility.blob_hidden(digest, readable)
        request[LISTED_BY_A_VERSION] = visibility.blob_listed
        request[SENDER] = caller.holder
        digest = request.match_info.get("digest")
        if digest is not None and not DIGEST.match(digest):
            # Looked up before the route checked it: a %00 in it failed in PostgreSQL with a 500.
            raise web.HTTPBadRequest(text=f"{digest!r} is not a blob address: use sha256:<64 lowercase hex>")
        if request.method == "GET" and digest is not None:
            # A file is readable when one version the caller may read holds it; otherwise it is not there.
            if not await visibility.blob_readable(digest, readable):
                raise web.HTTPNotFound(text=f"no blob {digest} in an artifact version you may read")
        if request.method == "HEAD" and digest is not None and await hidden(digest):
            raise web.HTTPNotFound(text=f"no blob {digest}")
    return await handler(request)


def create_app(settings: Settings, parts: ProcessParts | None = None) -> web.Application:
    """`parts`: the process's own (services/bootstrap.py) when it does more than serve; else the app opens
    its own with the server's lifetime."""
    # A bigger read buffer than aiohttp's 64 KiB: an upload would otherwise pause and resume the socket
    # every 128 KiB, which caps it well below disk speed. Bodies are still streamed, never held whole.
    # No lingering: after a refusal (413) the connection is closed instead of reading the rest of the body
    # to discard it, which for a hostile 20 MB body kept the event loop busy for every other request.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[requests_within_capacity, answers_taken_in_time, bodies_within_limits, blobs_need_a_key],
        handler_args={
            "read_bufsize": 4 * 1024 * 1024,
            "lingering_time": 0,
            "keepalive_timeout": IDLE_CONNECTION_TIMEOUT_S,
        },
    )
    app[LIMITS] = BodyLimits(settings.max_body_bytes, settings.max_blob_bytes, settings.body_read_timeout_s)
    app[IN_FLIGHT] = RequestsInFlight(settings.max_requests_in_flight)
    app[UNREAD_ANSWERS] = UnreadAnswers(settings.max_unread_answer_bytes)
    app[METRICS_TOKEN], app[ASKED_BY_AN_ADMIN] = settings.metrics_token, _asked_by_an_admin

    async def components(app: web.Application) -> AsyncIterator[None]:
        # /healthz checks on a pool of its own, so that it answers while every request holds a connection.
        health_pool = await create_pool(settings.database_url, min_size=0, max_size=2)  # opened by the first check
        async with given_or_own(parts, settings, pool_size=20) as wired:
            app[POOL], app[LOG], app[HEALTH_POOL] = wired.pool, wired.event_log, health_pool
            app[APP] = await wired.application(blobs=blobs)
            app[KEY_USES] = KeyUses(wired.pool)
            app[KEYS] = KnownKeys(IdentityQueries(wired.pool), await wired.progress(), uses=app[KEY_USES])
            await app[KEYS].start()
            async with app[KEY_USES].written():
                yield
            await app[APP].close()
        await health_pool.close()

    execution_log = logging.getLogger("graphql_server.execution")
    if _REFUSALS_ARE_NO_FAULTS not in execution_log.filters:
        execution_log.addFilter(_REFUSALS_ARE_NO_FAULTS)
    app.middlewares.insert(0, database_unavailable_is_503)  # outermost: PostgreSQL away is a 503 on every route
    app[SECRETS] = WebhookSecrets(settings.webhook_secret_key)
    app.cleanup_ctx.append(components)
    blobs = blob_store_at(settings.blob_store, settings.blob_dir or Path("blobs"))
    if isinstance(blobs, ObjectBlobStore):
        add_object_store_routes(app, blobs, settings.max_blob_bytes)
        app.cleanup_ctx.append(opened(blobs))
    else:
        add_blob_routes(app, blobs)
    app[TAILS] = LogTails()
    app[SOCKETS] = weakref.WeakSet()
    app[SOCKETS_PER_PRINCIPAL] = SocketsPerPrincipal(settings.max_sockets_per_principal)
    app.on_shutdown.append(close_open_sockets)
    view = ModelregGraphQLView(
        schema=build_schema().graphql_schema,
        tails=app[TAILS],
        sockets=app[SOCKETS_PER_PRINCIPAL],
        graphql_ide="graphiql",
    )
    app.router.add_route("*", "/graphql", view)
    app[HEALTH_READING] = SharedReading(lambda: read_health(app[HEALTH_POOL], app[LOG]), fresh_for_s=0.0)
    app[STALLS] = ProjectionStalls()
    app[TRIGGERS] = TriggersPresence()
    app.router.add_get("/healthz", healthz)
    add_operations_routes(app, HEALTH_POOL, LOG, list(PROJECTIONS))
    app[METRICS].registry.register(app[UNREAD_ANSWERS])
    add_ui_routes(app)  # the web UI at /, a client of /graphql like any other
    secure_every_answer(app)
    return app
