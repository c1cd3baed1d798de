"""The lineage tab in a browser when a dataset has more runs than the graph draws: the rest are one
cluster node with their count; its panel searches them, and the run found joins the graph."""

from __future__ import annotations

from support.browser import BROWSER_TEST_MARKS, open_browser, screenshot
from support.stack import Stack
from support.story import LOG_VERSION, START_RUN, sweep_run_using, version_input

RUNS = 60
DRAWN = 15  # ui/pages/lineage.js FAN_OUT

pytestmark = BROWSER_TEST_MARKS


async def seed(stack: Stack) -> str:
    """prep-1 logs nature-images; sweep-000 ... sweep-059 train on it. Returns the dataset's id."""
    await stack.graphql(
        START_RUN, {"input": {"entity": "acme", "project": "nature", "runId": "prep-1", "jobType": "preprocess"}}
    )
    logged = await stack.graphql(
        LOG_VERSION, {"input": version_input("nature-images", b"images", type_="dataset", runId="prep-1")}
    )
    dataset = logged["data"]["logArtifactVersion"]["id"]
    for n in range(RUNS):
        await sweep_run_using(stack, dataset, n)
    return dataset


async def test_a_dataset_used_by_a_sweep_draws_a_cluster_whose_search_brings_a_run_into_the_graph(stack: Stack) -> None:
    from playwright.async_api import expect

    dataset = await seed(stack)
    assert stack.client is not None
    url = str(stack.client.make_url("/")).rstrip("/")
    cluster_id = f"cluster:DOWNSTREAM:artifact:{dataset}"
    async with open_browser(url) as browser:
        page = await browser.page(await stack.key("user:dana", role="viewer"), expect_principal="user:dana")
        await page.goto(f"{url}/#/artifacts/{dataset}/lineage")
        clusters = page.get_by_test_id("lineage-clusters")
        await expect(clusters).to_contain_text(f"{RUNS - DRAWN} more runs")
        graph = page.get_by_test_id("lineage-graph")
        drawn = await graph.evaluate("box => box.cy.nodes().map(n => n.data('label'))")
        # Runs are labelled by their names: the sweep's own, and the one the registry gave the run started without.
        prep = (await stack.graphql('{ run(entity: "acme", project: "nature", runId: "prep-1") { name } }'))["data"]
        assert f"{RUNS - DRAWN} more runs" in drawn and f"preprocess: {prep['run']['name']}" in drawn, (prep, drawn)
        assert len([label for label in drawn if label.startswith("train: trial ")]) == DRAWN, drawn

        # Click the cluster where it is drawn: its panel lists the runs not drawn, searchable.
        x, y = await graph.evaluate(
            f"box => {{ const p = box.cy.getElementById({cluster_id!r}).renderedPosition(); return [p.x, p.y]; }}"
        )
        box = await graph.bounding_box()
        assert box is not None
        await page.mouse.click(box["x"] + x, box["y"] + y)
        panel = page.get_by_test_id("lineage-cluster")
        await expect(panel.get_by_role("heading")).to_have_text("Runs that used nature-images:v0")
        members = panel.get_by_test_id("cluster-members").locator("li")
        await expect(members).to_have_count(20)
        await expect(members.first).to_contain_text(f"train: trial {DRAWN} sweep-{DRAWN:03}")  # the oldest not drawn
        await panel.get_by_role("button", name="Load more").click()
        await expect(members).to_have_count(40)
        await panel.get_by_role("button", name="Load more").click()
        await expect(members).to_have_count(RUNS - DRAWN)
        await expect(panel.get_by_role("button", name="Load more")).to_have_count(0)

        await panel.get_by_role("searchbox", name="Search the cluster").fill("Sweep-050")
        await expect(panel.get_by_role("status")).to_have_text("1 run matching “Sweep-050”")
        await expect(members).to_have_count(1)
        await expect(members).to_contain_text("train: trial 50")
        await expect(members).to_contain_text("sweep-050")  # its id, beside the name

        # Chosen, it joins the graph next to the dataset, and the cluster has one run fewer.
        await panel.get_by_role("button", name="add train: trial 50 (sweep-050) to the graph").click()
        await expect(members).to_contain_text("in graph")
        await expect(clusters).to_contain_text(f"{RUNS - DRAWN - 1} more runs")
        nodes = page.get_by_test_id("lineage-nodes")
        await expect(nodes.locator("tbody tr").filter(has_text="train: trial 50")).to_contain_text("1")
        edge = await graph.evaluate(
            f"box => box.cy.getElementById('artifact:{dataset}->run:acme/nature/sweep-050').data('kind')"
        )
        assert edge == "used"
        await screenshot(page, "lineage-cluster.png")

        # Walking from it: the run is where the lineage starts now, its dataset one step upstream.
        await panel.get_by_role("button", name="walk from train: trial 50").click()
        await expect(page.get_by_test_id("lineage-cluster")).to_have_count(0)
        await expect(nodes.locator("tbody tr")).to_have_count(3)  # prep-1 → nature-images:v0 → sweep-050
        await expect(nodes.locator("tbody tr").filter(has_text="nature-images:v0")).to_contain_text("1")
        await expect(page.get_by_role("button", name="Back to this version")).to_be_visible()
        assert browser.problems == [], browser.problems
