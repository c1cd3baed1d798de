"""The offline spool: one folder per run recorded without a server, read back by `modelreg sync`.

    modelreg-offline/offline-run-20261127T081500-3f2a9c1d/
        journal.jsonl      what the run did, one recorded command a line, in the order it did it
        blobs/<sha256>     the contents of every file it logged, copied when it logged them
        sync-state.json    how far `modelreg sync` got (written by the sync, never by the run)

A journal line is `{"kind": ..., "command_id": ..., "occurred_at": ..., "input": {...}}`, `input` being
the GraphQL input of that command as the online client would have sent it then. The command id and
the time travel with it to the server, which makes sending it twice harmless and keeps the time it
happened. Files are copied by content digest as they are logged, so editing or deleting a source file
afterwards changes nothing that was recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from uuid_utils.compat import uuid7

from modelreg.errors import InvalidInput, NotFound
from modelreg.run_changes import RUN_CHANGES
from modelreg.steady_files import read_steadily

DEFAULT_ROOT = "modelreg-offline"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
JOURNAL = "journal.jsonl"
BLOBS = "blobs"
SYNC_STATE = "sync-state.json"

KINDS = (
    "start_run",
    "log_metrics",
    "log_artifact",
    "use_artifact",
    "link_artifact",
    "finish_run",
    *RUN_CHANGES,
)


def spool_root(root: str | Path | None = None) -> Path:
    """Where offline runs are kept: `root`, else MODELREG_OFFLINE_DIR, else ./modelreg-offline."""
    return Path(root or os.environ.get("MODELREG_OFFLINE_DIR") or DEFAULT_ROOT)


@dataclass(frozen=True)
class Recorded:
    """One journal line."""

    kind: str
    command_id: UUID
    occurred_at: datetime
    input: dict[str, Any]

    def to_json(self) -> str:
        line = {
            "kind": self.kind,
            "command_id": str(self.command_id),
            "occurred_at": self.occurred_at.isoformat(),
            "input": self.input,
        }
        return json.dumps(line, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Recorded:
        raw = json.loads(line)
        if raw["kind"] not in KINDS:
            raise ValueError(f"unknown kind {raw['kind']!r}")
        return cls(raw["kind"], UUID(raw["command_id"]), datetime.fromisoformat(raw["occurred_at"]), raw["input"])


class Spool:
    """One offline run's folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # What entries() found damaged in the journal's middle and left out: "line 7: ...".
        self.damaged: list[str] = []
        self._appending = threading.Lock()  # the metrics' sender thread records beside the training loop

    @classmethod
    def create(cls, root: str | Path | None, run_id: str) -> Spool:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        folder = spool_root(root) / f"offline-run-{stamp}-{run_id}"
        (folder / BLOBS).mkdir(parents=True, exist_ok=False)
        return cls(folder)

    @property
    def journal_path(self) -> Path:
        return self.folder / JOURNAL

    def blob_path(self, digest: str) -> Path:
        """Where a file's bytes are kept; `digest` comes from the journal, which is a file anyone may edit: only a
        digest names a file, never a path that leads out of the spool (`sha256:../../../etc/passwd`)."""
        if not _DIGEST.fullmatch(digest):
            raise InvalidInput(f"{self.journal_path} names a file by {digest!r}, not by sha256:<64 hex digits>")
        return self.folder / BLOBS / digest.removeprefix("sha256:")

    def record(self, kind: str, input: dict[str, Any], command_id: UUID | None = None) -> Recorded:
        """Append one command; on disk (fsync) before the call returns, so a crash loses nothing recorded.
        `command_id`: one it was already sent under (an online start whose answer was lost)."""
        entry = Recorded(kind, command_id or uuid7(), datetime.now(UTC), input)
        line = (entry.to_json() + "\n").encode("utf-8")
        with self._appending:
            fd = os.open(self.journal_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                end = os.lseek(fd, 0, os.SEEK_END)
                # A line a killed process left unfinished must not swallow this one.
                if end and os.pread(fd, 1, end - 1) != b"\n":
                    line = b"\n" + line
                try:
                    written = 0
                    while written < len(line):
                        written += os.write(fd, line[written:])
                    os.fsync(fd)
                except OSError:
                    # A full disk wrote part of the line: cut back to the journal as it was, or the next record
                    # is appended to the torn part, a damaged line in the journal's middle.
                    os.ftruncate(fd, end)
                    raise
            finally:
                os.close(fd)
        return entry

    def keep_file(self, source: Path) -> tuple[int, str]:
        """Copy a file into the spool by its digest, hashing the bytes as they are copied, again if the file
        was saved meanwhile (client/steady_files.py). Returns (size, digest)."""
        return read_steadily(source, lambda _: self._copy_in(source))

    def _copy_in(self, source: Path) -> tuple[int, str]:
        hasher = hashlib.sha256()
        size = 0
        with (
            tempfile.NamedTemporaryFile(dir=self.folder / BLOBS, prefix=".part-", delete=False) as out,
            source.open("rb") as f,
        ):
            while chunk := f.read(1024 * 1024):
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
        digest = "sha256:" + hasher.hexdigest()
        kept = self.blob_path(digest)
        if kept.exists():
            os.unlink(out.name)
        else:
            os.replace(out.name, kept)
        return size, digest

    def entries(self) -> list[Recorded]:
        """The journal, in order. A last line cut short (the run died while writing it) was never recorded.
        A damaged line before the last (a journal written by a client before it cut back a failed write, an edit)
        gives the records it still holds whole; what it lost is said in `damaged`, and the rest is synced."""
        if not self.journal_path.is_file():
            raise NotFound(
                f"{self.folder} has no {JOURNAL}: is it an offline run folder (modelreg-offline/offline-run-...)?"
            )
        lines = self.journal_path.read_text(encoding="utf-8", errors="replace").split("\n")
        entries = []
        self.damaged = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entries.append(Recorded.from_json(line))
            except (ValueError, KeyError, TypeError) as exc:
                if number == len(lines):  # only a last line with no newline yet can be torn
                    warnings.warn(f"{self.journal_path}: ignoring an unfinished last line ({exc})", stacklevel=2)
                    break
                whole = _whole_records_in(line)
                entries.extend(whole)
                self.damaged.append(
                    f"line {number}: damaged on disk ({exc}); {len(whole)} whole record(s) in it synced, "
                    "the rest of it is lost"
                )
                warnings.warn(f"{self.journal_path} {self.damaged[-1]}", stacklevel=2)
        if not entries or entries[0].kind != "start_run":
            raise InvalidInput(f"{self.journal_path} does not begin with the run's start: it cannot be synced")
        return entries

    # What `modelreg sync` remembers between attempts. Losing it is harmless (the server recognises
    # commands it already has by their ids); keeping it spares re-sending them.
    def sync_state(self) -> dict[str, Any]:
        path = self.folder / SYNC_STATE
        if not path.is_file():
            return {"done": 0, "ids": {}}
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(state, dict) and isinstance(state.get("done"), int) and isinstance(state.get("ids"), dict):
                return state
        except ValueError:
            pass
        warnings.warn(f"{path} is unreadable: this sync starts from the run's first command", stacklevel=2)
        return {"done": 0, "ids": {}}

    def save_sync_state(self, state: dict[str, Any]) -> None:
        path = self.folder / SYNC_STATE
        # A name of its own: two syncs of one folder at once each rename a whole file into place.
        with tempfile.NamedTemporaryFile(
            "w", dir=self.folder, prefix=".sync-state-", suffix=".tmp", delete=False, encoding="utf-8"
        ) as out:
            out.write(json.dumps(state, sort_keys=True))
            out.flush()
            os.fsync(out.fileno())
        os.replace(out.name, path)


_RECORD_START = re.compile(r'\{"command_id":"')  # to_json sorts its keys: every line begins so


def _whole_records_in(line: str) -> list[Recorded]:
    """The records a damaged line still holds whole: a torn record followed by the next one on the same line."""
    starts = [m.start() for m in _RECORD_START.finditer(line)]
    whole = []
    for start, end in zip(starts, [*starts[1:], len(line)], strict=True):
        try:
            whole.append(Recorded.from_json(line[start:end]))
        except (ValueError, KeyError, TypeError):
            continue
    return whole


class SpoolBlobs:
    """The spool as the source of an artifact's files (`download()` of an artifact logged offline)."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool

    def download(self, digest: str, destination: Path, on_bytes: Callable[[int], object]) -> None:
        kept = self._spool.blob_path(digest)
        if not kept.is_file():
            raise NotFound(f"the offline run has no file {digest} in {self._spool.folder / BLOBS}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept, destination)
        on_bytes(kept.stat().st_size)


def offline_run_folders(paths: list[Path]) -> list[Path]:
    """Offline run folders named by `paths`: each is a run folder or a folder of them (oldest first)."""
    found: list[Path] = []
    for path in paths:
        if (path / JOURNAL).is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if (p / JOURNAL).is_file())
        else:
            raise NotFound(f"{path} is not an offline run folder nor a folder of them")
    return found
