"""Web UI benchmark (issue 5): how long until the registry page and a version page are interactive in a
browser, for a registered model with 100,000 linked versions.

Starts an embedded PostgreSQL and `modelreg server` on it (as bench/registry.py does), seeds the model
by appending its history in bulk to the Postgres event log (100,000 `artifact.version_logged` and
`registry.version_linked` events and three aliases) and waiting for the projections, then opens the UI in
headless Chromium (Playwright, Debian's /usr/bin/chromium) with a fresh page per load:

- registry page interactive: from navigation to `#/models/<model>` until the versions table shows its
  first rows and a click on "Next →" is accepted (Playwright clicks once the button is enabled and stable);
- version page interactive: from navigation to `#/models/<model>/v<n>` until the model card and the tabs
  are rendered and a click on a tab is accepted.

After each timed load, an untimed check that the click did something (the second page of versions; the
Usage tab).

The seeded database is kept in bench/results/ and reused (--rebuild-cache starts over). Each figure is
printed as p50 and p99 with its target; the last line holds the p50s.

Usage: python bench/ui.py [--versions 100000] [--loads 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from tqdm import tqdm

from modelreg.events.artifacts import ArtifactVersionLogged, ManifestEntry, artifact_stream
from modelreg.events.envelope import Envelope
from modelreg.events.registry import AliasAdded, VersionLinked, registered_model_stream
from modelreg.events.runs import RunStarted, run_stream
from modelreg.projections.migrations import migrate
from modelreg.services.projections_catalog import all_migrations

from registry import (  # bench/registry.py: the same processes and bulk helpers
    ACTOR, BENCH, Clock, admin_key, digest, event_log_for, free_port, modelreg_cli, node_uuid, p, postgres, say,
    stop, until_healthy, verdict, wait_projected,
)

CHROMIUM = os.environ.get("MODELREG_CHROMIUM", "/usr/bin/chromium")
ENTITY, PROJECT = "acme", "ui-bench"
MODEL = "ui-bench-100k"
TARGET_MS = 1000.0


def version_id(n: int) -> uuid.UUID:
    return node_uuid("ui-bench", n)


def history(versions: int, clock: Clock) -> Iterator[list[Envelope]]:
    """A training run, `versions` model versions logged by it, each linked to MODEL; then three aliases."""
    run_id = "train-0"
    yield [Envelope.new(RunStarted(entity=ENTITY, project=PROJECT, run_id=run_id, job_type="train", config={"lr": 0.01}),
                        stream=run_stream(ENTITY, PROJECT, run_id), actor=ACTOR, occurred_at=clock.next())]
    stream = registered_model_stream(MODEL)
    for start in range(0, versions, 5000):
        logged, linked = [], []
        for n in range(start, min(start + 5000, versions)):
            item = version_id(n)
            payload = ArtifactVersionLogged(
                artifact_version_id=item, entity=ENTITY, project=PROJECT, name="classifier", artifact_type="model",
                digest=digest(item), manifest=(ManifestEntry(path="weights.bin", size=1024, digest=digest(item, "w")),),
                logged_by_run=run_id,
            )
            logged.append(Envelope.new(payload, stream=artifact_stream(ENTITY, PROJECT, "classifier"), actor=ACTOR, occurred_at=clock.next()))
        for n in range(start, min(start + 5000, versions)):
            linked.append(Envelope.new(VersionLinked(registered_model=MODEL, artifact_version_id=version_id(n)),
                                       stream=stream, actor=ACTOR, occurred_at=clock.next()))
        yield logged
        yield linked
    for n, alias in ((0, "first"), (versions // 2, "staging"), (versions - 1, "production")):
        yield [Envelope.new(AliasAdded(registered_model=MODEL, artifact_version_id=version_id(n), alias=alias),
                            stream=stream, actor=ACTOR, occurred_at=clock.next())]


async def seed(dsn: str, versions: int, logs: Path) -> float:
    """Append the history in bulk while projector processes apply it; returns seconds until projected."""
    from modelreg.services.database import create_pool

    pool = await create_pool(dsn, min_size=1, max_size=2)
    await migrate(pool, all_migrations())
    log = await event_log_for(dsn, None)
    started = time.perf_counter()
    projectors = [
        modelreg_cli(dsn, None, "projector", "--projection", "registry", log=logs / "projector-registry.log"),
        modelreg_cli(dsn, None, "projector", "--projection", "audit", log=logs / "projector-audit.log"),
        modelreg_cli(dsn, None, "projector", "--projection", "lineage", "--projection", "identity", log=logs / "projector-lineage.log"),
        # wait_projected waits for every projection of the catalog, these too (they skip most events).
        modelreg_cli(dsn, None, "projector", "--projection", "launch", "--projection", "triggers", log=logs / "projector-launch.log"),
    ]
    try:
        with tqdm(total=2 * versions + 4, desc="appending events", unit="ev", file=sys.stderr, mininterval=2) as bar:
            for batch in history(versions, Clock()):
                await log.append(batch)
                bar.update(len(batch))
        total = sum((await log.end_positions()).values())
        with tqdm(total=total, desc="projecting (slowest projection)", unit="ev", file=sys.stderr, mininterval=2) as bar:
            await wait_projected(pool, total, bar)
    finally:
        for process in projectors:
            stop(process)
        await log.close()
        await pool.close()
    return time.perf_counter() - started


async def timed_loads(browser, url: str, key: str, path: str, ready, answered, loads: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Milliseconds from navigation to `ready(page)` returning, each load in a fresh context (no cache),
    after one untimed warm-up load; `answered(page)` then checks, untimed, that the click did something."""
    times: list[float] = []
    for n in range(loads + 1):
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        await context.add_init_script(f"localStorage.setItem('modelreg.apiKey', {json.dumps(key)})")
        page = await context.new_page()
        page.set_default_timeout(30_000)
        started = time.perf_counter()
        await page.goto(url + path)
        await ready(page)
        elapsed = (time.perf_counter() - started) * 1000
        await answered(page)
        await context.close()
        if n:
            times.append(elapsed)
    return times


async def registry_ready(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import expect

    rows = page.get_by_test_id("versions").locator("tbody tr")
    await expect(rows.first).to_be_visible()
    await page.get_by_role("button", name="Next →").click()  # waits until the button is enabled and stable


async def registry_answered(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import expect

    await expect(page.get_by_test_id("versions").locator("tbody tr").first).to_contain_text("v20")


async def version_answered(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import expect

    await expect(page.get_by_test_id("usage")).to_be_visible()


async def version_ready(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import expect

    await expect(page.get_by_test_id("model-card")).to_be_visible()
    await page.get_by_role("tab", name="Usage").click()


def figures(label: str, times: list[float]) -> float:
    p50, p99 = p(times, 50), p(times, 99)
    say(f"{label}: p50 {p50:.0f} ms, p99 {p99:.0f} ms over {len(times)} loads (target ≤ {TARGET_MS:.0f} ms: {verdict(p99 <= TARGET_MS)})")
    return p50


async def main(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelreg-bench-ui-")))
        cache = BENCH / "results" / f"ui-{args.versions}"
        if args.rebuild_cache and cache.exists():
            shutil.rmtree(cache)
        built = cache / "built.json"
        if cache.exists() and not built.exists():
            shutil.rmtree(cache)  # an interrupted build
        dsn = stack.enter_context(postgres(cache, tmp))
        if built.exists():
            info = json.loads(built.read_text())
            say(f"{MODEL} with {args.versions:,} versions: reused from {cache} (seeded in {info['seed_s']:.0f} s on {info['built_at']})")
        else:
            say(f"seeding {MODEL}: {args.versions:,} versions logged and linked ({2 * args.versions + 4:,} events appended in bulk)")
            seed_s = await seed(dsn, args.versions, tmp)
            built.write_text(json.dumps({"seed_s": seed_s, "built_at": datetime.now(UTC).isoformat(timespec="seconds")}))
            say(f"seeded and projected in {seed_s:.0f} s; kept in {cache} for the next runs")

        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        data_dir = tmp / "modelreg-data"
        say("starting modelreg server ...")
        server = modelreg_cli(dsn, None, "server", "--data-dir", str(data_dir), "--database-url", dsn, "--port", str(port),
                              log=tmp / "modelreg-server.log")
        stack.callback(stop, server)
        await until_healthy(url.rstrip("/"), server, "modelreg server")
        key = await admin_key(data_dir)
        conn = await asyncpg.connect(dsn)
        try:
            count = await conn.fetchval("SELECT count(*) FROM model_versions WHERE registered_model = $1", MODEL)
        except asyncpg.PostgresError:
            count = None
        finally:
            await conn.close()
        if count is not None:
            say(f"{MODEL} has {count:,} linked versions")

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                registry = await timed_loads(browser, url, key, f"#/models/{MODEL}", registry_ready, registry_answered, args.loads)
                version = await timed_loads(browser, url, key, f"#/models/{MODEL}/v{args.versions // 2}", version_ready, version_answered, args.loads)
            finally:
                await browser.close()
        registry_p50 = figures("registry page interactive (first rows, then a click on Next → answered)", registry)
        version_p50 = figures("version page interactive (model card and tabs, then a click on a tab answered)", version)
        say(f"registry_page_interactive_ms={registry_p50:.0f} version_page_interactive_ms={version_p50:.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=100_000, help="versions linked to one registered model")
    parser.add_argument("--loads", type=int, default=10, help="timed page loads of each page")
    parser.add_argument("--rebuild-cache", action="store_true", help="seed afresh instead of reusing bench/results/")
    asyncio.run(main(parser.parse_args()))
