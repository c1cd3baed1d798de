"""Reading the registry from scripts: `api = modelreg.Api()`, then artifacts, runs and registered models.

W&B's public API spelled as W&B spells it (`Api(overrides={"entity": ..., "project": ...})`, `artifact(name,
type=)`, `runs(path, filters=, order=, per_page=)`...), with paths in any form of modelreg.artifact_paths.
"""

from __future__ import annotations

import importlib
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelreg.artifact import LoggedArtifact
from modelreg.artifact_paths import ArtifactPath, parse_artifact_path
from modelreg.errors import InvalidInput, ModelregError, NotFound, NotSupported, Unavailable
from modelreg.public_run import RUN_FIELDS, PublicRun
from modelreg.run import find_version
from modelreg.transport import Transport

_VIEWER = "query { viewer { id } }"
_VIEWER_USER = "query { viewer { id role } }"
_PRINCIPALS = """query($search: String, $first: Int!, $after: String) {
  principals(search: $search, first: $first, after: $after) { items { id role } endCursor hasNextPage }
}"""
_RUN = f"query($e: String!, $p: String!, $r: String!) {{ run(entity: $e, project: $p, runId: $r) {{ {RUN_FIELDS} }} }}"
_RUNS = f"""query($e: String!, $p: String!, $search: String, $state: RunState, $jobType: String,
               $filters: GenericScalar, $order: String, $first: Int!, $after: String) {{
  runs(entity: $e, project: $p, search: $search, state: $state, jobType: $jobType, filters: $filters, order: $order,
       first: $first, after: $after) {{
    items {{ {RUN_FIELDS} }} endCursor hasNextPage
  }}
}}"""
_RUNS_COUNT = """query($e: String!, $p: String!, $search: String, $state: RunState, $jobType: String,
                    $filters: GenericScalar, $order: String) {
  runs(entity: $e, project: $p, search: $search, state: $state, jobType: $jobType, filters: $filters, order: $order,
       first: 1) { totalCount }
}"""
_VERSION_FIELDS = (
    "id entity project name type version digest description metadata aliases latest createdAt size "
    "tags files { path size digest ref }"
)
_ARTIFACT_BY_ID = f"query($id: ID) {{ artifactVersion(id: $id) {{ {_VERSION_FIELDS} deletedAt }} }}"
_VERSIONS = f"""query($e: String!, $p: String!, $n: String!, $first: Int!, $after: String) {{
  artifactVersions(entity: $e, project: $p, name: $n, first: $first, after: $after) {{
    items {{ {_VERSION_FIELDS} }} endCursor hasNextPage
  }}
}}"""
_COLLECTIONS = """query($e: String!, $p: String!, $t: String, $first: Int!, $after: String) {
  artifactCollections(entity: $e, project: $p, type: $t, first: $first, after: $after) {
    items { entity project name type createdAt versionCount } endCursor hasNextPage
  }
}"""
_TYPES = """query($e: String!, $p: String!, $first: Int!, $after: String) {
  artifactTypes(entity: $e, project: $p, first: $first, after: $after) { items endCursor hasNextPage }
}"""
_PROJECT_FIELDS = "entity project runCount lastActivityAt"
_PROJECTS = f"""query($e: String, $first: Int!, $after: String) {{
  projects(entity: $e, first: $first, after: $after, order: NAME) {{
    items {{ {_PROJECT_FIELDS} }} endCursor hasNextPage
  }}
}}"""
_PROJECT = f"query($e: String!, $p: String!) {{ project(entity: $e, project: $p) {{ {_PROJECT_FIELDS} }} }}"
_MODEL = """query($name: String!, $first: Int!, $after: String) {
  registeredModel(name: $name) {
    name description inputs outputs tags createdAt createdBy
    versions(first: $first, after: $after) {
      items { version aliases linkedAt linkedBy artifactVersion { id } } endCursor hasNextPage
    }
  }
}"""
_MODELS = """query($first: Int!, $after: String, $search: String) {
  registeredModels(first: $first, after: $after, search: $search) { items { name } endCursor hasNextPage }
}"""

ApiRun = PublicRun  # the name this client used before W&B's
ApiArtifact = LoggedArtifact


def default_entity(transport: Transport) -> str:
    """MODELREG_ENTITY (or W&B's WANDB_ENTITY), else the caller's own name (alice for user:alice)."""
    given = os.environ.get("MODELREG_ENTITY") or os.environ.get("WANDB_ENTITY")
    if given:
        return given
    try:
        viewer = transport.graphql(_VIEWER)["viewer"]["id"]
    except Unavailable:
        raise
    except ModelregError:  # no key: runs go to the entity named "default"
        return "default"
    return viewer.partition(":")[2] or "default"


@dataclass(frozen=True)
class ModelVersion:
    version: str
    aliases: list[str]
    artifact_id: str
    linked_at: str
    linked_by: str

    @property
    def artifact_version_id(self) -> str:
        return self.artifact_id


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str | None
    inputs: str | None
    outputs: str | None
    tags: list[str]
    versions: list[ModelVersion]

    def alias(self, alias: str) -> ModelVersion | None:
        if alias == "latest":
            return self.versions[-1] if self.versions else None
        return next((v for v in self.versions if alias in v.aliases), None)


@dataclass(frozen=True)
class ArtifactCollection:
    """W&B's artifact collection: every version of one name in a project."""

    entity: str
    project: str
    name: str
    type: str
    created_at: str
    version_count: int
    _api: Api

    def versions(self, per_page: int = 50) -> Iterator[LoggedArtifact]:
        return self._api._versions(self.entity, self.project, self.name, per_page)

    def artifacts(self, per_page: int = 50) -> Iterator[LoggedArtifact]:
        return self.versions(per_page)

    def is_sequence(self) -> bool:
        """W&B's: versions of one name logged over time (a portfolio is a registered model here)."""
        return True

    @property
    def aliases(self) -> list[str]:
        """The aliases its versions hold (`latest` among them when it has a version), as W&B lists them."""
        return sorted({alias for version in self.versions() for alias in version.aliases})

    def delete(self) -> None:
        raise NotSupported(
            f"a collection is not deleted whole here ({self.entity}/{self.project}/{self.name}): delete its versions "
            "one by one, for v in collection.versions(): v.delete(delete_aliases=True) (a version linked to a "
            "registered model is unlinked first: v.unlink() of its registry version)"
        )


@dataclass(frozen=True)
class RegistryCollection:
    """W&B's registry collection (`api.artifact_collection("model", "wandb-registry-model/<name>")`): a
    registered model, its versions read through the registry as `api.artifact("model-registry/<name>:vN")`."""

    name: str
    type: str
    model: RegisteredModel
    _api: Api = field(repr=False, compare=False)

    @property
    def version_count(self) -> int:
        return len(self.model.versions)

    @property
    def aliases(self) -> list[str]:
        """The aliases its versions hold (`latest` among them when it has a version), as for a collection."""
        held = {alias for version in self.model.versions for alias in version.aliases}
        return sorted(held | ({"latest"} if self.model.versions else set()))

    @property
    def description(self) -> str | None:
        return self.model.description

    @property
    def tags(self) -> list[str]:
        return list(self.model.tags)

    def is_sequence(self) -> bool:
        """W&B's: a registry collection links versions of other collections (a portfolio), not a sequence."""
        return False

    def versions(self, per_page: int = 50) -> Iterator[LoggedArtifact]:
        return (self._api.artifact(f"model-registry/{self.name}:{v.version}") for v in self.model.versions)

    def artifacts(self, per_page: int = 50) -> Iterator[LoggedArtifact]:
        return self.versions(per_page)

    def delete(self) -> None:
        raise NotSupported(
            f"a registered model is not deleted here ({self.name}): unlink its versions, for v in "
            "collection.versions(): v.unlink(); the logged versions stay in their projects"
        )


@dataclass(frozen=True)
class Registry:
    """W&B's registry (`api.registries()`): modelreg has one, W&B's "model" registry, whose collections are the
    registered models (`wandb-registry-model/<name>` and `model-registry/<name>` name them)."""

    name: str
    _api: Api = field(repr=False, compare=False)

    @property
    def full_name(self) -> str:
        return f"wandb-registry-{self.name}"

    @property
    def description(self) -> str:
        return "modelreg's registered models"

    def collections(self, filter: dict[str, Any] | None = None, per_page: int = 100) -> Iterator[RegistryCollection]:
        """Its collections: each registered model (a `{"name": "..."}` filter searches their names)."""
        for name in self._api._registered_model_names(_named_in(filter), per_page):
            yield RegistryCollection(name, "model", self._api.registered_model(name), self._api)

    def versions(self, filter: dict[str, Any] | None = None, per_page: int = 100) -> Iterator[LoggedArtifact]:
        """Every version of every collection, read through the registry (`model-registry/<name>:vN`)."""
        for collection in self.collections(filter, per_page):
            yield from collection.versions()


def _named_in(filter: dict[str, Any] | None) -> str | None:
    """A name searched for: `{"name": "fraud"}` (W&B's `$regex` and other operators are not read)."""
    name = (filter or {}).get("name")
    return name if isinstance(name, str) else None


@dataclass(frozen=True)
class Project:
    """W&B's public project: a project with runs (here a project exists once a run logs to it)."""

    entity: str
    name: str
    run_count: int
    last_activity_at: str
    _api: Api = field(repr=False, compare=False)

    @property
    def path(self) -> list[str]:
        return [self.entity, self.name]

    def runs(self, per_page: int = 50) -> Runs:
        return self._api.runs(f"{self.entity}/{self.name}", per_page=per_page)

    def artifacts_types(self) -> list[ArtifactType]:  # W&B's spelling
        return self._api.artifact_types(f"{self.entity}/{self.name}")


@dataclass(frozen=True)
class ArtifactType:
    entity: str
    project: str
    name: str
    _api: Api

    @property
    def type(self) -> str:
        return self.name

    def collections(self, per_page: int = 50) -> Iterator[ArtifactCollection]:
        return self._api.artifact_collections(f"{self.entity}/{self.project}", self.name, per_page=per_page)

    def collection(self, name: str) -> ArtifactCollection | RegistryCollection:
        return self._api.artifact_collection(self.name, f"{self.entity}/{self.project}/{name}")


@dataclass(frozen=True)
class User:
    """W&B's public User: who the key belongs to (`api.viewer`), or one an installation admin looks up
    (`api.user(name)`). `id` is the principal (user:alice, service:ci), `role` its key's role."""

    id: str
    role: str | None

    @property
    def username(self) -> str:
        return self.id.partition(":")[2] or self.id

    @property
    def name(self) -> str:
        return self.username

    @property
    def entity(self) -> str:
        """Its own entity, where its runs go when none is named (`alice` for user:alice)."""
        return self.username

    @property
    def admin(self) -> bool:
        return self.role == "ADMIN"


class Runs:
    """W&B's `Runs`: iterate (pages of `per_page` fetched as the loop goes), `len()` (how many match, counted
    by the server), and `runs[i]`."""

    def __init__(self, transport: Transport, variables: dict[str, Any]) -> None:
        self._transport, self._variables = transport, variables
        self._length: int | None = None
        self._read: list[PublicRun] | None = None

    def __iter__(self) -> Iterator[PublicRun]:
        after = None
        while True:
            page = self._transport.graphql(_RUNS, {**self._variables, "after": after})["runs"]
            yield from (PublicRun(self._transport, run) for run in page["items"])
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]

    def __len__(self) -> int:
        if self._length is None:
            counted = {k: v for k, v in self._variables.items() if k != "first"}
            self._length = self._transport.graphql(_RUNS_COUNT, counted)["runs"]["totalCount"]
        return self._length

    def __getitem__(self, index: int) -> PublicRun:
        if self._read is None:
            self._read = list(self)
        return self._read[index]

    def histories(
        self,
        samples: int = 500,
        keys: list[str] | None = None,
        x_axis: str = "_step",
        format: str = "default",
        **_: Any,
    ) -> Any:
        """W&B's: each run's `history(samples=, keys=)` rows, one run after another, each row with its `run_id`: a
        list of dicts ("default"), or a pandas or polars DataFrame ("pandas", "polars")."""
        if format not in ("default", "pandas", "polars"):
            raise InvalidInput(f"histories(format={format!r}): give 'default', 'pandas' or 'polars'")
        rows = [
            {**row, "run_id": run.id} for run in self for row in run.history(samples=samples, keys=keys, pandas=False)
        ]
        if format == "default":
            return rows
        try:
            frames = importlib.import_module(format)
        except ImportError:
            raise InvalidInput(f"histories(format={format!r}) needs {format}: pip install {format}") from None
        # polars takes its columns from the first rows only, unless told to read them all (runs log other keys)
        return frames.DataFrame(rows) if format == "pandas" else frames.from_dicts(rows, infer_schema_length=None)


class Api:
    def __init__(
        self,
        overrides: dict[str, Any] | str | None = None,
        timeout: float | None = None,
        api_key: str | None = None,
        *,
        url: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        """W&B's `Api(overrides={"entity", "project", "base_url"}, timeout=, api_key=)`; modelreg's
        `Api(url, api_key)` (a URL as the first argument) works too."""
        if isinstance(overrides, str):  # modelreg's Api(url, api_key)
            url, overrides = overrides, None
            if isinstance(timeout, str):
                api_key, timeout = timeout, None
        overrides = dict(overrides or {})
        url = url or overrides.get("base_url") or os.environ.get("WANDB_BASE_URL")
        # `transport`: a run's own (modelreg.restore reads that run's server with its key).
        self.transport = transport or Transport(url, api_key, timeout_s=timeout or 60.0)
        self._entity: str | None = overrides.get("entity")
        self._project: str | None = overrides.get("project") or os.environ.get("MODELREG_PROJECT")

    @property
    def default_entity(self) -> str:
        if self._entity is None:
            self._entity = default_entity(self.transport)
        return self._entity

    @property
    def api_key(self) -> str | None:
        return None  # never handed back

    @property
    def viewer(self) -> User:
        """Who the key belongs to (`api.viewer.username`, `.entity`)."""
        found = self.transport.graphql(_VIEWER_USER)["viewer"]
        return User(found["id"], found["role"])

    def user(self, username_or_email: str) -> User | None:
        """W&B's: the user of that name (`alice`, or `user:alice`), None when there is none; installation admins
        only, as in W&B (the server's `principals`). Users have no e-mail here: `alice@example.com` looks for
        `alice@example.com` as a name."""
        wanted = username_or_email if ":" in username_or_email else f"user:{username_or_email}"
        after = None
        while True:
            variables = {"search": wanted, "first": 100, "after": after}
            page = self.transport.graphql(_PRINCIPALS, variables)["principals"]
            for found in page["items"]:
                if found["id"] == wanted:
                    return User(found["id"], found["role"])
            if not page["hasNextPage"]:
                return None
            after = page["endCursor"]

    def flush(self) -> None:
        """W&B's flush() drops what the Api cached; every read here asks the server, so there is nothing to drop."""

    def _project_path(self, path: str | None) -> tuple[str, str]:
        """`entity/project`, `project` (the default entity's) or None (the default project)."""
        path = path or self._project
        if not path:
            raise InvalidInput('name a project as entity/project (or pass overrides={"project": ...})')
        parts = path.split("/")
        if len(parts) == 1 and parts[0]:
            return self.default_entity, parts[0]
        if len(parts) == 2 and all(parts):
            return parts[0], parts[1]
        raise InvalidInput(f"{path!r}: name a project as entity/project or project")

    # Artifacts.

    def artifact(self, name: str, type: str | None = None) -> LoggedArtifact:
        """`name:alias`, `project/name:v3`, `entity/project/name:latest`, a registry path
        (`model-registry/name:production`, `wandb-registry-model/name:v0`), or a version's id."""
        if "/" not in name and ":" not in name and len(name) == 36:
            found = self.transport.graphql(_ARTIFACT_BY_ID, {"id": name})["artifactVersion"]
            if found is None or found.get("deletedAt"):
                raise NotFound(f"no artifact version {name!r}")
            return LoggedArtifact(self.transport, found)
        entity = self._entity or (None if name.count("/") == 2 else self.default_entity)
        return LoggedArtifact(self.transport, find_version(self.transport, name, entity, self._project, type))  # type: ignore[arg-type]

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        try:
            self.artifact(name, type)
        except NotFound:
            return False
        return True

    def _collection_path(self, name: str) -> ArtifactPath:
        """The collection `name` names, as artifact() reads a version's path (modelreg.artifact_paths): `name`
        (the default project's), `project/name`, `entity/project/name`, or a registered model by any registry path
        (`wandb-registry-model/name`, `model-registry/name`, with or without `entity/`). A selector is left out."""
        path = parse_artifact_path(name.partition(":")[0])
        if path.registered_model:
            return path
        if path.project is None:
            entity, project = self._project_path(None)
            return ArtifactPath(path.name, path.selector, entity, project)
        return ArtifactPath(path.name, path.selector, path.entity or self.default_entity, path.project)

    def _versions(self, entity: str, project: str, name: str, per_page: int = 50) -> Iterator[LoggedArtifact]:
        after = None
        while True:
            variables = {"e": entity, "p": project, "n": name, "first": per_page, "after": after}
            page = self.transport.graphql(_VERSIONS, variables)["artifactVersions"]
            yield from (LoggedArtifact(self.transport, item) for item in page["items"])
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]

    def artifacts(self, type_name: str, name: str, per_page: int = 50, **_: Any) -> Iterator[LoggedArtifact]:
        """Every live version of the collection `name` (any form `artifact_collection` takes, a registry path
        among them: the registered model's versions read through the registry), oldest first. A collection that
        does not exist is NotFound, one of another type InvalidInput saying its type, as W&B refuses both."""
        path = self._collection_path(name)
        if path.registered_model:
            return iter(self._registered(type_name, path.name, name)[1])
        assert path.entity is not None and path.project is not None
        versions = self._versions(path.entity, path.project, path.name, per_page)
        first = next(versions, None)
        if first is None:  # no live version: an emptied collection, or none of that name
            self._collection_of_type(type_name, path)
            return iter(())
        if first.type != type_name:
            raise _of_another_type(name, type_name, first.type)
        return itertools.chain([first], versions)

    def artifact_versions(self, type_name: str, name: str, per_page: int = 50) -> Iterator[LoggedArtifact]:
        return self.artifacts(type_name, name, per_page)

    def artifact_collections(
        self, project_name: str | None = None, type_name: str | None = None, per_page: int = 50
    ) -> Iterator[ArtifactCollection]:
        entity, project = self._project_path(project_name)
        after = None
        while True:
            variables = {"e": entity, "p": project, "t": type_name, "first": per_page, "after": after}
            page = self.transport.graphql(_COLLECTIONS, variables)["artifactCollections"]
            for c in page["items"]:
                yield ArtifactCollection(
                    c["entity"], c["project"], c["name"], c["type"], c["createdAt"], c["versionCount"], self
                )
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]

    def artifact_collection(self, type_name: str, name: str) -> ArtifactCollection | RegistryCollection:
        """A project's collection (`name`, `project/name`, `entity/project/name`), or a registered model by a
        registry path (`wandb-registry-model/name`, `model-registry/name`): NotFound when there is none, and
        InvalidInput saying its type when it holds artifacts of another type."""
        path = self._collection_path(name)
        if path.registered_model:
            return self._registered(type_name, path.name, name)[0]
        return self._collection_of_type(type_name, path)

    def _registered(self, type_name: str, model: str, name: str) -> tuple[RegistryCollection, list[LoggedArtifact]]:
        """The registered model as a registry collection, and its versions of `type_name` read through it."""
        registered = RegistryCollection(model, type_name, self.registered_model(model), self)
        versions = list(registered.versions())
        held = {version.type for version in versions}
        if held and type_name not in held:
            raise _of_another_type(name, type_name, *sorted(held))
        return registered, [version for version in versions if version.type == type_name]

    def _collection_of_type(self, type_name: str, path: ArtifactPath) -> ArtifactCollection:
        for found in self.artifact_collections(f"{path.entity}/{path.project}", per_page=500):
            if found.name == path.name:
                if found.type != type_name:
                    raise _of_another_type(f"{path.entity}/{path.project}/{path.name}", type_name, found.type)
                return found
        raise NotFound(f"no artifact collection {path.entity}/{path.project}/{path.name}")

    def artifact_collection_exists(self, name: str, type: str) -> bool:
        """W&B's: False for a collection that does not exist and for one of another type."""
        try:
            self.artifact_collection(type, name)
        except (NotFound, InvalidInput):
            return False
        return True

    def artifact_types(self, project: str | None = None) -> list[ArtifactType]:
        entity, project_name = self._project_path(project)
        names: list[str] = []
        after = None
        while True:
            variables = {"e": entity, "p": project_name, "first": 500, "after": after}
            page = self.transport.graphql(_TYPES, variables)["artifactTypes"]
            names += page["items"]
            if not page["hasNextPage"]:
                break
            after = page["endCursor"]
        return [ArtifactType(entity, project_name, n, self) for n in names]

    def artifact_type(self, type_name: str, project: str | None = None) -> ArtifactType:
        for found in self.artifact_types(project):
            if found.name == type_name:
                return found
        raise NotFound(f"no artifact of type {type_name!r} in {project or self._project}")

    # Projects and runs.

    def projects(self, entity: str | None = None, per_page: int = 200) -> Iterator[Project]:
        """The entity's projects (the default entity's when none is named), by name: each once, however many runs
        start while they are listed (by activity, a project active between two pages moved ahead of the cursor)."""
        after = None
        while True:
            variables = {"e": entity or self.default_entity, "first": per_page, "after": after}
            page = self.transport.graphql(_PROJECTS, variables)["projects"]
            yield from (self._as_project(found) for found in page["items"])
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]

    def project(self, name: str, entity: str | None = None) -> Project:
        found = self.transport.graphql(_PROJECT, {"e": entity or self.default_entity, "p": name})["project"]
        if found is None:
            raise NotFound(f"no project {entity or self.default_entity}/{name} (a project appears with its first run)")
        return self._as_project(found)

    def _as_project(self, found: dict[str, Any]) -> Project:
        return Project(found["entity"], found["project"], found["runCount"], found["lastActivityAt"], self)

    def run(self, path: str | Sequence[str]) -> PublicRun:
        """`entity/project/run_id` (or `project/run_id`, the default entity's; W&B's `.../runs/run_id` too; a
        public run's `path` list; a bare `run_id` in the project `overrides` name)."""
        path = path if isinstance(path, str) else "/".join(path)
        parts = [p for p in path.split("/") if p != "runs"]
        if len(parts) == 1 and self._project:
            parts = [self._project, *parts]
        if len(parts) == 2:
            parts = [self.default_entity, *parts]
        if len(parts) != 3 or not all(parts):
            raise InvalidInput(f"run {path!r}: name it entity/project/run_id")
        entity, project, run_id = parts
        found = self.transport.graphql(_RUN, {"e": entity, "p": project, "r": run_id})["run"]
        if found is None:
            raise NotFound(f"no run {path!r}")
        return PublicRun(self.transport, found)

    def runs(
        self,
        path: str | None = None,
        filters: dict[str, Any] | None = None,
        order: str = "-created_at",
        per_page: int = 50,
        *,
        search: str | None = None,
        state: str | None = None,
        job_type: str | None = None,
        **_: Any,
    ) -> Runs:
        """A project's runs (`entity/project`, or `project` of the default entity), newest first unless `order`
        says otherwise (`+summary_metrics.acc`, `config.lr`...), that match W&B's MongoDB-style `filters`
        (`{"config.lr": {"$gt": 0.01}, "tags": {"$in": ["baseline"]}}`: docs/wandb-compat.md lists the keys and
        operators). Pages of `per_page` are fetched as the loop goes."""
        entity, project = self._project_path(path)
        if filters is not None and not isinstance(filters, dict):
            raise InvalidInput('filters is a dict, e.g. {"config.lr": {"$gt": 0.01}}')
        variables = {
            "e": entity,
            "p": project,
            "search": search,
            "state": state.upper() if state else None,
            "jobType": job_type,
            "filters": filters or None,
            "order": order,
            "first": per_page,
        }
        return Runs(self.transport, variables)

    # The registry.

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

    def registries(self, filter: dict[str, Any] | None = None, per_page: int = 100) -> Iterator[Registry]:
        """W&B's registries: modelreg's one, "model" (its collections are the registered models); a `{"name": ...}`
        filter that does not name it lists none."""
        if _named_in(filter) in (None, "model", "wandb-registry-model"):
            yield Registry("model", self)

    def _registered_model_names(self, search: str | None, per_page: int) -> Iterator[str]:
        after = None
        while True:
            variables = {"first": per_page, "after": after, "search": search}
            page = self.transport.graphql(_MODELS, variables)["registeredModels"]
            yield from (m["name"] for m in page["items"])
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]


def _of_another_type(name: str, type_name: str, *held: str) -> InvalidInput:
    kinds = " and ".join(repr(kind) for kind in held)
    return InvalidInput(f"{name!r} holds {kinds} artifacts, not {type_name!r} ones: ask for type {held[0]!r}")
