"""A NUL or a lone surrogate cannot freeze a model (issue 11): refused at the door, naming the field, and
nothing reaches the log; such text already on a log (from before) is stored with U+FFFD and the stream goes on."""

from __future__ import annotations

from typing import Any

from support.log_contents import all_records
from support.stack import Stack
from support.story import LINK, LOG_VERSION, START_RUN, version_input

from modelreg.events.codec import encode
from modelreg.events.envelope import Actor, Envelope, Event
from modelreg.events.log import LogPosition, LogRecord
from modelreg.events.registry import ModelCardChanged, registered_model_stream
from modelreg.events.runs import RunStarted, run_stream
from modelreg.services.http.api import LOG

MODEL = "nature-classification"
CARD = (
    "mutation($m: String!, $d: String!) { updateModelCard(input: {registeredModel: $m, description: $d}) "
    "{ description } }"
)


async def linked_model(stack: Stack) -> str:
    logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"weights")})
    version_id = logged["data"]["logArtifactVersion"]["id"]
    await stack.graphql(LINK, {"model": MODEL, "id": version_id})
    return version_id


def the_error(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer.get("data") is None or not any(answer["data"].values()), answer
    (error,) = answer["errors"]
    return error


async def test_a_nul_in_a_model_card_is_refused_naming_the_field_and_nothing_reaches_the_log(stack: Stack) -> None:
    await linked_model(stack)
    member = await stack.key("user:bob", "member")
    before = len(await all_records(stack.client.server.app[LOG]))

    for bad in ("a\x00b", "a\ud800b"):
        error = the_error(await stack.graphql(CARD, {"m": MODEL, "d": bad}, key=member))
        assert error["extensions"]["code"] == "INVALID_INPUT"
        assert error["message"].startswith("updateModelCard: input.description: U+")

    records = await all_records(stack.client.server.app[LOG])
    assert len(records) == before
    assert not any(b"\\u0000" in r.value or b"\\ud800" in r.value for r in records)


async def test_a_nul_in_a_search_is_invalid_input_not_a_server_error(stack: Stack) -> None:
    for query in (
        '{ registeredModels(search: "a\\u0000") { items { name } } }',
        "query($s: String) { registeredModels(search: $s) { items { name } } }",
        "query($a: String) { auditLog(actor: $a) { items { action } } }",
    ):
        error = the_error(await stack.graphql(query, {"s": "a\x00", "a": "user:\ud800"}))
        assert error["extensions"]["code"] == "INVALID_INPUT", error
        assert "cannot be stored" in error["message"]


def raw(payload: Event, stream: str, placeholder: str, written: bytes) -> LogRecord:
    """An event as an older modelreg wrote it, before commands refused such text."""
    event = Envelope.new(payload, stream=stream, actor=Actor(kind="user", id="alice"))
    value = encode(event).replace(f'"{placeholder}"'.encode(), written)
    headers = (("type", event.type.encode()), ("version", str(event.version).encode()))
    return LogRecord(LogPosition("", 0, 0), stream.encode(), value, headers)


async def test_text_written_before_the_rule_is_stored_with_a_replacement_character_and_the_stream_goes_on(
    stack: Stack,
) -> None:
    version_id = await linked_model(stack)
    await stack.graphql(START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": "r1"}})
    card = ModelCardChanged(registered_model=MODEL, description="CARD")
    run = RunStarted(entity="acme", project="nature", run_id="r2", config={"lr": "CONFIG"})
    await stack.client.server.app[LOG].append_raw(
        [
            raw(card, registered_model_stream(MODEL), "CARD", b'"a\\u0000b \\ud800"'),
            raw(run, run_stream("acme", "nature", "r2"), "CONFIG", b'"\\udfff", "k\\u0000": 1'),
        ]
    )

    # A later action on the same model shows at once: its stream is not parked behind the old text.
    moved = await stack.graphql(
        "mutation($m: String!, $v: ID!) { addAlias(input: {registeredModel: $m, artifactVersionId: $v, "
        'alias: "production"}) '
        "{ aliases } }",
        {"m": MODEL, "v": version_id},
    )
    assert moved == {"data": {"addAlias": {"aliases": ["production"]}}}
    await stack.projected()
    shown = await stack.graphql(
        '{ registeredModel(name: "nature-classification") { description history { items { action details } } } '
        'run(entity: "acme", project: "nature", runId: "r2") { config } }'
    )
    model = shown["data"]["registeredModel"]
    assert model["description"] == "a\ufffdb \ufffd"
    assert any((h["details"] or {}).get("description") == "a\ufffdb \ufffd" for h in model["history"]["items"]), model
    assert shown["data"]["run"]["config"] == {"lr": "\ufffd", "k\ufffd": 1}

    health = await (await stack.client.get("/healthz", headers=await stack.auth())).json()
    assert health["status"] == "ok", health
    assert all(p["parked_streams"] == 0 and p["dead_letters"] == 0 for p in health["projections"].values())
