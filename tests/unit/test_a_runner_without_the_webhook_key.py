"""A triggers process started without the webhook key (MODELREG_WEBHOOK_SECRET_KEY) says so once and leaves webhook
firings pending for a process started with it: each firing logged a 35-line traceback every second or two, for
ever, while /healthz said ok."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from modelreg.services.automations.runner import AutomationRunner
from modelreg.services.automations.webhook_signing import WebhookSecrets

AUTOMATION = {
    "automation_id": uuid.uuid4(),
    "action": {"kind": "webhook", "url": "https://hooks.example.com/deploy"},
    "secret_generation": 0,
}


class Automations:
    """The one automation the runner reads: a webhook's."""

    async def automation(self, automation_id: uuid.UUID) -> dict[str, Any]:
        return AUTOMATION


async def test_webhook_firings_wait_pending_and_the_missing_key_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    runner = AutomationRunner(SimpleNamespace(reads=SimpleNamespace(pool=None)), WebhookSecrets(None))  # type: ignore[arg-type]
    runner.launch = Automations()  # type: ignore[assignment]
    firing = {
        "automation_id": AUTOMATION["automation_id"],
        "event_id": uuid.uuid4(),
        "event_type": "registry.alias_added",
        "variables": {"alias": "production"},
        "occurred_at": datetime(2026, 12, 7, tzinfo=UTC),
    }
    with caplog.at_level(logging.WARNING):
        assert [await runner.fire(firing) for _ in range(3)] == [False, False, False]
    (said,) = caplog.records
    assert "MODELREG_WEBHOOK_SECRET_KEY" in said.getMessage() and said.exc_info is None
