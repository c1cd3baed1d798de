"""Comparing runs in the browser, as W&B's run comparer: a viewer ticks runs of a project, opens them side by side,
sees which config and summary keys differ (or only those), and each metric's curves of every run in one chart; the
address holds the comparison, so a reload or a link shows it again, and Back finds the runs still ticked."""

from __future__ import annotations

import re
from typing import Any

from support.browser import BROWSER_TEST_MARKS, open_browser, screenshot
from support.stack import Stack
from support.story import START_RUN, demo_story

pytestmark = BROWSER_TEST_MARKS

FINISH = "mutation($i: FinishRunInput!) { finishRun(input: $i) { state } }"
LOG_BATCH = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"
TRIALS = {  # run id: its name, learning rate, optimizer
    "trial-a": ("fast learner", 0.01, "adam"),
    "trial-b": ("slow learner", 0.001, "adam"),
    "trial-c": ("plain sgd", 0.01, "sgd"),
}


async def ok(stack: Stack, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = await stack.graphql(query, variables)
    assert "errors" not in answer, answer
    return answer["data"]


async def seed(stack: Stack) -> None:
    """Three trials of acme/nature: the same epochs, other learning rates and optimizers; a logs its loss from step 0,
    b from step 5 (steps the other has not: the chart joins over them), c none."""
    for n, (run_id, (name, lr, optimizer)) in enumerate(TRIALS.items()):
        run = {"entity": "acme", "project": "nature", "runId": run_id}
        config = {"lr": lr, "epochs": 10, "optimizer": {"name": optimizer, "momentum": 0.9}}
        await ok(stack, START_RUN, {"input": {**run, "name": name, "jobType": "train", "config": config}})
        if run_id != "trial-c":
            first = 5 * n
            losses = [round(1.0 / (step + 1) + n * 0.1, 4) for step in range(first, 30)]
            series = [{"key": "loss", "firstStep": first, "values": losses}]
            await ok(stack, LOG_BATCH, {"i": {**run, "series": series}})
        summary = {"loss": round(0.2 + n * 0.1, 3), "accuracy": {"max": 0.9}}
        await ok(stack, FINISH, {"i": {**run, "state": "FINISHED", "summary": summary}})


async def test_a_viewer_compares_two_runs_key_by_key_and_curve_by_curve(stack: Stack) -> None:
    from playwright.async_api import expect

    await seed(stack)
    assert stack.client is not None
    url = str(stack.client.make_url("/")).rstrip("/")
    async with open_browser(url) as browser:
        page = await browser.page(await stack.key("user:dana", role="viewer"), expect_principal="user:dana")
        await page.set_viewport_size({"width": 1280, "height": 900})
        await page.goto(f"{url}/#/runs/acme/nature")
        await page.get_by_role("checkbox", name="compare trial-a").check()
        bar = page.get_by_test_id("compare-bar")
        await expect(bar).to_contain_text("Tick another run to compare it with trial-a")
        await page.get_by_role("checkbox", name="compare trial-b").check()
        await bar.get_by_role("link", name="Compare 2 runs").click()

        # Side by side, in the order ticked, by name: what differs is marked.
        await expect(page).to_have_url(re.compile(r"#/compare/acme/nature\?runs=trial-a%2Ctrial-b$"))
        await expect(page.get_by_test_id("compared-runs").locator("li")).to_have_text(
            [re.compile(r"fast learner\s+trial-a"), re.compile(r"slow learner\s+trial-b")]
        )
        config = page.get_by_test_id("compare-config")
        await expect(config.locator("thead th")).to_have_text(["Key", "fast learner trial-a", "slow learner trial-b"])
        await expect(config.locator("tbody tr")).to_have_count(4)  # epochs, lr, optimizer.momentum, optimizer.name
        await expect(config.locator("tr.differs")).to_have_count(1)
        await expect(config.locator("tr.differs")).to_have_text(re.compile(r"lr\s*0\.01\s*0\.001"))
        summary = page.get_by_test_id("compare-summary")
        await expect(summary.locator("tr.differs")).to_have_text(re.compile(r"loss\s*0\.2\s*0\.3"))
        await expect(summary.locator("tbody tr").filter(has_text="accuracy.max")).not_to_have_class("differs")

        # One chart per metric, a line per run.
        chart = page.get_by_test_id("compared-loss")
        await expect(chart.locator("canvas")).to_be_visible()
        await expect(chart).to_have_attribute("data-lines", "2")
        await expect(chart.locator(".u-legend")).to_contain_text("fast learner")
        await expect(chart.locator(".u-legend")).to_contain_text("slow learner")
        await screenshot(page, "compare-runs.png", full_page=True)

        # Only what differs: the same keys go, and the address keeps the choice through a reload.
        await page.get_by_label("Only what differs").check()
        await expect(config.locator("tbody tr")).to_have_count(1)
        await expect(page).to_have_url(re.compile(r"runs=trial-a%2Ctrial-b&diff=1$"))
        await page.reload()
        await expect(page.get_by_label("Only what differs")).to_be_checked()
        await expect(page.get_by_test_id("compare-config").locator("tbody tr")).to_have_count(1)

        # Back: the project's runs, the two still ticked, a third added.
        await page.go_back()
        await expect(page.get_by_role("checkbox", name="compare trial-b")).to_be_checked()
        await page.get_by_role("checkbox", name="compare trial-c").check()
        await page.get_by_test_id("compare-bar").get_by_role("link", name="Compare 3 runs").click()
        await expect(page.get_by_test_id("compare-config").locator("tr.differs")).to_have_count(2)  # lr, the optimizer
        await expect(page.get_by_test_id("compared-loss")).to_have_attribute("data-lines", "2")  # c logged no loss

        # A link naming a run there is not: said where it would be, the others compared.
        await page.goto(f"{url}/#/compare/acme/nature?runs=trial-a,no-such-run,trial-c")
        await expect(page.get_by_test_id("compared-runs")).to_contain_text("no run no-such-run in acme/nature")
        await expect(page.get_by_test_id("compare-config").locator("thead th")).to_have_text(
            ["Key", "fast learner trial-a", "plain sgd trial-c"]
        )
        # Nine named: the first eight compared, the cut said. One found: nothing to compare it with, said so.
        nine = ",".join(["trial-a", *(f"gone-{n}" for n in range(8))])
        await page.goto(f"{url}/#/compare/acme/nature?runs={nine}")
        await expect(page.get_by_test_id("compare-cut")).to_contain_text("The first 8 of the 9 runs named")
        await expect(page.get_by_test_id("compared-runs").locator("li")).to_have_count(8)
        await expect(page.get_by_test_id("compare-alone")).to_contain_text("Only one of the runs named is here")
        await expect(page.get_by_test_id("compare-config").locator("tr.differs")).to_have_count(0)
        assert browser.problems == [], browser.problems


async def test_the_runs_behind_two_versions_of_a_model_are_compared_from_its_versions_table(stack: Stack) -> None:
    """The demo's question of a candidate and production: were they trained alike? Tick both in the registry."""
    from playwright.async_api import expect

    await demo_story(stack)  # v0 and v1 of nature-classification, from train-0 (lr 0.1) and train-1 (lr 0.05)
    assert stack.client is not None
    url = str(stack.client.make_url("/")).rstrip("/")
    async with open_browser(url) as browser:
        page = await browser.page(await stack.key("user:dana", role="viewer"), expect_principal="user:dana")
        await page.goto(f"{url}/#/models/nature-classification")
        await page.get_by_role("checkbox", name="compare the run behind v0").check()
        bar = page.get_by_test_id("compare-bar")
        await expect(bar).to_contain_text("Tick another version")
        await page.get_by_role("checkbox", name="compare the run behind v1").check()
        await bar.get_by_role("link", name="Compare the runs behind v0, v1").click()

        await expect(page).to_have_url(re.compile(r"#/compare/acme/nature\?runs=train-0%2Ctrain-1$"))
        await expect(page.get_by_test_id("compare-config").locator("tr.differs")).to_have_text(
            re.compile(r"lr\s*0\.1\s*0\.05")
        )
        assert browser.problems == [], browser.problems
