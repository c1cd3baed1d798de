"""JSON Schema of every event as it appears on the topic, so other services can consume it without our code."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import create_model

from modelreg.events.catalog import all_event_classes
from modelreg.events.envelope import Envelope, Event


def envelope_schema(cls: type[Event]) -> dict[str, Any]:
    wire_model = create_model(
        cls.__name__ + "Envelope",
        __base__=Envelope,
        type=(Literal[cls.type], ...),  # type: ignore[arg-type]
        version=(Literal[cls.version], ...),  # type: ignore[arg-type]
        payload=(cls, ...),
    )
    schema = wire_model.model_json_schema(mode="serialization")
    schema["$id"] = f"https://modelreg.dev/schemas/{cls.type}.v{cls.version}.json"
    schema["title"] = f"{cls.type} v{cls.version}"
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    return {f"{cls.type}.v{cls.version}.json": envelope_schema(cls) for cls in all_event_classes()}


def export_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, schema in all_schemas().items():
        path = folder / filename
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
