"""Another service consuming modelreg's events from Kafka with its own consumer group, without modelreg's code.

    modelreg schemas export schemas/
    python examples/consume_events.py --bootstrap localhost:9092 --group my-service --schemas schemas/

Needs only `aiokafka` and `jsonschema`. Prints one line per event, checked against the event's exported JSON
Schema (`<type>.v<version>.json`); a message that breaks the contract is printed as INVALID or UNKNOWN and
skipped, never fatal. Offsets are committed after the messages are handled (at least once: a restart may
see the last few again, so handle events idempotently, by their `id`). See docs/events.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

Validators = dict[tuple[str, int], Draft202012Validator]


def load_validators(folder: Path) -> Validators:
    """One validator per (event type, schema version), from the files `modelreg schemas export` wrote."""
    validators: Validators = {}
    for path in sorted(folder.glob("*.json")):
        schema = json.loads(path.read_text())
        properties = schema["properties"]
        validators[properties["type"]["const"], properties["version"]["const"]] = Draft202012Validator(schema)
    if not validators:
        raise SystemExit(f"no schemas in {folder}: run `modelreg schemas export {folder}` first")
    return validators


def describe(message: ConsumerRecord, validators: Validators) -> str:
    """The line printed for one message."""
    where = f"{message.topic}/{message.partition}/{message.offset}"
    try:
        event: Any = json.loads(message.value)
    except (TypeError, ValueError):
        return f"{where} INVALID not JSON"
    if not isinstance(event, dict):
        return f"{where} INVALID not a JSON object"
    # The `type` and `version` headers say the same as the body, for consumers that route without parsing.
    type_, version = event.get("type"), event.get("version")
    validator = validators.get((type_, version))  # type: ignore[arg-type]
    if validator is None:
        return (
            f"{where} UNKNOWN {type_} v{version} (a version these schemas lack: keep every release's schemas in one "
            "folder, `modelreg schemas export` from each, older and newer)"
        )
    error = best_match(validator.iter_errors(event))
    if error is not None:
        return (
            f"{where} INVALID {type_} v{version} at {'/'.join(map(str, error.absolute_path)) or '.'}: {error.message}"
        )
    actor = event["actor"]
    # occurred_at is when modelreg received it; an offline run's client may add when it says it happened.
    offline = f" (recorded offline at {event['recorded_offline_at']})" if event.get("recorded_offline_at") else ""
    return (
        f"{where} {type_} v{version} {event['stream']} by {actor['kind']}:{actor['id']} "
        f"at {event['occurred_at']}{offline} id={event['id']}"
    )


async def consume(
    bootstrap: str, topic: str, group: str, schemas: Path, *, max_events: int | None = None, out: TextIO = sys.stdout
) -> int:
    """Print events until `max_events` were printed (or forever); returns how many were."""
    validators = load_validators(schemas)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,  # your own group: your offsets, your pace; modelreg's projections are not affected
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a new group starts at the beginning: the log is kept forever
    )
    await consumer.start()
    printed = 0
    try:
        while max_events is None or printed < max_events:
            handled: dict[TopicPartition, int] = {}
            for partition, messages in (await consumer.getmany(timeout_ms=1000, max_records=500)).items():
                for message in messages:
                    if max_events is not None and printed >= max_events:
                        break
                    print(describe(message, validators), file=out, flush=True)
                    printed += 1
                    handled[partition] = message.offset + 1
            if handled:
                await consumer.commit(handled)  # only what was handled: the rest comes again next time
    finally:
        await consumer.stop()
    return printed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="localhost:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic", default="modelreg.events")
    parser.add_argument("--group", default="example-consumer", help="your consumer group")
    parser.add_argument("--schemas", type=Path, required=True, help="the folder `modelreg schemas export` wrote")
    parser.add_argument("--max-events", type=int, default=None, help="stop after this many (default: run forever)")
    args = parser.parse_args(argv)
    asyncio.run(consume(args.bootstrap, args.topic, args.group, args.schemas, max_events=args.max_events))


if __name__ == "__main__":
    main()
