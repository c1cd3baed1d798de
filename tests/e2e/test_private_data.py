"""Teams and private data: the lynx team's entity and its registered model are private. A member of another
team sees nothing of them in any query, count, cursor, lineage walk, history, live event or file; a viewer
of lynx sees what an admin sees; a version lynx published into the shared registered model is readable by all.

The queries are generated from the schema: every query field, with arguments that point at lynx's data, and
a selection of every field reachable without required arguments. A new query field fails this test until
it is given its arguments here (and so is checked).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

import pytest
from support.live_events import graphql_socket, log_readers_reach
from support.stack import Stack
from support.story import LINK, LOG_VERSION, START_RUN, USE, digest_of, file_entry
from support.waiting import wait_until

import graphql
from modelreg.graphql.pages import Cursors
from modelreg.graphql.schema import build_schema

pytestmark = pytest.mark.parametrize("log_kind", ["postgres"])

ADMIN, VIEWER, OUTSIDER = "user:ada", "user:vic", "user:otto"
LYNX = {"entity": "lynx", "project": "den"}
ACME_PEEK = {"entity": "acme", "project": "yard", "runId": "acme-peek"}

SET_VISIBILITY = """mutation($s: String!, $v: Visibility!) {
  setVisibility(input: {scope: $s, visibility: $v}) { scope visibility }
}"""
GRANT = (
    "mutation($p: String!, $s: String!, $r: Role!) { grantRole(input: {principal: $p, scope: $s, role: $r}) { role } }"
)
ADD_ALIAS = """mutation($m: String!, $id: ID!, $a: String!) {
  addAlias(input: {registeredModel: $m, artifactVersionId: $id, alias: $a}) { version }
}"""
SWITCH_AUTOMATION = (
    "mutation($id: ID!, $on: Boolean!) { setAutomationEnabled(input: {id: $id, enabled: $on}) { enabled } }"
)
FINISH_RUN = "mutation($i: FinishRunInput!) { finishRun(input: $i) { state } }"
FIRINGS = "query($id: ID!) { automation(id: $id) { firings { items { status jobId } } } }"
CLAIM = "mutation($id: ID!, $a: String!) { claimJob(input: {id: $id, agentId: $a}) { attempt } }"
STARTED = "mutation($id: ID!, $a: String!) { reportJobStarted(input: {id: $id, agentId: $a, attempt: 1}) { state } }"
OUTPUT = """mutation($id: ID!, $a: String!) {
  captureJobOutput(input: {id: $id, agentId: $a, attempt: 1, stream: STDOUT, text: "den-secret-output"})
}"""
FINISHED = """mutation($id: ID!, $a: String!) {
  reportJobFinished(input: {id: $id, agentId: $a, attempt: 1, state: FINISHED}) { state }
}"""
TAG_MODEL = "mutation($m: String!, $t: String!) { tagRegisteredModel(input: {registeredModel: $m, tag: $t}) { name } }"
SOURCE = {"kind": "git", "git_remote": "https://example.com/x.git", "git_commit": "0" * 40, "entry_point": ["x"]}
LYNX_DATA, LYNX_WEIGHTS, PUBLISHED_WEIGHTS = b"lynx raw data", b"lynx weights 0", b"lynx weights 1"


class Lynx:
    """What the lynx team logged, and the strings that must never reach an outsider."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    @property
    def secrets(self) -> set[str]:
        names = {"lynx-prep", "lynx-fit", "lynx-data", "lynx-registry", "den-secret-config", "lynx-watch", "sniffing"}
        names |= {"den-secret-output"}
        digests = {digest_of(LYNX_DATA), digest_of(LYNX_WEIGHTS)}
        return names | digests | {self.ids[k] for k in ("dataset", "unpublished", "job", "automation")}


async def ok(stack: Stack, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = await stack.graphql(query, variables, actor=ADMIN)
    assert "errors" not in answer, answer
    return answer["data"]


async def lynx_logs_its_work(stack: Stack) -> Lynx:
    lynx = Lynx()
    for run_id, config in [("lynx-prep", {}), ("lynx-fit", {"note": "den-secret-config"})]:
        await ok(stack, START_RUN, {"input": {**LYNX, "runId": run_id, "config": config, "jobType": "sniffing"}})
    data = await ok(
        stack,
        LOG_VERSION,
        {
            "input": {
                **LYNX,
                "name": "lynx-data",
                "type": "dataset",
                "runId": "lynx-prep",
                "files": [file_entry("raw.bin", LYNX_DATA)],
            }
        },
    )
    lynx.ids["dataset"] = data["logArtifactVersion"]["id"]
    await ok(stack, USE, {"input": {"artifactVersionId": lynx.ids["dataset"], **LYNX, "runId": "lynx-fit"}})
    for key, weights in [("unpublished", LYNX_WEIGHTS), ("published", PUBLISHED_WEIGHTS)]:
        logged = await ok(
            stack,
            LOG_VERSION,
            {
                "input": {
                    **LYNX,
                    "name": "lynx-model",
                    "type": "model",
                    "runId": "lynx-fit",
                    "files": [file_entry("weights.bin", weights)],
                }
            },
        )
        lynx.ids[key] = logged["logArtifactVersion"]["id"]
    await ok(stack, LINK, {"model": "lynx-registry", "id": lynx.ids["unpublished"], "aliases": ["staging"]})
    await ok(stack, LINK, {"model": "shared-model", "id": lynx.ids["published"], "aliases": ["production"]})
    # Another team evaluates the published version: its lineage leads back into lynx.
    await ok(stack, START_RUN, {"input": {"entity": "acme", "project": "yard", "runId": "acme-eval"}})
    await ok(
        stack,
        USE,
        {
            "input": {
                "artifactVersionId": lynx.ids["published"],
                "entity": "acme",
                "project": "yard",
                "runId": "acme-eval",
            }
        },
    )
    await ok(stack, 'mutation { createLaunchQueue(input: {name: "cpu"}) { name } }')
    job = await ok(
        stack,
        "mutation($s: GenericScalar) "
        '{ enqueueJob(input: {queue: "cpu", entity: "lynx", project: "den", source: $s}) { id } }',
        {"s": SOURCE},
    )
    lynx.ids["job"] = job["enqueueJob"]["id"]
    automation = await ok(
        stack,
        """mutation($a: GenericScalar!) {
          createAutomation(input: {name: "lynx-watch", trigger: {event: "run_finished", entity: "lynx"}, action: $a}) {
            automation { id }
          }
        }""",
        {"a": {"kind": "launch", "queue": "cpu", "entity": "lynx", "project": "den", "source": SOURCE}},
    )
    lynx.ids["automation"] = automation["createAutomation"]["automation"]["id"]
    # The automation is switched off and on, and fires: its own events are lynx's business too.
    for on in (False, True):
        await ok(stack, SWITCH_AUTOMATION, {"id": lynx.ids["automation"], "on": on})
    # Another team's automation watches every team's runs: it fires on lynx's too, and its firings are lynx's.
    every_run = await ok(
        stack,
        """mutation($a: GenericScalar!) {
          createAutomation(input: {name: "every-run", trigger: {event: "run_finished"}, action: $a}) {
            automation { id }
          }
        }""",
        {"a": {"kind": "launch", "queue": "cpu", "entity": "acme", "project": "yard", "source": SOURCE}},
    )
    lynx.ids["every run"] = every_run["createAutomation"]["automation"]["id"]
    await ok(stack, FINISH_RUN, {"i": {**LYNX, "runId": "lynx-prep", "state": "FINISHED"}})
    for fired in (lynx.ids["automation"], lynx.ids["every run"]):
        await wait_until(lambda fired=fired: automation_fired(stack, fired))
    # An agent runs the job the automation launched: its reports are lynx's too.
    firings = await ok(stack, FIRINGS, {"id": lynx.ids["automation"]})
    job, agent = firings["automation"]["firings"]["items"][0]["jobId"], f"{ADMIN}:box"
    for report in (CLAIM, STARTED, OUTPUT, FINISHED):
        await ok(stack, report, {"id": job, "a": agent})
    for scope in ("entity:lynx", "model:lynx-registry"):
        await ok(stack, SET_VISIBILITY, {"s": scope, "v": "PRIVATE"})
        await ok(stack, GRANT, {"p": VIEWER, "s": scope, "r": "VIEWER"})
    return lynx


async def automation_fired(stack: Stack, automation_id: str) -> bool:
    statuses = [
        f["status"] for f in (await ok(stack, FIRINGS, {"id": automation_id}))["automation"]["firings"]["items"]
    ]
    return statuses == ["ENQUEUED"]


def arguments(lynx: Lynx) -> dict[str, list[str]]:
    """For each query field, argument lists that point at lynx's data (or lists that could include it)."""
    ids = lynx.ids
    return {
        "privateScopes": [""],
        "parkedStreams": [""],
        "automations": [""],
        "automation": [f'id: "{ids["automation"]}"'],
        "launchQueues": [""],
        "launchQueue": ['name: "cpu"'],
        "launchJob": [f'id: "{ids["job"]}"'],
        "launchJobs": ["first: 500"],
        "waitingJobs": ['queues: ["cpu"]'],
        "viewer": [""],
        "principals": [""],
        "grantsOn": ['scope: "entity:lynx"', 'scope: "model:lynx-registry"'],
        "lineage": [
            'ref: "run:acme/yard/acme-eval", direction: UPSTREAM, depth: 10',
            f'ref: "{ids["published"]}", depth: 10',
            f'ref: "{ids["dataset"]}"',
            'ref: "run:lynx/den/lynx-fit"',
        ],
        "lineageNeighbours": [
            f'node: "artifact:{ids["published"]}", direction: UPSTREAM',
            f'node: "artifact:{ids["published"]}", direction: UPSTREAM, search: "lynx"',
            f'node: "artifact:{ids["published"]}", direction: UPSTREAM, first: 1',
            f'node: "artifact:{ids["dataset"]}", direction: DOWNSTREAM',
        ],
        "run": ['entity: "lynx", project: "den", runId: "lynx-fit"'],
        "projects": ["", 'entity: "lynx"'],
        "project": ['entity: "lynx", project: "den"'],
        "runs": ['entity: "lynx", project: "den"', 'entity: "lynx", project: "den", search: "fit", first: 1'],
        "registeredModel": ['name: "lynx-registry"', 'name: "shared-model"'],
        "registeredModels": ["", 'search: "lynx"', "first: 1"],
        "auditActions": [""],
        "auditLog": ["first: 500", 'stream: "run:lynx/den/lynx-fit"', f'actor: "{ADMIN}", first: 500'],
        "artifactVersion": [
            f'id: "{ids["dataset"]}"',
            'ref: "lynx/den/lynx-data:v0"',
            f'id: "{ids["unpublished"]}"',
            f'id: "{ids["published"]}"',
        ],
        "artifactVersions": ['entity: "lynx", project: "den", name: "lynx-model"'],
        "artifactCollections": ['entity: "lynx", project: "den"', 'entity: "lynx", project: "den", type: "model"'],
        "artifactTypes": ['entity: "lynx", project: "den"'],
    }


def selection(of: graphql.GraphQLOutputType, depth: int) -> str | None:
    """Every field of `of` that needs no argument, `depth` levels down ("" for a scalar, None: nothing)."""
    named = graphql.get_named_type(of)
    if graphql.is_leaf_type(named):
        return ""
    if depth == 0:
        return None
    parts = []
    for name, field in named.fields.items():  # type: ignore[union-attr]
        if any(graphql.is_non_null_type(a.type) and a.default_value is graphql.Undefined for a in field.args.values()):
            continue
        inner = selection(field.type, depth - 1)
        if inner is not None:
            small = "(first: 5)" if "first" in field.args else ""  # nested pages stay within the query cost limit
            parts.append(f"{name}{small} {{ {inner} }}" if inner else name)
    return " ".join(parts) or None


def strings_in(value: Any) -> list[str]:
    """Every string of an answer, and what a base64 cursor among them says."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    if not isinstance(value, str):
        return []
    found = [value]
    try:
        found.append(base64.urlsafe_b64decode(value.encode()).decode(errors="ignore"))
    except (binascii.Error, ValueError):
        pass
    return found


def secrets_in(answer: Any, lynx: Lynx, asked: str = "") -> set[str]:
    """The secrets of lynx in an answer; an error message may repeat what the caller `asked` (a ref it gave)."""
    text = "\n".join(strings_in(answer.get("data") if isinstance(answer, dict) and "data" in answer else answer))
    errors = "\n".join(e["message"] for e in answer.get("errors", [])) if isinstance(answer, dict) else ""
    return {s for s in lynx.secrets if s in text or (s in errors and s not in asked)}


# Fields whose answer is about the caller itself (its own grants name lynx's model), or that only admins read.
ABOUT_THE_CALLER = {"viewer", "principals", "parkedStreams", "grantsOn"}
# Fields that reach no team's data, whoever asks (grantsOn: who holds a role there, refused to all but its admins).
NOTHING_PRIVATE_THERE = {"parkedStreams", "viewer", "auditActions", "grantsOn"}
# Fields whose answer names no team's things (artifact types: "model", "dataset"): checked for emptiness instead.
EMPTY_FOR_OUTSIDERS = {"artifactTypes"}


async def test_every_query_shows_a_private_team_to_its_viewers_and_admins_and_nothing_of_it_to_others(
    stack: Stack,
) -> None:
    lynx = await lynx_logs_its_work(stack)
    keys = {
        ADMIN: await stack.key(ADMIN),
        VIEWER: await stack.key(VIEWER, "viewer"),
        OUTSIDER: await stack.key(OUTSIDER, "member"),
    }
    query_type = build_schema().graphql_schema.query_type
    assert query_type is not None
    table = arguments(lynx)
    assert set(table) == set(query_type.fields), "give each new query field its arguments in arguments()"
    for name, field in query_type.fields.items():
        inner = selection(field.type, 4)
        seen: dict[str, set[str]] = {who: set() for who in keys}
        for args in table[name]:
            document = f"{{ {name}{f'({args})' if args else ''}{f' {{ {inner} }}' if inner else ''} }}"
            for who, key in keys.items():
                answer = await stack.graphql(document, key=key)
                if who == OUTSIDER:
                    # Refused, or as if lynx's things did not exist; never a word of them.
                    codes = {e["extensions"]["code"] for e in answer.get("errors", [])}
                    assert codes <= {"NOT_FOUND", "FORBIDDEN"}, (document, answer)
                    assert not secrets_in(answer, lynx, document), (document, json.dumps(answer)[:2000])
                    if name in EMPTY_FOR_OUTSIDERS:
                        assert answer["data"][name]["items"] == [], (document, answer)
                elif name in EMPTY_FOR_OUTSIDERS:
                    assert answer["data"][name]["items"], (who, document, answer)
                elif name not in ABOUT_THE_CALLER:
                    assert "errors" not in answer, (who, document, answer)
                seen[who] |= secrets_in(answer, lynx, document)
            if name not in NOTHING_PRIVATE_THERE | EMPTY_FOR_OUTSIDERS:
                assert seen[ADMIN], f"{name}({args}) shows an admin nothing of lynx: the matrix checks nothing there"
        if name not in ABOUT_THE_CALLER:
            assert seen[VIEWER] == seen[ADMIN], (name, seen[ADMIN] - seen[VIEWER])


async def test_counts_and_lineage_tell_an_outsider_nothing_but_the_shape(stack: Stack) -> None:
    lynx = await lynx_logs_its_work(stack)
    await ok(stack, 'mutation { tagArtifactVersion(input: {ref: "lynx/den/lynx-model:v1", tag: "den-only"}) { tags } }')
    outsider = await stack.key(OUTSIDER, "member")
    runs = await stack.graphql('{ runs(entity: "lynx", project: "den") { totalCount items { runId } } }', key=outsider)
    assert runs["data"]["runs"] == {"totalCount": 0, "items": []}
    walk = await stack.graphql(
        '{ lineage(ref: "run:acme/yard/acme-eval", direction: UPSTREAM, depth: 10) '
        "{ nodes { id kind hidden run { runId } artifactVersion { id loggedByRun latest aliases tags } } "
        "edges { source target } } }",
        key=outsider,
    )
    nodes = walk["data"]["lineage"]["nodes"]
    assert [(n["kind"], n["hidden"]) for n in nodes] == [("RUN", False), ("ARTIFACT", False), ("RUN", True)]
    # lynx's newest version, yet whether its collection has newer ones is lynx's to tell.
    # Nor are its collection's aliases and its tags (`den-only`), the entity's own labels.
    published = {"id": lynx.ids["published"], "loggedByRun": None, "latest": False, "aliases": [], "tags": []}
    assert nodes[1]["artifactVersion"] == published
    assert nodes[2]["id"] == "hidden:1" and nodes[2]["run"] is None
    assert {"source": "hidden:1", "target": f"artifact:{lynx.ids['published']}"} in walk["data"]["lineage"]["edges"]
    # The walk stopped at the hidden run: the dataset it used is not even drawn.
    assert len(nodes) == 3
    viewer = await stack.graphql(
        '{ lineage(ref: "run:acme/yard/acme-eval", direction: UPSTREAM, depth: 10) { nodes { id hidden } } }',
        key=await stack.key(VIEWER, "viewer"),
    )
    assert f"artifact:{lynx.ids['dataset']}" in {n["id"] for n in viewer["data"]["lineage"]["nodes"]}


async def test_a_walk_from_a_hidden_version_is_refused_as_one_from_a_version_that_does_not_exist(
    stack: Stack,
) -> None:
    lynx = await lynx_logs_its_work(stack)
    outsider = await stack.key(OUTSIDER, "member")
    document = "query($ref: String!) { lineage(ref: $ref, depth: 5) { nodes { id hidden } } }"
    refusals = []
    for ref in (lynx.ids["dataset"], str(uuid.uuid4())):
        answer = await stack.graphql(document, {"ref": ref}, key=outsider)
        assert answer["data"] is None
        [error] = answer["errors"]
        refusals.append((error["extensions"]["code"], error["message"].replace(ref, "<id>")))
    assert refusals[0] == refusals[1] == ("NOT_FOUND", "no artifact version '<id>'")
    # A version of the private team that a registered model the outsider reads links is walked from.
    published = await stack.graphql(document, {"ref": lynx.ids["published"]}, key=outsider)
    assert {"id": f"artifact:{lynx.ids['published']}", "hidden": False} in published["data"]["lineage"]["nodes"]


async def test_when_an_automation_watching_every_team_fired_on_a_private_one_is_not_told(stack: Stack) -> None:
    lynx = await lynx_logs_its_work(stack)
    query = "query($id: ID!) { automation(id: $id) { lastFiredAt firings { items { status } } } }"
    seen = {
        who: (await stack.graphql(query, {"id": lynx.ids["every run"]}, key=await stack.key(who, role)))["data"]
        for who, role in ((OUTSIDER, "member"), (VIEWER, "viewer"))
    }
    assert seen[OUTSIDER]["automation"] == {"lastFiredAt": None, "firings": {"items": []}}
    assert seen[VIEWER]["automation"]["lastFiredAt"] is not None  # granted on lynx: it reads the firing


async def test_a_cursor_made_up_to_probe_a_hidden_neighbour_is_refused(stack: Stack) -> None:
    """A hidden neighbour is `hidden:1`; a cursor naming anything but a neighbour the caller was shown would
    say, by what comes after it, where the hidden id sorts: an oracle that reads it a character at a time."""
    lynx = await lynx_logs_its_work(stack)
    outsider = await stack.key(OUTSIDER, "member")
    document = (
        "query($a: String) { lineageNeighbours(node: $node, direction: UPSTREAM, first: 1, after: $a) "
        "{ items { node { id } edge { recordedAt } } endCursor } }"
    ).replace("$node", f'"artifact:{lynx.ids["published"]}"')
    first = (await stack.graphql(document, {"a": None}, key=outsider))["data"]["lineageNeighbours"]
    [hidden] = first["items"]
    assert hidden["node"]["id"] == "hidden:1"
    at = datetime.fromisoformat(hidden["edge"]["recordedAt"])
    # A "#" position is a rank; anything else after it would be compared as an id (punctuation-blind collations).
    for guess in ("run:lynx/den/lynx-f", "run:lynx/den/lynx-fit", "run:a", "#run:lynx/den/lynx-f", "#"):
        probe = await stack.graphql(document, {"a": Cursors("lineageNeighbours").encode(at, guess)}, key=outsider)
        assert probe["errors"][0]["extensions"]["code"] == "INVALID_INPUT", probe
    following = await stack.graphql(document, {"a": first["endCursor"]}, key=outsider)  # the cursor it was given
    assert following["data"]["lineageNeighbours"]["items"] == []


async def test_a_file_downloads_for_who_reads_a_version_that_holds_it(stack: Stack) -> None:
    await lynx_logs_its_work(stack)
    assert stack.client is not None
    for who, role, digest, status in [
        (OUTSIDER, "member", digest_of(LYNX_DATA), 404),
        (OUTSIDER, "member", digest_of(PUBLISHED_WEIGHTS), 200),  # published into the shared model
        (VIEWER, "viewer", digest_of(LYNX_DATA), 200),
        (ADMIN, "admin", digest_of(LYNX_DATA), 200),
    ]:
        response = await stack.client.get(f"/blobs/{digest}", headers=await stack.auth(who, role))
        assert response.status == status, (who, digest)
    # A reference's digest is not checked against the store: naming a private file's digest in one is no key.
    reference = {"path": "x", "size": 0, "digest": digest_of(LYNX_DATA), "ref": "s3://anywhere/x"}
    peek = {"entity": "acme", "project": "yard", "name": "peek", "type": "dataset", "files": [reference]}
    outsider = await stack.key(OUTSIDER, "member")
    assert "errors" not in await stack.graphql(LOG_VERSION, {"input": peek}, key=outsider)
    response = await stack.client.get(f"/blobs/{digest_of(LYNX_DATA)}", headers={"Authorization": f"Bearer {outsider}"})
    assert response.status == 404


async def test_whether_the_store_holds_a_private_teams_file_is_theirs_to_know(stack: Stack) -> None:
    await lynx_logs_its_work(stack)
    assert stack.client is not None
    for who, role, content, known in [
        (OUTSIDER, "member", LYNX_DATA, False),
        (OUTSIDER, "member", PUBLISHED_WEIGHTS, True),  # published into the shared model
        (VIEWER, "viewer", LYNX_DATA, True),
    ]:
        digest, headers = digest_of(content), await stack.auth(who, role)
        head = await stack.client.head(f"/blobs/{digest}", headers=headers)
        first_bytes = hashlib.sha256(content).hexdigest()
        candidates = await stack.client.get(f"/blobs/heads/{len(content)}/{first_bytes}", headers=headers)
        assert (head.status == 200, digest in (await candidates.json())["digests"]) == (known, known), (who, content)
        if role != "viewer":  # who uploads
            plan = await stack.client.post(
                "/blobs/uploads", json={"digest": digest, "size": len(content)}, headers=headers
            )
            assert ((await plan.json())["method"] == "stored") == known, (who, content)
    # A digest spelt with a trailing newline is no digest, not a way around the check.
    outsider = await stack.auth(OUTSIDER, "member")
    head = await stack.client.head(f"/blobs/{digest_of(LYNX_DATA)}%0A", headers=outsider)
    plan = await stack.client.post(
        "/blobs/uploads", json={"digest": digest_of(LYNX_DATA) + "\n", "size": len(LYNX_DATA)}, headers=outsider
    )
    assert (head.status in (400, 404), plan.status) == (True, 400), (head.status, await plan.text())
    # Nor is one holding U+0000: looked up before the route checked it, it failed in PostgreSQL with a 500.
    for method in ("GET", "HEAD"):
        nul = await stack.client.request(method, "/blobs/sha256:%00" + "a" * 63, headers=outsider)
        assert nul.status == 400, (method, nul.status)
    nul_plan = await stack.client.post("/blobs/uploads", json={"digest": "sha256:\u0000", "size": 1}, headers=outsider)
    assert nul_plan.status == 400
    # Sending the bytes of a file only lynx's versions hold is answered as a first upload is.
    sent = await stack.client.put(
        f"/blobs/{digest_of(LYNX_DATA)}", data=LYNX_DATA, headers=await stack.auth(OUTSIDER, "member")
    )
    assert (sent.status, (await sent.json())["stored"]) == (201, True)


async def test_a_private_teams_file_goes_into_another_version_only_from_who_sends_its_bytes(stack: Stack) -> None:
    await lynx_logs_its_work(stack)
    assert stack.client is not None
    digest, outsider = digest_of(LYNX_DATA), await stack.key(OUTSIDER, "member")
    headers = {"Authorization": f"Bearer {outsider}"}
    # The outsider learnt the digest and size of lynx's file: listing them is no way to its bytes.
    claim = {"path": "data.csv", "size": len(LYNX_DATA), "digest": digest}
    variables = {"input": {"entity": "acme", "project": "yard", "name": "claim", "type": "dataset", "files": [claim]}}
    refused = await stack.graphql(LOG_VERSION, variables, key=outsider)
    assert f"the blob store has no {digest}: upload each file" in refused["errors"][0]["message"], refused
    other_bytes = await stack.client.put(f"/blobs/{digest}", data=b"lynx raw dat?", headers=headers)
    assert other_bytes.status == 400
    assert "errors" in await stack.graphql(LOG_VERSION, variables, key=outsider)
    assert (await stack.client.get(f"/blobs/{digest}", headers=headers)).status == 404
    # Whoever holds the same bytes (a public dataset both teams use) sends them, and lists them from then on.
    sent = await stack.client.put(f"/blobs/{digest}", data=LYNX_DATA, headers=headers)
    assert (sent.status, (await sent.json())["stored"]) == (201, True)
    assert "errors" not in await stack.graphql(LOG_VERSION, variables, key=outsider)
    assert await (await stack.client.get(f"/blobs/{digest}", headers=headers)).read() == LYNX_DATA


async def test_a_file_uploaded_before_its_version_is_logged_is_its_senders_to_know(stack: Stack) -> None:
    # A private team's big artifact: its files are uploaded one by one, and the version logged once all are in
    # (or never, if the run crashed). Meanwhile an outsider who knows a file's size and first MiB (a fine-tune of
    # a public base model) found its digest, listed it in a version of its own, and read it from there: the
    # store no longer tells it the digest.
    await lynx_logs_its_work(stack)
    assert stack.client is not None
    secret = b"lynx fine-tuned weights " * 60_000
    digest, first_mib = digest_of(secret), hashlib.sha256(secret[: 1024 * 1024]).hexdigest()
    lynx_member = await stack.key("user:lea", "member")
    await ok(stack, GRANT, {"p": "user:lea", "s": "entity:lynx", "r": "MEMBER"})
    await ok(stack, SET_VISIBILITY, {"s": "entity:acme-private", "v": "PRIVATE"})  # lea hides something too
    sender = {"Authorization": f"Bearer {lynx_member}"}
    assert (await stack.client.put(f"/blobs/{digest}", data=secret, headers=sender)).status == 201

    outsider_key = await stack.key(OUTSIDER, "member")
    outsider = {"Authorization": f"Bearer {outsider_key}"}
    assert (await stack.client.head(f"/blobs/{digest}", headers=outsider)).status == 404
    candidates = await stack.client.get(f"/blobs/heads/{len(secret)}/{first_mib}", headers=outsider)
    assert (await candidates.json())["digests"] == []
    plan = await stack.client.post("/blobs/uploads", json={"digest": digest, "size": len(secret)}, headers=outsider)
    assert (await plan.json())["method"] == "api"
    # Its sender sees it stored, and logs the version without sending it again.
    claim = {"path": "w.bin", "size": len(secret), "digest": digest}
    assert (await stack.client.head(f"/blobs/{digest}", headers=sender)).status == 200
    theirs = {**LYNX, "name": "lynx-big", "type": "model", "files": [claim]}
    assert "errors" not in await stack.graphql(LOG_VERSION, {"input": theirs}, key=lynx_member)
    assert (await stack.client.get(f"/blobs/{digest}", headers=outsider)).status == 404


async def test_publishing_another_teams_private_version_needs_viewer_on_it(stack: Stack) -> None:
    lynx = await lynx_logs_its_work(stack)
    outsider = await stack.key(OUTSIDER, "member")
    refused = await stack.graphql(LINK, {"model": "otto-model", "id": lynx.ids["unpublished"]}, key=outsider)
    # As for a read of that id, the version does not exist for an outsider: the refusal names no team.
    assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND" and "lynx" not in refused["errors"][0]["message"]
    # A key limited to the shared model links there (a public team's version) and nowhere else.
    issued = await ok(
        stack,
        'mutation { issueApiKey(input: {principalKind: SERVICE, principalId: "ci", role: MEMBER, '
        'scopes: ["model:shared-model"]}) { key scopes } }',
    )
    ci = issued["issueApiKey"]["key"]
    assert issued["issueApiKey"]["scopes"] == ["model:shared-model"]
    await ok(stack, START_RUN, {"input": {"entity": "acme", "project": "yard", "runId": "acme-train"}})
    acme = await ok(
        stack,
        LOG_VERSION,
        {
            "input": {
                "entity": "acme",
                "project": "yard",
                "name": "acme-model",
                "type": "model",
                "files": [file_entry("w.bin", b"acme weights")],
            }
        },
    )
    version = acme["logArtifactVersion"]["id"]
    linked = await stack.graphql(LINK, {"model": "shared-model", "id": version}, key=ci)
    assert "errors" not in linked, linked
    elsewhere = await stack.graphql(LINK, {"model": "other-model", "id": version}, key=ci)
    assert "limited to model:shared-model" in elsewhere["errors"][0]["message"]


async def test_live_events_about_a_private_team_reach_only_who_may_read_it(stack: Stack) -> None:
    lynx = await lynx_logs_its_work(stack)
    subscriptions = {
        "all": ("subscription { events(fromNow: false) { type stream payload cursor } }", None),
        "linked": ('subscription { versionLinked(registeredModel: "lynx-registry") { type payload } }', 1),
        "alias": ('subscription { aliasMoved(registeredModel: "lynx-registry") { type payload } }', 1),
    }
    seen: dict[str, set[str]] = {}
    sockets = {}
    async with (
        graphql_socket(stack) as admin,
        graphql_socket(stack) as viewer,
        graphql_socket(stack) as outsider,
    ):
        for who, role, socket in [(ADMIN, "admin", admin), (VIEWER, "viewer", viewer), (OUTSIDER, "member", outsider)]:
            assert (await socket.init({"apiKey": await stack.key(who, role)}))["type"] == "connection_ack"
            for name, (query, _) in subscriptions.items():
                await socket.subscribe(name, query)
            sockets[who] = socket
        await log_readers_reach(stack, 9)
        # Lynx moves on in private, then something public happens: the outsider's events stop at the latter.
        await ok(stack, ADD_ALIAS, {"m": "lynx-registry", "id": lynx.ids["unpublished"], "a": "candidate"})
        logged = await ok(
            stack,
            LOG_VERSION,
            {"input": {**LYNX, "name": "lynx-model", "type": "model", "files": [file_entry("w.bin", b"lynx w2")]}},
        )
        await ok(stack, LINK, {"model": "lynx-registry", "id": logged["logArtifactVersion"]["id"]})
        await ok(stack, TAG_MODEL, {"m": "shared-model", "t": "sentinel"})
        for who, socket in sockets.items():
            events = []
            while not events or events[-1]["payload"].get("tag") != "sentinel":
                events += await socket.next_events("all", 1)
            seen[who] = secrets_in(events, lynx)
            if who != OUTSIDER:
                linked, moved = await socket.next_events("linked", 1), await socket.next_events("alias", 1)
                assert linked[0]["payload"]["registered_model"] == "lynx-registry"
                assert moved[0]["payload"]["alias"] == "candidate"
        with pytest.raises(asyncio.TimeoutError):
            await outsider.receive(timeout_s=2)  # nothing of lynx-registry reached the outsider
    assert seen[OUTSIDER] == set()
    assert seen[VIEWER] == seen[ADMIN] == lynx.secrets


async def test_a_socket_opened_before_a_team_went_private_subscribes_to_nothing_of_it_after(stack: Stack) -> None:
    async with graphql_socket(stack) as outsider:
        assert (await outsider.init({"apiKey": await stack.key(OUTSIDER, "member")}))["type"] == "connection_ack"
        lynx = await lynx_logs_its_work(stack)  # lynx goes private after the socket's connection_init
        await ok(stack, TAG_MODEL, {"m": "shared-model", "t": "sentinel"})
        await outsider.subscribe("all", "subscription { events(fromNow: false) { type stream payload cursor } }")
        events: list[dict[str, Any]] = []
        while not events or events[-1]["payload"].get("tag") != "sentinel":
            events += await outsider.next_events("all", 1)
    assert secrets_in(events, lynx) == set()


async def test_a_public_run_lists_the_versions_it_used_that_the_caller_reads_and_pages_over_no_other(
    stack: Stack,
) -> None:
    lynx = await lynx_logs_its_work(stack)
    await ok(stack, START_RUN, {"input": {"entity": "acme", "project": "yard", "runId": "acme-peek"}})
    for version in ("unpublished", "published"):  # an admin reads both teams
        await ok(stack, USE, {"input": {"artifactVersionId": lynx.ids[version], **ACME_PEEK}})
    query = """query($after: String) { run(entity: "acme", project: "yard", runId: "acme-peek") {
      usedArtifacts(first: 1, after: $after) { items { id } endCursor hasNextPage } } }"""
    for who, role, expected in [
        (OUTSIDER, "member", [lynx.ids["published"]]),
        (VIEWER, "viewer", [lynx.ids["unpublished"], lynx.ids["published"]]),
    ]:
        key, after, seen, answers = await stack.key(who, role), None, [], []
        while True:
            answer = await stack.graphql(query, {"after": after}, key=key)
            page = answer["data"]["run"]["usedArtifacts"]
            answers.append(answer)
            seen += [item["id"] for item in page["items"]]
            if not page["hasNextPage"]:
                break
            after = page["endCursor"]
        assert seen == expected, who
        if who == OUTSIDER:
            assert secrets_in(answers, lynx) == set()


async def test_a_published_version_is_named_by_its_number_not_by_latest_which_would_tell_of_newer_ones(
    stack: Stack,
) -> None:
    """`latest` reads false on a private team's published version; its ref `:latest` answered with it while it was
    the newest, and with nothing once the team logged another: an outsider learnt when lynx logged a version."""
    lynx = await lynx_logs_its_work(stack)
    outsider = await stack.key(OUTSIDER, "member")
    version = "query($r: String!) { artifactVersion(ref: $r) { id } }"
    walk = "query($r: String!) { lineage(ref: $r, depth: 1) { nodes { id } } }"
    by_number = await stack.graphql(version, {"r": "lynx/den/lynx-model:v1"}, key=outsider)
    assert by_number["data"]["artifactVersion"] == {"id": lynx.ids["published"]}, by_number
    newest = await stack.graphql(version, {"r": "lynx/den/lynx-model:latest"}, key=outsider)
    assert newest == {"data": {"artifactVersion": None}}, newest
    walked = await stack.graphql(walk, {"r": "lynx/den/lynx-model:latest"}, key=outsider)
    assert [e["extensions"]["code"] for e in walked["errors"]] == ["NOT_FOUND"], walked  # as for no version
    viewer = await stack.graphql(version, {"r": "lynx/den/lynx-model:latest"}, key=await stack.key(VIEWER, "viewer"))
    assert viewer["data"]["artifactVersion"] == {"id": lynx.ids["published"]}, viewer


async def test_a_public_jobs_runs_leave_out_a_private_teams_run_that_names_it(stack: Stack) -> None:
    await lynx_logs_its_work(stack)
    job = await ok(
        stack,
        "mutation($s: GenericScalar) "
        '{ enqueueJob(input: {queue: "cpu", entity: "acme", project: "yard", source: $s}) { id } }',
        {"s": SOURCE},
    )
    job_id = job["enqueueJob"]["id"]
    for entity, run_id in [("acme", "acme-job-run"), ("lynx", "lynx-job-run")]:  # a run's environment is its own
        run = {"entity": entity, "project": "den", "runId": run_id, "environment": {"launch": {"job_id": job_id}}}
        await ok(stack, START_RUN, {"input": run})
    query = "query($id: ID!) { launchJob(id: $id) { runIds } }"
    for who, role, expected in [
        (OUTSIDER, "member", ["acme-job-run"]),
        (VIEWER, "viewer", ["acme-job-run", "lynx-job-run"]),
    ]:
        answer = await stack.graphql(query, {"id": job_id}, key=await stack.key(who, role))
        assert answer["data"]["launchJob"]["runIds"] == expected, who


async def test_an_automation_carries_out_nothing_for_an_event_its_creator_may_not_read(stack: Stack) -> None:
    await lynx_logs_its_work(stack)
    created = await stack.graphql(
        """mutation($a: GenericScalar!) {
          createAutomation(input: {name: "otto-watches", trigger: {event: "run_finished"}, action: $a}) {
            automation { id }
          }
        }""",
        {"a": {"kind": "launch", "queue": "cpu", "entity": "acme", "project": "yard", "source": SOURCE}},
        key=await stack.key(OUTSIDER, "member"),
    )
    automation_id = created["data"]["createAutomation"]["automation"]["id"]
    await ok(stack, FINISH_RUN, {"i": {**LYNX, "runId": "lynx-fit", "state": "FINISHED"}})
    query = "query($id: ID!) { automation(id: $id) { firings { items { status detail jobId } } } }"

    async def closed() -> list[dict[str, Any]]:
        items = (await ok(stack, query, {"id": automation_id}))["automation"]["firings"]["items"]
        return [f for f in items if f["status"] != "PENDING"]

    await wait_until(lambda: _any(closed))
    [firing] = await closed()
    assert firing["status"] == "FAILED" and firing["jobId"] is None
    assert "user:otto may not read entity:lynx" in firing["detail"]


async def _any(found: Any) -> bool:
    return bool(await found())


async def test_an_automation_on_a_public_model_launching_into_a_private_team_shows_its_config_to_that_team_only(
    stack: Stack,
) -> None:
    # Its creation and changes carry the job's config: an outsider read lynx's database password in the audit log.
    await lynx_logs_its_work(stack)
    trigger = {"event": "alias_added", "registered_model": "shared-model"}
    action = {"kind": "launch", "queue": "cpu", "entity": "lynx", "project": "den", "source": SOURCE}
    created = await ok(
        stack,
        """mutation($t: GenericScalar!, $a: GenericScalar!) {
          createAutomation(input: {name: "lynx-eval", trigger: $t, action: $a}) { automation { id } }
        }""",
        {"t": trigger, "a": {**action, "config": {"db_password": "den-db-password"}}},
    )
    await ok(
        stack,
        """mutation($id: ID!, $t: GenericScalar!, $a: GenericScalar!) {
          changeAutomation(input: {id: $id, name: "lynx-eval", trigger: $t, action: $a}) { id }
        }""",
        {
            "id": created["createAutomation"]["automation"]["id"],
            "t": trigger,
            "a": {**action, "config": {"db_password": "den-db-password", "retries": 2}},
        },
    )
    await ok(stack, TAG_MODEL, {"m": "shared-model", "t": "sentinel"})
    carrying = {}
    for who, role in [(VIEWER, "viewer"), (OUTSIDER, "member")]:
        key = await stack.key(who, role)
        audit = await stack.graphql("{ auditLog(first: 500) { items { action details } } }", key=key)
        records = [(r["action"], r["details"]) for r in audit["data"]["auditLog"]["items"]]
        async with graphql_socket(stack) as socket:
            await socket.init({"apiKey": key})
            await socket.subscribe("all", "subscription { events(fromNow: false) { type payload } }")
            events: list[dict[str, Any]] = []
            while not events or events[-1]["payload"].get("tag") != "sentinel":
                events += await socket.next_events("all", 1)
        records += [(e["type"], e["payload"]) for e in events]
        carrying[who] = sorted(kind for kind, details in records if "den-db-password" in json.dumps(details))
    assert carrying == {
        VIEWER: ["automations.automation_changed"] * 2 + ["automations.automation_created"] * 2,  # audit and live
        OUTSIDER: [],
    }


async def test_a_key_limited_to_a_private_team_is_issued_out_of_sight_of_those_who_cannot_read_it(
    stack: Stack,
) -> None:
    await ok(stack, SET_VISIBILITY, {"s": "entity:lynx", "v": "PRIVATE"})
    outsider = await stack.key(OUTSIDER, "member")
    issue = (
        'mutation { issueApiKey(input: {principalKind: USER, principalId: "otto", role: MEMBER, scopes: [%s]}) { id } }'
    )
    async with graphql_socket(stack) as socket:
        await socket.init({"apiKey": outsider})
        await socket.subscribe("keys", 'subscription { events(types: ["identity.api_key_issued"]) { payload } }')
        await log_readers_reach(stack, 1)
        # Issued to the outsider, whose own keys it reads, but one is limited to a team it may not read.
        await ok(stack, issue % '"entity:lynx"')
        public = (await ok(stack, issue % '"model:shared-model"'))["issueApiKey"]["id"]
        live = [event["payload"]["key_id"] for event in await socket.next_events("keys", 1)]
    audit = '{ auditLog(action: "identity.api_key_issued") { items { details } } }'
    audited = await stack.graphql(audit, key=outsider)
    seen = [item["details"]["key_id"] for item in audited["data"]["auditLog"]["items"]]
    assert live == [public] and public in seen and "lynx" not in json.dumps(audited)  # the private team's is not
    everything = await ok(stack, audit)
    assert any(item["details"]["scopes"] == ["entity:lynx"] for item in everything["auditLog"]["items"])
