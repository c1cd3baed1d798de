"""The artifact paths W&B scripts write, and what they name here.

    name:alias | name:v3 | name              an artifact of the run's (or the Api's default) entity and project
    project/name:alias                       an artifact of the default entity
    entity/project/name:alias                an artifact
    entity/model-registry/model:alias        a registered model's version (W&B's Model Registry)
    model-registry/model:alias               the same, any entity
    wandb-registry-model/model:alias         the same (W&B Registry's "model" registry; entity/ prefix allowed)

Registered models here are installation-wide (not per entity), so the entity of a registry path is
accepted and not needed. A registry path's selector is one of the model's aliases, `latest` (the newest
linked version) or `v<N>` (the model's version N, not the artifact's). No selector means `latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelreg.errors import NAME_PATTERN, InvalidInput, not_a_name

REGISTRY_PROJECTS = ("model-registry",)
MAX_REGISTERED_MODEL_NAME = 128  # events/names.py's RegisteredModelName
_REGISTRY_PREFIX = "wandb-registry-"
_SELECTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z")


@dataclass(frozen=True)
class ArtifactPath:
    name: str
    selector: str
    entity: str | None = None
    project: str | None = None
    registered_model: bool = False

    def ref(self) -> str:
        """`entity/project/name:selector`, what the server's artifactVersion(ref:) takes."""
        return f"{self.entity}/{self.project}/{self.name}:{self.selector}"


def is_registry(project: str) -> bool:
    return project in REGISTRY_PROJECTS or project.startswith(_REGISTRY_PREFIX)


def parse_artifact_path(path: str, entity: str | None = None, project: str | None = None) -> ArtifactPath:
    """`path` in any of the forms above; `entity` and `project` fill in what it leaves out."""
    if not isinstance(path, str) or not path.strip():
        raise InvalidInput(f"an artifact path looks like project/name:alias, not {path!r}")
    body, _, selector = path.strip().rpartition(":") if ":" in path else (path.strip(), "", "latest")
    selector = selector or "latest"
    if not _SELECTOR.match(selector):
        raise InvalidInput(f"{path!r}: {selector!r} is not an alias or version (latest, v3, production...)")
    parts = body.split("/")
    if not all(parts) or len(parts) > 3:
        raise InvalidInput(f"{path!r} must look like name:alias, project/name:alias or entity/project/name:alias")
    if len(parts) >= 2 and is_registry(parts[-2]):
        return ArtifactPath(parts[-1], selector, registered_model=True)
    if len(parts) == 3:
        return ArtifactPath(parts[2], selector, parts[0], parts[1])
    if len(parts) == 2:
        return ArtifactPath(parts[1], selector, entity, parts[0])
    return ArtifactPath(parts[0], selector, entity, project)


def registered_model_name(target: str) -> str:
    """`link_artifact(artifact, target)`: "model-registry/x", "entity/model-registry/x",
    "wandb-registry-model/x" or just "x" name the registered model x."""
    parts = target.strip().split("/")
    if not all(parts) or len(parts) > 3 or (len(parts) >= 2 and not is_registry(parts[-2])):
        raise InvalidInput(
            f"link target {target!r}: name a registered model as model-registry/<name>, "
            "wandb-registry-model/<name> or <name>"
        )
    name, _, alias = parts[-1].partition(":")
    if alias:
        raise InvalidInput(f"link target {target!r}: give aliases with aliases=[...], not in the target")
    # Checked here as the server checks it (events/names.py), so that link_model refuses it before logging anything.
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidInput(f"link target {target!r}: the registered model name {not_a_name(name)}")
    if len(name) > MAX_REGISTERED_MODEL_NAME:
        raise InvalidInput(
            f"link target {target!r}: a registered model name has {MAX_REGISTERED_MODEL_NAME} characters at most"
        )
    return name
