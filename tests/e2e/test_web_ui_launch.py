"""The demo's Launch flow in a browser: clone a finished training run with a changed learning rate onto a
queue, without YAML, and watch the job an agent runs go to finished; then the queue is deleted."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from support.browser import BROWSER_TEST_MARKS, open_browser, screenshot
from support.stack import Stack
from support.training_repo import make_training_repo

pytestmark = BROWSER_TEST_MARKS

JOBS_PAGE = 50  # jobs per page of the Launch page (ui/pages/launch.js JOBS_PAGE)


async def test_a_member_clones_a_training_run_with_a_new_learning_rate_and_watches_the_job_finish(
    stack: Stack, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    assert stack.client is not None
    url = str(stack.client.make_url("/")).rstrip("/")
    await stack.graphql('mutation { createLaunchQueue(input: {name: "cpu"}) { name } }')
    repo, _ = make_training_repo(tmp_path / "repo")
    member = await stack.key("user:mia", role="member")
    env = {**os.environ, "MODELREG_URL": url, "MODELREG_API_KEY": member, "MODELREG_ENTITY": "acme"}
    trained = await asyncio.to_thread(
        subprocess.run, [sys.executable, "train.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert trained.returncode == 0, trained.stderr
    run_id = trained.stdout.split()[1]
    agent = subprocess.Popen(
        [sys.executable, "-m", "modelreg.services.cli", "agent", "--queue", "cpu", "--heartbeat", "0.5"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with open_browser(url + "/") as browser:
            page = await browser.page(member, expect_principal="user:mia")
            expect.set_options(timeout=60_000)  # the job runs a real training script

            await page.goto(f"{url}/#/runs/acme/nature/{run_id}")
            await page.get_by_role("link", name="Clone this run…").click()
            knobs = page.get_by_test_id("knobs")
            await expect(knobs.get_by_label("lr")).to_have_value("0.1")
            await knobs.get_by_label("lr").fill("0.01")
            await page.get_by_label("Time limit, hours").fill("2")
            await screenshot(page, "launch-clone.png", full_page=True)
            await page.get_by_role("button", name="Enqueue").click()

            await expect(page.get_by_test_id("job-state")).to_have_text("finished")
            await expect(page.get_by_text("time limit 2 h")).to_be_visible()
            await screenshot(page, "launch-clone-finished.png", full_page=True)
            first_job = page.url.rsplit("/", 1)[1]

            # The same job again, as it was enqueued: a new job, which names the one it runs again.
            await page.get_by_role("button", name="Run again").click()
            await expect(page.get_by_text(f"Runs job {first_job[:8]}…{first_job[-4:]} again.")).to_be_visible()
            await expect(page.get_by_test_id("job-state")).to_have_text("finished")

            # The model the cloned run logged: its file comes back from the blob store through the browser.
            found = await stack.graphql('{ artifactVersion(ref: "acme/nature/regressor:v1") { id } }')
            await page.goto(f"{url}/#/artifacts/{found['data']['artifactVersion']['id']}/files")
            async with page.expect_download() as download_info:
                await page.get_by_test_id("files").get_by_role("button", name="download").click()
            download = await download_info.value
            saved = tmp_path / "weights.json"
            await download.save_as(saved)
            assert download.suggested_filename == "weights.json" and saved.read_text().startswith("[")

            # Its jobs ended, the queue may go: an admin deletes it; a member is not offered that.
            await page.goto(f"{url}/#/launch")
            await expect(page.get_by_test_id("queues")).to_contain_text("cpu")
            await expect(page.get_by_test_id("queues").get_by_role("button", name="Delete")).to_have_count(0)
            admin = await browser.page(await stack.key("user:ada"), expect_principal="user:ada")
            admin.on("dialog", lambda dialog: dialog.accept())  # the deletion's confirmation
            await admin.goto(f"{url}/#/launch")
            await admin.get_by_test_id("queues").get_by_role("button", name="Delete").click()
            await expect(admin.get_by_text("No queue.")).to_be_visible()
        assert browser.problems == [], browser.problems
    finally:
        agent.terminate()
        await asyncio.to_thread(agent.wait, 30)

    query = "{ launchJobs { items { id overrides config state source timeLimitS retryOf } } }"
    again, job = (await stack.graphql(query))["data"]["launchJobs"]["items"]  # newest first
    assert job["overrides"] == {"lr": 0.01} and job["config"]["lr"] == 0.01 and job["state"] == "FINISHED"
    assert job["source"]["cloned_from_run"] == f"acme/nature/{run_id}" and job["timeLimitS"] == 7200
    assert (again["retryOf"], again["config"], again["timeLimitS"]) == (job["id"], job["config"], 7200)


async def test_a_requeued_jobs_page_shows_each_attempts_output_apart_and_why_the_first_was_given_up(
    stack: Stack,
) -> None:
    # Its attempts' output ran together, and once the second finished, why the first was requeued was gone from it.
    from playwright.async_api import expect

    assert stack.client is not None
    url = str(stack.client.make_url("/")).rstrip("/")
    await stack.graphql('mutation { createLaunchQueue(input: {name: "cpu", resource: DOCKER}) { name } }')
    enqueue = """mutation($s: GenericScalar) {
      enqueueJob(input: {queue: "cpu", entity: "acme", project: "nature", source: $s}) { id } }"""
    source = {"kind": "image", "image": "python:3.12", "entry_point": ["python", "train.py"]}
    job_id = (await stack.graphql(enqueue, {"s": source}))["data"]["enqueueJob"]["id"]
    agent = await stack.key("service:agent", role="member")
    ids = {"id": job_id, "agentId": "service:agent:host-1"}

    async def attempt(n: int, printed: str) -> None:
        await stack.graphql("mutation($i: ClaimJobInput!) { claimJob(input: $i) { attempt } }", {"i": ids}, key=agent)
        started = "mutation($i: ReportJobStartedInput!) { reportJobStarted(input: $i) { state } }"
        await stack.graphql(started, {"i": {**ids, "attempt": n}}, key=agent)
        output = {**ids, "attempt": n, "stream": "STDOUT", "text": printed}
        await stack.graphql(
            "mutation($i: CaptureJobOutputInput!) { captureJobOutput(input: $i) }", {"i": output}, key=agent
        )

    await attempt(1, "epoch 1 of attempt one\n")
    given_back = {**ids, "attempt": 1, "reason": "agent service:agent:host-1 stopped (a redeploy): given back"}
    await stack.graphql(
        "mutation($i: ReturnJobInput!) { returnJob(input: $i) { state } }", {"i": given_back}, key=agent
    )
    await attempt(2, "epoch 1 of attempt two\n")
    finished = {**ids, "attempt": 2, "state": "FINISHED", "exitCode": 0}
    await stack.graphql(
        "mutation($i: ReportJobFinishedInput!) { reportJobFinished(input: $i) { state } }", {"i": finished}, key=agent
    )

    # A page of jobs and one more, all waiting behind it: counted on the queue, listed a page at a time.
    more = " ".join(
        f'j{n}: enqueueJob(input: {{queue: "cpu", entity: "acme", project: "nature", source: $s}}) {{ id }}'
        for n in range(JOBS_PAGE + 1)
    )
    assert "errors" not in await stack.graphql(f"mutation($s: GenericScalar) {{ {more} }}", {"s": source})

    async with open_browser(url + "/") as browser:
        page = await browser.page(await stack.key("user:ada"), expect_principal="user:ada")
        await page.goto(f"{url}/#/launch")
        queue = page.get_by_test_id("queues").locator("tbody tr").filter(has_text="cpu")
        jobs = page.get_by_test_id("jobs").locator("tbody tr")
        await expect(queue).to_contain_text(f"{JOBS_PAGE + 1} active")
        await expect(jobs).to_have_count(JOBS_PAGE)
        await page.get_by_role("button", name="Next →").click()
        await expect(jobs).to_have_count(2)
        await expect(jobs.last).to_contain_text("finished")  # the oldest
        # Filtered by state: the queue's count is the server's, not the listed jobs'; the filter is in the address.
        await page.get_by_label("state").select_option("FINISHED")
        await expect(jobs).to_have_count(1)
        await expect(page.get_by_test_id("jobs-page")).to_have_text("page 1")
        await expect(queue).to_contain_text(f"{JOBS_PAGE + 1} active")
        await expect(page).to_have_url(re.compile(r"#/launch\?state=finished$"))
        await page.reload()
        await expect(page.get_by_label("state")).to_have_value("FINISHED")
        await expect(jobs).to_have_count(1)
        await jobs.get_by_role("link").first.click()
        await expect(page.get_by_test_id("job-state")).to_have_text("finished")
        # Where it ran and for how long: which machine to look at, and whether it is stuck or merely long.
        timing = page.get_by_test_id("job-timing")
        await expect(timing).to_contain_text("agent service:agent:host-1 · started")
        await expect(timing).to_contain_text(re.compile(r"· took \d+ s$"))
        await expect(page.get_by_test_id("requeues")).to_contain_text("attempt 1 given up", use_inner_text=True)
        await expect(page.get_by_test_id("requeues")).to_contain_text("stopped (a redeploy): given back")
        output = page.get_by_test_id("job-output")
        await expect(output).to_have_text(
            "── attempt 1 ──\nepoch 1 of attempt one\n── attempt 2 ──\nepoch 1 of attempt two\n", use_inner_text=True
        )
    assert browser.problems == [], browser.problems
