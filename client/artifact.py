"""Artifacts on the client: files gathered for logging, and logged versions to use and download."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from tqdm import tqdm

from modelreg import references
from modelreg.errors import InvalidInput
from modelreg.transport import Transport

PARALLEL_FILES = 4
PROGRESS_FROM_BYTES = 10 * 1024 * 1024  # smaller transfers are over before a bar helps


# Bigger files are sent in one pass that hashes as it sends, unless the server may have them already.
ONE_PASS_FROM_BYTES = 16 * 1024 * 1024
HEAD_BYTES = 1024 * 1024  # the server indexes its blobs by size and the sha256 of this many first bytes


def head_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.sha256(f.read(HEAD_BYTES)).hexdigest()


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


@dataclass(frozen=True)
class ArtifactFile:
    path: str
    size: int
    digest: str
    ref: str | None = None  # a reference's URI: the bytes are there, not in the blob store

    def as_input(self) -> dict[str, Any]:
        """The GraphQL ArtifactFileInput."""
        entry: dict[str, Any] = {"path": self.path, "size": self.size, "digest": self.digest}
        if self.ref is not None:
            entry["ref"] = self.ref
        return entry


class Artifact:
    """Files to log as one version: `Artifact("nature-images", "dataset")`, then `add_file`/`add_dir`/
    `add_reference`; or `logged.new_draft()` to start from a logged version and change some files."""

    def __init__(
        self, name: str, type: str, description: str | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        self.name = name
        self.type = type
        self.description = description
        self.metadata = dict(metadata or {})
        self._files: dict[str, Path] = {}  # to hash and upload
        self._known: dict[str, ArtifactFile] = {}  # described already: references, and files of a draft's version
        self._staging: Path | None = None
        # Filled in once logged.
        self.id: str | None = None
        self.version: str | None = None
        self.uploaded_bytes = 0
        self._logged_manifest: list[ArtifactFile] | None = None

    def add_file(self, local_path: str | Path, name: str | None = None) -> None:
        path = Path(local_path)
        if not path.is_file():
            raise InvalidInput(f"{path} is not a file")
        self._add(name or path.name, path)

    def add_dir(self, local_path: str | Path, name: str | None = None) -> None:
        root = Path(local_path)
        if not root.is_dir():
            raise InvalidInput(f"{root} is not a folder")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root).as_posix()
            self._add(f"{name.rstrip('/')}/{relative}" if name else relative, path)

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
        """Write a file straight into the artifact: `with art.new_file("labels.json") as f: ...`."""
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="modelreg-artifact-"))
        path = self._staging / f"{len(self._files)}"
        with path.open(mode, encoding=None if "b" in mode else encoding) as f:
            yield f
        self._add(name, path)

    def add_reference(self, uri: str, name: str | None = None, checksum: bool = True) -> list[ArtifactFile]:
        """Record a file (or, for a file:// folder, each file under it) by its URI instead of uploading it:
        `file://`, `http(s)://` or `s3://`. `download()` fetches it from there. See modelreg.references for
        what the digest is when the content is not hashed (`checksum=False`, big http bodies, s3)."""
        added = [
            ArtifactFile(path, size, digest, ref)
            for path, size, digest, ref in references.describe(uri, name, checksum)
        ]
        for entry in added:
            self._check_free(entry.path)
        for entry in added:
            self._known[entry.path] = entry
        return added

    def remove(self, path: str) -> None:
        """Leave a file out (of a draft, typically)."""
        if self._files.pop(path, None) is None and self._known.pop(path, None) is None:
            raise InvalidInput(
                f"the artifact has no file {path!r}: its files are {sorted([*self._files, *self._known])}"
            )

    def _check_free(self, name: str) -> None:
        if name in self._files or name in self._known:
            raise InvalidInput(f"the artifact already has a file {name!r}: remove() it first to replace it")

    def _add(self, name: str, path: Path) -> None:
        self._check_free(name)
        self._files[name] = path

    def mark_logged(self, version_id: str, version: str | None, manifest: list[ArtifactFile]) -> None:
        self.id, self.version, self._logged_manifest = version_id, version, list(manifest)

    def new_draft(self) -> Artifact:
        """A new Artifact with this logged version's name, type, metadata and files (by digest: logging it
        uploads only files added since)."""
        if self._logged_manifest is None:
            raise InvalidInput("log the artifact before drafting its next version")
        return _draft(self.name, self.type, self.description, self.metadata, self._logged_manifest)

    def local_files(self) -> dict[str, Path]:
        """Each file's path in the artifact and where its bytes are on this machine."""
        return dict(self._files)

    def known_files(self) -> list[ArtifactFile]:
        """The files described already (references, a draft's files): nothing to hash or upload."""
        return list(self._known.values())

    def manifest(self) -> list[ArtifactFile]:
        """Each file's path, size and digest (local files hashed in parallel), sorted by path."""
        names = sorted(self._files)
        with ThreadPoolExecutor(PARALLEL_FILES) as pool:
            digests = list(pool.map(lambda n: file_digest(self._files[n]), names))
        hashed = [ArtifactFile(n, self._files[n].stat().st_size, d) for n, d in zip(names, digests, strict=True)]
        return sorted([*hashed, *self._known.values()], key=lambda f: f.path)

    def upload_files(self, transport: Transport) -> list[ArtifactFile]:
        """Send what the server lacks and return the manifest (sorted by path, with the files described
        already); `uploaded_bytes` says how much was sent.

        A local file is read once when the server lacks it, and once when it has it: small files are hashed
        and then asked about (HEAD); a big one is first looked up by its size and first MiB, then either
        hashed to confirm the server has it (an unchanged file: nothing is sent) or sent in one pass that
        hashes as it sends (new content)."""
        names = sorted(self._files)
        sizes = {n: self._files[n].stat().st_size for n in names}
        big = [n for n in names if sizes[n] >= ONE_PASS_FROM_BYTES]
        sent = [0]
        with tqdm(
            total=sum(sizes[n] for n in big), unit="B", unit_scale=True, desc=f"uploading {self.name}", disable=not big
        ) as bar:

            def count(n: int) -> None:
                sent[0] += n
                bar.update(n)

            def one(name: str) -> ArtifactFile:
                path, size = self._files[name], sizes[name]
                if size >= ONE_PASS_FROM_BYTES:
                    candidates = transport.blob_candidates(size, head_digest(path))
                    if candidates is not None:
                        if not candidates:
                            return ArtifactFile(name, size, transport.upload_hashing(path, count))
                        digest = file_digest(path)
                        if digest in candidates:
                            bar.update(size)
                            return ArtifactFile(name, size, digest)
                        transport.upload(path, digest, count)
                        return ArtifactFile(name, size, digest)
                digest = file_digest(path)
                if not transport.has_blob(digest):
                    transport.upload(path, digest, count)
                return ArtifactFile(name, size, digest)

            with ThreadPoolExecutor(PARALLEL_FILES) as pool:
                sent_files = list(pool.map(one, names))
        self.uploaded_bytes = sent[0]
        return sorted([*sent_files, *self._known.values()], key=lambda f: f.path)

    def upload(self, transport: Transport, manifest: list[ArtifactFile]) -> int:
        """Send the files the server does not have yet; returns the bytes sent."""
        by_digest = {f.digest: f for f in manifest if f.path in self._files}  # the others are not ours to send
        missing = [f for f in by_digest.values() if not transport.has_blob(f.digest)]
        total = sum(f.size for f in missing)
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=f"uploading {self.name}", disable=total < PROGRESS_FROM_BYTES
        ) as bar:
            with ThreadPoolExecutor(PARALLEL_FILES) as pool:
                list(pool.map(lambda f: transport.upload(self._files[f.path], f.digest, bar.update), missing))
        return total

    def cleanup(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


class BlobSource(Protocol):
    """Where a logged version's files come from: the server (Transport), or an offline run's spool."""

    def download(self, digest: str, destination: Path, on_bytes: Callable[[int], object]) -> None: ...


class LoggedArtifact:
    """A logged version, as `run.use_artifact("nature-images:latest")` returns it."""

    def __init__(self, blobs: BlobSource, fields: dict[str, Any]) -> None:
        self._blobs = blobs
        self.id: str = fields["id"]
        self.entity: str = fields["entity"]
        self.project: str = fields["project"]
        self.name: str = fields["name"]
        self.type: str = fields["type"]
        self.version: str = fields["version"]
        self.digest: str = fields["digest"]
        self.metadata: dict[str, Any] = fields["metadata"]
        self.aliases: list[str] = fields["aliases"]
        self.description: str | None = fields.get("description")
        self._files = [ArtifactFile(f["path"], int(f["size"]), f["digest"], f.get("ref")) for f in fields["files"]]

    def __repr__(self) -> str:
        return f"<LoggedArtifact {self.entity}/{self.project}/{self.name}:{self.version}>"

    def files(self) -> list[ArtifactFile]:
        return list(self._files)

    def new_draft(self) -> Artifact:
        """A new Artifact with this version's name, type, metadata and files, to change and log as the
        next version: `remove()` and `add_file()` what changes; the files kept are not uploaded again."""
        return _draft(self.name, self.type, self.description, self.metadata, self._files)

    def download(self, root: str | Path | None = None) -> Path:
        """Fetch every file under `root` (default ./artifacts/<name>-<version>), verified against the
        manifest; files already there with the right digest are not fetched again."""
        root = Path(root) if root is not None else Path("artifacts") / f"{self.name}-{self.version}"
        for f in self._files:  # the server refuses such paths; a client never trusts that alone
            if not (root / f.path).resolve().is_relative_to(root.resolve()):
                raise InvalidInput(f"artifact file {f.path!r} would land outside {root}")
        wanted = [f for f in self._files if not _already_there(root / f.path, f)]
        total = sum(f.size for f in wanted)
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=f"downloading {self.name}", disable=total < PROGRESS_FROM_BYTES
        ) as bar:
            with ThreadPoolExecutor(PARALLEL_FILES) as pool:
                list(pool.map(lambda f: self._fetch(f, root / f.path, bar.update), wanted))
        return root

    def _fetch(self, file: ArtifactFile, destination: Path, on_bytes: Callable[[int], object]) -> None:
        if file.ref is not None:
            references.fetch(file.ref, file.size, file.digest, destination, on_bytes)
        else:
            self._blobs.download(file.digest, destination, on_bytes)


def _draft(
    name: str, type: str, description: str | None, metadata: dict[str, Any], files: list[ArtifactFile]
) -> Artifact:
    draft = Artifact(name, type, description=description, metadata=copy.deepcopy(metadata))
    draft._known = {f.path: f for f in files}
    return draft


def _already_there(path: Path, expected: ArtifactFile) -> bool:
    return path.is_file() and path.stat().st_size == expected.size and file_digest(path) == expected.digest
