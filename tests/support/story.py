"""GraphQL documents and inputs shared by the tests that drive the API."""

from __future__ import annotations

import hashlib

LOG_VERSION = """
mutation Log($input: LogArtifactVersionInput!) {
  logArtifactVersion(input: $input) { id version digest createdBy aliases files { path size digest } }
}"""

START_RUN = """
mutation Start($input: StartRunInput!) { startRun(input: $input) { runId state startedBy config } }"""

LINK = """
mutation Link($model: String!, $id: ID!, $aliases: [String!]) {
  linkArtifactVersion(registeredModel: $model, artifactVersionId: $id, aliases: $aliases) {
    version aliases linkedBy artifactVersion { id version }
  }
}"""

ADD_ALIAS = """
mutation Alias($model: String!, $id: ID!, $alias: String!) {
  addAlias(registeredModel: $model, artifactVersionId: $id, alias: $alias) { version aliases }
}"""


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def file_entry(path: str, content: bytes) -> dict[str, object]:
    return {"path": path, "size": len(content), "digest": digest_of(content)}


def version_input(name: str, content: bytes, *, type_: str = "model", **extra: object) -> dict[str, object]:
    return {
        "entity": "acme",
        "project": "nature",
        "name": name,
        "type": type_,
        "files": [file_entry("weights.bin", content)],
        **extra,
    }
