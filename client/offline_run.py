"""A run with no server: everything it does is recorded in the offline spool, for `modelreg sync` later.

It behaves like an online run with three differences a script can see: a logged artifact has an id
(chosen here, kept by the server at sync) but no version number yet (`version` is None); `use_artifact`
can only name a version by its id or an artifact this same run logged earlier (resolving "latest" needs
the registry); and `link_artifact` returns None, the registry numbering the model version at sync.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from uuid import UUID

from uuid_utils.compat import uuid7

from modelreg.artifact import Artifact, ArtifactFile, LoggedArtifact
from modelreg.artifact_paths import registered_model_name
from modelreg.errors import InvalidInput, NotFound
from modelreg.local_folder import LocalFolder
from modelreg.run import Run, as_artifact, settable_aliases, start_fields
from modelreg.spool import Spool, SpoolBlobs

UNSYNCED = "unsynced"


class OfflineArtifact(LoggedArtifact):
    """A version as an offline run knows it: one it logged itself (files in the spool), or only an id."""

    def __init__(self, spool: Spool, fields: dict[str, Any], *, files_known: bool) -> None:
        super().__init__(SpoolBlobs(spool), fields)  # the spool serves downloads
        self._files_known = files_known

    def download(self, root: str | Path | None = None) -> LocalFolder:  # type: ignore[override]
        if not self._files_known:
            raise NotFound(
                f"artifact version {self.id} was not logged by this offline run, so its files are not here: "
                "download it while online (modelreg.Api().artifact(...).download()) and pass the folder along"
            )
        return super().download(root)


# In a spool's start: no entity was chosen offline; `modelreg sync` sends the run to the syncing key's entity.
ENTITY_OF_KEY = "entityOfKey"


class OfflineRun(Run):
    def __init__(
        self, spool: Spool, entity: str, project: str, run_id: str, config: dict[str, Any], **described: Any
    ) -> None:
        # No transport: every method that would send something is overridden to record it instead.
        super().__init__(None, entity, project, run_id, config, **described)  # type: ignore[arg-type]
        self.spool = spool
        self._logged: dict[str, OfflineArtifact] = {}  # by id, in the order they were logged

    @classmethod
    def start_offline(
        cls,
        root: str | Path | None,
        *,
        project: str,
        entity: str,
        config: dict[str, Any] | None,
        job_type: str | None,
        name: str | None,
        run_id: str | None,
        fields: dict[str, Any] | None = None,
        entity_of_key: bool = False,
        dir: str | Path | None = None,
        **described: Any,
    ) -> OfflineRun:
        """Record a run's start in a new spool folder (under `root`: spool.spool_root). `fields` are the start's
        input when an online start was tried first (mode="auto"), so the run keeps the id and environment it
        began with. `entity_of_key`: no entity was chosen, so the run goes where the syncing key's runs go, as an
        online run would (`entity` stands for it until then). `dir` holds `run.dir`, as online."""
        fields = fields or start_fields(
            project=project, entity=entity, config=config, job_type=job_type, name=name, run_id=run_id, **described
        )
        spool = Spool.create(root, fields["runId"])
        tried = fields.get("commandId")  # the online start's, which the server may have applied
        fields = {k: v for k, v in fields.items() if k != "commandId"}
        spool.record(
            "start_run",
            {**fields, ENTITY_OF_KEY: True} if entity_of_key else fields,
            command_id=UUID(tried) if tried else None,
        )
        where = (
            f"{project}/{fields['runId']} (your entity, when synced)"
            if entity_of_key
            else (f"{entity}/{project}/{fields['runId']}")
        )
        print(f"modelreg: offline run {where}, recorded in {spool.folder}", file=sys.stderr)
        return cls(
            spool,
            entity,
            project,
            fields["runId"],
            fields["config"],
            name=fields.get("name"),
            notes=fields.get("notes"),
            tags=fields.get("tags") or (),
            group=fields.get("group"),
            job_type=fields.get("jobType"),
            dir=dir,
        )

    @property
    def offline(self) -> bool:
        return True

    @property
    def url(self) -> str | None:
        return None

    def _change(self, kind: str, fields: dict[str, Any]) -> None:
        self._refuse_once_finished()  # recorded after the finish, the sync changed the finished run
        if self.inherited_by_fork(f"a change of the run ({kind})"):
            return  # the parent's journal: a line written here would cut into one of its lines
        self.flush()  # metrics logged before it come before it in the journal
        self.spool.record(kind, fields)

    def _send_metric_batch(self, series: list[dict[str, Any]], command_id: UUID) -> None:
        self.spool.record("log_metrics", {"series": series})  # the spool gives it its own command id

    def log_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: Iterable[str] | str | None = None,
        tags: Iterable[str] | None = None,
    ) -> Artifact:
        """Copy the files into the spool (by digest) and record the version under an id chosen here."""
        artifact = as_artifact(artifact_or_path, name, type)
        aliases = settable_aliases([*settable_aliases(aliases), *artifact.aliases])
        self.flush()  # metrics logged before it come before it in the journal
        kept = [ArtifactFile(path, *self.spool.keep_file(source)) for path, source in artifact.local_files().items()]
        manifest = sorted([*kept, *artifact.known_files()], key=lambda f: f.path)
        fields = {**self._artifact_fields(artifact, manifest, aliases), "id": str(uuid7())}
        self.spool.record("log_artifact", fields)
        self._logged[fields["id"]] = OfflineArtifact(
            self.spool,
            {**fields, "version": UNSYNCED, "digest": "", "metadata": artifact.metadata, "aliases": list(aliases)},
            files_known=True,
        )
        artifact.mark_logged(fields["id"], None, manifest, self._logged[fields["id"]])
        artifact.cleanup()
        return artifact

    def use_artifact(  # type: ignore[override]
        self, ref: Any, type: str | None = None, aliases: Any = None, **_: Any
    ) -> LoggedArtifact:
        """`ref` is a version id, or the name of an artifact this run logged earlier (`name`,
        `name:latest` or `name:<alias it was logged with>`)."""
        if isinstance(ref, Artifact):
            if ref.id is None:
                raise InvalidInput("log the artifact before using it (run.log_artifact)")
            ref = ref.id
        elif isinstance(ref, LoggedArtifact):
            ref = ref.id
        found = self._find(ref)
        self.flush()
        self.spool.record("use_artifact", {"artifactVersionId": found.id})
        return found

    def _find(self, ref: str) -> OfflineArtifact:
        try:
            version_id = str(UUID(ref))
        except ValueError:
            pass
        else:
            return self._logged.get(version_id) or OfflineArtifact(
                self.spool,
                {
                    "id": version_id,
                    "entity": self.entity,
                    "project": self.project,
                    "name": version_id,
                    "type": "",
                    "version": UNSYNCED,
                    "digest": "",
                    "metadata": {},
                    "aliases": [],
                    "files": [],
                },
                files_known=False,
            )
        path, _, selector = ref.partition(":")
        parts = path.split("/")
        if len(parts) == 3 and parts[:2] != [self.entity, self.project]:
            parts = []
        name = parts[-1] if parts else None
        for logged in reversed(self._logged.values()):
            if logged.name == name and selector in ("", "latest", *logged.aliases):
                return logged
        raise InvalidInput(
            f"this run is offline, so {ref!r} cannot be looked up in the registry: use_artifact takes a version id "
            "(e.g. modelreg.Api().artifact(ref).id noted while online) "
            "or the name of an artifact this run logged earlier"
        )

    def link_artifact(
        self, artifact: Artifact | LoggedArtifact, target_path: str, aliases: Iterable[str] | str | None = None
    ) -> str | None:
        if artifact.id is None:
            raise InvalidInput("log the artifact before linking it")
        self.flush()
        self.spool.record(
            "link_artifact",
            {
                "registeredModel": registered_model_name(target_path),
                "artifactVersionId": artifact.id,
                "aliases": settable_aliases(aliases),
            },
        )
        return None

    def _send_finish(self, fields: dict[str, Any]) -> None:
        self.spool.record("finish_run", fields)
        print(f"modelreg: offline run recorded; upload it with: modelreg sync {self.spool.folder}", file=sys.stderr)
