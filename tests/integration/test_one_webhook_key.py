"""Every process of an installation holds the API's webhook key (each webhook's secret derives from it): the API
records its key's fingerprint in PostgreSQL, and a process started with another key refuses to start, in one line
saying which key to fix. `modelreg triggers` with another key signed every delivery with a secret its receiver never
got, each answered 401 with nothing to say why."""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import pytest

from modelreg.services.bootstrap import NeverReached, open_parts, process_parts
from modelreg.services.settings import Settings


@pytest.fixture
def log_kind() -> str:
    return "postgres"


def _api(settings: Settings, key: str) -> Settings:
    return replace(settings, webhook_secret_key=key, records_webhook_key=True)


async def test_triggers_started_with_another_webhook_key_than_the_apis_refuse_to_start_saying_which_to_fix(
    settings: Settings,
) -> None:
    async with process_parts(_api(settings, "the-apis-key")):
        pass

    with pytest.raises(NeverReached) as refused:
        await open_parts(replace(settings, webhook_secret_key="a-key-of-another-host"))  # `modelreg triggers`

    line = str(refused.value)
    assert "\n" not in line
    assert "webhook key (MODELREG_WEBHOOK_SECRET_KEY) differs from the API's" in line
    assert "Start it with the API's key" in line
    async with process_parts(replace(settings, webhook_secret_key="the-apis-key")):
        pass  # the API's key: it starts
    async with process_parts(replace(settings, webhook_secret_key=None)):
        pass  # no key: it starts, its webhook firings wait
    conn = await asyncpg.connect(settings.database_url)
    try:
        recorded = await conn.fetchval("SELECT fingerprint FROM webhook_key_fingerprint")
    finally:
        await conn.close()
    assert recorded and "the-apis-key" not in recorded


async def test_an_api_started_with_a_new_webhook_key_is_refused_unless_told_the_key_changed_on_purpose(
    settings: Settings,
) -> None:
    async with process_parts(_api(settings, "the-first-key")):
        pass

    with pytest.raises(
        NeverReached, match=r"this API's webhook key .* start one API with MODELREG_REPLACE_WEBHOOK_KEY"
    ):
        await open_parts(_api(settings, "the-new-key"))
    async with process_parts(replace(_api(settings, "the-new-key"), replace_webhook_key=True)):
        pass

    with pytest.raises(NeverReached, match="differs from the API's"):
        await open_parts(replace(settings, webhook_secret_key="the-first-key"))  # triggers not yet given the new key
    async with process_parts(replace(settings, webhook_secret_key="the-new-key")):
        pass
    async with process_parts(_api(settings, "the-new-key")):
        pass  # the other APIs, started again with the new key
