"""While the event log refuses appends, agents' heartbeats are refused too: their silence says nothing of them. A
requeue refused by the log is not a try of the job's (five of them failed it), and no job is taken for vanished
until its agent has had the agent timeout to beat again: after an outage longer than the timeout, every running
job looked vanished and was requeued while its agent still ran it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from modelreg.events.log import EventLogNotAnswering
from modelreg.services.automations.runner import AutomationRunner
from modelreg.services.automations.webhook_signing import WebhookSecrets

JOB = {
    "job_id": uuid.uuid4(),
    "attempt": 1,
    "agent_id": "service:ci:gpu-1",
    "last_seen": datetime(2026, 12, 7, tzinfo=UTC),
    "vanishings": 0,
}


class Supervised:
    """What the supervisor reads and sends through: one job that looks vanished, an event log that refuses or not."""

    def __init__(self) -> None:
        self.reads = SimpleNamespace(pool=None)
        self.progress = SimpleNamespace(parked_among=self._none_parked)
        self.log_answers = False
        self.sent: list[Any] = []

    async def _none_parked(self, streams: list[str]) -> list[str]:
        return []

    async def orphaned_jobs(self, now: datetime, timeout: Any) -> list[dict[str, Any]]:
        return [JOB]

    async def execute(self, command: Any, caller: Any, **_: Any) -> Any:
        self.sent.append(type(command).__name__)
        if not self.log_answers:
            raise EventLogNotAnswering("the event log (Kafka) is not answering", "Kafka did not answer")
        return SimpleNamespace(events=[object()])


async def test_a_job_is_not_requeued_nor_failed_for_silence_while_the_event_log_refused_heartbeats() -> None:
    supervised = Supervised()
    supervisor = AutomationRunner(supervised, WebhookSecrets(None), agent_timeout_s=60.0)  # type: ignore[arg-type]
    supervisor.launch = supervised  # type: ignore[assignment]

    with pytest.raises(EventLogNotAnswering):
        await supervisor.requeue_orphans()
    for _ in range(5):  # the passes while the outage lasts: none counts as a try, none fails the job
        await supervisor.requeue_orphans()
    supervised.log_answers = True
    await supervisor.requeue_orphans()  # back, but its agent has not had the timeout to beat again

    assert supervised.sent == ["RequeueJob"]
