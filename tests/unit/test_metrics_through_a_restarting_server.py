"""A batch of metrics outlives a server that answers with an error it says is worth sending again: a 503 while
its database restarts, a 502 from a proxy while the API is replaced, a GraphQL error marked retriable. Each one
dropped the batch (the transport raised the HTTP error as it came, and read no `retriable` flag)."""

from __future__ import annotations

import gzip
import json
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID, uuid4

import pytest

from modelreg.errors import Unavailable
from modelreg.metric_sender import MetricsBacklog, MetricSender, encoded
from modelreg.transport import Transport

LOG_METRICS = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"


class Server:
    """Answers its first `failures` requests with `failure`, then takes each batch (its command id)."""

    def __init__(self, failure: str, failures: int) -> None:
        self.failure, self.failures = failure, failures
        self.requests = 0
        self.accepted: list[str] = []


@contextmanager
def serving(server: Server) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(gzip.decompress(self.rfile.read(int(self.headers["Content-Length"]))))
            server.requests += 1
            if server.requests <= server.failures and server.failure in ("502", "503"):
                self.send_response(int(server.failure))
                self.end_headers()
                self.wfile.write(b"restarting")
                return
            if server.requests <= server.failures:
                code, said = (
                    ("CONFLICT", "another copy is under way") if server.failure == "busy" else ("INTERNAL", "hiccup")
                )
                answer = {"errors": [{"message": said, "extensions": {"code": code, "retriable": True}}]}
            else:
                server.accepted.append(body["variables"]["i"]["commandId"])
                answer = {"data": {"logMetricBatch": 1}}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()


def sender_to(url: str) -> MetricSender:
    transport = Transport(url, "key")

    def sink(batch: list[dict[str, Any]], command_id: UUID) -> None:
        run = {"entity": "acme", "project": "fraud", "runId": "r1", "commandId": str(command_id)}
        transport.graphql(LOG_METRICS, {"i": {**run, "series": encoded(batch)}}, compress=True)

    return MetricSender(sink, window_s=0.01, retry_every_s=0.01)


@pytest.mark.parametrize("failure", ["503", "internal"])
def test_a_batch_is_sent_again_until_the_server_takes_it(failure: str) -> None:
    # 503: more answers than the transport's own retries (6), so the sender sees the failure and retries.
    server = Server(failure, failures=8 if failure == "503" else 3)
    with serving(server) as url, warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        sender = sender_to(url)
        sender.log({"loss": 0.5}, step=0)
        sender.flush()
        sender.close()
    assert len(server.accepted) == 1 and server.requests == server.failures + 1
    assert any(issubclass(w.category, MetricsBacklog) for w in warned)


def test_a_server_answering_503_is_said_to_be_unavailable_and_worth_trying_again() -> None:
    with serving(Server("503", failures=100)) as url:
        with pytest.raises(Unavailable, match="answered 503") as refused:
            Transport(url, "key").graphql(LOG_METRICS, {"i": {}}, compress=True)
    assert refused.value.retriable


def test_a_command_refused_while_another_copy_of_it_was_under_way_is_sent_again_by_the_transport() -> None:
    # CONFLICT marked retriable: nothing written (it was NOT_YET_VISIBLE, which the transport sent again).
    server = Server("busy", failures=2)
    with serving(server) as url:
        run = {"entity": "acme", "project": "fraud", "runId": "r1", "commandId": str(uuid4())}
        answer = Transport(url, "key").graphql(LOG_METRICS, {"i": {**run, "series": []}}, compress=True)
    assert answer == {"logMetricBatch": 1} and server.requests == 3
