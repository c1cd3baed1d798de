"""Uploads that go straight to object storage, with the URLs the server presigned; the API only plans
and verifies.

The server answers `POST /blobs/uploads {digest, size}` with what to do: `stored` (nothing), `api` (send
the bytes to PUT /blobs/<digest>, the folder store), `single` (one presigned PUT with the signed SHA-256
header: the store refuses other content; completed afterwards when the plan names an `upload`, a proof
of holding the file: services/infra/blob_holders.py), or `multipart` (a part size; the client then sends
each part's SHA-256 and gets a presigned URL per part still missing).

A multipart upload is resumable: its token and part digests are kept in the user's cache folder until it
completes, and the server lists the parts the store already has, so a new attempt (after a crash, a cut
connection, a new process) sends only the rest. Parts go in parallel.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from modelreg.errors import InvalidInput
from modelreg.in_parallel import each_in_parallel
from modelreg.steady_files import file_identity

PARALLEL_PARTS = 4
READ = 4 * 1024 * 1024


def resume_folder() -> Path:
    root = os.environ.get("MODELREG_UPLOAD_STATE") or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelreg" / "uploads"
    )
    return Path(root)


def part_digests(path: Path, part_size: int) -> list[str]:
    """The sha256 (hex) of each `part_size` slice of the file, the last one shorter."""
    count = max(1, -(-path.stat().st_size // part_size))
    digests = []
    with path.open("rb", buffering=0) as f:
        for _ in range(count):
            hasher, left = hashlib.sha256(), part_size
            while left and (chunk := f.read(min(READ, left))):
                hasher.update(chunk)
                left -= len(chunk)
            digests.append(hasher.hexdigest())
    return digests


def file_slice(path: Path, offset: int, length: int, on_bytes: Callable[[int], object]) -> Iterator[bytes]:
    with path.open("rb", buffering=0) as f:
        f.seek(offset)
        while length > 0 and (chunk := f.read(min(READ, length))):
            length -= len(chunk)
            yield chunk
            on_bytes(len(chunk))


class ResumeState:
    """What a multipart upload needs to go on after an interruption, in one small JSON file."""

    def __init__(self, digest: str, size: int) -> None:
        self.path = resume_folder() / f"{digest.removeprefix('sha256:')}-{size}.json"

    def load(self, part_size: int, file: list[int]) -> dict[str, Any] | None:
        """The state saved for this content, if it was made from this very file as it is now: its parts' digests
        were hashed after the whole file's, and a file saved again in between left parts of other bytes, which
        the store refused at every later attempt."""
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return state if state.get("part_size") == part_size and state.get("file") == file else None

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self.path)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


class DirectUpload:
    """One file to the store. `ask` posts to the API (with its key); `put` sends to a presigned URL."""

    def __init__(
        self,
        ask: Callable[[str, dict[str, Any]], dict[str, Any]],
        put: Callable[[str, dict[str, str], Path, int, int, Callable[[int], object]], None],
    ) -> None:
        self.ask = ask
        self.put = put

    def run(self, path: Path, digest: str, on_bytes: Callable[[int], object]) -> str:
        """Store the file; returns the method used ('api' means: the caller sends it to the API)."""
        size = path.stat().st_size
        plan = self.ask("/blobs/uploads", {"digest": digest, "size": size})
        if plan["method"] in ("stored", "api"):
            return plan["method"]
        if plan["method"] == "single":
            self.put(plan["url"], plan["headers"], path, 0, size, on_bytes)
            if plan.get("upload"):  # sent to prove the caller holds a file it is not told is stored
                self.ask("/blobs/uploads/complete", {"digest": digest, "size": size, "upload": plan["upload"]})
            return "single"
        return self._multipart(path, digest, size, int(plan["part_size"]), on_bytes)

    def _multipart(self, path: Path, digest: str, size: int, part_size: int, on_bytes: Callable[[int], object]) -> str:
        resume = ResumeState(digest, size)
        file = list(file_identity(path))
        state = resume.load(part_size, file) or {
            "part_size": part_size,
            "parts": part_digests(path, part_size),
            "file": file,
        }
        fields = {"digest": digest, "size": size, "part_size": part_size, "parts": state["parts"]}
        try:
            plan = self.ask("/blobs/uploads", {**fields, "upload": state.get("upload")})
        except InvalidInput:
            if state.get("upload") is None:
                raise
            plan = self.ask("/blobs/uploads", fields)  # the earlier upload expired: start a new one
        if plan.get("method") == "stored":
            resume.forget()
            return "stored"
        state["upload"] = plan["upload"]
        resume.save(state)
        already = size - sum(min(part_size, size - (p["number"] - 1) * part_size) for p in plan["parts"])
        on_bytes(already)  # parts the store has from an earlier attempt

        def send(part: dict[str, Any]) -> None:
            offset = (part["number"] - 1) * part_size
            self.put(part["url"], part["headers"], path, offset, min(part_size, size - offset), on_bytes)

        try:
            each_in_parallel(send, plan["parts"], PARALLEL_PARTS)
        except InvalidInput:
            resume.forget()  # the store refused a part's bytes: the next attempt hashes the parts again
            raise
        try:
            self.ask("/blobs/uploads/complete", {**fields, "upload": plan["upload"]})
        except InvalidInput:
            resume.forget()  # a refused upload is not resumed: the next attempt starts a new one
            raise
        resume.forget()
        return "multipart"


def presigned_put(
    http: httpx.Client, url: str, headers: dict[str, str], path: Path, offset: int, length: int, on_bytes: Any
) -> None:
    response = http.put(
        url,
        content=file_slice(path, offset, length, on_bytes),
        headers={**headers, "Content-Length": str(length)},
    )
    response.raise_for_status()
