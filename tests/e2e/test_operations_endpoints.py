"""What an operator watches: /metrics (Prometheus' text format), and liveness and readiness probes."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.stack import Stack

from modelreg.services.settings import Settings


@pytest.fixture
def log_kind() -> str:
    return "postgres"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_requests_by_operation_and_show_the_installation(stack: Stack) -> None:
    assert stack.client is not None
    auth = await stack.auth()
    content = b"weights" * 1000
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    assert (await stack.client.put(f"/blobs/{digest}", data=content, headers=auth)).status == 201
    assert (await stack.client.get(f"/blobs/{digest}", headers=auth)).status == 200
    await stack.graphql("{ __typename }")
    refused = await stack.client.post("/graphql", json={"query": "{ noSuchField }"}, headers=auth)
    await stack.projected()

    response = await stack.client.get("/metrics", headers=auth)  # an admin key sees the figures
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    found = samples(await response.text())

    assert found["modelreg_http_requests_total", (("operation", "PUT /blobs/{digest}"), ("status", "201"))] == 1
    assert (
        found["modelreg_http_requests_total", (("operation", "POST /graphql query __typename"), ("status", "200"))] >= 1
    )
    # A document that did not pass validation names nothing: only the schema's names become series.
    assert found["modelreg_http_requests_total", (("operation", "POST /graphql"), ("status", str(refused.status)))] == 1
    assert ("modelreg_http_request_seconds_count", (("operation", "GET /blobs/{digest}"),)) in found
    assert found["modelreg_blob_bytes_total", (("direction", "in"),)] == len(content)
    assert found["modelreg_blob_bytes_total", (("direction", "out"),)] == len(content)
    appended = sum(v for (name, _), v in found.items() if name == "modelreg_event_log_end_offset")
    assert appended >= 1  # the API key issued for the test, at least
    lags = {labels: v for (name, labels), v in found.items() if name == "modelreg_projection_lag_events"}
    assert lags and all(v == 0 for v in lags.values())  # projected: nothing left to apply
    assert {dict(labels)["projection"] for labels in lags} >= {"registry", "identity"}
    reading = {labels: v for (name, labels), v in found.items() if name == "modelreg_installation_reading_ok"}
    assert reading == {(("part", "event_log"),): 1, (("part", "postgres"),): 1}


async def test_liveness_and_readiness_are_separate_probes(stack: Stack) -> None:
    assert stack.client is not None
    live = await stack.client.get("/livez")
    ready = await stack.client.get("/readyz")
    assert (live.status, (await live.json())["status"]) == (200, "alive")
    assert (ready.status, (await ready.json())["status"]) == (200, "ready")


async def test_the_figures_are_shown_to_the_metrics_token_and_admins_and_the_probes_to_anyone(
    settings: Settings,
) -> None:
    # /metrics showed anyone who reached the port the queues' names and job counts, and /healthz the log's length.
    async with Stack(dataclasses.replace(settings, metrics_token="scraper-token")) as stack:
        assert stack.client is not None
        member = await stack.auth("user:mia", role="member")
        for headers in ({}, member, {"Authorization": "Bearer not-the-token"}):
            refused = await stack.client.get("/metrics", headers=headers)
            assert refused.status == 401 and "--metrics-token" in await refused.text()
            health = await (await stack.client.get("/healthz", headers=headers)).json()
            assert health["status"] == "ok" and "projections" not in health and "events" not in health["event_log"]
        for headers in ({"Authorization": "Bearer scraper-token"}, await stack.auth()):
            assert (await stack.client.get("/metrics", headers=headers)).status == 200
            health = await (await stack.client.get("/healthz", headers=headers)).json()
            assert health["event_log"]["events"] >= 1 and "registry" in health["projections"]
        assert (await stack.client.get("/livez")).status == (await stack.client.get("/readyz")).status == 200
