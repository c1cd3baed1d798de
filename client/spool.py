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

    def record(self, kind: str, input: dict[str, Any]) -> Recorded:
        """Append one command; on disk (fsync) before the call returns, so a crash loses nothing recorded."""
        entry = Recorded(kind, uuid7(), datetime.now(UTC), input)
        with self.journal_path.open("a", encoding="utf-8") as journal:
            journal.write(entry.to_json() + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        return entry

    def keep_file(self, source: Path) -> tuple[int, str]:
        """Copy a file into the spool by its digest, hashing the bytes as they are copied (so the digest
        is the one of what was kept, even if the source changes meanwhile). Returns (size, digest)."""
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
        """The journal, in order. A last line cut short (the run died while writing it) was never recorded."""
        if not self.journal_path.is_file():
            raise NotFound(
                f"{self.folder} has no {JOURNAL}: is it an offline run folder (modelreg-offline/offline-run-...)?"
            )
        lines = self.journal_path.read_text(encoding="utf-8").split("\n")
        entries = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entries.append(Recorded.from_json(line))
            except (ValueError, KeyError) as exc:
                if number == len(lines):  # only a last line with no newline yet can be torn
                    warnings.warn(f"{self.journal_path}: ignoring an unfinished last line ({exc})", stacklevel=2)
                    break
                raise InvalidInput(
                    f"{self.journal_path} line {number} is damaged ({exc}): the run cannot be synced as it is"
                ) from None
        if not entries or entries[0].kind != "start_run":
            raise InvalidInput(f"{self.journal_path} does not begin with the run's start: it cannot be synced")
        return entries

    # What `modelreg sync` remembers between attempts. Losing it is harmless (the server recognises
    # commands it already has by their ids); keeping it spares re-sending them.
    def sync_state(self) -> dict[str, Any]:
        path = self.folder / SYNC_STATE
        if not path.is_file():
            return {"done": 0, "ids": {}}
        return json.loads(path.read_text(encoding="utf-8"))

    def save_sync_state(self, state: dict[str, Any]) -> None:
        path = self.folder / SYNC_STATE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
        temporary.replace(path)


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
