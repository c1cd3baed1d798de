"""Skipping the event a projection is parked at: an admin's decision, with a reason, about that event only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from support.write_side import MEMBER, WriteSide
from uuid_utils.compat import uuid7

from modelreg.errors import InvalidInput, NotFound, PermissionDenied
from modelreg.events.envelope import Envelope
from modelreg.services.commands.commands import StartRun
from modelreg.services.commands.parked_streams import SkipParkedEvent

STREAM = "run:acme/fraud/r1"


async def parked_at_a_start(registry: WriteSide) -> Envelope:
    await registry(StartRun(entity="acme", project="fraud", run_id="r1"))
    [start] = registry.appended()
    registry.read_models.parked.park("registry", STREAM, start)
    return start


def skip(event_id: object, projection: str = "registry", reason: str = "a bad config, fixed in r2") -> SkipParkedEvent:
    return SkipParkedEvent(projection=projection, stream=STREAM, event_id=event_id, reason=reason)


async def test_an_admin_skips_the_event_a_stream_is_parked_at_on_the_log() -> None:
    registry = WriteSide()
    start = await parked_at_a_start(registry)
    accepted = await registry(skip(start.id), wait_for_read_models=False)
    [skipped] = accepted.events
    assert (skipped.type, skipped.stream) == ("operations.event_skipped", f"operations:parked:registry:{STREAM}")
    assert skipped.payload.reason == "a bad config, fixed in r2"
    assert skipped.payload.scope == "entity:acme"  # the stream names a run of acme: who reads acme reads this


async def test_only_the_event_that_fails_is_skipped() -> None:
    registry = WriteSide()
    start = await parked_at_a_start(registry)
    with pytest.raises(InvalidInput, match=f"skip its first parked event, {start.id} \\(runs.run_started\\)"):
        await registry(skip(uuid7()))


async def test_skipping_in_a_stream_that_is_not_parked_or_a_projection_that_does_not_exist() -> None:
    registry = WriteSide()
    with pytest.raises(NotFound, match="is not parked in projection registry: `modelreg parked` lists them"):
        await registry(skip(uuid7()))
    with pytest.raises(InvalidInput, match="no projection 'nonesuch'; known: .*registry"):
        await registry(skip(uuid7(), projection="nonesuch"))


async def test_a_skip_needs_an_admin_and_a_reason() -> None:
    registry = WriteSide()
    start = await parked_at_a_start(registry)
    with pytest.raises(PermissionDenied, match="skip parked event needs admin"):
        await registry(skip(start.id), MEMBER)
    with pytest.raises(ValidationError, match="say why the event is skipped"):
        skip(start.id, reason="   ")
