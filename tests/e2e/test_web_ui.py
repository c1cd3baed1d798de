"""The web UI in a real browser (Debian's chromium, headless, driven by Playwright) against a running stack
seeded through the public GraphQL API: the demo's story, from the registry to the dataset behind production.

With MODELREG_SCREENSHOTS=1, screenshots of every page are written to docs/screenshots/ (docs/web-ui.md shows them).
"""

from __future__ import annotations

import base64
import re

from support.browser import BROWSER_TEST_MARKS, open_browser, screenshot
from support.stack import Stack
from support.story import ADD_ALIAS, LINK, LOG_VERSION, demo_story, version_input

PAGE = 20  # versions per page in the registry (ui/pages/registry.js PAGE_SIZE)

pytestmark = BROWSER_TEST_MARKS

CARD = """mutation($m: String!, $d: String!, $i: String, $o: String) {
  updateModelCard(input: {registeredModel: $m, description: $d, inputs: $i, outputs: $o}) { name }
}"""
METRICS = """mutation($rows: [MetricRowInput!]!) {
  logMetrics(input: {entity: "acme", project: "nature", runId: "train-1", rows: $rows})
}"""
FINISH = """mutation { finishRun(input: {entity: "acme", project: "nature", runId: "train-1", state: FINISHED,
  exitCode: 0,
  summary: {loss: 0.12, accuracy: 0.94}}) { state } }"""
EVAL_RUN = """mutation($env: GenericScalar) { startRun(input: {entity: "acme", project: "nature", runId: "eval-1",
  jobType: "evaluate",
  config: {candidate: "acme/nature/classifier:v1", threshold: 0.9}, environment: $env}) { runId } }"""
ENVIRONMENT = {
    "git": {
        "remote": "https://example.com/nature.git",
        "branch": "main",
        "commit": "3f2c1a9e" * 5,
        "diff": "--- a/evaluate.py\n+++ b/evaluate.py\n@@ -1,2 +1,2 @@\n-THRESHOLD = 0.8\n+THRESHOLD = 0.9\n",
    },
    "python": {"version": "3.11.7"},
    "os": {"system": "Linux"},
    "command": ["python", "evaluate.py"],
    "requirements": ["modelreg==0.1.0", "numpy==2.1.0"],
}
QUEUE = 'mutation { createLaunchQueue(input: {name: "cpu"}) { name } }'
AUTOMATION = """mutation($t: GenericScalar!, $a: GenericScalar!) {
  createAutomation(input: {name: "evaluate candidates", trigger: $t, action: $a}) { automation { id } }
}"""

PNG = base64.b64decode(  # one transparent pixel
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
MODEL_CARD = """# Nature classification

Classifies photos of **nature** into 10 classes. Trained on `nature-images`.

| split | accuracy |
| --- | --- |
| test | 0.94 |

![loss curve](https://pixels.example.com/pixel.png)
<img alt="sneaky" src="/\\pixels.example.com/sneaky.png">
<img alt="chart" data-remote-src="https://pixels.example.com/track.png">

<script>window.injected = true</script>
<style>body { background: red }</style>
<form action="http://127.0.0.1:9/steal" style="position: fixed; inset: 0; z-index: 9999">
<p class="login">Session expired: paste your API key</p><input name="key"><button>Log in again</button></form>
"""


async def seed(stack: Stack) -> None:
    """The demo's story (a dataset, two training runs, links by bob, production set by carol), a model card,
    training curves, a queue and an automation that evaluates candidates."""
    await demo_story(stack)
    for answer in [
        await stack.graphql(
            CARD, {"m": "nature-classification", "d": MODEL_CARD, "i": "224×224 RGB image", "o": "10 class scores"}
        ),
        await stack.graphql(
            METRICS,
            {"rows": [{"step": s, "values": {"loss": 1.0 / (s + 1), "accuracy": 0.5 + s * 0.04}} for s in range(12)]},
        ),
        await stack.graphql(FINISH),
        await stack.graphql(EVAL_RUN, {"env": ENVIRONMENT}),
        await stack.graphql(QUEUE),
        await stack.graphql(
            AUTOMATION,
            {
                "t": {
                    "event": "alias_added",
                    "registered_model": "nature-classification",
                    "alias_pattern": "candidate",
                },
                "a": {
                    "kind": "launch",
                    "queue": "cpu",
                    "entity": "acme",
                    "project": "nature",
                    "source": {
                        "kind": "git",
                        "git_remote": "https://example.com/nature.git",
                        "git_commit": "0" * 40,
                        "entry_point": ["python", "evaluate.py"],
                    },
                    "config": {"candidate": "${artifact_ref}"},
                },
            },
            actor="user:ada",
        ),
    ]:
        assert "errors" not in answer, answer


async def seed_many_versions(stack: Stack, count: int) -> None:
    """Another registered model with more versions than a page of the versions table holds."""
    for n in range(count):
        logged = await stack.graphql(LOG_VERSION, {"input": version_input("fraud-model", f"weights-{n}".encode())})
        linked = await stack.graphql(
            LINK, {"model": "fraud-detector", "id": logged["data"]["logArtifactVersion"]["id"]}
        )
        assert "errors" not in linked, linked


async def test_the_demo_story_in_a_browser_from_the_registry_to_the_dataset_behind_production(stack: Stack) -> None:
    from playwright.async_api import expect

    await seed(stack)
    await seed_many_versions(stack, PAGE + 1)
    # The version page finds a version by its number (registeredModel.version), which the UI added.
    lookups = await stack.graphql(
        '{ registeredModel(name: "nature-classification") { v1: version(name: "v1") { aliases } '
        'v9: version(name: "v9") { aliases } } }'
    )
    assert lookups["data"]["registeredModel"] == {"v1": {"aliases": ["production"]}, "v9": None}
    bad = await stack.graphql(
        '{ registeredModel(name: "nature-classification") { version(name: "latest") { aliases } } }'
    )
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    # The demo's runs were started without names: the lineage labels them by the names the registry gave them.
    named = await stack.graphql(
        '{ t0: run(entity: "acme", project: "nature", runId: "train-0") { name } '
        't1: run(entity: "acme", project: "nature", runId: "train-1") { name } }'
    )
    train_0, train_1 = named["data"]["t0"]["name"], named["data"]["t1"]["name"]
    assert train_0 and train_1 and "train-" not in train_0 + train_1, named
    url = str(stack.client.make_url("/"))
    viewer_key = await stack.key("user:dana", role="viewer")  # the UI needs no more than reading
    async with open_browser(url) as browser:
        page = await browser.page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        # Log in with an API key.
        await page.goto(url)
        await expect(page.get_by_label("API key")).to_be_visible()
        await screenshot(page, "login.png")
        await page.get_by_label("API key").fill("mr_not-a-key")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("alert")).to_contain_text("unknown or revoked API key")
        await page.get_by_label("API key").fill(viewer_key)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_test_id("viewer")).to_contain_text("user:dana")
        # A link cut short inside a %-escape still shows the app (its decoding threw, and the page was blank).
        await page.goto(url + "#/models/%E0%A4%A")
        await expect(page.get_by_test_id("viewer")).to_contain_text("user:dana")
        await page.goto(url + "#/")

        # The registry: versions a page at a time; find the model; its versions with aliases, who linked them.
        models = page.get_by_test_id("model-list").get_by_role("link")
        await expect(models).to_have_text(["fraud-detector", "nature-classification"])
        await models.filter(has_text="fraud-detector").click()
        fraud_rows = page.get_by_test_id("versions").locator("tbody tr")
        await expect(fraud_rows).to_have_count(PAGE)
        await expect(fraud_rows.first).to_contain_text("v20")  # the newest first
        await page.get_by_role("button", name="Next →").click()
        await expect(fraud_rows).to_have_count(1)
        await expect(fraud_rows).to_contain_text("v0")
        await expect(page.get_by_role("button", name="Next →")).to_be_disabled()
        await page.get_by_role("button", name="← Previous").click()
        await expect(fraud_rows).to_have_count(PAGE)
        await page.get_by_role("searchbox", name="Search registered models").fill("nature")
        await expect(models).to_have_text(["nature-classification"])
        await page.get_by_test_id("model-list").get_by_role("link", name="nature-classification").click()
        versions = page.get_by_test_id("versions")
        rows = versions.locator("tbody tr")
        await expect(rows).to_have_count(2)
        production = rows.filter(has_text="production")
        await expect(production).to_contain_text("v1")
        await expect(production).to_contain_text("classifier:v1")
        await expect(production).to_contain_text("user:bob")
        await expect(rows.filter(has_text="v0")).to_contain_text("staging")

        # Live: an alias moved elsewhere appears without a reload (events subscription), and fires the
        # automation, which enqueues a job.
        await expect(page.locator(".live")).to_contain_text("live")
        v0_id = (await stack.graphql('{ artifactVersion(ref: "acme/nature/classifier:v0") { id } }'))["data"][
            "artifactVersion"
        ]["id"]
        moved = await stack.graphql(
            ADD_ALIAS, {"model": "nature-classification", "id": v0_id, "alias": "candidate"}, actor="user:erin"
        )
        assert "errors" not in moved, moved
        await expect(rows.filter(has_text="v0")).to_contain_text("candidate")
        await screenshot(page, "registry.png")

        # The production version: the model card, rendered from markdown and sanitised.
        await production.get_by_role("link", name="v1").click()
        card = page.get_by_test_id("model-card")
        await expect(card.get_by_role("heading", name="Nature classification")).to_be_visible()
        await expect(card.locator("table")).to_contain_text("0.94")
        await expect(card).to_contain_text("224×224 RGB image")
        assert await page.evaluate("window.injected") is None  # the card's <script> was stripped
        # ... and its style and the form asking for a key: a card cannot dress itself as this app's login.
        await expect(card).to_contain_text("Session expired")
        for kept_out in ("style", "form", "input", "button", "[style]", "[class]"):
            await expect(card.locator(f".markdown {kept_out}")).to_have_count(0)
        # Its remote image is not fetched until the reader clicks it: the pixel's host learns nothing before.
        pixel = card.get_by_role("img", name="loss curve (from pixels.example.com: click to load)")
        await expect(pixel).to_be_visible()
        # Nor one whose address only the browser's parsing makes remote ("/\\host/...").
        await expect(card.get_by_role("img", name="sneaky (from pixels.example.com: click to load)")).to_be_visible()
        # One written with the hook's own attribute loads nothing, not even on a click (it named no host).
        chart = card.get_by_role("img", name="chart")
        await expect(chart).not_to_have_attribute("data-remote-src", "https://pixels.example.com/track.png")
        await chart.click()
        assert not [url for url in requested if url.endswith(("/pixel.png", "/sneaky.png", "/track.png"))]
        await page.route(
            "https://pixels.example.com/pixel.png", lambda route: route.fulfill(body=PNG, content_type="image/png")
        )
        async with page.expect_request("https://pixels.example.com/pixel.png"):
            await pixel.click()
        await expect(page.get_by_test_id("aliases")).to_contain_text("production")
        # A viewer may change nothing here, so nothing to change is offered.
        await expect(page.get_by_test_id("alias-form")).to_have_count(0)
        await expect(card.get_by_role("button", name="Edit")).to_have_count(0)
        await screenshot(page, "version-overview.png", full_page=True)

        for tab, check, shot in [
            ("Metadata", None, None),
            ("Files", page.get_by_test_id("files"), None),  # version-files.png: the folder tree's test
            ("Usage", page.get_by_test_id("usage"), "version-usage.png"),
        ]:
            await page.get_by_role("tab", name=tab).click()
            if check is not None:
                await expect(check).to_be_visible()
            if shot:
                await screenshot(page, shot)
        await expect(page.get_by_test_id("usage")).to_contain_text('run.use_artifact("acme/nature/classifier:v1")')

        # Action history: who set production, and when.
        await page.get_by_role("tab", name="Action history").click()
        set_production = page.get_by_test_id("history").locator("tbody tr").filter(has_text="production")
        await expect(set_production).to_contain_text("user:carol")
        await expect(set_production).to_contain_text("set alias")
        await expect(
            page.get_by_test_id("history").locator("tbody tr").filter(has_text="linked the version")
        ).to_contain_text("user:bob")
        await screenshot(page, "version-history.png")

        # Lineage: back through the training run to the dataset, drawn as a graph.
        await page.get_by_role("tab", name="Lineage").click()
        await page.get_by_label("Direction").select_option("UPSTREAM")
        nodes = page.get_by_test_id("lineage-nodes")
        await expect(nodes.locator("tbody tr")).to_have_count(4)  # classifier:v1 ← train-1 ← nature-images:v0 ← prep-1
        await expect(nodes.locator("tbody tr").filter(has_text="nature-images:v0")).to_contain_text("dataset")
        drawn = await page.get_by_test_id("lineage-graph").evaluate(
            "box => box.cy.nodes().map(n => [n.data('label'), n.position('x')])"
        )
        labels = {label: x for label, x in drawn}
        assert "nature-images:v0" in labels and "classifier:v1" in labels, drawn
        assert labels["nature-images:v0"] < labels["classifier:v1"], drawn  # laid out left to right
        await screenshot(page, "version-lineage.png", full_page=True)

        # From the dataset, downstream: both training runs used it.
        await nodes.get_by_role("button", name="walk from nature-images:v0").click()
        await page.get_by_label("Direction").select_option("DOWNSTREAM")
        await expect(nodes.locator("tbody tr").filter(has_text="classifier:v0")).to_have_count(1)
        # Kept in the address (written once the graph shows): a reload, Back from a run or a link draws this walk.
        await expect(page).to_have_url(re.compile(r"/lineage\?from=[^&]+&direction=downstream$"))
        walk = page.url
        await page.reload()
        await expect(page.get_by_label("Direction")).to_have_value("DOWNSTREAM")
        await expect(nodes.locator("tbody tr").filter(has_text="classifier:v0")).to_have_count(1)
        elsewhere = await browser.page(viewer_key, expect_principal="user:dana")
        await elsewhere.goto(walk)
        await expect(
            elsewhere.get_by_test_id("lineage-nodes").locator("tbody tr").filter(has_text="classifier:v0")
        ).to_have_count(1)
        await elsewhere.close()

        # The run that trained production: config, summary, curves.
        await page.get_by_role("button", name="Back to this version").click()
        await page.get_by_label("Direction").select_option("UPSTREAM")
        await expect(nodes.locator("tbody tr")).to_have_count(4)  # the new walk, not the last one, before a click
        await expect(nodes.locator("tbody tr").filter(has_text=f"run {train_1}")).to_contain_text("train-1")  # its id
        await nodes.get_by_role("link", name=f"run {train_1}").click()
        await expect(page.get_by_role("heading", name="train-1")).to_be_visible()
        await expect(page.locator("main")).to_contain_text("0.05")  # lr
        await expect(page.get_by_test_id("curve-loss").locator("canvas")).to_be_visible()
        await expect(page.get_by_test_id("run-io")).to_contain_text("nature-images:v0")
        await screenshot(page, "run.png", full_page=True)

        # The dataset it used, which no registered model links: its own page.
        await page.get_by_test_id("run-io").get_by_role("link", name="nature-images:v0").click()
        await expect(page.get_by_role("heading", name="nature-images v0")).to_be_visible()
        await expect(page.locator("main")).to_contain_text("run prep-1")
        await page.get_by_role("tab", name="Lineage").click()
        await expect(page.get_by_test_id("lineage-nodes")).to_contain_text(f"run {train_0}")
        await screenshot(page, "artifact-lineage.png", full_page=True)

        # A run's code: the commit and the uncommitted diff; then clone it (a viewer may not enqueue).
        await page.goto(url + "#/runs/acme/nature/eval-1")
        await expect(page.get_by_test_id("git-commit")).to_have_text("3f2c1a9e" * 5)
        await expect(page.get_by_test_id("git-diff").locator(".add")).to_have_text("+THRESHOLD = 0.9")
        await screenshot(page, "run-code.png", full_page=True)
        # A viewer may not enqueue: no clone is offered, and the form's address says why instead.
        await expect(page.get_by_role("link", name="Clone this run…")).to_have_count(0)
        await page.goto(url + "#/launch/clone/acme/nature/eval-1")
        await expect(page.get_by_test_id("clone-refused")).to_contain_text("this key is viewer")
        await expect(page.get_by_test_id("clone-form")).to_have_count(0)

        # Launch: the job the automation enqueued when candidate was set; Automations: its firing.
        await page.get_by_role("link", name="Launch", exact=True).click()
        await expect(page.get_by_test_id("jobs").locator("tbody tr")).to_contain_text("queued")
        await expect(page.get_by_test_id("queues")).to_contain_text("cpu")
        await expect(page.get_by_test_id("queues")).to_contain_text("every entity")
        await screenshot(page, "launch.png", full_page=True)
        await page.get_by_test_id("jobs").locator("tbody tr").first.get_by_role("link").click()
        await expect(page.get_by_role("heading", name="Source")).to_be_visible()
        await expect(page.locator("main")).to_contain_text("evaluate.py")
        await expect(page.locator("main")).to_contain_text("acme/nature/classifier:v0")  # ${artifact_ref} filled in
        await screenshot(page, "launch-job.png", full_page=True)
        await expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)  # not a viewer's to cancel
        await page.get_by_role("link", name="Automations", exact=True).click()
        automation = page.get_by_test_id("automation")
        await expect(automation).to_contain_text("evaluate candidates")
        await expect(automation).to_contain_text("user:erin")  # who caused the firing
        await expect(page.get_by_test_id("create-automation")).to_have_count(0)  # not offered to a viewer
        await expect(automation.get_by_role("button", name="Disable")).to_have_count(0)
        await screenshot(page, "automations.png", full_page=True)

        # The audit log: who set production, filtered by action.
        await page.get_by_role("link", name="Audit log", exact=True).click()
        await page.get_by_label("Action").fill("registry.alias_added")
        await page.get_by_label("Action").press("Enter")
        await expect(
            page.get_by_test_id("audit").locator("tbody tr").filter(has_text="production").first
        ).to_contain_text("user:carol")
        await screenshot(page, "audit-log.png", full_page=True)

        # A member moves an alias from the version page; production, now protected, is an admin's to move.
        protected = await stack.graphql(
            'mutation { protectAlias(input: {registeredModel: "nature-classification", alias: "production"}) { name } }'
        )
        assert "errors" not in protected, protected
        await page.get_by_role("button", name="Log out").click()
        await page.get_by_label("API key").fill(await stack.key("user:mia", role="member"))
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_test_id("viewer")).to_contain_text("user:mia")
        await page.goto(url + "#/models/nature-classification/v1")
        form = page.get_by_test_id("alias-form")
        await expect(form).to_be_visible()
        await expect(page.get_by_test_id("aliases")).to_contain_text("production")
        await expect(page.get_by_role("button", name="remove alias production")).to_have_count(0)
        await form.get_by_label("Alias name").fill("production")
        await expect(form.get_by_role("button", name="Move here")).to_be_disabled()
        await form.get_by_label("Alias name").fill("staging")
        await form.get_by_role("button", name="Move here").click()
        await expect(page.get_by_test_id("aliases")).to_contain_text("staging")
        await expect(page.get_by_role("button", name="remove alias staging")).to_be_visible()
        await screenshot(page, "version-member.png", full_page=True)
        # ... and edits the model card.
        await card.get_by_role("button", name="Edit").click()
        await card.get_by_label("Outputs").fill("10 class scores, softmaxed")
        await card.get_by_role("button", name="Save the model card").click()
        await expect(card).to_contain_text("10 class scores, softmaxed")
        await expect(card.get_by_role("heading", name="Nature classification")).to_be_visible()
        await page.get_by_role("tab", name="Action history").click()
        moved = (
            page.get_by_test_id("history").locator("tbody tr").filter(has_text="staging").filter(has_text="user:mia")
        )
        await expect(moved).to_contain_text("set alias")
        await page.get_by_label("every action on the model").check()
        await expect(
            page.get_by_test_id("history")
            .locator("tbody tr")
            .filter(has_text="changed the model card")
            .filter(has_text="user:mia")
        ).to_have_count(1)
        await page.get_by_role("link", name="nature-classification").first.click()
        await expect(rows.filter(has_text="v1")).to_contain_text("staging")
        await expect(rows.filter(has_text="v0")).not_to_contain_text("staging")

        # ... and creates an automation from the Automations page.
        await page.get_by_role("link", name="Automations", exact=True).click()
        await page.get_by_text("New automation").click()
        create = page.get_by_test_id("create-automation")
        await create.get_by_label("Name").fill("retrain on new data")
        await create.get_by_label("When").select_option("artifact_version_logged")
        await create.get_by_label("Artifact collection").fill("nature-images")
        await create.get_by_label("Then").select_option("launch")
        await create.get_by_label("Queue", exact=True).fill("cpu")
        await create.get_by_label("Git remote").fill("https://example.com/nature.git")
        await create.get_by_label("Config (JSON template)").fill('{"dataset": "${artifact_ref}"}')
        await create.get_by_role("button", name="Create").click()
        created = page.get_by_test_id("automation").filter(has_text="retrain on new data")
        await expect(created).to_contain_text("nature-images")
        await expect(created).to_contain_text("user:mia")
        await created.get_by_role("button", name="Disable").click()
        await expect(created.get_by_role("heading", level=2)).to_contain_text("disabled")
        await created.get_by_role("button", name="Enable").click()
        await expect(created.get_by_role("heading", level=2)).to_contain_text("enabled")
        # ... and changes it: the form shows what it does, and what the form does not show stays.
        await created.get_by_role("button", name="Edit").click()
        change = created.get_by_test_id("change-automation")
        await expect(change.get_by_label("Artifact collection")).to_have_value("nature-images")
        await change.get_by_label("Name").fill("retrain on fresh data")
        await change.get_by_label("Command").fill("python train.py --fresh")
        await change.get_by_role("button", name="Save").click()
        changed = page.get_by_test_id("automation").filter(has_text="retrain on fresh data")
        await expect(changed.get_by_role("heading", level=2)).to_contain_text("retrain on fresh data")
        await expect(changed).to_contain_text("--fresh")
        await expect(changed).to_contain_text("https://example.com/nature.git")
        await screenshot(page, "automations-member.png", full_page=True)
    # The refused key at login is the only error the browser may report (its 401).
    assert [p for p in browser.problems if "401" not in p] == [], browser.problems
