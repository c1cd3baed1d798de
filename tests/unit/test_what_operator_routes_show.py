"""Anyone may ask whether the API is alive and ready; the installation's figures (queue names, job counts, the
log's length) and error texts (a database's host and user) are shown to the metrics token or an admin key."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from modelreg.projections.runtime import MigratedBeyond
from modelreg.services.http.api import HEALTH_POOL, HEALTH_READING, LOG, STALLS, TRIGGERS, healthz, read_health
from modelreg.services.http.metrics import (
    STOPPED_PARTS,
    FailedReadings,
    SharedReading,
    add_operations_routes,
    operation_of,
)
from modelreg.services.http.operator_views import METRICS_TOKEN
from modelreg.services.http.projection_stalls import ProjectionStalls
from modelreg.services.http.requests_in_flight import IN_FLIGHT, RequestsInFlight, requests_within_capacity
from modelreg.services.http.triggers_presence import TriggersPresence
from modelreg.services.restart_on_failure import restart_on_failure

TOKEN = "prometheus-scrapes-with-this"
SECRET_HOST = "pg-primary.internal.acme:5432"


class Installation:
    """The health pool and the event log in one, with a private queue's jobs; or, `down`, failing as a database
    that cannot be reached does, naming its host."""

    topic = "acme.modelreg.events"

    def __init__(
        self,
        *,
        down: bool = False,
        postgres_down: bool = False,
        broker_hangs: bool = False,
        triggers_active: bool = True,
    ) -> None:
        self.down = down
        self.postgres_down = down or postgres_down  # `down`: the database and the broker
        self.broker_hangs = broker_hangs  # a broker SIGSTOPped: connections open, no answer ever
        self.triggers_active = triggers_active  # whether a `modelreg triggers` holds the active replica's lock

    async def end_positions(self) -> dict[int, int]:
        if self.broker_hangs:
            await asyncio.Event().wait()
        if self.down:
            raise OSError(f"cannot reach the log's broker at kafka.internal.acme:9092 ({SECRET_HOST})")
        return {0: 42}

    def acquire(self, timeout: float | None = None) -> Installation:
        return self

    async def __aenter__(self) -> Installation:
        if self.postgres_down:
            raise OSError(f'password authentication failed for user "modelreg" at {SECRET_HOST}')
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def fetchval(self, sql: str, *args: object) -> int:
        if "pg_locks" in sql:
            return int(self.triggers_active)
        return 1

    async def fetch(self, sql: str, *args: object) -> list[dict[str, Any]]:
        if "launch_jobs" in sql:
            return [{"queue": "acquisition-target-gpu", "state": "queued", "n": 7}]
        return []


def _app(installation: Installation, token: str | None = TOKEN, middlewares: tuple[Any, ...] = ()) -> web.Application:
    app = web.Application(middlewares=middlewares)  # given first, as create_app gives its own
    app[HEALTH_POOL] = app[LOG] = installation
    app[METRICS_TOKEN] = token
    add_operations_routes(app, HEALTH_POOL, LOG, ["registry"])
    app[HEALTH_READING] = SharedReading(lambda: read_health(installation, installation), fresh_for_s=0.0)
    app[STALLS] = ProjectionStalls()
    app[TRIGGERS] = TriggersPresence()
    app.router.add_get("/healthz", healthz)
    return app


BEARING_THE_TOKEN = {"Authorization": f"Bearer {TOKEN}"}


async def test_metrics_without_the_token_show_no_queue_names_or_job_counts() -> None:
    async with TestClient(TestServer(_app(Installation()))) as client:
        keyless = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer guessed"})
        scraped = await client.get("/metrics", headers=BEARING_THE_TOKEN)

        for refused in (keyless, wrong):
            text = await refused.text()
            assert refused.status == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
            assert "acquisition-target-gpu" not in text and "--metrics-token" in text
        assert scraped.status == 200
        assert 'modelreg_launch_queue_depth{queue="acquisition-target-gpu"} 7.0' in await scraped.text()


async def test_metrics_with_postgresql_down_show_the_logs_end_offsets_and_say_the_database_was_not_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every installation-wide series went missing at once, the log's offsets too though Kafka was up, and nothing
    # said why: alerts on lag went quiet exactly while the database was down.
    with caplog.at_level(logging.WARNING, logger="modelreg.services.http.metrics"):
        async with TestClient(TestServer(_app(Installation(postgres_down=True)))) as client:
            scraped = await client.get("/metrics", headers=BEARING_THE_TOKEN)
            text = await scraped.text()

    assert scraped.status == 200
    assert 'modelreg_event_log_end_offset{partition="0"} 42.0' in text
    assert 'modelreg_installation_reading_ok{part="event_log"} 1.0' in text
    assert 'modelreg_installation_reading_ok{part="postgres"} 0.0' in text
    assert "modelreg_projection_lag_events{" not in text  # unknown without the positions: missing, not 0
    [said] = [r for r in caplog.records if r.name == "modelreg.services.http.metrics"]
    assert said.levelno == logging.WARNING
    assert said.getMessage().startswith(
        f'/metrics could not read PostgreSQL (password authentication failed for user "modelreg" at {SECRET_HOST})'
    )
    assert 'modelreg_installation_reading_ok{part="postgres"} is 0' in said.getMessage()


async def test_metrics_with_both_parts_down_say_neither_was_read() -> None:
    async with TestClient(TestServer(_app(Installation(down=True)))) as client:
        scraped = await client.get("/metrics", headers=BEARING_THE_TOKEN)
        text = await scraped.text()

    assert scraped.status == 200
    assert 'modelreg_installation_reading_ok{part="event_log"} 0.0' in text
    assert 'modelreg_installation_reading_ok{part="postgres"} 0.0' in text
    assert "modelreg_event_log_end_offset{" not in text


async def test_metrics_read_in_full_say_each_part_was_read() -> None:
    async with TestClient(TestServer(_app(Installation()))) as client:
        text = await (await client.get("/metrics", headers=BEARING_THE_TOKEN)).text()

    assert 'modelreg_installation_reading_ok{part="event_log"} 1.0' in text
    assert 'modelreg_installation_reading_ok{part="postgres"} 1.0' in text
    assert 'modelreg_projection_lag_events{partition="0",projection="registry"} 42.0' in text


def test_a_reading_failing_at_every_scrape_is_said_once_a_minute_with_how_many_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = FailedReadings(every_s=60.0)
    with caplog.at_level(logging.WARNING, logger="modelreg.services.http.metrics"):
        for now in (0.0, 15.0, 30.0, 45.0, 60.0, 75.0):
            failures.note({"postgres": "connection refused"}, now)
        failures.note({"event_log": "the event log did not answer within 3 s"}, 75.0)

    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 3
    assert "read PostgreSQL (connection refused)" in said[0] and "readings failed" not in said[0]
    assert said[1].endswith("(4 readings failed since the last line)")  # 15, 30, 45 and 60
    assert said[2].startswith("/metrics could not read the event log (the event log did not answer within 3 s)")


async def test_metrics_are_refused_to_everyone_when_no_token_is_configured_and_no_admin_key_is_sent() -> None:
    async with TestClient(TestServer(_app(Installation(), token=None))) as client:
        assert (await client.get("/metrics", headers={"Authorization": "Bearer "})).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer None"})).status == 401


async def test_healthz_without_a_key_shows_the_status_but_not_the_figures_or_error_texts() -> None:
    async with TestClient(TestServer(_app(Installation(down=True)))) as client:
        keyless = await client.get("/healthz")
        seen = await client.get("/healthz", headers=BEARING_THE_TOKEN)
        keyless_text, seen_report = await keyless.text(), await seen.json()

    assert keyless.status == seen.status == 503
    assert SECRET_HOST not in keyless_text and "password" not in keyless_text and "kafka" not in keyless_text
    public = await keyless.json()
    assert {k: public[k] for k in ("status", "event_log", "postgres")} == {
        "status": "down",
        "event_log": {"ok": False},
        "postgres": {"ok": False},
    }
    assert SECRET_HOST in seen_report["postgres"]["error"]  # the operator's scrape sees why


async def test_healthz_without_a_key_does_not_show_the_logs_length_or_topic() -> None:
    async with TestClient(TestServer(_app(Installation()))) as client:
        public = await (await client.get("/healthz")).json()
        seen = await (await client.get("/healthz", headers=BEARING_THE_TOKEN)).json()

    assert public["status"] == "ok" and "projections" not in public and public["event_log"] == {"ok": True}
    assert seen["event_log"]["events"] == 42 and seen["event_log"]["topic"] == "acme.modelreg.events"
    assert seen["projections"]["registry"] == {"lag": 42, "parked_streams": 0, "dead_letters": 0}


async def test_readyz_without_a_key_says_which_part_is_not_ready_but_not_its_error() -> None:
    async with TestClient(TestServer(_app(Installation(down=True)))) as client:
        keyless = await client.get("/readyz")
        seen = await client.get("/readyz", headers=BEARING_THE_TOKEN)
        public, report = await keyless.json(), await seen.json()

    assert keyless.status == seen.status == 503
    assert public["status"] == "not ready" and set(public) == {"status", "postgres", "event_log"}
    assert SECRET_HOST not in await keyless.text()
    assert SECRET_HOST in report["postgres"] and SECRET_HOST in report["event_log"]


async def test_a_server_whose_projector_met_a_newer_migration_serves_on_and_its_health_says_to_upgrade() -> None:
    app = _app(Installation())
    runs = 0

    async def projector_of_the_build_before() -> None:
        nonlocal runs
        runs += 1
        raise MigratedBeyond("registry", 18, ["registry_files 4"])

    stopping = asyncio.Event()
    await asyncio.wait_for(
        restart_on_failure(
            "projector",
            projector_of_the_build_before,
            stopping,
            first_delay_s=0.01,
            stopped_for_good=app[STOPPED_PARTS],
        ),
        10,
    )
    async with TestClient(TestServer(app)) as client:
        ready = await client.get("/readyz")
        keyless = await (await client.get("/healthz")).json()
        seen = await (await client.get("/healthz", headers=BEARING_THE_TOKEN)).json()

    assert runs == 1  # not started again: it would only say the same
    assert ready.status == 200  # its API still serves: the upgraded processes' projectors keep the tables
    assert keyless["status"] == seen["status"] == "degraded" and "stopped_parts" not in keyless
    assert "upgrade this process" in seen["stopped_parts"]["projector"]


async def test_requests_refused_before_a_handler_ran_are_counted() -> None:
    app = _app(Installation(), middlewares=(requests_within_capacity,))
    app[IN_FLIGHT] = RequestsInFlight(limit=0)  # every request over the bound

    async def graphql(request: web.Request) -> web.Response:
        return web.json_response({"data": {}})

    app.router.add_post("/graphql", graphql)
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/graphql", json={"query": "{ projects { total } }"})).status == 503
        scraped = await (await client.get("/metrics", headers=BEARING_THE_TOKEN)).text()

    assert 'modelreg_http_requests_total{operation="POST /graphql",status="503"} 1.0' in scraped


def test_a_made_up_http_method_does_not_make_a_series_of_its_own() -> None:
    # aiohttp's C parser refuses unknown methods with a 400 before any middleware; its Python parser (no C
    # extensions) takes any token.
    assert operation_of(make_mocked_request("BREW", "/livez")).split()[0] == "OTHER"
    assert operation_of(make_mocked_request("DELETE", "/livez")).split()[0] == "DELETE"


async def test_a_hanging_broker_makes_the_probes_answer_within_seconds_that_the_event_log_is_down() -> None:
    async with TestClient(TestServer(_app(Installation(broker_hangs=True)))) as client:
        ready, health = await asyncio.gather(
            client.get("/readyz", headers=BEARING_THE_TOKEN), client.get("/healthz", headers=BEARING_THE_TOKEN)
        )
        readiness, report = await ready.json(), await health.json()

    assert ready.status == 503 and readiness["event_log"] == "the event log did not answer within 3 s"
    assert "postgres" not in readiness  # PostgreSQL answers: the probe names the part that does not
    # No write can be recorded while the log does not answer: the registry is down, not merely degraded.
    assert health.status == 503 and report["status"] == "down"
    assert report["event_log"]["ok"] is False and "did not answer within 3 s" in report["event_log"]["error"]
    assert report["postgres"] == {"ok": True}


async def test_healthz_says_degraded_when_a_projection_applies_nothing_while_events_wait() -> None:
    """No projector running: every write was refused NOT_YET_VISIBLE while /healthz said ok."""
    app = _app(Installation())
    app[STALLS] = ProjectionStalls(stalled_after_s=0.0)  # as if the readings were 30 s apart
    async with TestClient(TestServer(app)) as client:
        first = await (await client.get("/healthz", headers=BEARING_THE_TOKEN)).json()
        again = await (await client.get("/healthz", headers=BEARING_THE_TOKEN)).json()

    assert first["status"] == "ok"  # one reading tells no stall from load
    assert again["status"] == "degraded" and "stalled_for_s" in again["projections"]["registry"]
    assert "projections registry, audit" in again["stalled"] and "is a projector running" in again["stalled"]


async def test_healthz_says_degraded_when_no_triggers_process_carries_out_automations() -> None:
    """A `modelreg triggers` that exited (PostgreSQL restarted under it) left /healthz saying ok while no webhook
    was delivered and no vanished agent's job requeued."""
    app = _app(Installation(triggers_active=False))
    app[TRIGGERS] = TriggersPresence(missing_after_s=0.0)  # as if nobody had held the lock for 30 s
    async with TestClient(TestServer(app)) as client:
        missing = await (await client.get("/healthz", headers=BEARING_THE_TOKEN)).json()

    assert missing["status"] == "degraded" and missing["automations"] == {"active": False, "missing_for_s": 0}
    assert "no `modelreg triggers` process" in missing["no_automations"]


def test_a_triggers_replica_restarting_within_the_grace_is_not_missing() -> None:
    presence = TriggersPresence(missing_after_s=30.0)
    assert presence.missing_for(False, now=100.0) is None  # the lock's holder starting again
    assert presence.missing_for(True, now=110.0) is None
    assert presence.missing_for(False, now=120.0) is None
    assert presence.missing_for(False, now=149.0) is None
    assert presence.missing_for(False, now=150.0) == 30.0


def test_a_projection_that_moves_or_catches_up_is_not_stalled() -> None:
    stalls = ProjectionStalls(stalled_after_s=30.0)
    assert stalls.stalled_for("audit", applied=10, lag=5, now=0.0) is None
    assert stalls.stalled_for("audit", applied=10, lag=5, now=29.0) is None
    assert stalls.stalled_for("audit", applied=10, lag=5, now=31.0) == 31.0
    assert stalls.stalled_for("audit", applied=11, lag=4, now=40.0) is None  # it moved: timed from here
    assert stalls.stalled_for("audit", applied=11, lag=0, now=80.0) is None  # caught up
    assert stalls.stalled_for("audit", applied=11, lag=3, now=81.0) is None
