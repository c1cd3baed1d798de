"""GraphQL documents and inputs shared by the tests that drive the API."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from support.stack import Stack

LOG_VERSION = """
mutation Log($input: LogArtifactVersionInput!) {
  logArtifactVersion(input: $input) { id version digest createdBy aliases files { path size digest } }
}"""

START_RUN = """
mutation Start($input: StartRunInput!) { startRun(input: $input) { runId state startedBy config } }"""

LINK = """
mutation Link($model: String!, $id: ID!, $aliases: [String!]) {
  linkArtifactVersion(input: {registeredModel: $model, artifactVersionId: $id, aliases: $aliases}) {
    version aliases linkedBy artifactVersion { id version }
  }
}"""

USE = """
mutation Use($input: UseArtifactVersionInput!) { useArtifactVersion(input: $input) { id } }"""

ADD_ALIAS = """
mutation Alias($model: String!, $id: ID!, $alias: String!) {
  addAlias(input: {registeredModel: $model, artifactVersionId: $id, alias: $alias}) { version aliases }
}"""


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


# The content of each file a test described with file_entry: Stack.graphql puts these in the blob store
# before it sends a request, as the client uploads a version's files before it logs the version.
CONTENTS: dict[str, bytes] = {}


def file_entry(path: str, content: bytes) -> dict[str, object]:
    CONTENTS[digest_of(content)] = content
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


async def sweep_run_using(stack: Stack, dataset_id: str, n: int, job_type: str = "train") -> None:
    """Trial n of a sweep (run sweep-<n> of acme/nature) starts and uses the dataset version."""
    run = {"entity": "acme", "project": "nature", "runId": f"sweep-{n:03}", "name": f"trial {n}", "jobType": job_type}
    started = await stack.graphql(START_RUN, {"input": run})
    used = await stack.graphql(
        USE, {"input": {"artifactVersionId": dataset_id, "entity": "acme", "project": "nature", "runId": run["runId"]}}
    )
    assert "errors" not in started and "errors" not in used, (started, used)


async def demo_story(stack: Stack) -> None:
    """The demo, small: a preprocessing run logs a dataset; two training runs log models; links and alias moves."""
    await stack.graphql(
        START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": "prep-1", "jobType": "preprocess"}}
    )
    await stack.graphql(
        LOG_VERSION, {"input": version_input("nature-images", b"images", type_="dataset", runId="prep-1")}
    )
    ids = []
    dataset = (await stack.graphql('{ artifactVersion(ref: "acme/nature/nature-images:latest") { id } }'))["data"][
        "artifactVersion"
    ]
    for n, weights in enumerate([b"model-a", b"model-b"]):
        run_id = f"train-{n}"
        await stack.graphql(
            START_RUN,
            {"input": {"entity": "acme", "project": "nature", "runId": run_id, "config": {"lr": 0.1 / (n + 1)}}},
        )
        await stack.graphql(
            USE, {"input": {"artifactVersionId": dataset["id"], "entity": "acme", "project": "nature", "runId": run_id}}
        )
        logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", weights, runId=run_id)})
        ids.append(logged["data"]["logArtifactVersion"]["id"])
    await stack.graphql(
        LINK, {"model": "nature-classification", "id": ids[0], "aliases": ["staging"]}, actor="user:bob"
    )
    await stack.graphql(LINK, {"model": "nature-classification", "id": ids[1]}, actor="user:bob")
    await stack.graphql(
        ADD_ALIAS, {"model": "nature-classification", "id": ids[1], "alias": "production"}, actor="user:carol"
    )


ANSWERS = """{
  registeredModel(name: "nature-classification") {
    name createdBy
    versions { items { version aliases linkedBy linkedAt artifactVersion { id version digest createdAt createdBy } } }
    history { items { eventId action actor occurredAt details } }
  }
  classifier: artifactVersions(entity: "acme", project: "nature", name: "classifier") {
    items { id version files { path size digest } }
  }
  dataset: artifactVersion(ref: "acme/nature/nature-images:latest") { id version loggedByRun createdAt }
  run(entity: "acme", project: "nature", runId: "train-1") { config state startedAt startedBy }
  lineage(ref: "acme/nature/classifier:v1", direction: UPSTREAM) {
    nodes { id depth } edges { source target kind recordedAt }
  }
}"""


async def registry_answers(stack: Stack) -> dict:
    answer = await stack.graphql(ANSWERS)
    assert "errors" not in answer, answer
    return answer["data"]
