"""Artifacts on the client: files gathered for logging, and logged versions to use and download."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

from tqdm import tqdm

from modelreg import references
from modelreg.errors import NAME_PATTERN, FileNotInArtifact, InvalidInput, not_a_name
from modelreg.file_paths import file_path_problem
from modelreg.ignored import Inert, ignore
from modelreg.in_parallel import each_in_parallel
from modelreg.local_folder import LocalFolder
from modelreg.local_names import refuse_what_cannot_be_written
from modelreg.run_values import plain, sendable
from modelreg.steady_files import read_steadily
from modelreg.transport import Transport, with_command_id

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


class _Entry(Protocol):
    @property
    def path(self) -> str: ...


Entry = TypeVar("Entry", bound=_Entry)


class ArtifactManifest(list[Entry]):
    """An artifact's files as a list, with W&B's `manifest.entries` (by path); calling it gives the list, as
    `manifest()` did in earlier modelreg versions."""

    @property
    def entries(self) -> dict[str, Entry]:
        return {entry.path: entry for entry in self}

    def __call__(self) -> ArtifactManifest[Entry]:
        return self


class Artifact:
    """Files to log as one version: `Artifact("nature-images", "dataset")`, then `add_file`/`add_dir`/
    `add_reference`; or `logged.new_draft()` to start from a logged version and change some files."""

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        for option in options:  # incremental, use_as, storage_region
            if option == "incremental":  # W&B's own doc of it says to use new_draft() instead
                ignore(
                    "Artifact(incremental=...)", "draft the next version from the last: api.artifact(...).new_draft()"
                )
            else:
                ignore(f"Artifact({option}=...)")
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):  # refused at log time, files uploaded
            raise InvalidInput(f"Artifact name {not_a_name(name)}")
        self.name = name
        self.type = type
        self.description = description
        self.metadata = dict(metadata or {})
        self._files: dict[str, Path] = {}  # to hash and upload
        self._known: dict[str, ArtifactFile] = {}  # described already: references, and files of a draft's version
        self._staging: Path | None = None
        self._staged_count = 0
        self.aliases: list[str] = []  # W&B's: set before logging, they are logged with it
        # Filled in once logged.
        self.id: str | None = None
        self.version: str | None = None
        self.uploaded_bytes = 0
        self._logged_manifest: list[ArtifactFile] | None = None
        self.logged: LoggedArtifact | None = None  # the logged version, as the server answered

    def add(self, obj: Any, name: str, overwrite: bool = False) -> None:
        """W&B's `artifact.add(wandb.Table(...), "predictions")`: media are not stored here, so the artifact is
        logged without it (one warning), and the script runs on."""
        if not isinstance(obj, Inert):
            raise InvalidInput(
                f"artifact.add takes a W&B media object (Table, Image...); for {type(obj).__name__} use add_file"
            )
        ignore(f"artifact.add({obj._name}, ...)", "W&B media are not stored: the artifact is logged without it")

    def add_file(
        self,
        local_path: str | Path,
        name: str | None = None,
        *,
        overwrite: bool = False,
        policy: str = "mutable",
        **options: Any,
    ) -> None:
        """`overwrite=True` (W&B's): a file already at `name` is replaced instead of refused. W&B's `policy`:
        "mutable" (the default) copies the file now, so what is logged is the file as it was when added, even
        if it is changed or deleted before `log_artifact` (a file in a temporary folder, a checkpoint saved
        again); "immutable" promises it will not change, and saves the copy (for big files)."""
        for option in options:  # is_tmp, skip_cache
            ignore(f"add_file({option}=...)")
        copies = _copies(policy, "add_file")
        path = Path(local_path)
        if not path.is_file():
            raise InvalidInput(f"{path} is not a file")
        if overwrite:
            self._files.pop(name or path.name, None)
            self._known.pop(name or path.name, None)
        self._check_free(name or path.name)
        self._add(name or path.name, self._copy(path) if copies else path)

    def add_dir(
        self, local_path: str | Path, name: str | None = None, *, policy: str = "mutable", **options: Any
    ) -> None:
        """Every file under the folder, named by its path in it (under `name/`); `policy` as for `add_file`."""
        for option in options:  # skip_cache, merge
            ignore(f"add_dir({option}=...)")
        copies = _copies(policy, "add_dir")
        root = Path(local_path)
        if not root.is_dir():
            raise InvalidInput(f"{root} is not a folder")
        prefix = f"{name.rstrip('/')}/" if name else ""
        found = {prefix + path.relative_to(root).as_posix(): path for path in sorted(_files_under(root))}
        for added in found:
            self._check_free(added)
        for added, path in found.items():
            self._add(added, self._copy(path) if copies else path)

    def add_snapshot(self, local_path: str | Path, name: str | None = None) -> None:
        """The file as it is now, copied up to the size it has now: what `run.save` logs of a file the script may
        still be writing (a log a line a millisecond), which is never read twice alike and would be refused as a
        file that changes while it is logged. An appended file gives its lines so far."""
        path = Path(local_path)
        self._check_free(name or path.name)
        copied = self._staged()
        left = path.stat().st_size
        with path.open("rb") as source, copied.open("wb") as out:
            while left > 0 and (chunk := source.read(min(1024 * 1024, left))):
                out.write(chunk)
                left -= len(chunk)
        self._add(name or path.name, copied)

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
        """Write a file straight into the artifact: `with art.new_file("labels.json") as f: ...`."""
        self._check_free(name)
        path = self._staged()
        with path.open(mode, encoding=None if "b" in mode else encoding) as f:
            yield f
        self._add(name, path)

    def _staged(self) -> Path:
        """A new file's place in this artifact's own folder (staging_folder()), removed once it is logged (or
        garbage)."""
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="artifact-", dir=staging_folder()))
            weakref.finalize(self, shutil.rmtree, self._staging, True)
        self._staged_count += 1
        return self._staging / str(self._staged_count)

    def _copy(self, path: Path) -> Path:
        copied = self._staged()
        read_steadily(path, lambda _: shutil.copyfile(path, copied))  # a copy of one save, not of two
        return copied

    def add_reference(
        self, uri: str, name: str | None = None, checksum: bool = True, max_objects: int | None = None
    ) -> list[ArtifactFile]:
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
        if (problem := file_path_problem(name)) is not None:
            raise InvalidInput(problem)
        if name in self._files or name in self._known:
            raise InvalidInput(
                f"the artifact already has a file {name!r}: add it with overwrite=True, or remove() it first, to "
                "replace it"
            )

    def _add(self, name: str, path: Path) -> None:
        self._check_free(name)
        self._files[name] = path

    def mark_logged(
        self,
        version_id: str,
        version: str | None,
        manifest: list[ArtifactFile],
        logged: LoggedArtifact | None = None,
    ) -> None:
        self.id, self.version, self._logged_manifest = version_id, version, list(manifest)
        self.logged = logged
        if logged is not None:
            self.aliases = list(logged.aliases)

    def __repr__(self) -> str:
        return f"<Artifact {self.name}:{self.version or 'not logged'}>"

    # W&B's Artifact is one object before and after logging; here a logged one answers through `logged`.

    def _logged_version(self, doing: str) -> LoggedArtifact:
        if self.logged is None:
            raise InvalidInput(f"{doing}: log the artifact first (run.log_artifact), then {doing}")
        return self.logged

    def wait(self, timeout: float | None = None) -> Artifact:
        """Logging returns once the version is recorded: nothing to wait for."""
        self._logged_version("wait()")
        return self

    def is_draft(self) -> bool:
        return self.logged is None

    @property
    def digest(self) -> str:
        return self._logged_version("digest").digest

    @property
    def size(self) -> int:
        if self.logged is not None:
            return self.logged.size
        return sum(p.stat().st_size for p in self._files.values()) + sum(f.size for f in self._known.values())

    @property
    def created_at(self) -> str | None:
        return self._logged_version("created_at").created_at

    @property
    def source_project(self) -> str:
        return self._logged_version("source_project").project

    @property
    def qualified_name(self) -> str:
        return self._logged_version("qualified_name").qualified_name

    @property
    def source_name(self) -> str:
        return self._logged_version("source_name").source_name

    def files(self, names: list[str] | None = None, per_page: int = 50) -> list[ArtifactEntry]:
        return self._logged_version("files()").files(names)

    def get_entry(self, name: str) -> ArtifactEntry:
        return self._logged_version("get_entry()").get_entry(name)

    def get_path(self, name: str) -> ArtifactEntry:
        return self.get_entry(name)

    def get(self, name: str) -> Any:
        return self._logged_version("get()").get(name)

    def download(self, root: str | Path | None = None, **options: Any) -> LocalFolder:
        return self._logged_version("download()").download(root, **options)

    def checkout(self, root: str | Path | None = None) -> LocalFolder:
        return self._logged_version("checkout()").checkout(root)

    def file(self, root: str | Path | None = None) -> str:
        return self._logged_version("file()").file(root)

    def verify(self, root: str | Path | None = None) -> None:
        self._logged_version("verify()").verify(root)

    def save(self, project: str | None = None, settings: Any = None) -> None:
        """Logged: record changes to description, metadata and aliases. Not logged: log it with the current
        run (W&B's behaviour inside a run)."""
        if self.logged is None:
            from modelreg import session

            current = session.current_run()
            if current is None:
                raise InvalidInput(
                    "save() of an artifact that was never logged needs a run: call modelreg.init() first"
                )
            current.log_artifact(self)
            return
        self.logged.description, self.logged.metadata, self.logged.aliases = (
            self.description,
            self.metadata,
            self.aliases,
        )
        self.logged.save()
        self.aliases = list(self.logged.aliases)

    def delete(self, delete_aliases: bool = False) -> None:
        self._logged_version("delete()").delete(delete_aliases=delete_aliases)

    @property
    def is_link(self) -> bool:
        """An artifact a run logs is the logged version, never a registered model's (W&B's `is_link`)."""
        return False

    def unlink(self) -> None:
        self._logged_version("unlink()").unlink()

    def logged_by(self) -> Any:
        return self._logged_version("logged_by()").logged_by()

    def used_by(self) -> list[Any]:
        return self._logged_version("used_by()").used_by()

    def link(self, target_path: str, aliases: list[str] | None = None) -> str | None:
        return self._logged_version("link()").link(target_path, aliases)

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

    @property
    def manifest(self) -> ArtifactManifest[ArtifactFile]:
        """Each file's path, size and digest (local files hashed in parallel), sorted by path: W&B's
        `artifact.manifest.entries` by path, or a list (`manifest()`, as earlier modelreg versions called it)."""
        if self.logged is not None and self._logged_manifest is not None:  # its local copies may be gone
            return ArtifactManifest(self._logged_manifest)
        names = sorted(self._files)
        digests = each_in_parallel(lambda n: file_digest(self._files[n]), names, PARALLEL_FILES)
        hashed = [ArtifactFile(n, self._files[n].stat().st_size, d) for n, d in zip(names, digests, strict=True)]
        return ArtifactManifest(sorted([*hashed, *self._known.values()], key=lambda f: f.path))

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
                path = self._files[name]
                return read_steadily(path, lambda size: one_of_size(name, path, size))

            def one_of_size(name: str, path: Path, size: int) -> ArtifactFile:
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

            sent_files = each_in_parallel(one, names, PARALLEL_FILES)
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
            each_in_parallel(
                lambda f: transport.upload(self._files[f.path], f.digest, bar.update), missing, PARALLEL_FILES
            )
        return total

    def cleanup(self) -> None:
        """Once logged: the copies go; the files they were are described by the logged manifest from then on,
        so logging the same artifact again uploads nothing and reads no copy."""
        if self._staging is None:
            return
        logged = {entry.path: entry for entry in self._logged_manifest or []}
        for name, path in list(self._files.items()):
            if path.is_relative_to(self._staging) and name in logged:
                self._known[name] = logged[name]
                del self._files[name]
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging = None


STALE_STAGING_S = 7 * 24 * 3600


def staging_folder() -> Path:
    """Where `add_file` copies files and `new_file` writes them: MODELREG_STAGING_DIR, else the user's cache
    (as W&B's staging is; a container's /tmp is often small, or memory). Folders a killed process left there
    a week ago or more are removed."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelreg" / "staging"
    folder = Path(os.environ.get("MODELREG_STAGING_DIR") or cache)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a home that cannot be written to: a folder of ours in /tmp (the sweep below is ours alone)
        folder = Path(tempfile.gettempdir()) / "modelreg-staging"
        folder.mkdir(exist_ok=True)
    stale = time.time() - STALE_STAGING_S
    for left in folder.glob("artifact-*"):
        with contextlib.suppress(OSError):
            if left.is_dir() and left.stat().st_mtime < stale:
                shutil.rmtree(left, ignore_errors=True)
    return folder


def _copies(policy: str, call: str) -> bool:
    if policy not in ("mutable", "immutable"):
        raise InvalidInput(f'{call}(policy={policy!r}): give "mutable" (copy the file now) or "immutable"')
    return policy == "mutable"


class BlobSource(Protocol):
    """Where a logged version's files come from: the server (Transport), or an offline run's spool."""

    def download(self, digest: str, destination: Path, on_bytes: Callable[[int], object]) -> None: ...


class ArtifactEntry:
    """One file of a logged version (W&B's ArtifactManifestEntry): `name`, `size`, `digest`, `url`, `ref`,
    and `download(root)`."""

    def __init__(self, artifact: LoggedArtifact, file: ArtifactFile) -> None:
        self._artifact = artifact
        self.file = file
        self.path = self.name = file.path
        self.size, self.digest, self.ref = file.size, file.digest, file.ref

    @property
    def url(self) -> str:
        """Where its bytes are: the reference's URI, else the server's blob URL (needs the API key to read)."""
        return self.ref or f"{self._artifact._transport.url}/blobs/{self.digest}"

    def download(self, root: str | Path | None = None, replace: bool = False, exist_ok: bool = False) -> str:
        """Fetch this file alone under `root` (default: the artifact's download folder); returns its path. A file
        already there is kept when its digest matches and replaced when not, whatever W&B's `replace` and
        `exist_ok` (accepted, for run files' `download(root, replace=True)`) say."""
        folder = Path(root) if root is not None else self._artifact.default_root()
        destination = folder / self.path
        if not destination.resolve().is_relative_to(folder.resolve()):
            raise InvalidInput(f"artifact file {self.path!r} would land outside {folder}")
        refuse_what_cannot_be_written(self._artifact.qualified_name, [self.path], folder)
        if not _already_there(destination, self.file):
            self._artifact._fetch(self.file, destination, lambda n: None)
        return str(destination)

    def __repr__(self) -> str:
        return f"<ArtifactEntry {self.path} {self.size} bytes>"


_ADD_ALIAS = "mutation($i: AddAliasInput!) { addAlias(input: $i) { version } }"
_REMOVE_ALIAS = "mutation($i: RemoveAliasInput!) { removeAlias(input: $i) { version } }"


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
        # W&B lists `latest` among the newest version's aliases (the registered model's newest, read through a
        # registry path); it is computed, never saved.
        self._latest = bool(fields.get("latest"))
        self.aliases: list[str] = [*fields["aliases"], *(["latest"] if self._latest else [])]
        self.description: str | None = fields.get("description")
        self.tags: list[str] = list(fields.get("tags") or [])  # the registry's tags of the version (read only)
        self.created_at: str | None = fields.get("createdAt")
        self._files = [ArtifactFile(f["path"], int(f["size"]), f["digest"], f.get("ref")) for f in fields["files"]]
        self._source = (fields["name"], fields["version"])
        # Read through a registry path (`model-registry/m:production`): as in W&B's Registry, its name, version
        # and aliases are the registered model's, and the aliases it saves go there; its files, metadata and
        # description are the logged version's, and edits to those go to it (`qualified_name`).
        self.registered_model: str | None = None
        if registry := fields.get("registry"):
            self.registered_model = registry["model"]
            self.name, self.version, self._latest = registry["model"], registry["version"], registry["latest"]
            self.aliases = [*registry["aliases"], *(["latest"] if self._latest else [])]
        self._saved = self._state()

    def __repr__(self) -> str:
        if self.registered_model is not None:
            return f"<LoggedArtifact model-registry/{self.name}:{self.version} ({self.qualified_name})>"
        return f"<LoggedArtifact {self.entity}/{self.project}/{self.name}:{self.version}>"

    @property
    def _transport(self) -> Transport:
        """The server this version was read from: edits, deletes, links and lineage ask it."""
        if not isinstance(self._blobs, Transport):
            raise InvalidInput(f"{self!r} is known only to an offline run: sync the run first (`modelreg sync`)")
        return self._blobs

    @property
    def url(self) -> str | None:
        """The version's page in the web UI (None for a version an offline run has not synced)."""
        return f"{self._blobs.url}/#/artifacts/{self.id}" if isinstance(self._blobs, Transport) else None

    @property
    def state(self) -> str:
        """W&B's: a version read here is always committed (a deleted one is not read)."""
        return "COMMITTED"

    @property
    def updated_at(self) -> str | None:
        return self.created_at

    @property
    def size(self) -> int:
        return sum(f.size for f in self._files)

    @property
    def source_project(self) -> str:
        return self.project

    @property
    def source_entity(self) -> str:
        return self.entity

    @property
    def source_name(self) -> str:
        """`name:v3` of the logged version (W&B's `name` is this; here `name` is the collection's name alone)."""
        return "{}:{}".format(*self._source)

    @property
    def qualified_name(self) -> str:
        """entity/project/name:v3 of the logged version, also when read through a registry path."""
        return f"{self.entity}/{self.project}/{self.source_name}"

    @property
    def ref(self) -> str:
        return self.qualified_name

    def wait(self, timeout: float | None = None) -> LoggedArtifact:
        return self

    def is_draft(self) -> bool:
        return False

    def files(self, names: list[str] | None = None, per_page: int = 50) -> list[ArtifactEntry]:
        """Its files (W&B's `files(names=)`: only those named, when given), sorted by path."""
        wanted = None if names is None else set(names)
        return [ArtifactEntry(self, f) for f in self._files if wanted is None or f.path in wanted]

    def get_entry(self, name: str) -> ArtifactEntry:
        for f in self._files:
            if f.path == name:
                return ArtifactEntry(self, f)
        raise FileNotInArtifact(
            f"{self.qualified_name} has no file {name!r}: its files are {[f.path for f in self._files][:20]}"
        )

    def get_path(self, name: str) -> ArtifactEntry:
        return self.get_entry(name)

    def get(self, name: str) -> Any:
        """A JSON file's content (W&B returns media objects; here only JSON files are read back)."""
        for candidate in (name, f"{name}.json"):
            if any(f.path == candidate for f in self._files):
                path = Path(self.get_entry(candidate).download())
                if candidate.endswith(".json"):
                    return json.loads(path.read_text())
                return path.read_bytes()
        return None

    def default_root(self) -> Path:
        return Path("artifacts") / "{}-{}".format(*self._source)

    def checkout(self, root: str | Path | None = None) -> LocalFolder:
        """Make `root` hold exactly this version's files: download them and delete anything else there."""
        folder = Path(root) if root is not None else self.default_root()
        self.download(folder)
        keep = {(folder / f.path).resolve() for f in self._files}
        for path in sorted(folder.rglob("*"), reverse=True):
            if path.is_file() and path.resolve() not in keep:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return LocalFolder(folder)

    def verify(self, root: str | Path | None = None) -> None:
        """Check `root` holds this version's files, byte for byte (InvalidInput naming the first that differs)."""
        folder = Path(root) if root is not None else self.default_root()
        expected = {f.path: f for f in self._files}
        present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        extra = sorted(present - set(expected))
        if extra:
            raise InvalidInput(f"{folder} has a file {extra[0]!r} that {self.qualified_name} does not")
        for path, f in expected.items():
            if not _already_there(folder / path, f):
                raise InvalidInput(f"{folder / path} is missing or differs from {self.qualified_name}'s {path!r}")

    def _state(self) -> tuple[str | None, dict[str, Any], list[str]]:
        return self.description, copy.deepcopy(self.metadata), list(self.aliases)

    def save(self) -> None:
        """Record what changed in `description`, `metadata` and `aliases` (append/remove) as one event."""
        from modelreg.run import VERSION_FIELDS, settable_aliases

        description, metadata, saved_aliases = self._saved
        aliases, wanted = settable_aliases(saved_aliases), settable_aliases(self.aliases)
        # `latest` and `vN` added or removed: the registry keeps those itself.
        kept_by_the_registry = sorted((set(self.aliases) ^ set(saved_aliases)) - set(wanted) - set(aliases))
        if kept_by_the_registry:
            warnings.warn(
                f"modelreg: {self!r}.save() leaves {', '.join(kept_by_the_registry)} as it was: `latest` (the newest "
                "version) and `vN` (the version's number) are kept by the registry itself, never set or removed; "
                'give the version an alias of your own (`aliases.append("best")`) to name it',
                stacklevel=2,
            )
        added, removed = [a for a in wanted if a not in aliases], [a for a in aliases if a not in wanted]
        edit: dict[str, Any] = {"ref": self.qualified_name}
        if self.registered_model is None:
            edit |= {"aliasesAdded": added, "aliasesRemoved": removed}
        if self.description != description:
            edit["description"] = self.description or ""
        if plain(self.metadata) != plain(metadata):  # numpy arrays compare element-wise, not as one bool
            edit["metadata"] = sendable(plain(self.metadata))
        if len(edit) > 1:
            query = (
                f"mutation($i: EditArtifactVersionInput!) {{ editArtifactVersion(input: $i) {{ {VERSION_FIELDS} }} }}"
            )
            saved = self._transport.graphql(query, {"i": edit})["editArtifactVersion"]
            self.description, self.metadata = saved["description"], saved["metadata"]
            if self.registered_model is None:
                self.aliases = [*saved["aliases"], *(["latest"] if self._latest else [])]
        elif self.registered_model is None:  # nothing to send: what it holds is what it held
            self.aliases = [*wanted, *(["latest"] if self._latest else [])]
        if self.registered_model is not None:  # the registered model's aliases: moved there, one by one
            model = self.registered_model
            # With a command id each: sent again after a lost answer, a removal does not fail on the alias it took
            # away, and a move does not take back an alias moved on since.
            for alias in removed:
                self._transport.graphql(
                    _REMOVE_ALIAS, {"i": with_command_id({"registeredModel": model, "alias": alias})}
                )
            for alias in added:
                move = {"registeredModel": model, "artifactVersionId": self.id, "alias": alias}
                self._transport.graphql(_ADD_ALIAS, {"i": with_command_id(move)})
            self.aliases = [*wanted, *(["latest"] if self._latest else [])]
        self._saved = self._state()

    def delete(self, delete_aliases: bool = False) -> None:
        """A soft delete: the version leaves every list and ref; its number is never given again; its files stay
        in the blob store but download only through other versions that list them. Refused while it holds
        aliases, unless `delete_aliases`, and while it is linked to a registered model. A version read through a
        registry path (`is_link`) is unlinked instead, as W&B does: the logged version stays."""
        if self.is_link:
            warnings.warn(
                f"modelreg: {self!r} is read through the registry: delete() unlinks it from {self.registered_model!r} "
                f"(as W&B's does) and {self.qualified_name} stays; delete that with "
                f'modelreg.Api().artifact("{self.qualified_name}").delete()',
                stacklevel=2,
            )
            self.unlink()
            return
        query = "mutation($i: DeleteArtifactVersionInput!) { deleteArtifactVersion(input: $i) { deletedAt } }"
        self._transport.graphql(query, {"i": {"ref": self.qualified_name, "deleteAliases": delete_aliases}})
        self.aliases = []

    @property
    def is_link(self) -> bool:
        """W&B's: whether this is a registered model's version (read through a registry path) rather than the
        logged version itself (`qualified_name`)."""
        return self.registered_model is not None

    def unlink(self) -> None:
        """W&B's: take this version out of the registered model it was read through (`registry.version_unlinked`:
        its aliases there go, its number is never given again); the logged version stays. A version not read
        through a registry path is refused, as in W&B: read it as `model-registry/<model>:vN` to unlink it."""
        if self.registered_model is None:
            raise InvalidInput(
                f"{self.qualified_name} is not a linked artifact and cannot be unlinked (read it through the "
                'registry, `modelreg.Api().artifact("model-registry/<model>:vN")`, to unlink it there); to delete '
                "it, use delete()"
            )
        mutation = "mutation($i: UnlinkArtifactVersionInput!) { unlinkArtifactVersion(input: $i) { name } }"
        self._transport.graphql(
            mutation, {"i": {"registeredModel": self.registered_model, "artifactVersionId": self.id}}
        )
        self.aliases = []

    def link(self, target_path: str, aliases: list[str] | None = None) -> str | None:
        """Link this version to a registered model (as run.link_artifact); returns the model version."""
        from modelreg.artifact_paths import registered_model_name
        from modelreg.run import LINK, settable_aliases

        link = {
            "registeredModel": registered_model_name(target_path),
            "artifactVersionId": self.id,
            "aliases": settable_aliases(aliases),
        }
        return self._transport.graphql(LINK, {"i": with_command_id(link)})["linkArtifactVersion"]["version"]

    def logged_by(self) -> Any:
        """The run that logged it (a modelreg.public_run.PublicRun), or None."""
        runs = self._neighbours("UPSTREAM")
        return runs[0] if runs else None

    def used_by(self) -> list[Any]:
        return self._neighbours("DOWNSTREAM")

    def _neighbours(self, direction: str) -> list[Any]:
        from modelreg.public_run import RUN_FIELDS, PublicRun

        query = f"""query($ref: String!, $direction: LineageDirection!) {{
          lineage(ref: $ref, direction: $direction, depth: 1, fanOut: 1000) {{
            nodes {{ depth run {{ {RUN_FIELDS} }} }}
          }}
        }}"""
        lineage = self._transport.graphql(query, {"ref": self.id, "direction": direction})["lineage"]
        return [PublicRun(self._transport, n["run"]) for n in lineage["nodes"] if n["depth"] == 1 and n["run"]]

    def new_draft(self) -> Artifact:
        """A new Artifact with this version's name, type, metadata and files, to change and log as the
        next version: `remove()` and `add_file()` what changes; the files kept are not uploaded again."""
        return _draft(self._source[0], self.type, self.description, self.metadata, self._files)

    @property
    def manifest(self) -> ArtifactManifest[ArtifactEntry]:
        """Its files, as W&B's `artifact.manifest.entries` gives them by path."""
        return ArtifactManifest([ArtifactEntry(self, f) for f in self._files])

    def _finalized(self, doing: str) -> InvalidInput:
        return InvalidInput(
            f"{self.qualified_name} is logged and its files cannot change ({doing}), as W&B's ArtifactFinalizedError "
            "says: draft = artifact.new_draft(), change the draft, then run.log_artifact(draft)"
        )

    def add_file(self, *args: Any, **kwargs: Any) -> None:
        raise self._finalized("add_file")

    def add_dir(self, *args: Any, **kwargs: Any) -> None:
        raise self._finalized("add_dir")

    def add_reference(self, *args: Any, **kwargs: Any) -> None:
        raise self._finalized("add_reference")

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        raise self._finalized("new_file")

    def remove(self, *args: Any, **kwargs: Any) -> None:
        raise self._finalized("remove")

    def download(self, root: str | Path | None = None, path_prefix: str | None = None, **options: Any) -> LocalFolder:
        """Fetch every file (W&B's `path_prefix`: those whose path starts with it) under `root` (default
        ./artifacts/<name>-<version>), verified against the manifest; files already there with the right digest
        are not fetched again. W&B's other options (allow_missing_references, skip_cache, multipart) are accepted
        and ignored. Returns the folder as W&B's `str`, which also joins like a Path (`LocalFolder`)."""
        for option in options:
            ignore(f"download({option}=...)")
        root = Path(root) if root is not None else self.default_root()
        files = [f for f in self._files if path_prefix is None or f.path.startswith(path_prefix)]
        for f in files:  # the server refuses such paths; a client never trusts that alone
            if not (root / f.path).resolve().is_relative_to(root.resolve()):
                raise InvalidInput(f"artifact file {f.path!r} would land outside {root}")
        refuse_what_cannot_be_written(self.qualified_name, [f.path for f in files], root)
        wanted = [f for f in files if not _already_there(root / f.path, f)]
        total = sum(f.size for f in wanted)
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=f"downloading {self.name}", disable=total < PROGRESS_FROM_BYTES
        ) as bar:
            each_in_parallel(lambda f: self._fetch(f, root / f.path, bar.update), wanted, PARALLEL_FILES)
        return LocalFolder(root)

    def file(self, root: str | Path | None = None) -> str:
        """W&B's `file()`: fetch the version's one file under `root` and return its path (a version of several
        files is refused: download() them, or get_entry(name).download())."""
        if len(self._files) != 1:
            raise InvalidInput(
                f"{self.qualified_name} has {len(self._files)} files, not one: use download(), or "
                "get_entry(name).download() for one of them"
            )
        return ArtifactEntry(self, self._files[0]).download(root)

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
    if not path.is_file():
        return False
    size = path.stat().st_size
    if size == expected.size and file_digest(path) == expected.digest:
        return True
    # A reference whose bytes were never hashed (checksum=False, a big http body, s3): what its download checked,
    # the URI's ETag and size, is checked again, and the copy's size (W&B's verify skips references). An http
    # body's size may not have been known (0).
    ref = expected.ref
    if ref is None or not (size == expected.size or (expected.size == 0 and not ref.startswith("file:"))):
        return False
    return references.stands_for_its_uri(ref, expected.size, expected.digest)


def _files_under(root: Path) -> Iterator[Path]:
    """Every file under the folder, through linked folders as W&B's `add_dir` walks (a checkpoint folder or a
    Hugging Face snapshot is often a link); a link to a folder it is inside of is not walked again."""
    for folder, subfolders, files in os.walk(root, followlinks=True):
        inside = Path(folder).relative_to(root)
        if any(os.path.samefile(folder, root / above) for above in inside.parents):
            subfolders.clear()
            continue
        for file in files:
            path = Path(folder, file)
            if path.is_file():  # not a dangling link, a socket or a fifo
                yield path
