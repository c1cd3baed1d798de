"""A reference a teammate logged is fetched from where it points, checked, and written under a name of its own:
nothing of the downloading machine's own (its environment, a cloud metadata service) comes back as a file."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelreg.artifact import Artifact
from modelreg.errors import InvalidInput, Unavailable
from modelreg.references import fetch, reference_digest


def _unchecked(uri: str, size: int) -> tuple[str, int, str]:
    return uri, size, reference_digest(uri, None, size)  # what anyone may log without reading the file


@pytest.mark.parametrize(
    "uri", ["file:///proc/self/environ", "file:///sys/class/dmi/id/product_uuid", "file:///dev/zero"]
)
def test_a_reference_into_the_machines_own_files_is_not_downloaded(tmp_path: Path, uri: str) -> None:
    with pytest.raises(InvalidInput, match="names the machine's own"):
        fetch(*_unchecked(uri, 0), tmp_path / "config.txt", lambda _: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data/iam",
        "http://[fe80::1]/x",
        "http://[::ffff:169.254.169.254]/latest",  # spellings of the same address, each of which connected
        "http://2852039166/latest",
        "http://0xa9fea9fe/latest",
        "http://169.254.169.254./latest",
        "http://metadata.google.internal./computeMetadata/v1/",
    ],
)
def test_a_reference_to_a_link_local_address_is_not_downloaded(tmp_path: Path, uri: str) -> None:
    with pytest.raises(InvalidInput, match="link-local address"):
        fetch(*_unchecked(uri, 0), tmp_path / "creds", lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_an_unhashed_local_reference_must_have_the_size_it_was_logged_with(tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = abc\n")
    # Logged with size 0 (it was never read): the size check was skipped, and any file passed as checked.
    with pytest.raises(InvalidInput, match="changed since it was logged"):
        fetch(*_unchecked(secret.as_uri(), 0), tmp_path / "out" / "credentials", lambda _: None)
    assert list((tmp_path / "out").iterdir()) == []  # no partial file left behind

    uri, size, digest = _unchecked(secret.as_uri(), secret.stat().st_size)
    fetch(uri, size, digest, tmp_path / "out" / "credentials", lambda _: None)  # as it was logged: fetched
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["credentials"]


def test_a_reference_redirected_to_a_link_local_address_is_not_followed_there(tmp_path: Path) -> None:
    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/iam")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/weights.bin"
        with pytest.raises(InvalidInput, match="link-local address"):
            fetch(*_unchecked(uri, 0), tmp_path / "weights.bin", lambda _: None)
    finally:
        server.shutdown()
        server.server_close()


def test_a_reference_to_a_host_this_machine_cannot_reach_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    dataset = Artifact("imagenet-ref", "dataset")
    with pytest.raises(Unavailable, match="cannot reach it") as refused:
        dataset.add_reference(f"http://127.0.0.1:{port}/imagenet/train.tar", checksum=False)
    said = refused.value.message
    assert "with checksum=False too" in said and "that this machine reaches it" in said and "add_file" in said
