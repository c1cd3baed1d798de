"""How the client talks to a modelreg server: GraphQL for commands and queries, /blobs for files.

Connection failures and 5xx answers are retried with backoff (tenacity); GraphQL errors become
ModelregError with the server's code, so training code can tell a typo from a hiccup. A mutation is sent
again only when that cannot apply it twice: it never reached the server, or it carries a command id
(`with_command_id`), which the server applies once however often it arrives.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import time
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import httpx
import orjson
from tenacity import RetryCallState, retry, retry_if_exception, wait_exponential

from modelreg.direct_upload import DirectUpload, presigned_put
from modelreg.errors import (
    Conflict,
    InvalidInput,
    ModelregError,
    NotFound,
    NotYetVisible,
    PermissionDenied,
    Unavailable,
)
from modelreg.partial_files import partial_beside
from modelreg.user_settings import load_login

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
BUSY_FOR_AT_MOST_S = 300.0
COMPLETION_READ_S = 3600.0
CHUNK = 4 * 1024 * 1024

_ERRORS: dict[str, type[ModelregError]] = {
    "INVALID_INPUT": InvalidInput,
    "NOT_FOUND": NotFound,
    "FORBIDDEN": PermissionDenied,
    "CONFLICT": Conflict,
    "NOT_YET_VISIBLE": NotYetVisible,
    "UNAVAILABLE": Unavailable,  # the server's broker or database cannot take it now: retriable
}


# Every live transport, for the fork hook below; and the clients a forked child inherited, kept unclosed.
_transports: weakref.WeakSet[Transport] = weakref.WeakSet()
_inherited: list[tuple[httpx.Client, httpx.Client]] = []


def _reconnect_all_after_fork() -> None:
    for transport in list(_transports):
        transport._reconnect_after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_reconnect_all_after_fork)


def _seconds(header: str | None, *, default: float) -> float:
    """A Retry-After header's wait, within a minute."""
    try:
        return min(max(float(header), 0.0), 60.0) if header is not None else default
    except ValueError:
        return default


def _refuse_if_storage_full(response: httpx.Response, path: Path) -> None:
    """507: the server's disk is full. Not retried (no second try soon finds room); its message goes to the user."""
    if response.status_code == 507:
        raise Unavailable(f"{path} was not uploaded: {response.text}", retriable=False)


def refusal_message(response: httpx.Response) -> str:
    """A refusal's message: the first GraphQL error's (the API's one shape, 401 included), else the body's text."""
    try:
        return str(response.json()["errors"][0]["message"])
    except (ValueError, LookupError, TypeError):
        return response.text


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


RETRY_FOR_S_VARIABLE = "MODELREG_RETRY_FOR_S"
_TRIES = 6  # about 6 s of waits (0.2, 0.4 ... 3.2 s), unless MODELREG_RETRY_FOR_S says how long


def retry_budget_s() -> float | None:
    """MODELREG_RETRY_FOR_S: how long to try a request again (a deployment whose API restarts take longer than the
    6 s of the 6 tries); None when unset. Read at each request; checked when a Transport is made too, so that a typo
    is said at the start, not in place of the first network error, hours into training."""
    budget = os.environ.get(RETRY_FOR_S_VARIABLE)
    if not budget:
        return None
    try:
        seconds = float(budget)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInput(f"{RETRY_FOR_S_VARIABLE}={budget!r} is no number of seconds (say 60)")
    return seconds


def _given_up(state: RetryCallState) -> bool:
    """Whether to stop asking: after 6 tries, or once MODELREG_RETRY_FOR_S seconds have gone by when it is set."""
    budget = retry_budget_s()
    if budget is not None:
        return (state.seconds_since_start or 0.0) >= budget
    return state.attempt_number >= _TRIES


def _retrying_on(predicate: Callable[[BaseException], bool]) -> Any:
    return retry(
        retry=retry_if_exception(predicate),
        stop=_given_up,
        wait=wait_exponential(multiplier=0.2, max=5),
        reraise=True,
    )


def _unsent(exc: BaseException) -> bool:
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _refused_for_now(exc: BaseException) -> bool:
    """UNAVAILABLE that the server says to send again: its event log or database away for a moment (a broker's
    failover, a restart)."""
    return isinstance(exc, Unavailable) and exc.retriable


def _worth_sending_again(exc: BaseException) -> bool:
    # Sent again with its id, a command answers as its first copy did: after an answer lost, after NOT_YET_VISIBLE
    # (accepted, not yet shown), after a CONFLICT the server says to send again (nothing written while another
    # copy or a change to the same thing was under way, or while its read models were behind), and after an
    # UNAVAILABLE it says to send again (the change may or may not be recorded: its id keeps it from being twice).
    return (
        _transient(exc)
        or isinstance(exc, NotYetVisible)
        or (isinstance(exc, Conflict) and exc.retriable)
        or _refused_for_now(exc)
    )


def _worth_asking_again(exc: BaseException) -> bool:
    return _transient(exc) or _refused_for_now(exc)


_retrying = _retrying_on(_worth_asking_again)
# A mutation without a command id: only what never left this machine is sent again (the server may have
# applied what it received, and would apply it twice).
_retrying_unsent = _retrying_on(_unsent)
_retrying_repeatable = _retrying_on(_worth_sending_again)


def _said_as_unreachable(method: Callable[..., T]) -> Callable[..., T]:
    """What the retries could not get through is told in modelreg's terms (`Unavailable`), whichever request
    it was: a query, a mutation, a file's upload or download."""

    @functools.wraps(method)
    def said(self: Transport, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach modelreg at {self.url} ({exc}): is the server running? (MODELREG_URL, `modelreg login`)"
            ) from exc
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code not in (502, 503, 504):
                raise  # a 500 is a fault the same request meets again: sent for ever, it would hold a run's metrics
            # A server restarting, its database away (503), a proxy with no server behind it (502): as retriable
            # as no answer at all. Raised as it came, the metric sender took it for a bug and dropped its batch.
            raise Unavailable(
                f"modelreg at {self.url} answered {exc.response.status_code} {exc.response.reason_phrase}: it is "
                "restarting or its database is away; try again shortly"
            ) from exc

    return said


def with_command_id(fields: dict[str, Any]) -> dict[str, Any]:
    """A mutation's input with a fresh command id (unless it has one): after a lost answer (a cut connection,
    an API replaced mid-request) the transport may send it again, and the server applies it once."""
    return {"commandId": str(uuid4()), **fields}


def _carries_command_id(variables: dict[str, Any]) -> bool:
    return any(isinstance(value, dict) and value.get("commandId") for value in variables.values())


class Transport:
    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout_s: float = 60.0) -> None:
        # Arguments, then the environment (ours, then W&B's, which machines set up for W&B export), then
        # `modelreg login` (user_settings.py).
        login = load_login()
        url = url or os.environ.get("MODELREG_URL") or os.environ.get("WANDB_BASE_URL")
        self.url = (url or (login.url if login else None) or DEFAULT_URL).rstrip("/")
        api_key = api_key or os.environ.get("MODELREG_API_KEY") or os.environ.get("WANDB_API_KEY")
        api_key = api_key or (login.key_for(self.url) if login else None)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout_s = timeout_s
        retry_budget_s()
        self._clients: tuple[httpx.Client, httpx.Client] | None = None
        _transports.add(self)

    def _connected(self) -> tuple[httpx.Client, httpx.Client]:
        if self._clients is None:
            # Presigned URLs of the object store: no API key goes there (the URL carries its own signature).
            self._clients = (
                httpx.Client(base_url=self.url, headers=self._headers, timeout=self._timeout_s),
                httpx.Client(timeout=self._timeout_s, limits=httpx.Limits(max_connections=16)),
            )
        return self._clients

    @property
    def _http(self) -> httpx.Client:
        return self._connected()[0]

    @property
    def _store(self) -> httpx.Client:
        return self._connected()[1]

    def close(self) -> None:
        if self._clients is not None:
            for client in self._clients:
                client.close()

    def _reconnect_after_fork(self) -> None:
        """In a forked child: connections of its own, made at its first request. The inherited ones share their
        sockets with the parent, so both processes' requests and answers interleaved on one connection (garbled
        JSON, the server's 400s). They are kept, never closed nor collected: closing could shut or write to a
        socket the parent still uses (TLS close_notify)."""
        if self._clients is not None:
            _inherited.append(self._clients)
            self._clients = None

    def _ask(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a blob question (JSON) to the API: how to upload, or complete an upload. Both may be asked
        again: a plan names what is missing, and a completion asked again answers what the first one did. A
        busy answer (503: another upload of the file reached the store first) is asked again after the wait
        it names, for a few minutes."""
        deadline = time.monotonic() + BUSY_FOR_AT_MOST_S
        while True:
            try:
                return _retrying(self._ask_once)(route, body)
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 503:
                    raise
                wait = _seconds(exc.response.headers.get("Retry-After"), default=5.0)
                if time.monotonic() + wait > deadline:
                    raise Unavailable(exc.response.text) from None
                time.sleep(wait)

    def _ask_once(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        # Completing a multipart upload hashes the whole file on the server (about a second per GB).
        timeout = httpx.Timeout(self._timeout_s, read=COMPLETION_READ_S) if route.endswith("/complete") else None
        response = self._http.post(route, json=body, timeout=timeout or httpx.USE_CLIENT_DEFAULT)
        if response.status_code == 404 and route == "/blobs/uploads":
            return {"method": "api"}  # an older server: the bytes go to PUT /blobs/<digest>
        if response.status_code in (400, 409, 413):
            raise InvalidInput(response.text)
        response.raise_for_status()
        return response.json()

    def _put_presigned(
        self, url: str, headers: dict[str, str], path: Path, offset: int, length: int, on_bytes: Callable[[int], object]
    ) -> None:
        try:
            _retrying(presigned_put)(self._store, url, headers, path, offset, length, on_bytes)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 400 and "BadDigest" in exc.response.text:
                raise InvalidInput(
                    f"{path}: the object store refused the bytes, whose SHA-256 is not the one announced "
                    "(did the file change while it was uploaded?)"
                ) from None
            raise

    @_said_as_unreachable
    def graphql(self, query: str, variables: dict[str, Any] | None = None, *, compress: bool = False) -> dict[str, Any]:
        """`compress`: send the body gzipped (a batch of metrics: JSON numbers shrink to about a third)."""
        variables = variables or {}
        if not query.lstrip().startswith("mutation"):
            attempts = _retrying
        else:
            attempts = _retrying_repeatable if _carries_command_id(variables) else _retrying_unsent
        return attempts(self._answer)(query, variables, compress)

    def _answer(self, query: str, variables: dict[str, Any], compress: bool) -> dict[str, Any]:
        body = self._post_graphql(query, variables, compress)
        if body.get("errors"):
            error = body["errors"][0]
            extensions = error.get("extensions") or {}
            code = extensions.get("code", "INTERNAL")
            # The server says whether sending it again may work (an INTERNAL error from a database hiccup does).
            retriable = extensions.get("retriable")
            raise _ERRORS.get(code, ModelregError)(
                error["message"],
                code=code,
                retriable=retriable if isinstance(retriable, bool) else None,
                path=error.get("path") or (),
            )
        return body["data"]

    def _post_graphql(self, query: str, variables: dict[str, Any], compress: bool = False) -> dict[str, Any]:
        if compress:
            body = zlib.compress(orjson.dumps({"query": query, "variables": variables}), 1, wbits=31)  # gzip
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            response = self._http.post("/graphql", content=body, headers=headers)
        else:
            response = self._http.post("/graphql", json={"query": query, "variables": variables})
        if response.status_code == 401:
            raise PermissionDenied(refusal_message(response))
        if response.status_code >= 500:
            response.raise_for_status()
        return response.json()

    @_said_as_unreachable
    @_retrying
    def has_blob(self, digest: str) -> bool:
        response = self._http.head(f"/blobs/{digest}")
        if response.status_code >= 500:
            response.raise_for_status()
        return response.status_code == 200

    @_said_as_unreachable
    @_retrying
    def upload(self, path: Path, digest: str, on_bytes: Callable[[int], object]) -> None:
        """Send a file to the store: straight to object storage with presigned URLs when the server keeps its
        files there (direct_upload.py), else streamed to the API. The store or the server verifies its
        digest. Retried if cut (a multipart upload resumes from the parts the store has)."""
        if DirectUpload(self._ask, self._put_presigned).run(path, digest, on_bytes) != "api":
            return

        def chunks():
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
                    on_bytes(len(chunk))

        response = self._http.put(
            f"/blobs/{digest}", content=chunks(), headers={"Content-Length": str(path.stat().st_size)}
        )
        if response.status_code == 400:
            raise InvalidInput(f"{path}: {response.text} (did the file change while it was uploaded?)")
        if response.status_code == 413:  # over the server's limit for one artifact file
            raise InvalidInput(f"{path}: {response.text}")
        _refuse_if_storage_full(response, path)
        response.raise_for_status()

    @_said_as_unreachable
    @_retrying
    def blob_candidates(self, size: int, head: str) -> list[str] | None:
        """Digests of the server's blobs with this size and first-MiB sha256; None if it cannot tell."""
        response = self._http.get(f"/blobs/heads/{size}/{head}")
        if response.status_code == 404:  # an older server
            return None
        if response.status_code >= 500:
            response.raise_for_status()
        return response.json()["digests"] if response.status_code == 200 else None

    @_said_as_unreachable
    @_retrying
    def upload_hashing(self, path: Path, on_bytes: Callable[[int], object]) -> str:
        """Stream a file to the store in one pass, hashing it as it goes; returns its digest once the
        server, which computed it too, agrees. Retried from the start if cut."""
        hasher = hashlib.sha256()

        def chunks():
            with path.open("rb", buffering=0) as f:
                while chunk := f.read(CHUNK):
                    hasher.update(chunk)
                    yield chunk
                    on_bytes(len(chunk))

        response = self._http.post("/blobs", content=chunks(), headers={"Content-Length": str(path.stat().st_size)})
        if response.status_code == 413:  # over the server's limit for one artifact file
            raise InvalidInput(f"{path}: {response.text}")
        _refuse_if_storage_full(response, path)
        response.raise_for_status()
        digest = "sha256:" + hasher.hexdigest()
        if response.json()["digest"] != digest:
            raise httpx.TransportError(
                f"upload of {path} arrived corrupted (the server computed another digest)"
            )  # retried
        return digest

    @_said_as_unreachable
    @_retrying
    def download(self, digest: str, destination: Path, on_bytes: Callable[[int], object]) -> None:
        """Fetch a blob to `destination`, verifying its digest; written under a temporary name first."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = partial_beside(destination)
        hasher = hashlib.sha256()
        # An object-storage server redirects to a presigned URL; httpx drops the API key on the way there.
        with self._http.stream("GET", f"/blobs/{digest}", follow_redirects=True) as response:
            if response.status_code == 404:
                said = response.read().decode(errors="replace")[:1000] or f"no blob {digest}"
                raise NotFound(f"the server cannot send file {digest}: {said}")
            response.raise_for_status()
            try:
                with temporary.open("wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        hasher.update(chunk)
                        out.write(chunk)
                        on_bytes(len(chunk))
            except BaseException:
                temporary.unlink(missing_ok=True)  # a cut: retried under a new name, and none left behind
                raise
        if "sha256:" + hasher.hexdigest() != digest:
            temporary.unlink(missing_ok=True)
            raise httpx.TransportError(f"download of {digest} arrived corrupted")  # retried
        temporary.replace(destination)
