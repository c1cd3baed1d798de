"""A job whose agent keeps vanishing while it runs (it takes its machine down: out of memory, a driver crash) is
failed after three requeues: requeued for ever, it took every agent down in turn."""

from __future__ import annotations

from support.stack import Stack

from modelreg.events.launch import JobSource
from modelreg.services.automations.runner import MAX_REQUEUES, AutomationRunner
from modelreg.services.automations.webhook_signing import WebhookSecrets
from modelreg.services.commands.access import service_caller
from modelreg.services.commands.launch_commands import ClaimJob, CreateQueue, EnqueueJob
from modelreg.services.http.api import APP

JOB = "query($id: ID!) { launchJob(id: $id) { state attempt requeues reason } }"


async def test_a_job_whose_agents_keep_vanishing_is_failed_after_three_requeues(stack: Stack) -> None:
    assert stack.client is not None
    app, admin = stack.client.server.app[APP], service_caller("tests")
    await app.execute(CreateQueue(queue="cpu"), admin)
    source = JobSource(kind="git", git_remote="https://example.com/r.git", git_commit="abc1234", entry_point=("t.py",))
    job_id = (
        await app.execute(EnqueueJob(queue="cpu", entity="acme", project="nature", source=source), admin)
    ).subject_id
    supervisor = AutomationRunner(app, WebhookSecrets(None), agent_timeout_s=0.0)  # every claimer vanishes at once

    for attempt in range(1, MAX_REQUEUES + 2):
        await app.execute(ClaimJob(job_id=job_id, agent_id=f"machine-{attempt}"), admin)
        await supervisor.requeue_orphans()
    await stack.projected()

    job = (await stack.graphql(JOB, {"id": str(job_id)}))["data"]["launchJob"]
    assert (job["state"], job["attempt"], job["requeues"]) == ("FAILED", MAX_REQUEUES + 1, MAX_REQUEUES)
    assert "vanished while running it 4 times in a row" in job["reason"]
