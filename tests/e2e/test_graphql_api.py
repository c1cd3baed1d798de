"""The API's promise at this stage: what a mutation wrote, the next query sees; bad input never reaches the log."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from support.stack import Stack
from support.story import ADD_ALIAS, LINK, LOG_VERSION, START_RUN, file_entry, version_input
from support.waiting import wait_until

from modelreg.events.log import EventLog
from modelreg.services.http import triggers_presence
from modelreg.services.settings import Settings


async def test_a_logged_artifact_version_is_queryable_right_after_the_mutation_returns(stack: Stack) -> None:
    logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"weights-1")})
    version = logged["data"]["logArtifactVersion"]
    assert version["version"] == "v0"
    assert version["createdBy"] == "user:alice"

    # No sleep, no retry: the mutation returned only once the read models had the event.
    queried = await stack.graphql(
        "query($ref: String!) { artifactVersion(ref: $ref) { id version type files { path size } } }",
        {"ref": "acme/nature/classifier:latest"},
    )
    assert queried["data"]["artifactVersion"] == {
        "id": version["id"],
        "version": "v0",
        "type": "model",
        "files": [{"path": "weights.bin", "size": 9}],
    }


async def test_versions_are_numbered_in_log_order_and_identical_content_is_not_a_new_version(stack: Stack) -> None:
    first = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"a")})
    second = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"b")})
    again = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"b")})

    assert [r["data"]["logArtifactVersion"]["version"] for r in (first, second, again)] == ["v0", "v1", "v1"]
    page = await stack.graphql(
        '{ artifactVersions(entity: "acme", project: "nature", name: "classifier", first: 1) '
        "{ items { version } endCursor hasNextPage } }"
    )
    assert page["data"]["artifactVersions"]["items"] == [{"version": "v0"}]
    assert page["data"]["artifactVersions"]["hasNextPage"] is True
    cursor = page["data"]["artifactVersions"]["endCursor"]
    rest = await stack.graphql(
        "query($after: String) "
        '{ artifactVersions(entity: "acme", project: "nature", name: "classifier", after: $after) '
        "{ items { version } hasNextPage } }",
        {"after": cursor},
    )
    assert rest["data"]["artifactVersions"] == {"items": [{"version": "v1"}], "hasNextPage": False}


async def test_linking_a_version_records_who_and_when_and_moving_an_alias_is_in_the_history(stack: Stack) -> None:
    run = await stack.graphql(
        START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": "train-1", "config": {"lr": 0.01}}}
    )
    assert run["data"]["startRun"] == {
        "runId": "train-1",
        "state": "RUNNING",
        "startedBy": "user:alice",
        "config": {"lr": 0.01},
    }
    v0 = (await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"a", runId="train-1")}))["data"][
        "logArtifactVersion"
    ]
    v1 = (await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"b", runId="train-1")}))["data"][
        "logArtifactVersion"
    ]

    linked = await stack.graphql(
        LINK, {"model": "nature-classification", "id": v0["id"], "aliases": ["staging"]}, actor="user:bob"
    )
    assert linked["data"]["linkArtifactVersion"] == {
        "version": "v0",
        "aliases": ["staging"],
        "linkedBy": "user:bob",
        "artifactVersion": {"id": v0["id"], "version": "v0"},
    }
    await stack.graphql(LINK, {"model": "nature-classification", "id": v1["id"]})
    await stack.graphql(
        ADD_ALIAS, {"model": "nature-classification", "id": v0["id"], "alias": "production"}, actor="user:carol"
    )
    moved = await stack.graphql(
        ADD_ALIAS, {"model": "nature-classification", "id": v1["id"], "alias": "production"}, actor="user:dan"
    )
    assert moved["data"]["addAlias"] == {"version": "v1", "aliases": ["production"]}

    model = await stack.graphql(
        """{ registeredModel(name: "nature-classification") {
               versions { items { version aliases linkedBy artifactVersion { version } } }
               alias(name: "production") { version }
               history { items { action actor details } } } }"""
    )
    registered = model["data"]["registeredModel"]
    assert registered["versions"]["items"] == [
        {"version": "v0", "aliases": ["staging"], "linkedBy": "user:bob", "artifactVersion": {"version": "v0"}},
        {"version": "v1", "aliases": ["production"], "linkedBy": "user:alice", "artifactVersion": {"version": "v1"}},
    ]
    assert registered["alias"] == {"version": "v1"}
    production_moves = [
        (h["actor"], h["details"]["artifact_version_id"])
        for h in registered["history"]["items"]
        if h["action"] == "registry.alias_added" and h["details"]["alias"] == "production"
    ]
    assert production_moves == [("user:dan", v1["id"]), ("user:carol", v0["id"])]  # newest first


MODEL_VERSIONS = '{ registeredModel(name: "nature-classification") { versions(first: 1) { endCursor } } }'
VERSIONS = '{ artifactVersions(entity: "acme", project: "nature", name: "classifier", first: 1) { endCursor } }'
# A list's endCursor, another list given it, and the list the refusal names.
CROSSED = [
    ("{ registeredModels(first: 1) { endCursor } }", "{ launchQueues(after: $a) { hasNextPage } }", "launchQueues"),
    ("{ auditLog(first: 1) { endCursor } }", "{ launchJobs(after: $a) { hasNextPage } }", "launchJobs"),
    (
        "{ auditLog(first: 1) { endCursor } }",
        '{ runs(entity: "acme", project: "nature", after: $a) { hasNextPage } }',
        "runs",
    ),
    (
        MODEL_VERSIONS,
        '{ artifactVersions(entity: "acme", project: "nature", name: "classifier", after: $a) { hasNextPage } }',
        "artifactVersions",
    ),
    (
        VERSIONS,
        '{ registeredModel(name: "nature-classification") { versions(after: $a) { hasNextPage } } }',
        "RegisteredModel.versions",
    ),
]


@pytest.mark.parametrize(("source", "target", "listed"), CROSSED, ids=[listed for _, _, listed in CROSSED])
async def test_a_cursor_of_another_list_is_refused_saying_whose_endcursor_to_pass(
    stack: Stack, source: str, target: str, listed: str
) -> None:
    """Another list's cursor whose parts fitted (a name; a time and an id; a version number) paged the wrong list
    silently: each cursor names its list."""
    assert "errors" not in await stack.graphql(
        START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": "r"}}
    )
    for contents in (b"a", b"b"):
        logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", contents)})
        version = logged["data"]["logArtifactVersion"]["id"]
        assert "errors" not in await stack.graphql(LINK, {"model": "nature-classification", "id": version})
    found = await stack.graphql(source)
    assert "errors" not in found, found
    page = found["data"]
    while "endCursor" not in page:
        (page,) = page.values()
    answer = await stack.graphql(f"query($a: String) {target}", {"a": page["endCursor"]})
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT", answer
    assert f"pass a page's endCursor, from {listed} asked with the same arguments" in error["message"]


async def _events_on(log: EventLog) -> int:
    return sum((await log.end_positions()).values())


async def test_bad_input_gets_a_clear_error_with_a_code_and_nothing_reaches_the_log(
    stack: Stack, event_log: EventLog
) -> None:
    before = await _events_on(event_log)
    traversal = version_input("classifier", b"x")
    traversal["files"] = [file_entry("../../etc/passwd", b"x")]
    bad_name = version_input("no/slashes", b"x")
    bad_digest = version_input("classifier", b"x")
    bad_digest["files"] = [{"path": "w.bin", "size": 1, "digest": "md5:abc"}]
    computed_alias = version_input("classifier", b"x", aliases=["latest"])

    for bad, field in [
        (traversal, "manifest"),
        (bad_name, "name"),
        (bad_digest, "digest"),
        (computed_alias, "aliases"),
    ]:
        answer = await stack.graphql(LOG_VERSION, {"input": bad})
        (error,) = answer["errors"]
        assert error["extensions"]["code"] == "INVALID_INPUT"
        assert field in error["message"]

    unknown = await stack.graphql(LINK, {"model": "m", "id": "01900000-0000-7000-8000-000000000000"})
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert "log it before linking" in unknown["errors"][0]["message"]
    not_a_run = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"x", runId="ghost")})
    assert not_a_run["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    assert await _events_on(event_log) == before


async def test_health_reports_each_projection_lag_and_parked_streams(stack: Stack) -> None:
    await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"a")})
    assert stack.client is not None
    health = await (await stack.client.get("/healthz", headers=await stack.auth())).json()
    assert health["status"] == "ok"
    assert health["event_log"]["events"] == 2  # the test's API key, then the version
    assert health["projections"]["registry"] == {"lag": 0, "parked_streams": 0, "dead_letters": 0}
    assert health["projections"]["audit"]["lag"] == 0


async def test_health_says_whether_a_triggers_process_carries_out_automations(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read from PostgreSQL's own lock table: a triggers process that exited left /healthz saying ok.
    monkeypatch.setattr(triggers_presence, "MISSING_AFTER_S", 0.0)
    for with_triggers in (True, False):
        async with Stack(settings, with_triggers=with_triggers) as stack:

            async def health(stack: Stack = stack) -> dict[str, Any]:
                assert stack.client is not None
                return await (await stack.client.get("/healthz", headers=await stack.auth())).json()

            async def automations_active(active: bool = with_triggers) -> bool:
                return (await health())["automations"]["active"] is active

            await wait_until(automations_active, timeout_s=15)
            seen = await health()
            assert seen["status"] == ("ok" if with_triggers else "degraded"), seen
            assert ("no `modelreg triggers` process" in seen.get("no_automations", "")) is not with_triggers


async def test_a_query_for_a_field_that_does_not_exist_is_refused_by_validation(stack: Stack) -> None:
    assert stack.client is not None
    for _ in range(2):  # the second time from the document cache
        answer = await stack.client.post(
            "/graphql", json={"query": '{ registeredModel(name: "m") { nope } }'}, headers=await stack.auth()
        )
        assert "Cannot query field 'nope'" in (await answer.json())["errors"][0]["message"]


async def test_a_config_written_into_the_query_keeps_its_large_numbers_or_is_refused_saying_why(
    stack: Stack, event_log: EventLog
) -> None:
    start = 'mutation { startRun(input: {entity: "acme", project: "nature", runId: "%s", config: %s}) { config } }'
    kept = await stack.graphql(start % ("seeded", "{seed: 3000000000, rows: 2147483648, lr: 0.5}"))
    assert kept["data"]["startRun"]["config"] == {"seed": 3_000_000_000, "rows": 2_147_483_648, "lr": 0.5}

    before = await _events_on(event_log)
    for literal, problem in [
        ("{big: 1e400}", "beyond a 64-bit float"),
        ("{n: 99999999999999999999}", "64-bit integer"),
    ]:
        refused = await stack.graphql(start % ("refused", literal))
        (error,) = refused["errors"]
        assert error["extensions"]["code"] == "INVALID_INPUT" and problem in error["message"], refused
    assert await _events_on(event_log) == before


async def test_a_missing_or_unknown_key_and_a_document_of_several_operations_are_refused_in_the_one_error_shape(
    stack: Stack,
) -> None:
    assert stack.client is not None
    for headers, said in (({}, "send an API key"), ({"Authorization": "Bearer mr_nope"}, "unknown or revoked")):
        answer = await stack.client.post("/graphql", json={"query": "{ viewer { id } }"}, headers=headers)
        assert answer.status == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
        error = (await answer.json())["errors"][0]  # it was plain text, unlike every other refusal
        assert error["extensions"] == {"code": "UNAUTHENTICATED", "retriable": False}
        assert said in error["message"]

    # Which one to run is the caller's to say: it was an INTERNAL error marked retriable, which clients retried.
    key = {"Authorization": f"Bearer {await stack.key('user:alice')}"}
    document = "query A { viewer { id } } query B { viewer { role } }"
    several = await stack.client.post("/graphql", json={"query": document}, headers=key)
    error = (await several.json())["errors"][0]
    assert several.status == 400 and error["extensions"]["code"] == "INVALID_INPUT"
    assert "several operations (A, B)" in error["message"]
    named = await stack.client.post("/graphql", json={"query": document, "operationName": "B"}, headers=key)
    assert (await named.json())["data"] == {"viewer": {"role": "ADMIN"}}


LINK_WITH_ID = """
mutation Link($model: String!, $id: ID!, $aliases: [String!], $c: ID) {
  linkArtifactVersion(input: {registeredModel: $model, artifactVersionId: $id, aliases: $aliases, commandId: $c}) {
    version aliases
  }
}"""
REMOVE_ALIAS = "mutation($i: RemoveAliasInput!) { removeAlias(input: $i) { version aliases } }"
ENQUEUE = "mutation($i: EnqueueJobInput!) { enqueueJob(input: $i) { id state } }"
CANCEL = "mutation($i: CancelJobInput!) { cancelJob(input: $i) { id state } }"
RETRY = "mutation($i: RetryJobInput!) { retryJob(input: $i) { id state } }"


async def test_ci_sending_a_mutation_again_under_its_command_id_changes_nothing_and_a_reused_id_is_refused(
    stack: Stack, event_log: EventLog
) -> None:
    a = version_input("ci-model", b"files A", commandId=str(uuid.uuid4()))
    v0 = (await stack.graphql(LOG_VERSION, {"input": a}))["data"]["logArtifactVersion"]
    await stack.graphql(LOG_VERSION, {"input": version_input("ci-model", b"files B")}, actor="user:bob")
    before = await _events_on(event_log)
    retried = await stack.graphql(LOG_VERSION, {"input": a})  # its first answer timed out
    assert retried["data"]["logArtifactVersion"]["id"] == v0["id"]
    latest = await stack.graphql('{ artifactVersion(ref: "acme/nature/ci-model:latest") { version } }')
    assert latest["data"]["artifactVersion"] == {"version": "v1"}
    assert await _events_on(event_log) == before

    link_id = str(uuid.uuid4())
    staged = {"model": "ci-models", "id": v0["id"], "aliases": ["staging"], "c": link_id}
    assert (await stack.graphql(LINK_WITH_ID, staged))["data"]["linkArtifactVersion"]["aliases"] == ["staging"]
    refused = await stack.graphql(LINK_WITH_ID, {**staged, "aliases": ["production"]})
    (error,) = refused["errors"]
    assert error["extensions"] == {"code": "CONFLICT", "retriable": False}
    assert error["message"].startswith(f"commandId {link_id} was already used for a different command (accepted as ")
    assert error["message"].endswith("use a new commandId for a new command")

    removal = {"registeredModel": "ci-models", "alias": "staging", "commandId": str(uuid.uuid4())}
    for _ in range(2):  # sent again: no NOT_FOUND for the alias it took away
        removed = await stack.graphql(REMOVE_ALIAS, {"i": removal})
        assert removed["data"]["removeAlias"] == {"version": "v0", "aliases": []}, removed

    await stack.graphql('mutation { createLaunchQueue(input: {name: "ci-cpu", resource: DOCKER}) { name } }')
    source = {"kind": "image", "image": "python:3.12", "entry_point": ["python", "train.py"]}
    enqueue = {
        "queue": "ci-cpu",
        "entity": "acme",
        "project": "nature",
        "source": source,
        "commandId": str(uuid.uuid4()),
    }
    jobs = [(await stack.graphql(ENQUEUE, {"i": enqueue}))["data"]["enqueueJob"] for _ in range(2)]
    assert jobs[0] == jobs[1]
    cancel = {"id": jobs[0]["id"], "commandId": str(uuid.uuid4())}
    cancelled = [(await stack.graphql(CANCEL, {"i": cancel}))["data"]["cancelJob"] for _ in range(2)]
    assert cancelled == [{"id": jobs[0]["id"], "state": "CANCELLED"}] * 2
    retry = {"id": jobs[0]["id"], "commandId": str(uuid.uuid4())}
    retries = [(await stack.graphql(RETRY, {"i": retry}))["data"]["retryJob"] for _ in range(2)]
    assert retries[0] == retries[1] and retries[0]["id"] != jobs[0]["id"]
