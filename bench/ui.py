"""Web UI benchmark (issue 5): how long until the registry page and a version page are interactive in a
browser, for a registered model with 100,000 linked versions; and the Runs pages, for a project with
100,000 runs.

Starts an embedded PostgreSQL and `modelreg server` on it (as bench/registry.py does), seeds the model
by appending its history in bulk to the Postgres event log (100,000 `artifact.version_logged` and
`registry.version_linked` events and three aliases, then 100,000 `runs.run_started` and as many
`runs.run_finished`, the last 10 runs left running) and waiting for the projections, then opens the UI in
headless Chromium (Playwright, Debian's /usr/bin/chromium) with a fresh page per load:

- registry page interactive: from navigation to `#/models/<model>` until the versions table shows its
  first rows and a click on "Next →" is accepted (Playwright clicks once the button is enabled and stable);
- version page interactive: from navigation to `#/models/<model>/v<n>` until the model card and the tabs
  are rendered and a click on a tab is accepted;
- runs page interactive: from navigation to `#/runs/<entity>/<project>` until the runs table shows its first
  rows and a click on "Next →" is accepted;
- projects page interactive: from navigation to `#/runs` until the project list (counted over every run)
  shows and a click on the project is accepted;
- run found by search: on a loaded runs page, from typing a run id (one run in 100,000, in other case) until
  the table shows only that run (the search box waits 250 ms for typing to stop: that is included);
- then, without a browser, the API's own answer times over HTTP for the Runs queries: the first page, a page
  in the middle (by cursor), a search for one run, the 1% failed runs, and the projects.

After each timed load, an untimed check that the click did something (the second page of versions; the
Usage tab).

The seeded database is kept in bench/results/ and reused (--rebuild-cache starts over). Each figure is
printed as p50 and p99 with its target; the last line holds the p50s.

Usage: python bench/ui.py [--versions 100000] [--runs 100000] [--loads 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from registry import (  # bench/registry.py: the same processes and bulk helpers
    ACTOR,
    BENCH,
    Clock,
    Ours,
    admin_key,
    append_and_project,
    digest,
    free_port,
    modelreg_cli,
    node_uuid,
    p,
    postgres,
    say,
    stop,
    timed_queries,
    until_healthy,
    verdict,
)

from modelreg.events.artifacts import ArtifactVersionLogged, ManifestEntry, artifact_stream
from modelreg.events.envelope import Envelope
from modelreg.events.registry import AliasAdded, VersionLinked, registered_model_stream
from modelreg.events.runs import RunFinished, RunStarted, run_stream

CHROMIUM = os.environ.get("MODELREG_CHROMIUM", "/usr/bin/chromium")
ENTITY, PROJECT = "acme", "ui-bench"
MODEL = "ui-bench-100k"
JOB_TYPES = ("train", "evaluate", "sweep", "preprocess")
# What a run's environment holds in practice (git, python, the installed packages): a row of about 2 KB.
ENVIRONMENT = {
    "git": {"remote": "https://example.com/ui-bench.git", "branch": "main", "commit": "3f2c1a9e" * 5, "diff": ""},
    "python": {"version": "3.11.7"},
    "os": {"system": "Linux"},
    "command": ["python", "train.py"],
    "requirements": [f"package-{n}=={n % 7}.{n % 13}.{n % 5}" for n in range(120)],
}
TARGET_MS = 1000.0


def version_id(n: int) -> uuid.UUID:
    return node_uuid("ui-bench", n)


def history(versions: int, clock: Clock) -> Iterator[list[Envelope]]:
    """A training run, `versions` model versions logged by it, each linked to MODEL; then three aliases."""
    run_id = "train-0"
    yield [
        Envelope.new(
            RunStarted(entity=ENTITY, project=PROJECT, run_id=run_id, job_type="train", config={"lr": 0.01}),
            stream=run_stream(ENTITY, PROJECT, run_id),
            actor=ACTOR,
            occurred_at=clock.next(),
        )
    ]
    stream = registered_model_stream(MODEL)
    for start in range(0, versions, 5000):
        logged, linked = [], []
        for n in range(start, min(start + 5000, versions)):
            item = version_id(n)
            payload = ArtifactVersionLogged(
                artifact_version_id=item,
                entity=ENTITY,
                project=PROJECT,
                name="classifier",
                artifact_type="model",
                digest=digest(item),
                manifest=(ManifestEntry(path="weights.bin", size=1024, digest=digest(item, "w")),),
                logged_by_run=run_id,
            )
            logged.append(
                Envelope.new(
                    payload,
                    stream=artifact_stream(ENTITY, PROJECT, "classifier"),
                    actor=ACTOR,
                    occurred_at=clock.next(),
                )
            )
        for n in range(start, min(start + 5000, versions)):
            linked.append(
                Envelope.new(
                    VersionLinked(registered_model=MODEL, artifact_version_id=version_id(n)),
                    stream=stream,
                    actor=ACTOR,
                    occurred_at=clock.next(),
                )
            )
        yield logged
        yield linked
    for n, alias in ((0, "first"), (versions // 2, "staging"), (versions - 1, "production")):
        yield [
            Envelope.new(
                AliasAdded(registered_model=MODEL, artifact_version_id=version_id(n), alias=alias),
                stream=stream,
                actor=ACTOR,
                occurred_at=clock.next(),
            )
        ]


def run_id(n: int) -> str:
    return f"run-{n:06d}"


def runs_history(runs: int, clock: Clock) -> Iterator[list[Envelope]]:
    """`runs` runs of PROJECT, 5,000 at a time: started, then finished (1% failed), except the last 10."""
    for start in range(0, runs, 5000):
        numbers = range(start, min(start + 5000, runs))
        yield [
            Envelope.new(
                RunStarted(
                    entity=ENTITY,
                    project=PROJECT,
                    run_id=run_id(n),
                    job_type=JOB_TYPES[n % 4],
                    name=f"sweep {n}" if n % 10 == 0 else None,
                    config={"lr": 0.001 * (n % 50 + 1)},
                    environment=ENVIRONMENT,
                ),
                stream=run_stream(ENTITY, PROJECT, run_id(n)),
                actor=ACTOR,
                occurred_at=clock.next(),
            )
            for n in numbers
        ]
        yield [
            Envelope.new(
                RunFinished(
                    entity=ENTITY,
                    project=PROJECT,
                    run_id=run_id(n),
                    state="failed" if n % 100 == 7 else "finished",
                    exit_code=0,
                    summary={"loss": 1 / (n % 97 + 1), "accuracy": (n % 89) / 100},
                ),
                stream=run_stream(ENTITY, PROJECT, run_id(n)),
                actor=ACTOR,
                occurred_at=clock.next(),
            )
            for n in numbers
            if n < runs - 10
        ]


def event_count(versions: int, runs: int) -> int:
    return 2 * versions + 4 + 2 * runs - min(runs, 10)


async def seed(dsn: str, versions: int, runs: int, logs: Path) -> float:
    """Append the history in bulk while projector processes apply it; returns seconds until projected."""
    clock = Clock()
    batches = itertools.chain(history(versions, clock), runs_history(runs, clock))
    return await append_and_project(dsn, None, batches, event_count(versions, runs), logs)


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


async def runs_ready(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import expect

    await expect(page.get_by_test_id("runs").locator("tbody tr").first).to_be_visible()
    await page.get_by_role("button", name="Next →").click()


async def runs_answered(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import expect

    await expect(page.get_by_test_id("runs-page")).to_contain_text("page 2")


async def projects_ready(page) -> None:  # type: ignore[no-untyped-def]
    await page.get_by_test_id("projects").get_by_role("link", name=f"{ENTITY}/{PROJECT}").click()


async def projects_answered(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import expect

    await expect(page.get_by_test_id("runs").locator("tbody tr").first).to_be_visible()


async def timed_searches(browser, url: str, key: str, wanted: list[str]) -> list[float]:  # type: ignore[no-untyped-def]
    """Milliseconds from typing a run id (upper case) into the search box until the table shows just that run."""
    from playwright.async_api import expect

    times: list[float] = []
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    await context.add_init_script(f"localStorage.setItem('modelreg.apiKey', {json.dumps(key)})")
    page = await context.new_page()
    page.set_default_timeout(30_000)
    await page.goto(f"{url}#/runs/{ENTITY}/{PROJECT}")
    rows = page.get_by_test_id("runs").locator("tbody tr")
    for n, run in enumerate(wanted):
        await expect(rows.first).to_be_visible()
        started = time.perf_counter()
        await page.get_by_role("searchbox", name="Search runs").fill(run.upper())
        await expect(page.get_by_test_id("runs-page")).to_have_text("page 1 · 1 run")
        await expect(rows).to_have_count(1)
        await expect(rows).to_contain_text(run)
        if n:  # the first is a warm-up
            times.append((time.perf_counter() - started) * 1000)
        await page.get_by_role("searchbox", name="Search runs").fill("")
        await expect(page.get_by_test_id("runs-page")).not_to_have_text("page 1 · 1 run")
    await context.close()
    return times


RUNS = """query($e: String!, $p: String!, $search: String, $state: RunState, $after: String) {
  runs(entity: $e, project: $p, search: $search, state: $state, first: 20, after: $after) {
    items { runId name jobType state startedBy startedAt finishedAt summary launchedBy { id queue } }
    endCursor totalCount
  }
}"""
PROJECTS = "{ projects { items { entity project runCount lastActivityAt } } }"


async def runs_queries(url: str, key: str, runs: int, count: int) -> dict[str, list[float]]:
    """Milliseconds for each Runs query the UI sends, `count` times each after 5 warm-ups."""
    here = {"e": ENTITY, "p": PROJECT}
    async with aiohttp.ClientSession() as http:
        ours = Ours(http, url.rstrip("/"), key)
        middle = await ours.gql(RUNS, {**here, "search": run_id(runs // 2)})
        searches = [run_id(runs * (n + 1) // (count + 7)).upper() for n in range(count + 5)]
        calls = {
            "first page": [(RUNS, here)] * (count + 5),
            "a page in the middle": [(RUNS, {**here, "after": middle["runs"]["endCursor"]})] * (count + 5),
            "one run found by search": [(RUNS, {**here, "search": wanted}) for wanted in searches],
            "the failed runs (1%)": [(RUNS, {**here, "state": "FAILED"})] * (count + 5),
            "projects": [(PROJECTS, {})] * (count + 5),
        }
        return {label: (await timed_queries(ours, these, warm_up=5))[0] for label, these in calls.items()}


def figures(label: str, times: list[float]) -> float:
    p50, p99 = p(times, 50), p(times, 99)
    say(
        f"{label}: p50 {p50:.0f} ms, p99 {p99:.0f} ms over {len(times)} loads "
        f"(target ≤ {TARGET_MS:.0f} ms: {verdict(p99 <= TARGET_MS)})"
    )
    return p50


async def main(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelreg-bench-ui-")))
        cache = BENCH / "results" / f"ui-{args.versions}-runs-{args.runs}"
        if args.rebuild_cache and cache.exists():
            shutil.rmtree(cache)
        built = cache / "built.json"
        if cache.exists() and not built.exists():
            shutil.rmtree(cache)  # an interrupted build
        dsn = stack.enter_context(postgres(cache, tmp))
        if built.exists():
            info = json.loads(built.read_text())
            say(
                f"{MODEL} with {args.versions:,} versions and {args.runs:,} runs: reused from {cache} "
                f"(seeded in {info['seed_s']:.0f} s on {info['built_at']})"
            )
        else:
            say(
                f"seeding {MODEL}: {args.versions:,} versions logged and linked, "
                f"{args.runs:,} runs in {ENTITY}/{PROJECT} "
                f"({event_count(args.versions, args.runs):,} events appended in bulk)"
            )
            seed_s = await seed(dsn, args.versions, args.runs, tmp)
            built.write_text(
                json.dumps({"seed_s": seed_s, "built_at": datetime.now(UTC).isoformat(timespec="seconds")})
            )
            say(f"seeded and projected in {seed_s:.0f} s; kept in {cache} for the next runs")

        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        data_dir = tmp / "modelreg-data"
        say("starting modelreg server ...")
        server = modelreg_cli(
            dsn,
            None,
            "server",
            "--data-dir",
            str(data_dir),
            "--database-url",
            dsn,
            "--port",
            str(port),
            log=tmp / "modelreg-server.log",
        )
        stack.callback(stop, server)
        await until_healthy(url.rstrip("/"), server, "modelreg server")
        key = await admin_key(data_dir)
        conn = await asyncpg.connect(dsn)
        try:
            count = await conn.fetchval("SELECT count(*) FROM model_versions WHERE registered_model = $1", MODEL)
            runs = await conn.fetchval("SELECT count(*) FROM runs WHERE entity = $1 AND project = $2", ENTITY, PROJECT)
        except asyncpg.PostgresError:
            count = runs = None
        finally:
            await conn.close()
        if count is not None:
            say(f"{MODEL} has {count:,} linked versions; {ENTITY}/{PROJECT} has {runs:,} runs")

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                registry = await timed_loads(
                    browser, url, key, f"#/models/{MODEL}", registry_ready, registry_answered, args.loads
                )
                version = await timed_loads(
                    browser,
                    url,
                    key,
                    f"#/models/{MODEL}/v{args.versions // 2}",
                    version_ready,
                    version_answered,
                    args.loads,
                )
                runs_page = await timed_loads(
                    browser, url, key, f"#/runs/{ENTITY}/{PROJECT}", runs_ready, runs_answered, args.loads
                )
                projects = await timed_loads(browser, url, key, "#/runs", projects_ready, projects_answered, args.loads)
                wanted = [run_id(args.runs * (n + 1) // (args.loads + 2)) for n in range(args.loads + 1)]
                search = await timed_searches(browser, url, key, wanted)
            finally:
                await browser.close()
        answers = await runs_queries(url, key, args.runs, 20)
        registry_p50 = figures("registry page interactive (first rows, then a click on Next → answered)", registry)
        version_p50 = figures("version page interactive (model card and tabs, then a click on a tab answered)", version)
        runs_p50 = figures("runs page interactive (first rows, then a click on Next → answered)", runs_page)
        projects_p50 = figures(
            "projects page interactive (every project counted, then a click on one answered)", projects
        )
        search_p50 = figures(
            "run found by search (typing a run id until only that run shows, 250 ms debounce included)", search
        )
        for label, times in answers.items():
            say(f"API answer, {label}: p50 {p(times, 50):.1f} ms, p99 {p(times, 99):.1f} ms over {len(times)} queries")
        say(
            f"registry_page_interactive_ms={registry_p50:.0f} version_page_interactive_ms={version_p50:.0f} "
            f"runs_page_interactive_ms={runs_p50:.0f} projects_page_interactive_ms={projects_p50:.0f} "
            f"run_search_ms={search_p50:.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=100_000, help="versions linked to one registered model")
    parser.add_argument("--runs", type=int, default=100_000, help=f"runs in {ENTITY}/{PROJECT}")
    parser.add_argument("--loads", type=int, default=10, help="timed page loads of each page")
    parser.add_argument("--rebuild-cache", action="store_true", help="seed afresh instead of reusing bench/results/")
    asyncio.run(main(parser.parse_args()))
