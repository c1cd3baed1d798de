"""An operator sees which stream a projection parked, at which event and why, and releases it: a retry, or a
skip with a reason that goes on the log (so a rebuild decides the same) and into the audit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import orjson
from click.testing import CliRunner
from support.stack import Stack
from support.story import START_RUN
from support.tables import dump
from support.waiting import wait_until

from modelreg.errors import Unavailable
from modelreg.events.codec import decode, encode
from modelreg.events.envelope import Actor, Envelope, Event
from modelreg.events.launch import JobOutputCaptured, JobSource, job_stream
from modelreg.events.log import LogPosition, LogRecord
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.runs import RunFinished, run_stream
from modelreg.projections.progress import ProjectionProgress
from modelreg.projections.registry import RegistryProjection
from modelreg.services.automations.runner import AutomationRunner
from modelreg.services.automations.webhook_signing import WebhookSecrets
from modelreg.services.cli import main
from modelreg.services.commands.access import service_caller
from modelreg.services.commands.application import Application
from modelreg.services.commands.launch_commands import ClaimJob, CreateQueue, EnqueueJob
from modelreg.services.http.api import APP
from modelreg.services.projections_catalog import PROJECTIONS, shown_to_commands
from modelreg.services.rebuild import rebuild

PARKED = """query($after: String) { parkedStreams(first: 50, after: $after) {
  items { projection stream error since attempts firstEventId firstEventType firstEventPosition waitingEvents }
  endCursor hasNextPage } }"""
SKIP = """mutation($input: SkipParkedEventInput!) { skipParkedEvent(input: $input) {
  released parkedStream { projection stream error attempts } } }"""
RETRY = """mutation($input: RetryParkedStreamInput!) { retryParkedStream(input: $input) {
  released parkedStream { projection stream error attempts } } }"""


async def from_a_newer_modelreg(stack: Stack, payload: Event, stream: str) -> UUID:
    """Append an event as a newer modelreg would write it (schema v99): every projection that reads it parks
    its stream, as they would on a bug, until this build is upgraded or an admin skips it."""
    event = Envelope.new(payload, stream=stream, actor=Actor(kind="user", id="alice"))
    wire = orjson.loads(encode(event)) | {"version": 99}
    assert stack.client is not None
    record = LogRecord(LogPosition("", 0, 0), stream.encode(), orjson.dumps(wire))
    await stack.client.server.app[APP].log.append_raw([record])
    return event.id


async def parked_streams(stack: Stack, **kwargs: Any) -> list[dict[str, Any]]:
    return (await stack.graphql(PARKED, **kwargs))["data"]["parkedStreams"]["items"]


def finished(run_id: str) -> RunFinished:
    return RunFinished(entity="acme", project="nature", run_id=run_id, state="finished")


async def claimed_job(app: Application) -> UUID:
    """A job claimed by agent a1, which then vanishes (it never sends a heartbeat)."""
    admin = service_caller("tests")
    await app.execute(CreateQueue(queue="cpu"), admin)
    source = JobSource(kind="git", git_remote="https://example.com/r.git", git_commit="abc1234", entry_point=("t.py",))
    enqueue = EnqueueJob(queue="cpu", entity="acme", project="nature", source=source)
    job_id = (await app.execute(enqueue, admin)).subject_id
    await app.execute(ClaimJob(job_id=job_id, agent_id="a1"), admin)
    return job_id


async def parked_by_every_projection(stack: Stack, stream: str) -> None:
    """A record with no type header is decoded by every projection, and one of a newer schema parks each."""

    async def parked() -> bool:
        return {p["projection"] for p in await parked_streams(stack) if p["stream"] == stream} == set(PROJECTIONS)

    await wait_until(parked)


async def test_an_admin_sees_a_parked_stream_and_releases_it_by_skipping_the_event_with_a_reason(stack: Stack) -> None:
    await stack.graphql(START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": "train-1"}})
    stream = run_stream("acme", "nature", "train-1")
    bad = await from_a_newer_modelreg(stack, finished("train-1"), stream)
    await stack.graphql(
        'mutation { logMetrics(input: {entity: "acme", project: "nature", runId: "train-1", '
        "rows: [{step: 1, values: {loss: 0.5}}]}) }"
    )  # waits behind the parked event (the answer says so)

    await parked_by_every_projection(stack, stream)
    found = {p["projection"]: p for p in await parked_streams(stack)}
    registry = found["registry"]
    first = (registry["stream"], registry["firstEventId"], registry["firstEventType"])
    assert first == (stream, str(bad), "runs.run_finished")
    assert "newer modelreg" in registry["error"] and registry["attempts"] >= 1 and registry["waitingEvents"] == 2
    assert registry["firstEventPosition"].startswith(f"{stack.settings.topic}/")

    viewer = await stack.key("user:vic", role="viewer")
    refused = await stack.graphql(PARKED, key=viewer)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert stack.client is not None
    health = await (await stack.client.get("/healthz")).json()
    assert health["status"] == "degraded" and "parked_streams" not in health  # a stream's name is not public
    assert "projections" not in health  # nor the installation's figures (docs/access.md)
    health = await (await stack.client.get("/healthz", headers=await stack.auth())).json()
    assert health["projections"]["registry"]["parked_streams"] >= 1
    listed = {(p["projection"], p["stream"]) for p in health["parked_streams"]}
    assert listed >= {("registry", stream), ("audit", stream)}

    skip = {"projection": "registry", "stream": stream, "eventId": str(bad), "reason": "written by a 0.9 preview"}
    wrong = await stack.graphql(SKIP, {"input": skip | {"eventId": str(uuid4())}})
    assert wrong["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert str(bad) in wrong["errors"][0]["message"]
    blank = await stack.graphql(SKIP, {"input": skip | {"reason": "  "}})
    assert blank["errors"][0]["extensions"]["code"] == "INVALID_INPUT"

    for projection in found:
        released = await stack.graphql(SKIP, {"input": skip | {"projection": projection}}, actor="user:ops")
        assert released["data"]["skipParkedEvent"] == {"released": True, "parkedStream": None}

    assert await parked_streams(stack) == []
    run = await stack.graphql('{ run(entity: "acme", project: "nature", runId: "train-1") { state } }')
    assert run["data"]["run"]["state"] == "RUNNING"  # the skipped finish is not applied; the metrics after it are
    audit = await stack.graphql('{ auditLog(action: "operations.event_skipped") { items { actor details } } }')
    records = audit["data"]["auditLog"]["items"]
    assert {(r["actor"], r["details"]["reason"], r["details"]["projection"]) for r in records} == {
        ("user:ops", "written by a 0.9 preview", projection) for projection in found
    }
    # A skip names the stream: it is read by who reads what the skipped event is about (acme, here).
    assert {r["details"]["scope"] for r in records} == {"entity:acme"}
    health = await (await stack.client.get("/healthz", headers=await stack.auth())).json()
    assert (health["status"], health["parked_streams"]) == ("ok", [])

    # A rebuild from scratch reads the skip on the log and decides the same.
    await stack.projected()
    live = await dump(stack.settings.database_url, RegistryProjection.tables)
    await rebuild(stack.settings, "registry")
    assert await dump(stack.settings.database_url, RegistryProjection.tables) == live


async def test_an_admin_retries_a_parked_stream_and_is_told_it_still_fails(stack: Stack) -> None:
    await stack.graphql(START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": "train-2"}})
    stream = run_stream("acme", "nature", "train-2")
    await from_a_newer_modelreg(stack, finished("train-2"), stream)

    await parked_by_every_projection(stack, stream)
    before = next(p for p in await parked_streams(stack) if p["projection"] == "registry")
    retried = (await stack.graphql(RETRY, {"input": {"projection": "registry", "stream": stream}}))["data"]
    retried = retried["retryParkedStream"]
    assert retried["released"] is False
    assert retried["parkedStream"]["attempts"] == before["attempts"] + 1
    assert "newer modelreg" in retried["parkedStream"]["error"]

    unknown = await stack.graphql(RETRY, {"input": {"projection": "registry", "stream": "run:acme/nature/nope"}})
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    # The same from the command line, through the API with an admin key.
    url, key = str(stack.client.make_url("/")).rstrip("/"), await stack.key("user:alice")
    cli = CliRunner()
    listed = await asyncio.to_thread(cli.invoke, main, ["parked", "--url", url, "--api-key", key])
    assert listed.exit_code == 0, listed.output
    assert f"registry  {stream}" in listed.output and "newer modelreg" in listed.output
    server = ["--url", url, "--api-key", key]
    again = await asyncio.to_thread(cli.invoke, main, ["parked", "retry", "registry", stream, *server])
    assert again.exit_code == 1 and "still parked" in again.output
    for projection in {p["projection"] for p in await parked_streams(stack)}:
        args = ["parked", "skip", projection, stream, "--event", before["firstEventId"], "--reason", "from a preview"]
        skipped = await asyncio.to_thread(cli.invoke, main, [*args, *server])
        assert skipped.exit_code == 0 and "released" in skipped.output, skipped.output
    listed = await asyncio.to_thread(cli.invoke, main, ["parked", "--url", url, "--api-key", key])
    assert listed.output.strip() == "no parked streams"


async def test_the_launch_supervisor_leaves_a_job_whose_stream_is_parked_alone_and_says_so(stack: Stack) -> None:
    assert stack.client is not None
    app = stack.client.server.app[APP]
    job_id = await claimed_job(app)
    output = JobOutputCaptured(job_id=job_id, attempt=1, stream="stdout", text="epoch 1\n")
    await from_a_newer_modelreg(stack, output, job_stream(job_id))

    await parked_by_every_projection(stack, job_stream(job_id))
    supervisor = AutomationRunner(app, WebhookSecrets(None), agent_timeout_s=0.0, max_requeue_tries=3)
    for _ in range(10):  # the agent is gone; rounds of supervision, as every few seconds in the triggers process
        await supervisor.requeue_orphans()

    pool = app.reads.pool
    requeues = await pool.fetchval(
        "SELECT count(*) FROM parked_events WHERE projection = 'launch' AND stream = $1 "
        "AND convert_from(value, 'UTF8') LIKE '%launch.job_requeued%'",
        job_stream(job_id),
    )
    assert requeues == 0
    ((_, reason),) = supervisor.stuck.items()
    assert f"parked {job_stream(job_id)}" in reason and "modelreg parked" in reason

    # Released by an admin, the job moves on: one requeue, however many rounds.
    for projection in PROJECTIONS:
        first = next(p for p in await parked_streams(stack) if p["projection"] == projection)["firstEventId"]
        skip = {"projection": projection, "stream": job_stream(job_id), "eventId": first, "reason": "preview build"}
        assert (await stack.graphql(SKIP, {"input": skip}))["data"]["skipParkedEvent"]["released"] is True
    for _ in range(5):
        await supervisor.requeue_orphans()
    assert supervisor.stuck == {}
    job = await pool.fetchrow("SELECT state, requeues FROM launch_jobs WHERE job_id = $1", job_id)
    assert (job["state"], job["requeues"]) == ("queued", 1)


async def test_the_launch_supervisor_appends_one_requeue_per_attempt_however_long_it_takes_to_show(
    stack: Stack,
) -> None:
    assert stack.client is not None
    app = stack.client.server.app[APP]
    await claimed_job(app)

    # A supervisor whose appends no projection ever shows (a log nobody projects): its requeue stays invisible.
    unseen = InMemoryEventLog(topic="never-projected")
    progress = ProjectionProgress(app.reads.pool)
    blind = Application(unseen, app.reads, progress, projections=shown_to_commands(), read_your_writes_timeout_s=0.1)
    supervisor = AutomationRunner(blind, WebhookSecrets(None), agent_timeout_s=0.0, max_requeue_tries=3)
    for _ in range(10):
        await supervisor.requeue_orphans()

    assert [decode(record.value).type for record in unseen.events()] == ["launch.job_requeued"]


class RefusingRequeues(InMemoryEventLog):
    """An event log that refuses requeues (as one whose broker refuses writes would), and takes the rest."""

    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        if any(e.type == "launch.job_requeued" for e in events):
            raise Unavailable("the event log refused the write: try again")
        return await super().append(events)


async def test_the_launch_supervisor_fails_a_job_it_cannot_requeue_saying_why(stack: Stack) -> None:
    assert stack.client is not None
    app = stack.client.server.app[APP]
    await claimed_job(app)
    refusing = RefusingRequeues(topic="never-projected")
    progress = ProjectionProgress(app.reads.pool)
    unlucky = Application(refusing, app.reads, progress, projections=shown_to_commands())
    supervisor = AutomationRunner(unlucky, WebhookSecrets(None), agent_timeout_s=0.0, max_requeue_tries=3)
    for _ in range(10):
        await supervisor.requeue_orphans()

    (finished,) = [decode(record.value) for record in refusing.events()]
    assert (finished.type, finished.payload.state, finished.payload.attempt) == ("launch.job_finished", "failed", 1)
    assert "could not requeue the job in 3 tries (the event log refused the write" in finished.payload.reason
