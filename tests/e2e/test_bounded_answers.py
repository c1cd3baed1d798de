"""What one query may make the server send back is bounded, whatever the data stored and however the query asks
for it: the cost limit counts a stored JSON value or a file list as one field, whatever its size.

These limits do not depend on where the event log lives: the tests run on the Postgres log only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import uuid
from datetime import UTC, datetime

import pytest
from support.stack import Stack
from support.story import LOG_VERSION, START_RUN, USE, digest_of, version_input

from modelreg.graphql.answer_budget import MAX_ANSWER_BYTES, MAX_FILES_LISTED, MAX_LINEAGE_PER_REQUEST
from modelreg.graphql.pages import Cursors
from modelreg.services.http.unread_answers import UNREAD_ANSWERS
from modelreg.services.settings import Settings

pytestmark = pytest.mark.parametrize("log_kind", ["postgres"])

BIG_RUN = {"entity": "acme", "project": "nature", "runId": "big-config"}
RUN = 'run(entity: "acme", project: "nature", runId: "big-config")'


async def test_aliases_of_a_big_stored_config_cannot_make_an_answer_of_gigabytes(stack: Stack) -> None:
    """A member's run with a 4 MiB config (an event may be 8 MiB): 100 aliases of it made an answer of 400 MiB, held
    in memory and encoded at once. The answer's stored values are counted together."""
    config = {"notes": "x" * (4 * 1024**2)}
    started = await stack.graphql(START_RUN, {"input": {**BIG_RUN, "config": config}})
    assert "errors" not in started, started.get("errors")
    reader = await stack.key("user:vera", "viewer")

    one = await stack.graphql(f"{{ {RUN} {{ config }} }}", key=reader)
    assert one["data"]["run"]["config"] == config  # one of them, or a few, as ever

    many = MAX_ANSWER_BYTES // (4 * 1024**2) + 1
    aliases = " ".join(f"a{n}: {RUN} {{ config }}" for n in range(many))
    refused = await stack.graphql(f"{{ {aliases} }}", key=reader)
    messages = {e["message"] for e in refused.get("errors", [])}
    assert messages, "the answer carried every alias"
    assert {e["extensions"]["code"] for e in refused["errors"]} == {"INVALID_INPUT"}
    assert any("would carry over 128 MiB of stored JSON values" in m and "Run.config" in m for m in messages), messages


async def test_aliases_of_a_version_of_many_files_cannot_list_them_again_and_again(stack: Stack) -> None:
    """References are recorded, not uploaded: one command logs tens of thousands of them, and every alias of the
    version's `files` listed them all again, an object resolved field by field each (60 aliases: 70 to 90 s of the
    event loop, every other request waiting)."""
    references = [
        {"path": f"shards/{n:06}.bin", "size": n, "digest": digest_of(f"{n}".encode()), "ref": f"s3://b/{n:06}.bin"}
        for n in range(40_000)
    ]
    logged = await stack.graphql(LOG_VERSION, {"input": {**version_input("refs", b""), "files": references}})
    assert "errors" not in logged, logged.get("errors")
    version = logged["data"]["logArtifactVersion"]["id"]
    reader = await stack.key("user:vera", "viewer")
    fields = f'artifactVersion(id: "{version}") {{ files {{ path size digest ref }} }}'

    one = await stack.graphql(f"{{ {fields} }}", key=reader)
    assert len(one["data"]["artifactVersion"]["files"]) == 40_000

    aliases = " ".join(f"a{n}: {fields}" for n in range(MAX_FILES_LISTED // 40_000 + 1))
    refused = await stack.graphql(f"{{ {aliases} }}", key=reader)
    messages = {e["message"] for e in refused.get("errors", [])}
    assert messages, "every alias listed the files again"
    assert {e["extensions"]["code"] for e in refused["errors"]} == {"INVALID_INPUT"}
    assert any(f"lists over {MAX_FILES_LISTED:,} files of artifact versions" in m for m in messages), messages


async def _every_run_uses_every_version(stack: Stack, versions: int) -> None:
    """r0 logs `versions` versions; r1 ... rN each use all of them: a walk of depth 2 from r0 draws 2N+1 nodes and
    N + N*N edges, though the cost limit prices it by its fanOut (N)."""
    runs = [f"r{n}" for n in range(versions + 1)]
    for run_id in runs:
        await stack.graphql(START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": run_id}})
    logged = []
    for n in range(versions):
        reference = {"path": "data.bin", "size": n, "digest": digest_of(f"{n}".encode()), "ref": f"s3://b/{n}"}
        answer = await stack.graphql(
            LOG_VERSION, {"input": {**version_input(f"shard-{n}", b""), "files": [reference], "runId": "r0"}}
        )
        logged.append(answer["data"]["logArtifactVersion"]["id"])
    uses = [
        {"artifactVersionId": version, "entity": "acme", "project": "nature", "runId": run_id}
        for run_id in runs[1:]
        for version in logged
    ]
    for start in range(0, len(uses), 20):
        answers = await asyncio.gather(*(stack.graphql(USE, {"input": use}) for use in uses[start : start + 20]))
        assert not [a for a in answers if "errors" in a], answers


async def test_aliases_of_a_lineage_walk_draw_a_bounded_number_of_nodes_and_edges(stack: Stack) -> None:
    await _every_run_uses_every_version(stack, 30)
    reader = await stack.key("user:vera", "viewer")
    walk = (
        'lineage(ref: "run:acme/nature/r0", direction: DOWNSTREAM, depth: 2, fanOut: 30) '
        "{ nodes { id } edges { source } }"
    )

    one = (await stack.graphql(f"{{ {walk} }}", key=reader))["data"]["lineage"]
    assert (len(one["nodes"]), len(one["edges"])) == (61, 930)  # priced as 30 of each

    many = MAX_LINEAGE_PER_REQUEST // (61 + 930) + 1
    aliases = " ".join(f"a{n}: {walk}" for n in range(many))
    refused = await stack.graphql(f"{{ {aliases} }}", key=reader)
    errors = refused.get("errors", [])
    assert errors, "every alias drew its walk"
    assert {e["extensions"]["code"] for e in errors} == {"INVALID_INPUT"}
    assert "draws over" in errors[0]["message"] and "lower depth or fanOut" in errors[0]["message"], errors[0]


@pytest.mark.parametrize(
    ("document", "listed"),
    [
        ("query($a: String) { launchJobs(state: QUEUED, after: $a) { items { id } } }", "launchJobs(state: QUEUED)"),
        ('query($a: String) { waitingJobs(queues: ["cpu"], after: $a) { items { id } } }', "waitingJobs"),
    ],
)
@pytest.mark.parametrize("priority", [2**31, -(2**31), 10**30])
async def test_a_job_cursor_with_a_number_no_column_holds_is_refused_as_one_this_api_did_not_return(
    stack: Stack, document: str, listed: str, priority: int
) -> None:
    """The number parsed, then failed the query: an INTERNAL error, and a traceback in the log for each."""
    cursor = Cursors(listed).encode(priority, datetime(2026, 1, 1, tzinfo=UTC), uuid.UUID(int=1))
    answer = await stack.graphql(document, {"a": cursor})
    error = answer["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT", answer
    assert "is not one this API returned: pass a page's endCursor" in error["message"]


async def test_a_caller_that_never_reads_a_big_answer_is_cut_off_and_the_answer_let_go(settings: Settings) -> None:
    """An answer is written after the handler returned, and aiohttp waited for the caller to take it with no
    deadline: three connections asking for 90 MiB each and reading nothing held 550 MiB for as long as they stayed.
    While such answers fill the bound, a mutation is refused before it is made: its answer would have to go."""
    bounded = dataclasses.replace(settings, body_read_timeout_s=0.5, max_unread_answer_bytes=4 * 1024**2)
    async with Stack(bounded) as stack:
        assert stack.client is not None
        unread = stack.client.server.app[UNREAD_ANSWERS]
        config = {"notes": "x" * (3 * 1024**2)}
        assert "errors" not in await stack.graphql(START_RUN, {"input": {**BIG_RUN, "config": config}})
        body = json.dumps({"query": "{ " + " ".join(f"a{n}: {RUN} {{ config }}" for n in range(4)) + " }"}).encode()
        caller = socket.socket()
        caller.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        caller.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(caller, (stack.client.host, stack.client.port))
        auth = (await stack.auth())["Authorization"]
        caller.sendall(
            f"POST /graphql HTTP/1.1\r\nHost: modelreg\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        # And reads nothing. At the rule's 64 KiB/s, the 2-3 MiB the sockets hold count as taken for about 45 s.
        for _ in range(600):
            if unread.answers:
                break
            await asyncio.sleep(0.1)
        other = {"entity": "acme", "project": "nature", "runId": "made-while-full"}
        answer = await stack.client.post(
            "/graphql", json={"query": START_RUN, "variables": {"input": other}}, headers=await stack.auth()
        )
        assert answer.status == 503 and answer.headers["Retry-After"] == "1"
        refused = await answer.json()
        assert refused["errors"][0]["extensions"] == {"code": "UNAVAILABLE", "retriable": True}, refused
        assert "--max-unread-answer-bytes" in refused["errors"][0]["message"]
        made = await stack.graphql('{ run(entity: "acme", project: "nature", runId: "made-while-full") { runId } }')
        assert made["data"]["run"] is None  # refused before it was made: a retry makes it once

        unread.slowest_bytes_per_s = 8 * 1024**2  # a faster rule, for the cut to come now
        for _ in range(600):
            if unread.cut_off:
                break
            await asyncio.sleep(0.1)
        received = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while chunk := await asyncio.wait_for(loop.sock_recv(caller, 1 << 20), 10):
                received += chunk
        caller.close()
        assert received.startswith(b"HTTP/1.1 200 ") and len(received) < 4 * len(config["notes"])  # the rest dropped
        assert (unread.cut_off, unread.waiting) == (1, 0)
        figures = await (await stack.client.get("/metrics", headers=await stack.auth())).text()
        assert (
            "modelreg_http_answers_cut_off_total 1.0" in figures and "modelreg_http_unread_answer_bytes 0.0" in figures
        )
        assert "errors" not in await stack.graphql(START_RUN, {"input": other})  # room again
