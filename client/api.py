"""Reading the registry from scripts: `api = modelreg.Api()`, then artifacts, runs and registered models."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from modelreg.artifact import LoggedArtifact
from modelreg.errors import InvalidInput, NotFound
from modelreg.transport import Transport

_VERSION_FIELDS = (
    "id entity project name type version digest description metadata aliases files { path size digest ref }"
)
_RUN_FIELDS = "entity project runId name jobType state config summary environment startedAt startedBy finishedAt"
_ARTIFACT = f"query($ref: String, $id: ID) {{ artifactVersion(ref: $ref, id: $id) {{ {_VERSION_FIELDS} }} }}"
_RUN = f"query($e: String!, $p: String!, $r: String!) {{ run(entity: $e, project: $p, runId: $r) {{ {_RUN_FIELDS} }} }}"
_RUNS = f"""query($e: String!, $p: String!, $search: String, $state: RunState, $jobType: String, $first: Int!,
  $after: String) {{
  runs(entity: $e, project: $p, search: $search, state: $state, jobType: $jobType, first: $first, after: $after) {{
    items {{ {_RUN_FIELDS} }} endCursor hasNextPage
  }}
}}"""
_NEIGHBOURS = f"""query($ref: String!, $direction: LineageDirection!) {{
  lineage(ref: $ref, direction: $direction, depth: 1, fanOut: 1000) {{
    nodes {{ depth run {{ {_RUN_FIELDS} }} }} truncated
  }}
}}"""
_MODEL = """query($name: String!, $first: Int!, $after: String) {
  registeredModel(name: $name) {
    name description inputs outputs tags createdAt createdBy
    versions(first: $first, after: $after) {
      items { version aliases linkedAt linkedBy artifactVersion { id } } endCursor hasNextPage
    }
  }
}"""


@dataclass(frozen=True)
class ApiRun:
    entity: str
    project: str
    id: str
    name: str | None
    job_type: str | None
    state: str
    config: dict[str, Any]
    summary: dict[str, Any]
    environment: dict[str, Any]
    started_at: str
    started_by: str
    finished_at: str | None

    @classmethod
    def from_graphql(cls, fields: dict[str, Any]) -> ApiRun:
        return cls(
            fields["entity"],
            fields["project"],
            fields["runId"],
            fields["name"],
            fields["jobType"],
            fields["state"].lower(),  # RUNNING on the wire, "running" in Python as in the events
            fields["config"],
            fields["summary"],
            fields["environment"],
            fields["startedAt"],
            fields["startedBy"],
            fields["finishedAt"],
        )

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.id}"


@dataclass(frozen=True)
class ModelVersion:
    version: str
    aliases: list[str]
    artifact_id: str
    linked_at: str
    linked_by: str


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str | None
    inputs: str | None
    outputs: str | None
    tags: list[str]
    versions: list[ModelVersion]

    def alias(self, alias: str) -> ModelVersion | None:
        return next((v for v in self.versions if alias in v.aliases), None)


class ApiArtifact(LoggedArtifact):
    """A logged version, with its lineage one step away."""

    def __init__(self, transport: Transport, fields: dict[str, Any]) -> None:
        super().__init__(transport, fields)
        self._transport = transport

    def logged_by(self) -> ApiRun | None:
        runs = self._neighbours("UPSTREAM")
        return runs[0] if runs else None

    def used_by(self) -> list[ApiRun]:
        return self._neighbours("DOWNSTREAM")

    def _neighbours(self, direction: str) -> list[ApiRun]:
        lineage = self._transport.graphql(_NEIGHBOURS, {"ref": self.id, "direction": direction})["lineage"]
        return [ApiRun.from_graphql(n["run"]) for n in lineage["nodes"] if n["depth"] == 1 and n["run"]]


class Api:
    def __init__(self, url: str | None = None, api_key: str | None = None) -> None:
        self.transport = Transport(url, api_key)

    def artifact(self, ref: str) -> ApiArtifact:
        """`entity/project/name:v3`, `:latest` or `:<alias>`, or a version's id."""
        found = self.transport.graphql(_ARTIFACT, {"ref": ref} if "/" in ref else {"id": ref})["artifactVersion"]
        if found is None:
            raise NotFound(f"no artifact version {ref!r}")
        return ApiArtifact(self.transport, found)

    def run(self, path: str) -> ApiRun:
        """`entity/project/run_id`."""
        entity, project, run_id = path.split("/")
        found = self.transport.graphql(_RUN, {"e": entity, "p": project, "r": run_id})["run"]
        if found is None:
            raise NotFound(f"no run {path!r}")
        return ApiRun.from_graphql(found)

    def runs(
        self,
        path: str,
        *,
        search: str | None = None,
        state: str | None = None,
        job_type: str | None = None,
        per_page: int = 50,
    ) -> Iterator[ApiRun]:
        """`entity/project`'s runs, newest first: `search` is part of the run id, name or job type (any case),
        `state` running, finished, failed or crashed. Pages of `per_page` are fetched as the loop goes."""
        entity, _, project = path.partition("/")
        if not entity or not project or "/" in project:
            raise InvalidInput(f"runs of {path!r}: name a project as entity/project")
        variables = {
            "e": entity,
            "p": project,
            "search": search,
            "state": state.upper() if state else None,
            "jobType": job_type,
            "first": per_page,
        }
        return self._pages_of_runs(variables)

    def _pages_of_runs(self, variables: dict[str, Any]) -> Iterator[ApiRun]:
        after = None
        while True:
            page = self.transport.graphql(_RUNS, {**variables, "after": after})["runs"]
            yield from (ApiRun.from_graphql(run) for run in page["items"])
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]

    def registered_model(self, name: str) -> RegisteredModel:
        versions: list[ModelVersion] = []
        after = None
        while True:
            model = self.transport.graphql(_MODEL, {"name": name, "first": 500, "after": after})["registeredModel"]
            if model is None:
                raise NotFound(f"no registered model {name!r}")
            page = model["versions"]
            versions += [
                ModelVersion(v["version"], v["aliases"], v["artifactVersion"]["id"], v["linkedAt"], v["linkedBy"])
                for v in page["items"]
            ]
            if not page["hasNextPage"]:
                break
            after = page["endCursor"]
        return RegisteredModel(
            model["name"], model["description"], model["inputs"], model["outputs"], model["tags"], versions
        )
