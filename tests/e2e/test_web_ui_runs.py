"""Finding a run in the browser: a viewer opens Runs, picks the project, pages, filters and searches its runs,
sees a new run appear live, opens one and goes back to its project from the run page. A wide run's page shows it
whole: a page of its metrics charted at a time, and its versions past those listed counted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from support.browser import BROWSER_TEST_MARKS, open_browser, screenshot
from support.stack import Stack
from support.story import START_RUN, demo_story, version_input

PAGE = 20  # runs per page (ui/pages/runs.js PAGE_SIZE)
# sweep-07 ran on a laptop with no server and was synced later: its client's times are kept beside the server's.
OFFLINE_START = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)

pytestmark = BROWSER_TEST_MARKS

FINISH = "mutation($i: FinishRunInput!) { finishRun(input: $i) { state } }"
ENQUEUE = """mutation { enqueueJob(input: {queue: "cpu", entity: "acme", project: "nature",
  source: {kind: "git", git_remote: "https://example.com/nature.git",
  git_commit: "0000000000000000000000000000000000000000",
           entry_point: ["python", "evaluate.py"]}}) { id } }"""
SWEEPS = 22
LAYERS = 1001  # metrics sweep-07 logged
CHARTED = 24  # curves charted at a time (ui/pages/run.js CHARTED)
LOG_BATCH = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"
LOGGED = 201  # checkpoints sweep-07 logged
IO_SHOWN = 200  # of a run's logged versions, those its page lists (ui/pages/run.js IO_SHOWN)


async def ok(stack: Stack, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = await stack.graphql(query, variables)
    assert "errors" not in answer, answer
    return answer["data"]


async def log_checkpoints(stack: Stack, run_id: str, count: int, batch: int = 25) -> None:
    """`count` versions of a checkpoint the run logged, a batch a request."""
    for start in range(0, count, batch):
        numbers = range(start, min(start + batch, count))
        fields = " ".join(f"c{n}: logArtifactVersion(input: $c{n}) {{ id }}" for n in numbers)
        arguments = ", ".join(f"$c{n}: LogArtifactVersionInput!" for n in numbers)
        variables = {f"c{n}": version_input("checkpoint", f"step {n}".encode(), runId=run_id) for n in numbers}
        await ok(stack, f"mutation({arguments}) {{ {fields} }}", variables)


async def seed(stack: Stack) -> None:
    """acme/nature: the demo's three runs, a sweep of 22 (one failed), then an evaluation a Launch job started
    (26 runs, two pages); acme/vision: one run."""
    await demo_story(stack)
    for n in range(SWEEPS):
        run = {"entity": "acme", "project": "nature", "runId": f"sweep-{n:02d}"}
        started = {"commandId": str(uuid.uuid4()), "occurredAt": OFFLINE_START.isoformat()} if n == 7 else {}
        tags = ["baseline"] if n >= SWEEPS - 3 else []
        await ok(
            stack,
            START_RUN,
            {"input": {**run, "jobType": "sweep", "config": {"lr": 0.001 * (n + 1)}, "tags": tags, **started}},
        )
        if n == 7:  # a metric per layer: more curves than a page may chart, more points than one answer holds
            series = [{"key": f"layer_{k:04d}", "firstStep": 0, "values": [k]} for k in range(LAYERS)]
            await ok(stack, LOG_BATCH, {"i": {**run, "series": series}})
            await log_checkpoints(stack, run["runId"], LOGGED)
        # accuracy as define_metric("accuracy", summary="max") keeps it
        summary = {"loss": round(0.5 - n * 0.01, 3), "accuracy": {"max": round(0.8 + n * 0.005, 3)}}
        await ok(stack, FINISH, {"i": {**run, "state": "FAILED" if n == 7 else "FINISHED", "summary": summary}})
    await ok(stack, 'mutation { createLaunchQueue(input: {name: "cpu"}) { name } }')
    job = (await ok(stack, ENQUEUE))["enqueueJob"]["id"]
    evaluation = {
        "entity": "acme",
        "project": "nature",
        "runId": "eval-7",
        "name": "Evaluate the candidate",
        "jobType": "evaluate",
        "environment": {"launch": {"job_id": job}},
    }
    await ok(stack, START_RUN, {"input": evaluation})
    await ok(stack, START_RUN, {"input": {"entity": "acme", "project": "vision", "runId": "vit-1", "jobType": "train"}})


async def test_a_viewer_finds_a_run_by_project_filters_and_search_and_opens_it(stack: Stack) -> None:
    from playwright.async_api import expect

    await seed(stack)
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    viewer_key = await stack.key("user:dana", role="viewer")

    async with open_browser(url) as browser:
        page = await browser.page(viewer_key, expect_principal="user:dana")
        await page.set_viewport_size({"width": 1280, "height": 900})
        # Runs: the projects, the most recently active first, with their run counts.
        await page.get_by_role("banner").get_by_role("link", name="Runs").click()
        projects = page.get_by_test_id("projects").locator("tbody tr")
        await expect(projects).to_have_count(2)
        await expect(projects.first).to_contain_text("acme/vision")
        await expect(projects.filter(has_text="acme/nature")).to_contain_text("26")

        # The project's runs, newest first, a page at a time.
        await page.get_by_role("link", name="acme/nature").click()
        rows = page.get_by_test_id("runs").locator("tbody tr")
        pager = page.get_by_test_id("runs-page")
        await expect(rows).to_have_count(PAGE)
        await expect(pager).to_have_text("page 1 · 26 runs")
        newest = rows.first
        await expect(newest).to_contain_text("Evaluate the candidate")
        await expect(newest).to_contain_text("eval-7")
        await expect(newest.locator(".badge")).to_have_text("running")
        await expect(newest.get_by_role("link", name="job")).to_contain_text("job ")  # the Launch job that started it
        await expect(newest).to_contain_text("cpu")
        # Summary metrics as columns, what define_metric kept named as W&B names it.
        await expect(page.get_by_test_id("runs").locator("thead")).to_contain_text("accuracy.max")
        await expect(rows.filter(has_text="sweep-21")).to_contain_text("0.905")
        await expect(page.locator(".live")).to_contain_text("live")
        await screenshot(page, "runs.png", full_page=True)
        await page.get_by_role("button", name="Next →").click()
        await expect(rows).to_have_count(26 - PAGE)
        await expect(rows.last).to_contain_text("prep-1")  # the oldest
        await expect(page.get_by_role("button", name="Next →")).to_be_disabled()
        await page.get_by_role("button", name="← Previous").click()
        await expect(rows).to_have_count(PAGE)

        # A run started now appears at the top without a reload (the events subscription).
        await ok(
            stack, START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": "live-1", "jobType": "train"}}
        )
        await expect(rows.first).to_contain_text("live-1")
        await expect(pager).to_have_text("page 1 · 27 runs")

        # Filters: by state, by job type (the project's own job types are offered).
        await page.get_by_label("State").select_option("failed")
        await expect(rows).to_have_count(1)
        await expect(rows).to_contain_text("sweep-07")
        await page.get_by_label("State").select_option("")
        await expect(page.get_by_label("Job type").locator("option")).to_have_text(
            ["any", "evaluate", "preprocess", "sweep", "train"]
        )
        await page.get_by_label("Job type").select_option("sweep")
        await expect(pager).to_have_text("page 1 · 22 runs")
        await page.get_by_label("Job type").select_option("")
        # By tag: a run's tag badge lists the runs that carry it, kept in the address; the Tag field clears it.
        await rows.filter(has_text="sweep-20").get_by_test_id("run-tags").get_by_role("button", name="baseline").click()
        await expect(pager).to_have_text("page 1 · 3 runs")
        assert page.url.endswith("#/runs/acme/nature?tag=baseline"), page.url
        await expect(page.get_by_label("Runs with tag")).to_have_value("baseline")
        await page.get_by_label("Runs with tag").fill("no-such-tag")
        await page.get_by_label("Runs with tag").press("Enter")
        await expect(page.get_by_text("No run matches.")).to_be_visible()
        await page.get_by_label("Runs with tag").fill("")
        await page.get_by_label("Runs with tag").press("Enter")
        await expect(pager).to_have_text("page 1 · 27 runs")

        # Search, in any case, and open the run.
        await page.get_by_role("searchbox", name="Search runs").fill("TRAIN-1")
        await expect(rows).to_have_count(1)
        await rows.filter(has_text="train-1").get_by_role("link").first.click()  # its name: one given when it had none
        await expect(page.get_by_role("heading", name="train-1")).to_be_visible()
        await expect(page.get_by_test_id("run-io")).to_contain_text("nature-images:v0")

        # The run page leads back to its project's runs.
        await page.locator(".crumbs").get_by_role("link", name="acme/nature").click()
        await expect(pager).to_have_text("page 1 · 27 runs")
        await expect(page.get_by_role("banner").get_by_role("link", name="Runs")).to_have_class("active")

        # Filters live in the address: Back from a run finds them again.
        await page.get_by_label("State").select_option("failed")
        await expect(rows).to_have_count(1)
        assert page.url.endswith("#/runs/acme/nature?state=failed"), page.url
        await rows.filter(has_text="sweep-07").get_by_role("link").first.click()  # its name: one given when it had none
        await expect(page.get_by_role("heading", name="sweep-07")).to_be_visible()
        recorded = OFFLINE_START.strftime("%Y-%m-%d %H:%M:%S UTC")
        await expect(page.get_by_test_id("recorded-offline")).to_have_text(f"(recorded offline at {recorded})")
        # Its checkpoints: the first IO_SHOWN listed, the rest counted.
        logged = page.get_by_test_id("run-io").locator("section").nth(1)
        await expect(logged.get_by_role("link")).to_have_count(IO_SHOWN)
        await expect(page.get_by_test_id("more-logged")).to_contain_text(f"and {LOGGED - IO_SHOWN} more")
        # Its thousand metrics are charted a few at a time, by name: a search or the pages reach the others.
        curves = page.get_by_test_id("curves").locator(".curve")
        await expect(page.get_by_test_id("curves-note")).to_contain_text(f"{LAYERS:,} metrics")
        await expect(curves).to_have_count(CHARTED)
        await expect(curves.first).to_have_attribute("data-testid", "curve-layer_0000")
        await expect(page.get_by_test_id("curves-page")).to_have_text(f"page 1 · {LAYERS:,} metrics")
        await page.get_by_test_id("curves").get_by_role("button", name="Next →").click()
        await expect(curves.first).to_have_attribute("data-testid", f"curve-layer_{CHARTED:04d}")
        await page.get_by_role("searchbox", name="Search metrics").fill("layer_1000")
        await expect(curves).to_have_count(1)
        await expect(page.get_by_test_id("curve-layer_1000").locator("canvas")).to_be_visible()
        await page.go_back()
        await expect(page.get_by_label("State")).to_have_value("failed")
        await expect(rows).to_have_count(1)
        await expect(rows).to_contain_text("sweep-07")

        # A state no run has, in a hand-edited link, lists every run (it showed GraphQL's enum error).
        await page.goto(f"{url}#/runs/acme/nature?state=bogus")
        await expect(pager).to_have_text("page 1 · 27 runs")
        await expect(page.get_by_label("State")).to_have_value("")
    assert browser.problems == [], browser.problems
