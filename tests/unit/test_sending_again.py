"""After a lost answer the client sends a request again only when that cannot apply it twice: a query, or a
mutation carrying its command id. Against a real HTTP server that reads each request and hangs up unanswered
(an API killed mid-request)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelreg.errors import InvalidInput, Unavailable
from modelreg.services.cli import main
from modelreg.transport import RETRY_FOR_S_VARIABLE, Transport, with_command_id

MUTATION = "mutation($i: StartRunInput!) { startRun(input: $i) { runId } }"


class HangingUp:
    """Reads each request whole, then closes the connection without a word (or after `answer`, when set)."""

    answer: bytes | None = None

    def __init__(self) -> None:
        self.requests = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            with connection:
                _read_request(connection)
                self.requests += 1
                if self.answer is not None:
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        + f"Content-Length: {len(self.answer)}\r\n\r\n".encode()
                        + self.answer
                    )

    def close(self) -> None:
        self._socket.close()


class RefusingForNow(HangingUp):
    """Answers every request as the API does while its event log is away: UNAVAILABLE, to be sent again."""

    answer = (
        b'{"errors": [{"message": "the event log (Kafka) is not answering", '
        b'"extensions": {"code": "UNAVAILABLE", "retriable": true}}]}'
    )


def _read_request(connection: socket.socket) -> None:
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += connection.recv(65536)


@pytest.fixture
def server() -> Iterator[HangingUp]:
    hanging_up = HangingUp()
    yield hanging_up
    hanging_up.close()


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tries for 1.5 s, not the 6 tries of about 6 s by default: at 0, 0.2, 0.6, 1.4 and 3 s."""
    monkeypatch.setenv(RETRY_FOR_S_VARIABLE, "1.5")


def test_a_mutation_without_a_command_id_is_not_sent_again_once_the_server_had_it(server: HangingUp) -> None:
    transport = Transport(server.url, "mr_key", timeout_s=5)
    with pytest.raises(Unavailable):
        transport.graphql(MUTATION, {"i": {"entity": "acme", "project": "fraud", "runId": "r1"}})
    assert server.requests == 1


def test_a_mutation_with_its_command_id_is_sent_again_after_a_lost_answer(
    server: HangingUp, quick_retries: None
) -> None:
    transport = Transport(server.url, "mr_key", timeout_s=5)
    with pytest.raises(Unavailable):
        transport.graphql(MUTATION, {"i": with_command_id({"entity": "acme", "project": "fraud", "runId": "r1"})})
    assert server.requests >= 2


def test_a_query_is_sent_again_after_a_lost_answer_six_times_by_default(server: HangingUp) -> None:
    transport = Transport(server.url, "mr_key", timeout_s=5)
    with pytest.raises(Unavailable):
        transport.graphql("query { viewer { id } }")
    assert server.requests == 6


def test_how_long_to_ask_again_is_the_deployments_choice(server: HangingUp, monkeypatch: pytest.MonkeyPatch) -> None:
    """An API whose restarts take longer than the 6 tries' 6 s (a rolling restart on a busy host) failed a
    training script's step: MODELREG_RETRY_FOR_S sets how long to try, read at each request."""
    monkeypatch.setenv(RETRY_FOR_S_VARIABLE, "2")
    with pytest.raises(Unavailable):
        Transport(server.url, "mr_key", timeout_s=5).graphql("query { viewer { id } }")
    assert 3 <= server.requests <= 5  # at 0, 0.2, 0.6, 1.4 and (unless the machine is slow) 3 s: not 6
    for typo in ("soon", "nan", "-1"):  # said when the client is made, not at its first network error
        monkeypatch.setenv(RETRY_FOR_S_VARIABLE, typo)
        with pytest.raises(InvalidInput, match=f"MODELREG_RETRY_FOR_S='{typo}' is no number of seconds"):
            Transport(server.url, "mr_key", timeout_s=5)


def test_a_command_id_given_by_the_caller_is_kept() -> None:
    assert with_command_id({"commandId": "c1", "runId": "r1"})["commandId"] == "c1"


def test_a_file_the_server_cannot_be_reached_for_says_so_in_modelregs_terms(
    tmp_path: Path, quick_retries: None
) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    transport = Transport(url, "mr_key", timeout_s=5)
    with pytest.raises(Unavailable, match=f"cannot reach modelreg at {url}"):
        transport.download("sha256:" + "0" * 64, tmp_path / "model.pt", lambda n: None)


@pytest.mark.parametrize(
    "arguments",
    [
        ["job", "cancel", "0190d1f4-0000-7000-8000-000000000001"],
        ["job", "retry", "0190d1f4-0000-7000-8000-000000000001"],
        ["launch", "--queue", "cpu", "--from-run", "acme/fraud/r1", "--config", "lr=0.01"],
    ],
    ids=["cancel", "retry", "enqueue"],
)
def test_a_launch_command_from_the_cli_is_sent_again_after_a_lost_answer(
    server: HangingUp, arguments: list[str], quick_retries: None
) -> None:
    """A CI step enqueueing a job whose answer was lost: the CLI sends it again under the same command id, which the
    server takes once (it was sent once, so a retry after a lost answer would have been a second job or nothing)."""
    result = CliRunner().invoke(main, [*arguments, "--url", server.url, "--api-key", "mr_key"])
    assert result.exit_code == 1, result.output
    assert server.requests >= 2


def test_a_command_answered_unavailable_is_sent_again_with_its_id_and_one_without_is_not(quick_retries: None) -> None:
    """The server's UNAVAILABLE says to send the command again with the same commandId (it is taken once): the
    client did not, and a broker's failover of a few seconds failed every mutation under way."""
    refusing = RefusingForNow()
    try:
        transport = Transport(refusing.url, "mr_key", timeout_s=5)
        with pytest.raises(Unavailable):
            transport.graphql(MUTATION, {"i": with_command_id({"entity": "acme", "project": "fraud", "runId": "r1"})})
        sent = refusing.requests
        assert sent >= 2
        with pytest.raises(Unavailable):
            transport.graphql(MUTATION, {"i": {"entity": "acme", "project": "fraud", "runId": "r1"}})
        assert refusing.requests == sent + 1
    finally:
        refusing.close()
