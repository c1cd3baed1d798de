"""Work is bounded before it is done, and a bad request gets a 400 saying what to send instead.

These limits do not depend on where the event log lives: the tests run on the Postgres log only.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.hostile_documents import cyclic_fragments, many_aliases
from support.stack import Stack
from support.story import LOG_VERSION, START_RUN, digest_of, file_entry, version_input

import modelreg
from modelreg.errors import InvalidInput
from modelreg.graphql.pages import Cursors
from modelreg.graphql.variables import MAX_VALUES
from modelreg.services.http import api
from modelreg.services.settings import Settings

pytestmark = pytest.mark.parametrize("log_kind", ["postgres"])


async def _post(stack: Stack, body: bytes | Any, **headers: str) -> tuple[int, str]:
    assert stack.client is not None
    response = await stack.client.post(
        "/graphql", data=body, headers={"Content-Type": "application/json", **(await stack.auth()), **headers}
    )
    return response.status, await response.text()


def _message(text: str) -> str:
    return json.loads(text)["errors"][0]["message"]


async def _chunks(total: int, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, total, piece):
        yield b" " * min(piece, total - start)


async def test_a_graphql_body_over_the_limit_is_refused_with_413_naming_the_limit(settings: Settings) -> None:
    async with Stack(dataclasses.replace(settings, max_body_bytes=64 * 1024)) as stack:
        announced = json.dumps({"query": "{ viewer { id } }", "variables": {"pad": "x" * 100_000}}).encode()
        status, text = await _post(stack, announced)
        assert status == 413
        assert "64 KiB" in _message(text) and "--max-body-bytes" in _message(text)
        assert json.loads(text)["errors"][0]["extensions"]["code"] == "INVALID_INPUT"

        status, text = await _post(stack, _chunks(200_000))  # sent in chunks, with no Content-Length: counted
        assert status == 413 and "64 KiB" in _message(text)

        assert (await stack.graphql("{ viewer { id } }"))["data"]["viewer"]["id"] == "user:alice"  # still serving


@pytest.mark.parametrize(
    "body, says",
    [
        (b"[]", "the body is an array, not an object (batches of operations are not supported"),
        (b'"{ viewer { id } }"', "the body is a string, not an object"),
        (b"42", "the body is a number, not an object"),
        (b"null", "the body is null, not an object"),
        (b'{"query": "{ viewer { id } }"\xff}', "the body is not UTF-8 text (byte 29 cannot be decoded)"),
        (b'{"query": ', "the body is not JSON (Expecting value at line 1 column 11)"),
        (b'{"variables": {}}', 'the body has no "query"'),
        (b'{"query": 42}', '"query" must be a string'),
        (b'{"query": "{ viewer { id } }", "variables": [1]}', "Variables must be a JSON object"),
        (b'{"query": "{ viewer { id } }", "variables": {"n": ' + b"9" * 5000 + b"}}", "JSON this server does not read"),
        (b"[" * 100_000 + b"]" * 100_000, "the body is JSON this server does not read"),
        (  # read by Python's json, stored as null in a config, and an INTERNAL error in a filter before
            b'{"query": "{ viewer { id } }", "variables": {"c": {"lr": NaN}}}',
            "the body holds NaN, which JSON does not have (Python's json.dumps writes it): send a string",
        ),
        (  # a job's config 600 deep: an INTERNAL error and a 3,000-line traceback before
            b'{"query": "{ viewer { id } }", "variables": {"c": ' + b'{"a": ' * 600 + b"1" + b"}" * 602,
            "the body nests objects and arrays over 100 deep: flatten the value",
        ),
    ],
)
async def test_a_bad_body_gets_400_saying_what_to_send(stack: Stack, body: bytes, says: str) -> None:
    status, text = await _post(stack, body)
    assert status == 400, text
    assert says in _message(text)


async def test_a_document_over_the_size_or_token_limit_is_refused_before_it_is_validated(stack: Stack) -> None:
    refused = await stack.graphql(many_aliases(60_000), key=await stack.key("user:vera", "viewer"))
    assert refused["data"] is None
    assert "characters, over this server's limit of 100,000: split it" in refused["errors"][0]["message"]
    refused = await stack.graphql(many_aliases(4_000), key=await stack.key("user:vera", "viewer"))
    assert "tokens, this server's limit: split it into several requests" in refused["errors"][0]["message"]


async def test_a_fragment_cycle_and_an_unknown_fragment_are_refused_by_validation(stack: Stack) -> None:
    cycle = await stack.graphql(cyclic_fragments())
    assert "Cannot spread fragment 'A' within itself via 'B'." in [e["message"] for e in cycle["errors"]]
    unknown = await stack.graphql("{ viewer { ...Nowhere } }")
    assert [e["message"] for e in unknown["errors"]] == ["Unknown fragment 'Nowhere'."]


async def test_healthz_answers_while_hostile_documents_arrive(stack: Stack) -> None:
    """The figure (p99 under load) is bench/hostile_documents.py's; here: it answers, and says ok."""
    assert stack.client is not None
    key = await stack.key("user:vera", "viewer")
    hostile = [asyncio.create_task(stack.graphql(many_aliases(5_000), key=key)) for _ in range(4)]
    health = await stack.client.get("/healthz")
    assert health.status == 200 and (await health.json())["status"] == "ok"
    for answer in await asyncio.gather(*hostile):
        assert answer["errors"]


YEAR_ONE = "0001-01-01T00:00:00+14:00"  # no time in UTC: 31 December of year 0
YEAR_ONE_CURSOR = Cursors("auditLog").encode(YEAR_ONE, "0190d4a0-0000-7000-8000-000000000000")
RUNS_FILTERED = 'query($f: GenericScalar) { runs(entity: "acme", project: "nature", filters: $f) { totalCount } }'


@pytest.mark.parametrize(
    "query, variables",
    [
        (f'{{ auditLog(first: 5, since: "{YEAR_ONE}") {{ hasNextPage }} }}', None),
        ('{ auditLog(first: 5, until: "9999-12-31T23:59:59-14:00") { hasNextPage } }', None),
        (f'{{ auditLog(first: 5, after: "{YEAR_ONE_CURSOR}") {{ hasNextPage }} }}', None),
        (RUNS_FILTERED, {"f": {"createdAt": {"$gt": YEAR_ONE}}}),
    ],
)
async def test_a_time_utc_cannot_hold_is_the_callers_mistake_not_an_internal_error(
    stack: Stack, query: str, variables: dict[str, Any] | None
) -> None:
    # The query failed inside the driver: an INTERNAL error, which clients retry, and a traceback in the log.
    answer = await stack.graphql(query, variables)
    assert answer["errors"][0]["extensions"]["code"] == "INVALID_INPUT", answer


@pytest.mark.parametrize(
    "cursor",
    [
        Cursors("artifactVersions").encode(99999999999999999999),
        Cursors("artifactVersions").encode(-1),
        Cursors("artifactVersions").encode("9" * 5000),
        "not-base64-at-all!",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_a_cursor_this_api_did_not_return_is_refused_saying_what_to_pass(stack: Stack, cursor: str) -> None:
    query = """query($after: String) {
        artifactVersions(entity: "acme", project: "nature", name: "m", after: $after) { items { id } }
    }"""
    answer = await stack.graphql(query, {"after": cursor})
    error = answer["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert "is not one this API returned: pass a page's endCursor" in error["message"]


async def test_an_artifact_file_over_the_upload_limit_is_refused_with_413_and_not_stored(settings: Settings) -> None:
    async with Stack(dataclasses.replace(settings, max_blob_bytes=100_000)) as stack:
        assert stack.client is not None
        auth = await stack.auth()
        content = b"w" * 150_000
        blob = f"/blobs/{digest_of(content)}"
        announced = await stack.client.put(blob, data=content, headers=auth)
        assert announced.status == 413
        assert "97.7 KiB for one artifact file" in await announced.text()

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield content[:50_001]

        for method, path in [("PUT", f"/blobs/{digest_of(content[:50_001] * 3)}"), ("POST", "/blobs")]:
            counted = await stack.client.request(method, path, data=chunked(), headers=auth)
            assert counted.status == 413, await counted.text()
            assert "--max-blob-bytes" in await counted.text()
        assert (await stack.client.head(blob, headers=auth)).status == 404
        assert list((settings.blob_dir / "tmp").iterdir()) == []  # type: ignore[operator]

        small = await stack.client.put(f"/blobs/{digest_of(b'small')}", data=b"small", headers=auth)
        assert small.status == 201


async def test_a_manifest_naming_a_file_never_uploaded_is_refused_naming_the_path(stack: Stack) -> None:
    never_uploaded = {"path": "weights/never.bin", "size": 5, "digest": digest_of(b"never uploaded")}
    version = version_input("classifier", b"stored weights")
    version["files"] = [*version["files"], never_uploaded]  # type: ignore[list-item]
    refused = await stack.graphql(LOG_VERSION, {"input": version})
    error = refused["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert f"manifest file 'weights/never.bin': the blob store has no {never_uploaded['digest']}" in error["message"]
    latest = await stack.graphql('{ artifactVersion(ref: "acme/nature/classifier:latest") { id } }')
    assert latest["data"] == {"artifactVersion": None}


async def test_a_manifest_declaring_another_size_than_the_stored_file_is_refused_naming_the_path(stack: Stack) -> None:
    lying = file_entry("weights.bin", b"twelve bytes")
    lying["size"] = 1_000_000
    version = {**version_input("classifier", b""), "files": [lying]}
    refused = await stack.graphql(LOG_VERSION, {"input": version})
    error = refused["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert "manifest file 'weights.bin' declares 1000000 bytes, but its stored blob" in error["message"]
    assert "has 12: declare the size of the file that was uploaded" in error["message"]


async def test_a_manifest_of_thousands_of_stored_files_is_checked_and_logged(stack: Stack) -> None:
    files = [file_entry(f"shards/{n:05}.jsonl", f"row {n}\n".encode()) for n in range(3000)]
    reference = {"path": "far.bin", "size": 3, "digest": digest_of(b"not here"), "ref": "s3://bucket/far.bin"}
    logged = await stack.graphql(LOG_VERSION, {"input": {**version_input("shards", b""), "files": [*files, reference]}})
    assert "errors" not in logged, logged["errors"]
    assert len(logged["data"]["logArtifactVersion"]["files"]) == 3001


WAITING_JOBS = "query($queues: [String!]!) { waitingJobs(queues: $queues, first: 1) { items { id } } }"
AUDIT_LOG = "query($actions: [String!]) { auditLog(actions: $actions, first: 1) { items { action } } }"


async def test_a_read_key_sending_hundreds_of_thousands_of_values_is_refused_before_they_are_coerced(
    stack: Stack,
) -> None:
    """graphql-core coerced a variable value by value on the event loop: a viewer's 700,000 queue names (7.6 MB,
    under the body limit) held /livez, every other caller and the websockets for 6 s."""
    viewer = await stack.key("user:vera", "viewer")
    for query, name in ((WAITING_JOBS, "queues"), (AUDIT_LOG, "actions")):
        refused = await stack.graphql(query, {name: [f"q{n}" for n in range(700_000)]}, key=viewer)
        assert refused["data"] is None
        (error,) = refused["errors"]
        assert f"the variables hold over {MAX_VALUES:,} values" in error["message"], error["message"]
        assert error["extensions"] == {"code": "INVALID_INPUT", "retriable": False}

    # Many, but within the limit: coerced off the event loop, and answered as before.
    many = await stack.graphql(WAITING_JOBS, {"queues": [f"q{n}" for n in range(20_000)]}, key=viewer)
    assert many == {"data": {"waitingJobs": {"items": []}}}
    typo = await stack.graphql(AUDIT_LOG, {"actions": [*(["registry.alias_added"] * 5_000), 7]}, key=viewer)
    assert [e["message"] for e in typo["errors"]] == [
        "Variable '$actions' got invalid value 7 at 'actions[5000]'; String cannot represent a non string value: 7"
    ]


async def test_the_training_client_says_when_a_file_is_over_the_servers_upload_limit(
    settings: Settings, tmp_path: Path
) -> None:
    async with Stack(dataclasses.replace(settings, max_blob_bytes=100_000)) as stack:
        assert stack.client is not None
        url = str(stack.client.make_url("/"))
        weights = tmp_path / "weights.bin"
        weights.write_bytes(b"w" * 300_000)

        def log_it() -> None:
            with modelreg.init(project="nature", entity="acme", url=url) as run:
                model = modelreg.Artifact("classifier", "model")
                model.add_file(weights)
                run.log_artifact(model)

        with pytest.raises(InvalidInput) as refused:
            await asyncio.to_thread(log_it)
        assert "over this server's limit of 97.7 KiB for one artifact file" in refused.value.message


async def test_a_runs_search_that_runs_too_long_is_stopped_saying_what_to_narrow(stack: Stack) -> None:
    from modelreg.services.http.api import APP

    name = "".join(chr(97 + (n * 7) % 26) for n in range(200))
    await stack.graphql(START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": "r1", "name": name}})
    assert stack.client is not None
    stack.client.server.app[APP].reads.search_timeout_s = 1e-6  # the server's own is 15 s; no search is this fast
    search = 'query($f: GenericScalar) { runs(entity: "acme", project: "nature", filters: $f) { items { runId } } }'
    answer = await stack.graphql(search, {"f": {"display_name": {"$regex": "^(a|b)*c"}}})
    assert answer["errors"][0]["extensions"]["code"] == "INVALID_INPUT", answer
    assert "ran over 1e-06 s and was stopped" in answer["errors"][0]["message"]
    health = await stack.client.get("/healthz")
    assert health.status == 200  # the cancelled query gave its connection back

    # A back-reference can take PostgreSQL minutes on a 200-character name: refused before any query.
    backreferences = {"display_name": {"$regex": "^(.*)(.*)(.*)(.*)(.*)\\5\\4\\3\\2\\1x"}}
    answer = await stack.graphql(search, {"f": backreferences})
    assert "refers back to a group" in answer["errors"][0]["message"], answer


async def test_a_request_reads_a_bounded_number_of_metric_points_whatever_its_aliases(stack: Stack) -> None:
    """Aliases multiply a field's own limit; the points of every field of a request are counted together."""
    await stack.graphql(START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": "long"}})
    log = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"
    for key in ("loss", "acc"):
        series = [{"key": key, "firstStep": 0, "values": [0.5] * 60_000}]
        await stack.graphql(log, {"i": {"entity": "acme", "project": "nature", "runId": "long", "series": series}})
    run = 'run(entity: "acme", project: "nature", runId: "long")'

    listed = f'{run} {{ metrics(key: "loss") {{ step }} }}'
    one = await stack.graphql(f"{{ {listed} }}")
    assert len(one["data"]["run"]["metrics"]) == 60_000
    two = await stack.graphql(f"{{ a: {listed} b: {listed} }}")
    assert "over 1,000,000 metric points across its fields" in two["errors"][0]["message"], two["errors"]
    # 10,000 samples of each of its two curves: 50 such fields are the most one request reads.
    histories = " ".join(f"h{n}: {run} {{ history(samples: 10000) {{ key }} }}" for n in range(51))
    refused = await stack.graphql(f"{{ {histories} }}")
    assert "over 1,000,000 metric points" in refused["errors"][0]["message"], refused.get("errors")
    histories = " ".join(f"h{n}: {run} {{ history(samples: 10000) {{ key }} }}" for n in range(50))
    assert "errors" not in await stack.graphql(f"{{ {histories} }}")


async def test_a_connection_whose_headers_never_end_is_closed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A header line sent and never finished: the connection was held an hour, a file descriptor each, and a few
    # thousand of them left the process unable to accept anyone else.
    monkeypatch.setattr(api, "IDLE_CONNECTION_TIMEOUT_S", 1.0)
    async with Stack(settings) as stack:
        assert stack.client is not None
        reader, writer = await asyncio.open_connection(stack.client.host, stack.client.port)
        writer.write(b"GET /livez HTTP/1.1\r\nHost: modelreg\r\nX-Never-Ends: a")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, with nothing sent
        writer.close()
        assert (await stack.client.get("/livez")).status == 200  # serving everyone else


async def test_a_graphql_body_sent_a_byte_at_a_time_is_refused_with_408_and_the_connection_closed(
    settings: Settings,
) -> None:
    # The body had no deadline: a caller dripping a byte a second held a connection and a handler for ever.
    async with Stack(dataclasses.replace(settings, body_read_timeout_s=1.0)) as stack:
        assert stack.client is not None
        body = json.dumps({"query": "{ viewer { id } }"}).encode()
        reader, writer = await asyncio.open_connection(stack.client.host, stack.client.port)
        auth = (await stack.auth())["Authorization"]
        writer.write(
            f"POST /graphql HTTP/1.1\r\nHost: modelreg\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:5]
        )
        await writer.drain()  # and the rest never comes
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 408 ")
        length = next(int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        error = json.loads(await reader.readexactly(length))["errors"][0]
        assert "must arrive within 1 s, plus 1 s for every 64 KiB" in error["message"]
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed: the rest of the body is never read
        writer.close()
        assert (await stack.graphql("{ viewer { id } }"))["data"]["viewer"]["id"] == "user:alice"  # serving others


async def test_a_graphql_post_without_a_key_is_refused_before_its_body_is_read(stack: Stack) -> None:
    # Its body was read and parsed first, on the event loop: 8 MiB of `[{},{},...]` took 2 s and 190 MiB, from anyone.
    assert stack.client is not None
    reader, writer = await asyncio.open_connection(stack.client.host, stack.client.port)
    announced = 8 * 1024**2 - 1024
    writer.write(
        f"POST /graphql HTTP/1.1\r\nHost: modelreg\r\nContent-Type: application/json\r\nContent-Length: {announced}"
        "\r\n\r\n[{},".encode()
    )
    await writer.drain()  # the rest of the body is never sent: an answer now means it was not waited for
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 401 ")
    length = next(int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    assert "Authorization: Bearer" in (await reader.readexactly(length)).decode()
    writer.close()
