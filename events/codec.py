"""Envelope <-> bytes. The only module that touches the wire format (orjson)."""

from __future__ import annotations

import functools
import json
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError, create_model

from modelreg.events.catalog import EVENT_TYPES, NewerThanThisBuild, UnknownEventType, event_class, upcast
from modelreg.events.envelope import Envelope, Event
from modelreg.events.storable_text import may_hold_unstorable, replace_unstorable


class UndecodableEvent(ValueError):
    """A message on the log that is not an event this build can read; it goes to the dead-letter topic."""


class NewerSchemaVersion(UndecodableEvent):
    """An event of a known type written by a newer modelreg: not bad input, so its stream waits (parked)
    until this build is upgraded, rather than being skipped."""

    def __init__(self, message: str, stream: str) -> None:
        super().__init__(message)
        self.stream = stream


def encode(envelope: Envelope) -> bytes:
    # An online event is written as before the offline claim existed: consumers' older schemas still match it.
    absent = {"recorded_offline_at"} if envelope.recorded_offline_at is None else None
    return orjson.dumps(envelope.model_dump(mode="python", exclude=absent), default=_uuid_subclass)


def _uuid_subclass(value: object) -> str:
    """orjson writes uuid.UUID itself, not subclasses of it (asyncpg's, for ids read from the database)."""
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _with_lone_surrogates(data: bytes, error: orjson.JSONDecodeError) -> Any:
    """orjson refuses the escape of a lone surrogate ("\\ud800"); the standard library reads it."""
    if not may_hold_unstorable(data):
        raise UndecodableEvent(f"not JSON: {error}") from None
    try:
        return json.loads(data)
    except ValueError:
        raise UndecodableEvent(f"not JSON: {error}") from None
    except RecursionError:
        raise UndecodableEvent(_TOO_DEEP) from None


# orjson reads JSON nested up to 1,024 deep and writes it up to 254 deep (so no event of ours is deeper); the
# standard library, and a walk in Python, stop at the interpreter's recursion limit, below that: a foreign record
# nested deeper, with an escape that sends it down those paths, is refused here rather than stopping the reader.
_TOO_DEEP = "nested deeper than an event can be"


def _replaced(raw: Any) -> Any:
    try:
        return replace_unstorable(raw)
    except RecursionError:
        raise UndecodableEvent(_TOO_DEEP) from None


def to_json_dict(envelope: Envelope) -> dict[str, Any]:
    """The envelope as the JSON a foreign consumer sees (uuids and times as strings)."""
    return orjson.loads(encode(envelope))


@functools.cache
def _envelope_of(cls: type[Event]) -> type[Envelope]:
    """An envelope whose payload is `cls`: a record at its type's current version is validated in one pass, 1 µs
    less than its payload, then its envelope."""
    return create_model(f"{cls.__name__}Envelope", __base__=Envelope, payload=(cls, ...))


def decode(data: bytes) -> Envelope:
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raw = _with_lone_surrogates(data, exc)
    if may_hold_unstorable(data):
        # Written before commands refused such text, or by a foreign producer: stored with U+FFFD in its
        # place, the same on every replay, rather than parking the stream on it.
        raw = _replaced(raw)
    elif (envelope := _at_current_version(raw)) is not None:
        return envelope
    return _in_two_steps(raw)


def _at_current_version(raw: Any) -> Envelope | None:
    """The envelope of a record at its type's current version; None for any other record (an older version,
    an unknown type, one that does not match its schema): `_in_two_steps` reads it or says what is wrong."""
    if type(raw) is not dict or type(type_tag := raw.get("type")) is not str:
        return None
    cls = EVENT_TYPES.get(type_tag)
    version = raw.get("version")
    if cls is None or type(version) is not int or version != cls.version:
        return None
    try:
        envelope = _envelope_of(cls).model_validate(raw)
    except Exception:  # noqa: BLE001 -- not only ValidationError (see _in_two_steps): that path says what is wrong
        return None
    # The same fields and values as an Envelope validated in two steps; made one, so it compares equal to one
    # and pickles as one (the typed class only narrows its payload field).
    object.__setattr__(envelope, "__class__", Envelope)
    return envelope


def _in_two_steps(raw: Any) -> Envelope:
    """Any record: its payload upcast to the current version and validated, then its envelope."""
    if not isinstance(raw, dict):
        raise UndecodableEvent(f"an event is a JSON object, got {type(raw).__name__}")
    type_tag, version, payload = raw.get("type"), raw.get("version"), raw.get("payload")
    if not isinstance(type_tag, str) or not isinstance(version, int) or not isinstance(payload, dict):
        raise UndecodableEvent("missing or mistyped envelope fields: type (str), version (int), payload (object)")
    try:
        cls = event_class(type_tag)
        payload_model = cls.model_validate(upcast(type_tag, version, payload))
        return Envelope.model_validate({**raw, "version": cls.version, "payload": payload_model})
    except NewerThanThisBuild as exc:
        stream = raw.get("stream")
        if not isinstance(stream, str):
            raise UndecodableEvent(f"{exc}, and it names no stream") from None
        raise NewerSchemaVersion(str(exc), stream) from None
    except UnknownEventType as exc:
        raise UndecodableEvent(f"unknown event type {exc}") from None
    except ValidationError as exc:
        raise UndecodableEvent(f"{type_tag} v{version} does not match its schema: {exc}") from None
    except Exception as exc:
        # An upcaster or a validator given a shape its version never had (`"manifest": 5`, a v1 automation with no
        # action) fails as Python does (KeyError, TypeError...), not as pydantic does. Raised from here, it stopped
        # the process's log reader at that record on every restart: every projection stalled behind it.
        raise UndecodableEvent(
            f"{type_tag} v{version} does not match its schema: {type(exc).__name__}: {exc}"
        ) from None
