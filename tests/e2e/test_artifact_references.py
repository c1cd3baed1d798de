"""Data too big or too shared to copy into the registry is logged by reference: the version records where
the bytes are, their size and digest; a download fetches them from there and checks they did not change."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.stack import Stack

import modelreg
from modelreg.errors import InvalidInput
from modelreg.references import reference_digest


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server over a folder, with ETags, as object stores and CDNs answer."""
    root = tmp_path / "web"
    root.mkdir()

    class Files(BaseHTTPRequestHandler):
        def _answer(self, with_body: bool) -> None:
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"' + hashlib.md5(body).hexdigest() + '"')
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer(with_body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(with_body=True)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def log_references(url: str, base: str, shared: Path) -> modelreg.Artifact:
    with modelreg.init(project="nature", entity="acme", job_type="ingest", url=url) as run:
        corpus = modelreg.Artifact("corpus", "dataset")
        corpus.add_reference(shared.as_uri(), name="shards")  # a folder: each file under it
        corpus.add_reference(f"{base}/weights.bin")  # hashed: small enough to read
        corpus.add_reference(f"{base}/labels.txt", checksum=False)  # ETag and size stand for the content
        with corpus.new_file("README.md") as f:
            f.write("uploaded as usual")
        return run.log_artifact(corpus)


FILES = """query($id: ID!) { artifactVersion(id: $id) { files { path size digest ref } } }"""


async def test_references_are_recorded_not_uploaded_and_come_back_from_their_source(
    stack: Stack, tmp_path: Path, web_root: tuple[str, Path], settings
) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    base, web = web_root
    (web / "weights.bin").write_bytes(b"w" * 3000)
    (web / "labels.txt").write_bytes(b"cat\ndog\n")
    shared = tmp_path / "nfs" / "corpus"
    (shared / "2026").mkdir(parents=True)
    (shared / "a.jsonl").write_bytes(b'{"text": "a"}\n')
    (shared / "2026" / "b.jsonl").write_bytes(b'{"text": "b"}\n')

    corpus = await asyncio.to_thread(log_references, url, base, shared)

    files = {f["path"]: f for f in (await stack.graphql(FILES, {"id": corpus.id}))["data"]["artifactVersion"]["files"]}
    assert sorted(files) == ["README.md", "labels.txt", "shards/2026/b.jsonl", "shards/a.jsonl", "weights.bin"]
    assert files["shards/a.jsonl"] == {
        "path": "shards/a.jsonl",
        "size": 14,
        "digest": sha256(b'{"text": "a"}\n'),
        "ref": (shared / "a.jsonl").as_uri(),
    }
    assert (files["weights.bin"]["digest"], files["weights.bin"]["ref"]) == (sha256(b"w" * 3000), f"{base}/weights.bin")
    etag = '"' + hashlib.md5(b"cat\ndog\n").hexdigest() + '"'
    assert files["labels.txt"]["digest"] == reference_digest(f"{base}/labels.txt", etag, 8)
    assert files["README.md"]["ref"] is None
    stored = {p.parent.name + p.name for p in (settings.blob_dir / "sha256").rglob("*") if p.is_file()}  # ab/cdef...
    assert stored == {files["README.md"]["digest"].removeprefix("sha256:")}  # only the uploaded file

    def download(folder: Path) -> Path:
        return modelreg.Api(url).artifact(f"acme/nature/corpus:{corpus.version}").download(folder)

    local = await asyncio.to_thread(download, tmp_path / "copy")
    assert (local / "shards" / "2026" / "b.jsonl").read_bytes() == b'{"text": "b"}\n'
    assert (local / "weights.bin").read_bytes() == b"w" * 3000
    assert (local / "labels.txt").read_bytes() == b"cat\ndog\n"
    assert (local / "README.md").read_text() == "uploaded as usual"

    def verify(folder: Path) -> None:
        modelreg.Api(url).artifact(f"acme/nature/corpus:{corpus.version}").verify(folder)

    await asyncio.to_thread(verify, local)  # labels.txt's bytes were never hashed: its ETag and size are checked
    (local / "shards" / "a.jsonl").write_bytes(b'{"text": "z"}\n')  # hashed when logged: a changed copy is told
    with pytest.raises(InvalidInput, match="a.jsonl is missing or differs"):
        await asyncio.to_thread(verify, local)
    await asyncio.to_thread(download, local)
    (local / "weights.bin").write_bytes(b"x" * 3000)  # an http body hashed when logged, same size: told too
    with pytest.raises(InvalidInput, match="weights.bin is missing or differs"):
        await asyncio.to_thread(verify, local)

    await asyncio.to_thread(download, local)  # fetched again
    assert (local / "weights.bin").read_bytes() == b"w" * 3000

    (web / "labels.txt").write_bytes(b"cat\ndog\nbird\n")  # the source moved on since the version was logged
    for folder in (local, tmp_path / "later"):  # a copy made before cannot be told to be the version's any more
        with pytest.raises(InvalidInput, match="changed since it was logged"):
            await asyncio.to_thread(download, folder)


def test_an_s3_reference_is_recorded_by_its_uri_and_checking_it_needs_boto3(tmp_path: Path) -> None:
    artifact = modelreg.Artifact("lake", "dataset")
    (entry,) = artifact.add_reference("s3://datalake/2026/part-0.parquet", checksum=False)
    assert (entry.path, entry.size, entry.digest) == (
        "part-0.parquet",
        0,
        reference_digest("s3://datalake/2026/part-0.parquet"),
    )
    try:
        import boto3  # noqa: F401
    except ImportError:
        with pytest.raises(InvalidInput, match="pip install boto3"):
            artifact.add_reference("s3://datalake/2026/part-1.parquet")
    with pytest.raises(InvalidInput, match="file://, http://, https:// and s3://"):
        artifact.add_reference("ftp://example.org/data.csv")
