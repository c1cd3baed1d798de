"""Text PostgreSQL cannot store (U+0000, lone surrogates) is refused at the door, naming the field; events
already on a log with such text decode with U+FFFD in its place, the same every time."""

from __future__ import annotations

from uuid import uuid4

import orjson
import pytest
from pydantic import ValidationError

from modelreg.errors import InvalidInput, _problem
from modelreg.events.codec import decode, encode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.registry import ModelCardChanged
from modelreg.events.storable_text import UnstorableText, refuse_unstorable
from modelreg.graphql.inputs import parse_command
from modelreg.services.commands.commands import (
    Command,
    IssueApiKey,
    LogArtifactVersion,
    StartRun,
    TagModel,
    UpdateModelCard,
)
from modelreg.services.commands.launch_commands import CaptureJobOutput, CreateAutomation

DIGEST = "sha256:" + "ab" * 32
RUN = {"entity": "acme", "project": "nature", "run_id": "r1"}


def refusal(model: type[Command], fields: dict) -> str:
    with pytest.raises(InvalidInput) as refused:
        parse_command(model, fields)
    assert refused.value.code == "INVALID_INPUT"
    return refused.value.message


def test_a_nul_in_a_model_card_is_refused_naming_the_field() -> None:
    message = refusal(UpdateModelCard, {"registered_model": "m", "description": "a\x00b"})
    assert message == "invalid UpdateModelCard: description: U+0000 cannot be stored; remove it"


def test_a_lone_surrogate_in_a_key_label_is_refused_naming_the_field() -> None:
    message = refusal(IssueApiKey, {"principal_kind": "user", "principal_id": "bob", "label": "x\ud800"})
    assert "label: U+D800, a lone surrogate, cannot be stored" in message


@pytest.mark.parametrize(
    "config, where",
    [
        ({"lr": "a\x00"}, "(in config.lr)"),
        ({"layers": [1, {"name": "\udfff"}]}, "(in config.layers.1.name)"),
        ({"layers": [{"bad\x00key": 1}]}, "(in a key of config.layers.0: 'bad\\x00key')"),
    ],
)
def test_text_nested_in_a_json_value_is_refused_saying_where(config: dict, where: str) -> None:
    message = refusal(StartRun, {**RUN, "config": config})
    assert "config: U+" in message and where in message


def test_a_manifest_path_with_nul_is_refused_among_many_good_entries() -> None:
    manifest = [{"path": f"f{i}.bin", "size": 1, "digest": DIGEST} for i in range(10_000)]
    manifest[7_777] = {"path": "weights\x00.bin", "size": 1, "digest": DIGEST}
    version = {"entity": "acme", "project": "nature", "name": "c", "artifact_type": "model", "manifest": manifest}
    message = refusal(LogArtifactVersion, version)
    assert "manifest: U+0000 cannot be stored (in manifest.7777.path)" in message


def test_job_output_and_automations_follow_the_same_rule() -> None:
    job = {"job_id": uuid4(), "agent_id": "agent-1", "attempt": 1, "stream": "stdout"}
    assert "text: U+0000" in refusal(CaptureJobOutput, {**job, "text": "epoch 1\x00"})
    automation = {
        "name": "n",
        "trigger": {"event": "alias_added", "registered_model": "m", "alias_pattern": "candidate"},
        "action": {"kind": "webhook", "url": "https://example.com/hook", "payload": {"note": "\x00"}},
    }
    assert "action: U+0000" in refusal(CreateAutomation, automation)


def test_ordinary_text_passes_untouched() -> None:
    text = "naïve café 😀 \\u0000 is how JSON writes NUL"
    command = parse_command(UpdateModelCard, {"registered_model": "m", "description": text})
    assert command.description == text
    refuse_unstorable({"ключ": ["😀", 1, 2.5, None, True]}, "config")


def test_the_rule_names_the_place_itself() -> None:
    with pytest.raises(UnstorableText) as refused:
        refuse_unstorable({"a": ("ok", "no\x00")}, "metadata")
    assert str(refused.value) == "metadata.a.1: U+0000 cannot be stored; remove it"


def card_changed_on_the_wire(description_json: bytes) -> bytes:
    """A model card event as an older modelreg (or a foreign producer) wrote it, with raw JSON text."""
    card = ModelCardChanged(registered_model="m", description="PLACEHOLDER")
    event = Envelope.new(card, stream="registered_model:m", actor=Actor(kind="user", id="a"))
    return encode(event).replace(b'"PLACEHOLDER"', description_json)


@pytest.mark.parametrize(
    "written, read",
    [
        (b'"a\\u0000b"', "a\ufffdb"),
        (b'"a\\ud800b"', "a\ufffdb"),
        (b'"\\udc00\\u0000"', "\ufffd\ufffd"),
        (b'"\\ud83d\\ude00 stays"', "😀 stays"),  # a surrogate pair is one character
        (b'"a\\\\u0000b"', "a\\u0000b"),  # an escaped backslash, not a NUL
    ],
)
def test_legacy_unstorable_text_decodes_with_a_replacement_character(written: bytes, read: str) -> None:
    data = card_changed_on_the_wire(written)
    first, again = decode(data), decode(data)
    assert first.payload.description == read
    assert first == again
    assert orjson.loads(encode(first))["payload"]["description"] == read  # and it can be written again


def every_command() -> list[type[Command]]:
    found, todo = [], [Command]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return sorted(set(found), key=lambda c: c.__name__)


def test_the_commands_of_the_registry_and_of_launch_are_all_found() -> None:
    assert {"UpdateModelCard", "CaptureJobOutput", "IssueApiKey"} <= {c.__name__ for c in every_command()}


@pytest.mark.parametrize("command", every_command(), ids=lambda c: c.__name__)
def test_every_field_of_every_command_refuses_unstorable_text_whatever_its_type(command: type[Command]) -> None:
    """The rule lives on the Command base class: a command added tomorrow has it without asking."""
    for field in command.model_fields:
        for hostile in ("a\x00", {"k": ["\ud800"]}):
            with pytest.raises(ValidationError) as refused:
                command.model_validate({field: hostile})
            assert any(e["type"] == "unstorable_text" and e["loc"] == (field,) for e in refused.value.errors()), (
                field,
                refused.value.errors(),
            )


@pytest.mark.parametrize("name", ["my model", "Fraud Classifier", "a/b", "-x"])
def test_a_name_that_is_not_one_is_refused_saying_what_a_name_is(name: str) -> None:
    # pydantic's own message left the user a regular expression to read.
    with pytest.raises(InvalidInput, match=f"name: {name!r} is not a name: a name starts with a letter or digit"):
        parse_command(LogArtifactVersion, {"entity": "acme", "project": "p", "name": name, "artifact_type": "model"})


def _patterns(schema: object) -> set[str]:
    if isinstance(schema, dict):
        found = {schema["pattern"]} if isinstance(schema.get("pattern"), str) else set()
        return found.union(*(_patterns(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_patterns(item) for item in schema))
    return set()


def test_every_shape_a_command_asks_for_is_said_in_words_when_refused() -> None:
    """A tag `vision ✓` was refused with "String should match pattern '^[A-Za-z0-9][A-Za-z0-9._:-]*$'"."""
    for command in every_command():
        for pattern in _patterns(command.model_json_schema()):
            refusal = {"type": "string_pattern_mismatch", "input": "✓", "ctx": {"pattern": pattern}, "msg": "?"}
            said = _problem(refusal)
            assert "pattern" not in said and "✓" in said, (command.__name__, pattern, said)


def test_a_tag_that_is_not_one_is_refused_saying_which_characters_a_tag_holds() -> None:
    with pytest.raises(InvalidInput, match="'vision ✓' is refused: it must start with a letter or digit and hold only"):
        parse_command(TagModel, {"registered_model": "nature", "tag": "vision ✓"})
