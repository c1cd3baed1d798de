"""The client's side of presigned uploads, against an in-memory stand-in for the API and the bucket: what it
sends where, and how an interrupted multipart upload goes on."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from modelreg.direct_upload import DirectUpload
from modelreg.errors import InvalidInput

PART = 10


class BucketBehindAnApi:
    """Answers /blobs/uploads like object_store_routes does, and keeps what the presigned PUTs send."""

    def __init__(self, single_put_max: int, fail_part: int | None = None) -> None:
        self.single_put_max = single_put_max
        self.fail_part = fail_part
        self.objects: dict[str, bytes] = {}
        self.parts: dict[int, bytes] = {}
        self.asked: list[dict[str, Any]] = []

    def ask(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        self.asked.append({"route": route, **body})
        digest, size = body["digest"], body["size"]
        if route == "/blobs/uploads/complete":
            joined = b"".join(self.parts[n] for n in sorted(self.parts))
            assert "sha256:" + hashlib.sha256(joined).hexdigest() == digest
            self.objects[digest] = joined
            return {"stored": True}
        if digest in self.objects:
            return {"method": "stored"}
        if size <= self.single_put_max:
            return {"method": "single", "url": f"single/{digest}", "headers": {}}
        if "parts" not in body:
            return {"method": "multipart", "part_size": PART}
        missing = [n for n in range(1, len(body["parts"]) + 1) if n not in self.parts]
        return {
            "method": "multipart",
            "upload": body.get("upload") or "upload-1",
            "parts": [{"number": n, "url": f"part/{n}", "headers": {}} for n in missing],
        }

    def put(self, url: str, headers: dict[str, str], path: Path, offset: int, length: int, on_bytes: Any) -> None:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(length)
        kind, _, name = url.partition("/")
        if kind == "single":
            self.objects[name] = data
        else:
            if int(name) == self.fail_part:
                self.fail_part = None  # fails once: the connection drops
                raise ConnectionError("connection lost")
            self.parts[int(name)] = data
        on_bytes(len(data))


@pytest.fixture(autouse=True)
def upload_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELREG_UPLOAD_STATE", str(tmp_path / "state"))
    return tmp_path / "state"


def a_file(tmp_path: Path, content: bytes) -> tuple[Path, str]:
    path = tmp_path / "weights.bin"
    path.write_bytes(content)
    return path, "sha256:" + hashlib.sha256(content).hexdigest()


def test_a_small_file_is_one_presigned_put_and_a_stored_one_is_not_sent(tmp_path: Path) -> None:
    bucket = BucketBehindAnApi(single_put_max=100)
    path, digest = a_file(tmp_path, b"small weights")
    upload = DirectUpload(bucket.ask, bucket.put)
    assert upload.run(path, digest, lambda n: None) == "single"
    assert bucket.objects[digest] == b"small weights"
    assert upload.run(path, digest, lambda n: None) == "stored"


def test_an_interrupted_multipart_upload_sends_only_the_missing_parts_next_time(
    tmp_path: Path, upload_state: Path
) -> None:
    content = bytes(range(45))  # 5 parts of 10 bytes, the last of 5
    bucket = BucketBehindAnApi(single_put_max=20, fail_part=4)
    path, digest = a_file(tmp_path, content)
    upload = DirectUpload(bucket.ask, bucket.put)

    with pytest.raises(ConnectionError):
        upload.run(path, digest, lambda n: None)
    assert 4 not in bucket.parts and list(upload_state.iterdir())  # the upload's state is kept

    sent: list[int] = []
    assert upload.run(path, digest, sent.append) == "multipart"
    resumed = [a for a in bucket.asked if a.get("upload") == "upload-1" and a["route"] == "/blobs/uploads"]
    assert resumed, "the second attempt named the first upload"
    assert bucket.objects[digest] == content
    assert sum(sent) == len(content)  # what was there already is counted, what was missing is sent
    assert not list(upload_state.iterdir())  # completed: the state is gone
    part_digests = resumed[0]["parts"]
    assert part_digests == [hashlib.sha256(content[i : i + PART]).hexdigest() for i in range(0, 45, PART)]


def test_an_upload_whose_completion_is_refused_starts_afresh_next_time(tmp_path: Path, upload_state: Path) -> None:
    content = bytes(range(45))
    bucket = BucketBehindAnApi(single_put_max=20)
    path, digest = a_file(tmp_path, content)

    def ask(route: str, body: dict[str, Any]) -> dict[str, Any]:
        if route == "/blobs/uploads/complete" and body["upload"] == "upload-1":
            raise InvalidInput("the upload has 6 part(s) of 55 bytes, not all of the 45: send the missing parts")
        return bucket.ask(route, body)

    with pytest.raises(InvalidInput):
        DirectUpload(ask, bucket.put).run(path, digest, lambda n: None)
    assert not list(upload_state.iterdir())  # not kept to be resumed, and refused again, for good

    bucket.asked.clear()
    assert DirectUpload(bucket.ask, bucket.put).run(path, digest, lambda n: None) == "multipart"
    assert bucket.asked[0].get("upload") is None  # a new upload, not the refused one
    assert bucket.objects[digest] == content


def test_a_folder_store_server_is_answered_by_sending_to_the_api(tmp_path: Path) -> None:
    path, digest = a_file(tmp_path, b"weights")
    upload = DirectUpload(lambda route, body: {"method": "api"}, lambda *a: pytest.fail("nothing goes to a bucket"))
    assert upload.run(path, digest, lambda n: None) == "api"


def test_a_resume_state_from_another_save_of_the_file_is_not_trusted(tmp_path: Path, upload_state: Path) -> None:
    # Cut after its parts were hashed from a save the training overwrote since (same size, same whole digest
    # hashed earlier): the saved parts' digests name other bytes, and the store refused the real ones for ever.
    content = bytes(range(45))
    bucket = BucketBehindAnApi(single_put_max=20, fail_part=4)
    path, digest = a_file(tmp_path, bytes(reversed(content)))
    with pytest.raises(ConnectionError):
        DirectUpload(bucket.ask, bucket.put).run(path, digest, lambda n: None)
    assert list(upload_state.iterdir())
    path.write_bytes(content)
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    (state,) = upload_state.iterdir()
    state.rename(state.with_name(f"{digest.removeprefix('sha256:')}-45.json"))  # as if filed under this content

    bucket = BucketBehindAnApi(single_put_max=20)
    assert DirectUpload(bucket.ask, bucket.put).run(path, digest, lambda n: None) == "multipart"
    asked_with_parts = [a for a in bucket.asked if "parts" in a]
    assert asked_with_parts[0]["parts"] == [
        hashlib.sha256(content[i : i + PART]).hexdigest() for i in range(0, 45, PART)
    ]


def test_a_part_the_store_refuses_leaves_no_state_to_be_refused_again(tmp_path: Path, upload_state: Path) -> None:
    content = bytes(range(45))
    bucket = BucketBehindAnApi(single_put_max=20)
    path, digest = a_file(tmp_path, content)

    def refusing_put(url: str, *args: Any) -> None:
        raise InvalidInput(f"{path}: the object store refused the bytes, whose SHA-256 is not the one announced")

    with pytest.raises(InvalidInput):
        DirectUpload(bucket.ask, refusing_put).run(path, digest, lambda n: None)
    assert not list(upload_state.iterdir())
