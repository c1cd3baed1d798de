"""Reading a registry with a long past in the web UI: a deleted version's page says it was deleted, an old version's
action history finds its actions however many the model has had since, and the versions table and the audit log
keep the page (and the audit log its filters) in the address, so Back, a reload or a link opens it again. The versions
table lists the newest first, counted, the newest marked latest; the audit log asks for a filter as typing pauses."""

from __future__ import annotations

import re

from support.browser import BROWSER_TEST_MARKS, open_browser
from support.stack import Stack
from support.story import LINK, LOG_VERSION, version_input

pytestmark = BROWSER_TEST_MARKS

HISTORY_PAGE = 50  # actions per page of a version's history (ui/pages/version.js HISTORY_PAGE_SIZE)
VERSIONS_PAGE = 20  # versions per page in the registry (ui/pages/registry.js PAGE_SIZE)
AUDIT_PAGE = 50  # records per page of the audit log (ui/pages/audit.js)

DELETE = "mutation($ref: String!) { deleteArtifactVersion(input: {ref: $ref}) { id deletedAt } }"
VERSION_HISTORY = """query($id: ID, $first: Int, $after: String) { registeredModel(name: "m") {
  history(artifactVersionId: $id, first: $first, after: $after) { items { action details } endCursor hasNextPage }
} }"""


async def logged_version(stack: Stack, name: str, content: bytes) -> dict:
    answer = await stack.graphql(LOG_VERSION, {"input": version_input(name, content)})
    assert "errors" not in answer, answer
    return answer["data"]["logArtifactVersion"]


async def retag(stack: Stack, model: str, times: int, batch: int = 25) -> None:
    """`times` actions on the model's stream, none on a version: a tag added, removed, added... (a batch a request)."""
    for start in range(0, times, batch):
        fields = [
            f"a{n}: {'tagRegisteredModel' if n % 2 == 0 else 'untagRegisteredModel'}"
            f'(input: {{registeredModel: "{model}", tag: "busy"}}) {{ name }}'
            for n in range(start, min(start + batch, times))
        ]
        answer = await stack.graphql("mutation { " + " ".join(fields) + " }")
        assert "errors" not in answer, answer


async def test_a_deleted_versions_page_says_it_was_deleted(stack: Stack) -> None:
    from playwright.async_api import expect

    version = await logged_version(stack, "old-weights", b"old")
    deleted = await stack.graphql(DELETE, {"ref": f"acme/nature/old-weights:{version['version']}"})
    assert deleted["data"]["deleteArtifactVersion"]["deletedAt"], deleted
    url = str(stack.client.make_url("/"))
    viewer = await stack.key("user:dana", role="viewer")

    async with open_browser(url) as browser:
        page = await browser.page(viewer, expect_principal="user:dana")
        await page.goto(f"{url}#/artifacts/{version['id']}")
        await expect(page.get_by_role("heading", name=f"old-weights {version['version']}")).to_be_visible()
        await expect(page.get_by_test_id("deleted")).to_contain_text("Deleted")
        await expect(page.get_by_test_id("deleted")).to_contain_text("lineage and the audit log keep it")
        # An artifact address without its id is a page that does not exist, not an error from the API.
        await page.goto(f"{url}#/artifacts/")
        await expect(page.get_by_role("heading", name="Not found")).to_be_visible()

    assert browser.problems == [], browser.problems


async def test_an_old_versions_action_history_reaches_past_the_models_newest_500_actions(stack: Stack) -> None:
    from playwright.async_api import expect

    old = await logged_version(stack, "classifier", b"old")
    new = await logged_version(stack, "classifier", b"new")
    for version, aliases in [(old, ["candidate"]), (new, [])]:
        linked = await stack.graphql(LINK, {"model": "m", "id": version["id"], "aliases": aliases})
        assert "errors" not in linked, linked
    await retag(stack, "m", 520)

    # The API: the old version's own actions, however deep in the model's stream, in one page or page by page.
    mine = (await stack.graphql(VERSION_HISTORY, {"id": old["id"], "first": 500}))["data"]["registeredModel"]
    assert [r["action"] for r in mine["history"]["items"]] == ["registry.alias_added", "registry.version_linked"]
    assert {r["details"]["artifact_version_id"] for r in mine["history"]["items"]} == {old["id"]}
    first = (await stack.graphql(VERSION_HISTORY, {"id": old["id"], "first": 1}))["data"]["registeredModel"]
    rest = (
        await stack.graphql(VERSION_HISTORY, {"id": old["id"], "first": 1, "after": first["history"]["endCursor"]})
    )["data"]["registeredModel"]
    assert first["history"]["items"] + rest["history"]["items"] == mine["history"]["items"]
    assert (first["history"]["hasNextPage"], rest["history"]["hasNextPage"]) == (True, False)
    refused = await stack.graphql(VERSION_HISTORY, {"id": "v0"})
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT", refused

    url = str(stack.client.make_url("/"))
    viewer = await stack.key("user:dana", role="viewer")
    async with open_browser(url) as browser:
        page = await browser.page(viewer, expect_principal="user:dana")
        rows = page.get_by_test_id("history").locator("tbody tr")
        await page.goto(f"{url}#/models/m/v0/history")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_contain_text("set alias candidate")
        await expect(rows.nth(1)).to_contain_text("linked the version")
        await expect(page.get_by_role("button", name="Older →")).to_have_count(0)  # one page: no pager

        # Every action on the model: 523, a page at a time, the oldest (v0's link) on the last page.
        every = page.get_by_label("every action on the model")
        await every.check()
        await expect(rows).to_have_count(HISTORY_PAGE)
        await expect(rows.nth(0)).to_contain_text("the tag busy")
        for number in range(2, 12):
            await page.get_by_role("button", name="Older →").click()
            await expect(page.get_by_text(f"page {number}", exact=True)).to_be_visible()
        await expect(rows).to_have_count(523 - 10 * HISTORY_PAGE)
        await expect(rows.last).to_contain_text("linked the version")
        await expect(page.get_by_role("button", name="Older →")).to_be_disabled()
        await page.get_by_role("button", name="← Newer").click()
        await expect(page.get_by_text("page 10", exact=True)).to_be_visible()
        await expect(rows).to_have_count(HISTORY_PAGE)

        # Another version's history starts from its own actions, the box unticked.
        await page.goto(f"{url}#/models/m/v1/history")
        await expect(page.get_by_role("heading", name="m v1")).to_be_visible()
        await expect(page.get_by_label("every action on the model")).not_to_be_checked()
        await expect(rows).to_have_count(1)
        await expect(rows.nth(0)).to_contain_text("linked the version")

    assert browser.problems == [], browser.problems


async def test_the_versions_table_and_the_audit_log_keep_their_page_in_the_address(stack: Stack) -> None:
    from playwright.async_api import expect

    for n in range(VERSIONS_PAGE + 1):
        version = await logged_version(stack, "fraud-model", f"weights-{n}".encode())
        linked = await stack.graphql(LINK, {"model": "fraud-detector", "id": version["id"]})
        assert "errors" not in linked, linked
    await retag(stack, "fraud-detector", AUDIT_PAGE + 10)
    url = str(stack.client.make_url("/"))
    viewer = await stack.key("user:dana", role="viewer")

    async with open_browser(url) as browser:
        page = await browser.page(viewer, expect_principal="user:dana")
        rows = page.get_by_test_id("versions").locator("tbody tr")
        versions_page = page.get_by_test_id("versions-page")
        await page.goto(f"{url}#/models/fraud-detector")
        await expect(rows).to_have_count(VERSIONS_PAGE)
        # Newest first, as W&B lists them, counted; the newest is `latest` (computed: no version holds it).
        await expect(versions_page).to_have_text(f"page 1 · {VERSIONS_PAGE + 1} versions")
        await expect(rows.first.get_by_role("link").first).to_have_text(f"v{VERSIONS_PAGE}")
        await expect(rows.first.get_by_test_id("latest")).to_have_text("latest")
        await expect(page.get_by_test_id("latest")).to_have_count(1)
        await page.get_by_role("button", name="Next →").click()
        await expect(rows).to_have_count(1)
        await expect(rows.get_by_role("link").first).to_have_text("v0")
        # Written to the address once the page shows (an effect after the render): waited for, not read at once.
        await expect(page).to_have_url(re.compile(r"#/models/fraud-detector\?after="))
        second_page = page.url

        # A version of the second page, and Back: the second page again. So after a reload, and from a link.
        await rows.first.get_by_role("link").first.click()
        await expect(page.get_by_test_id("tab-overview")).to_be_visible()
        await page.go_back()
        await expect(versions_page).to_have_text(f"page 2 · {VERSIONS_PAGE + 1} versions")
        await expect(rows).to_have_count(1)
        await page.reload()
        await expect(versions_page).to_have_text(f"page 2 · {VERSIONS_PAGE + 1} versions")
        await expect(rows).to_have_count(1)
        elsewhere = await browser.page(viewer, expect_principal="user:dana")
        await elsewhere.goto(second_page)
        await expect(elsewhere.get_by_test_id("versions").locator("tbody tr")).to_have_count(1)
        await page.get_by_role("button", name="← Previous").click()
        await expect(rows).to_have_count(VERSIONS_PAGE)
        await expect(page).to_have_url(re.compile(r"#/models/fraud-detector$"))

        # The audit log: an action named by its prefix is refused, naming the actions; named in full, it filters.
        records = page.get_by_test_id("audit").locator("tbody tr")
        await page.goto(f"{url}#/audit")
        action = page.get_by_label("Action")
        await action.fill("registry")
        await expect(page.get_by_role("alert")).to_contain_text("unknown event type(s) registry; known:")
        await expect(page.get_by_role("alert")).to_contain_text("registry.alias_added")
        await action.fill("registry.model_tagged")
        await expect(records).to_have_count((AUDIT_PAGE + 10) // 2)
        # Typed letter by letter, the filter is asked for once the typing pauses, not at each letter.
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if "query Audit(" in (r.post_data or "") else None)
        await action.clear()
        await action.press_sequentially("registry.version_linked")
        await expect(records).to_have_count(VERSIONS_PAGE + 1)
        assert len(asked) <= 12, asked  # a query a letter was 24 (a pause over 300 ms between letters asks again)
        await expect(page.locator("#audit-actions option[value='registry.version_linked']")).to_have_count(1)
        await action.fill("")
        await expect(records).to_have_count(AUDIT_PAGE)
        await page.get_by_role("button", name="Older →").click()
        await expect(page.get_by_text("page 2", exact=True)).to_be_visible()
        await page.get_by_label("Actor").fill("user:alice")  # who the stack's own requests act as
        await expect(page.get_by_text("page 1", exact=True)).to_be_visible()
        await page.get_by_role("button", name="Older →").click()
        await expect(page.get_by_text("page 2", exact=True)).to_be_visible()
        await expect(page).to_have_url(re.compile(r"actor=user%3Aalice.*after=|after=.*actor=user%3Aalice"))
        await page.reload()
        await expect(page.get_by_text("page 2", exact=True)).to_be_visible()
        await expect(page.get_by_label("Actor")).to_have_value("user:alice")
        # A since in the address that is no time: said, and the log shown without it.
        await page.goto(f"{url}#/audit?since=yesterday")
        await expect(page.get_by_test_id("since-invalid")).to_contain_text('"yesterday" is not a time')
        await expect(records).to_have_count(AUDIT_PAGE)
        # The header's link is the whole log again.
        await page.get_by_role("link", name="Audit log").click()
        await expect(page.get_by_text("page 1", exact=True)).to_be_visible()
        await expect(page.get_by_label("Actor")).to_have_value("")

    assert browser.problems == [], browser.problems
