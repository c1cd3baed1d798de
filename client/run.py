"""A run: one execution of training or evaluation code, with its config, metrics, inputs and outputs."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from uuid import UUID

from modelreg.artifact import Artifact, ArtifactFile, LoggedArtifact
from modelreg.environment import capture
from modelreg.errors import InvalidInput
from modelreg.metric_sender import MetricSender, encoded
from modelreg.transport import Transport

_START = "mutation($i: StartRunInput!) { startRun(input: $i) { runId } }"
_FINISH = "mutation($i: FinishRunInput!) { finishRun(input: $i) { state } }"
_METRICS = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"
_VERSION_FIELDS = (
    "id entity project name type version digest description metadata aliases files { path size digest ref }"
)
_LOG = f"mutation($i: LogArtifactVersionInput!) {{ logArtifactVersion(input: $i) {{ {_VERSION_FIELDS} }} }}"
_FIND = f"query($ref: String!) {{ artifactVersion(ref: $ref) {{ {_VERSION_FIELDS} }} }}"
_USE = "mutation($i: UseArtifactVersionInput!) { useArtifactVersion(input: $i) { id } }"
_LINK = "mutation($i: LinkArtifactVersionInput!) { linkArtifactVersion(input: $i) { version } }"


class Config(dict[str, Any]):
    """`run.config["lr"]` or `run.config.lr`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Run:
    def __init__(self, transport: Transport, entity: str, project: str, run_id: str, config: dict[str, Any]) -> None:
        self.transport = transport
        self.entity = entity
        self.project = project
        self.id = run_id
        self.config = Config(config)
        self.summary: dict[str, Any] = {}
        self._metrics = MetricSender(self._send_metric_batch)
        self._finished = False

    @classmethod
    def start(
        cls,
        transport: Transport,
        *,
        project: str,
        entity: str,
        config: dict[str, Any] | None,
        job_type: str | None,
        name: str | None,
        run_id: str | None,
    ) -> Run:
        fields = start_fields(
            project=project, entity=entity, config=config, job_type=job_type, name=name, run_id=run_id
        )
        return cls.start_with(transport, fields)

    @classmethod
    def start_with(cls, transport: Transport, fields: dict[str, Any]) -> Run:
        """Start a run from its StartRun input (see `start_fields`)."""
        transport.graphql(_START, {"i": fields})
        return cls(transport, fields["entity"], fields["project"], fields["runId"], fields["config"])

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.id}"

    def log(self, values: dict[str, float], step: int | None = None) -> None:
        """Record metric values at a step (the next one by default); returns at once, a background thread
        sends them in batches (client/metric_sender.py)."""
        self._metrics.log(values, step)
        self.summary.update(values)

    def flush(self) -> None:
        """Return once every metric logged so far is on the server (or in the offline spool)."""
        self._metrics.flush()

    def _send_metric_batch(self, series: list[dict[str, Any]], command_id: UUID) -> None:
        run = {"entity": self.entity, "project": self.project, "runId": self.id, "commandId": str(command_id)}
        self.transport.graphql(_METRICS, {"i": {**run, "series": encoded(series)}}, compress=True)

    def log_artifact(self, artifact: Artifact, aliases: list[str] | tuple[str, ...] = ()) -> Artifact:
        """Upload what the server lacks and log the version as this run's output."""
        manifest = artifact.upload_files(self.transport)
        fields = self._artifact_fields(artifact, manifest, aliases)
        logged = self.transport.graphql(_LOG, {"i": fields})["logArtifactVersion"]
        artifact.mark_logged(logged["id"], logged["version"], manifest)
        artifact.cleanup()
        return artifact

    def _artifact_fields(
        self, artifact: Artifact, manifest: list[ArtifactFile], aliases: Sequence[str]
    ) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "project": self.project,
            "name": artifact.name,
            "type": artifact.type,
            "files": [f.as_input() for f in manifest],
            "description": artifact.description,
            "metadata": artifact.metadata,
            "aliases": list(aliases),
            "runId": self.id,
        }

    def use_artifact(self, ref: str) -> LoggedArtifact:
        """`"name:alias"` (this run's project), `"name:v3"`, or `"entity/project/name:latest"`: records
        the exact version as this run's input (lineage) and returns it, ready to download."""
        qualified = ref if ref.count("/") == 2 else f"{self.entity}/{self.project}/{ref}"
        found = self.transport.graphql(_FIND, {"ref": qualified})["artifactVersion"]
        if found is None:
            raise InvalidInput(f"no artifact version {qualified!r}")
        self.transport.graphql(
            _USE,
            {"i": {"artifactVersionId": found["id"], "entity": self.entity, "project": self.project, "runId": self.id}},
        )
        return LoggedArtifact(self.transport, found)

    def link_artifact(
        self, artifact: Artifact | LoggedArtifact, registered_model: str, aliases: list[str] | tuple[str, ...] = ()
    ) -> str | None:
        """Link a logged version to a registered model; returns the model version (v0, v1, ...), or None
        in an offline run (the registry numbers it when the run is synced)."""
        if artifact.id is None:
            raise InvalidInput("log the artifact before linking it")
        link = {"registeredModel": registered_model, "artifactVersionId": artifact.id, "aliases": list(aliases)}
        linked = self.transport.graphql(_LINK, {"i": link})
        return linked["linkArtifactVersion"]["version"]

    def finish(self, exit_code: int = 0) -> None:
        if self._finished:
            return
        try:
            self._metrics.close()  # everything logged is delivered before the run says it finished
        finally:
            state = "finished" if exit_code == 0 else "failed"
            summary = {k: v for k, v in self.summary.items() if isinstance(v, (int, float, str, bool))}
            fields = {
                "entity": self.entity,
                "project": self.project,
                "runId": self.id,
                "state": state,
                "exitCode": exit_code,
                "summary": summary,
            }
            self._send_finish(fields)
            self._finished = True

    def _send_finish(self, fields: dict[str, Any]) -> None:
        self.transport.graphql(_FINISH, {"i": finish_input(fields)})

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.finish(exit_code=0 if kind is None else 1)


def finish_input(fields: dict[str, Any]) -> dict[str, Any]:
    """A finish as the API takes it: the state as its enum (FINISHED), whatever spelling a journal kept."""
    return {**fields, "state": fields["state"].upper()} if fields.get("state") else fields


def start_fields(
    *,
    project: str,
    entity: str,
    config: dict[str, Any] | None,
    job_type: str | None,
    name: str | None,
    run_id: str | None,
) -> dict[str, Any]:
    """The StartRun input of a new run (online or offline): its id, config and where it runs."""
    return {
        "entity": entity,
        "project": project,
        "runId": run_id or secrets.token_hex(4),
        "name": name,
        "jobType": job_type,
        "config": {**(config or {}), **_launch_overrides()},
        "environment": capture(),
    }


def _launch_overrides() -> dict[str, Any]:
    """A launched job gets its knobs through the environment; they win over the script's defaults."""
    raw = os.environ.get("MODELREG_CONFIG_OVERRIDES")
    return json.loads(raw) if raw else {}
