"""Living with the web UI: a page left open while the server is down says so and comes back by itself when it answers
again; the runs list keeps its page in the address as the other lists do; each page names itself in the window's
title; a model with a hundred tags keeps the registry readable, and a tag removed by mistake comes back with Undo; an
automation reads as words; a page whose live cursor a moved log refuses follows the log again; and a phone-sized
window gets pages no wider than itself."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from support.browser import BROWSER_TEST_MARKS, open_browser
from support.stack import Stack
from support.story import LINK, LOG_VERSION, version_input
from support.tcp_proxy import TcpProxy

from modelreg.services.http.api import LOG

pytestmark = BROWSER_TEST_MARKS

RUNS_PAGE = 20  # runs per page (ui/pages/runs.js PAGE_SIZE)
SIDEBAR_TAGS = 3  # a model's tags the registry's sidebar shows before "+N more" (ui/pages/registry.js)
HEADER_TAGS = 20  # the model page's (ui/pages/model_controls.js SHOWN_TAGS)
# What chromium itself reports while nothing listens on the server's port: the outage, not a fault of the page.
OUTAGE_NOISE = ("ERR_CONNECTION_REFUSED", "ERR_CONNECTION_RESET", "ERR_EMPTY_RESPONSE", "WebSocket connection")


NARROW = {"width": 390, "height": 800}  # a phone


async def fits_the_window(page: Any) -> None:
    """Nothing wider than the window: the page does not scroll sideways, and the header's last link is on screen."""
    from playwright.async_api import expect

    await expect(page.get_by_role("button", name="Log out")).to_be_in_viewport()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= NARROW["width"], f"{page.url} is {width} px wide in a {NARROW['width']} px window"


AUTOMATION = """mutation($t: GenericScalar!, $a: GenericScalar!) {
  createAutomation(input: {name: "evaluate releases", trigger: $t, action: $a}) { automation { id } }
}"""


async def speech_model_with_tags(stack: Stack, tags: int) -> None:
    """speech-asr (v0) tagged t1 ... t<tags>, and vision, the model after it in the sidebar."""
    logged = await stack.graphql(LOG_VERSION, {"input": version_input("speech-weights", b"weights")})
    version = logged["data"]["logArtifactVersion"]
    for model in ["speech-asr", "vision"]:
        linked = await stack.graphql(LINK, {"model": model, "id": version["id"]})
        assert "errors" not in linked, linked
    for start in range(1, tags + 1, 25):
        fields = [
            f'a{n}: tagRegisteredModel(input: {{registeredModel: "speech-asr", tag: "t{n}"}}) {{ name }}'
            for n in range(start, min(start + 25, tags + 1))
        ]
        answer = await stack.graphql("mutation { " + " ".join(fields) + " }")
        assert "errors" not in answer, answer


async def started_runs(stack: Stack, count: int) -> None:
    """acme/nature: runs run-00, run-01 ..., a batch of mutations a request."""
    await started_runs_from(stack, 0, count)


async def started_runs_from(stack: Stack, first: int, count: int) -> None:
    """acme/nature: runs run-<first> up to run-<count - 1>."""
    for start in range(first, count, 25):
        fields = [
            f'r{n}: startRun(input: {{entity: "acme", project: "nature", runId: "run-{n:02d}", jobType: "train"}})'
            " { runId }"
            for n in range(start, min(start + 25, count))
        ]
        answer = await stack.graphql("mutation { " + " ".join(fields) + " }")
        assert "errors" not in answer, answer


@asynccontextmanager
async def server_behind_a_proxy(stack: Stack) -> AsyncIterator[TcpProxy]:
    """The stack's server behind a proxy the test stops and starts: the browser sees the server go and come back."""
    assert stack.client is not None
    upstream = urlsplit(str(stack.client.make_url("/")))
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 80)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_a_page_left_open_through_an_outage_says_so_and_comes_back_by_itself(stack: Stack) -> None:
    from playwright.async_api import expect

    await started_runs(stack, RUNS_PAGE + 5)
    viewer = await stack.key("user:dana", role="viewer")
    async with server_behind_a_proxy(stack) as proxy, open_browser(f"http://127.0.0.1:{proxy.port}/") as browser:
        page = await browser.page(viewer, expect_principal="user:dana")
        await page.goto(f"http://127.0.0.1:{proxy.port}/#/runs/acme/nature")
        rows = page.get_by_test_id("runs").locator("tbody tr")
        await expect(rows).to_have_count(RUNS_PAGE)
        await expect(page.locator(".live")).to_contain_text("live")

        # The server stops; Next is clicked: the page says what happened in its own words, not the browser's.
        await proxy.stop_server()
        await page.get_by_role("button", name="Next →").click()
        unreachable = page.get_by_test_id("unreachable")
        await expect(unreachable).to_contain_text("modelreg is not answering; retrying…")
        await expect(page.get_by_text("Failed to fetch")).to_have_count(0)
        await page.wait_for_timeout(3000)  # a retry or two meet the outage too, and say the same
        await expect(unreachable).to_be_visible()

        # Back: the page it was asked for comes by itself, the live events with it, with no click.
        await proxy.start_server()
        await expect(rows).to_have_count(5, timeout=20_000)
        await expect(page.get_by_test_id("runs-page")).to_contain_text("page 2")
        await expect(page.locator(".live")).to_contain_text("live")

        # Down again, the Runs page opened meanwhile: the same, and "Retry now" does not wait for the next retry.
        await proxy.stop_server()
        await page.goto(f"http://127.0.0.1:{proxy.port}/#/runs")
        await expect(unreachable).to_be_visible()
        await proxy.start_server()
        await unreachable.get_by_role("button", name="Retry now").click()
        await expect(page.get_by_test_id("projects")).to_contain_text("acme/nature", timeout=5_000)

    assert [p for p in browser.problems if not any(n in p for n in OUTAGE_NOISE)] == [], browser.problems


async def test_a_page_whose_cursor_the_moved_log_refuses_follows_the_log_again_from_now(stack: Stack) -> None:
    """After `modelreg migrate-log` the page's socket comes back with a cursor of the log before, which the new log
    refuses (its offsets are no places in it): the page follows the log again from now, and reads itself again."""
    from playwright.async_api import WebSocketRoute, expect

    await started_runs(stack, 1)
    assert stack.client is not None
    log = stack.client.server.app[LOG]
    moved_from = "kafka" if log.kind == "postgres" else "postgres"
    before = base64.urlsafe_b64encode(f"t:{log.topic}\x1f0=1\x1fk:{moved_from}".encode()).decode()
    sockets: list[tuple[WebSocketRoute, WebSocketRoute]] = []
    subscribed: list[dict[str, Any]] = []  # what the page asked for, as the server got it
    heard: list[dict[str, Any]] = []  # what the server answered

    def to_the_server(server_side: WebSocketRoute, message: str | bytes) -> None:
        sent = json.loads(message)
        if sent.get("type") == "subscribe":
            if sent["payload"]["variables"].get("after"):
                sent["payload"]["variables"]["after"] = before  # the cursor the page kept through the move
            subscribed.append(sent)
        server_side.send(json.dumps(sent))

    def to_the_page(page_side: WebSocketRoute, message: str | bytes) -> None:
        heard.append(json.loads(message))
        page_side.send(message)

    def routed(page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        page_side.on_message(lambda message: to_the_server(server_side, message))
        server_side.on_message(lambda message: to_the_page(page_side, message))
        sockets.append((page_side, server_side))

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.05)

    async with open_browser(str(stack.client.make_url("/"))) as browser:
        page = await browser.page(await stack.key("user:dana", role="viewer"), expect_principal="user:dana")
        await page.route_web_socket(re.compile(r"/graphql$"), routed)
        await page.goto(str(stack.client.make_url("/#/runs/acme/nature")))
        rows = page.get_by_test_id("runs").locator("tbody tr")
        await expect(rows).to_have_count(1)
        await expect(page.locator(".live")).to_contain_text("live")
        await started_runs_from(stack, 1, 2)  # an event: the page now holds a cursor
        await expect(rows).to_have_count(2)

        for side in sockets[-1]:  # the server restarted on its new log: the page reconnects with its cursor
            await side.close()
        await until(lambda: any(s["payload"]["variables"].get("after") == before for s in subscribed))
        refused = next(s["id"] for s in subscribed if s["payload"]["variables"].get("after") == before)
        await until(lambda: any(h.get("id") == refused and h["type"] == "next" for h in heard))
        answer = next(h for h in heard if h.get("id") == refused and h["type"] == "next")
        assert answer["payload"]["errors"][0]["extensions"]["code"] == "INVALID_INPUT", answer

        # Followed again from now, under another id: a run started afterwards reaches the page as an event.
        await until(lambda: subscribed[-1]["id"] != refused)
        again = subscribed[-1]
        assert again["payload"]["variables"].get("after") is None, again
        await page.wait_for_timeout(500)  # the page's own reading again (its cursor refused) has come and gone
        await started_runs_from(stack, 2, 3)
        await until(lambda: any(h.get("id") == again["id"] and h["type"] == "next" for h in heard))
        event = next(h for h in heard if h.get("id") == again["id"] and h["type"] == "next")
        assert event["payload"]["data"]["events"]["stream"] == "run:acme/nature/run-02", event
        await expect(rows).to_have_count(3)
    assert [p for p in browser.problems if "WebSocket" not in p] == [], browser.problems


async def test_a_page_opened_while_the_api_does_not_answer_waits_for_it_instead_of_asking_for_a_key(
    stack: Stack,
) -> None:
    from playwright.async_api import expect

    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    viewer = await stack.key("user:dana", role="viewer")
    async with open_browser(url) as browser:
        page = await browser.page(viewer, expect_principal="user:dana")
        # The page itself loads (a proxy in front serves it, say), its API does not answer.
        await page.route("**/graphql", lambda route: route.abort("connectionrefused"))
        await page.reload()
        await expect(page.get_by_test_id("unreachable")).to_contain_text("modelreg is not answering; retrying…")
        await expect(page.get_by_label("API key")).to_have_count(0)
        await page.unroute("**/graphql")
        await expect(page.get_by_test_id("viewer")).to_contain_text("user:dana")

    assert [p for p in browser.problems if not any(n in p for n in OUTAGE_NOISE)] == [], browser.problems


async def test_the_runs_list_keeps_its_page_in_the_address(stack: Stack) -> None:
    from playwright.async_api import expect

    await started_runs(stack, 2 * RUNS_PAGE + 5)
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    viewer = await stack.key("user:dana", role="viewer")

    async with open_browser(url) as browser:
        page = await browser.page(viewer, expect_principal="user:dana")
        await page.goto(f"{url}#/runs/acme/nature")
        rows = page.get_by_test_id("runs").locator("tbody tr")
        pager = page.get_by_test_id("runs-page")
        await expect(rows).to_have_count(RUNS_PAGE)

        # The project's third page: Next twice, a run opened, Back: the third page still, so after a reload.
        await page.get_by_role("button", name="Next →").click()
        await expect(pager).to_contain_text("page 2")
        await page.get_by_role("button", name="Next →").click()
        await expect(pager).to_contain_text("page 3 · 45 runs")
        await expect(rows).to_have_count(5)
        # Written to the address once the page shows (an effect after the render): waited for, not read at once.
        await expect(page).to_have_url(re.compile(r"#/runs/acme/nature\?after=[^&]+&after="))
        third_page = page.url
        await rows.first.get_by_role("link").first.click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("run-0")
        await page.go_back()
        await expect(pager).to_contain_text("page 3 · 45 runs")
        await expect(rows).to_have_count(5)
        await page.reload()
        await expect(pager).to_contain_text("page 3 · 45 runs")

        # A link to it opens it too; Previous takes one page back, in the address as well.
        elsewhere = await browser.page(viewer, expect_principal="user:dana")
        await elsewhere.goto(third_page)
        await expect(elsewhere.get_by_test_id("runs-page")).to_contain_text("page 3 · 45 runs")
        await page.get_by_role("button", name="← Previous").click()
        await expect(pager).to_contain_text("page 2")
        await expect(page).to_have_url(re.compile(r"#/runs/acme/nature\?after=[^&]+$"))
        # A filter starts again from the first page, and is kept beside it.
        await page.get_by_label("State").select_option("running")
        await expect(pager).to_contain_text("page 1 · 45 runs")
        await expect(page).to_have_url(re.compile(r"#/runs/acme/nature\?state=running$"))

    assert browser.problems == [], browser.problems


async def test_every_page_names_itself_in_the_windows_title(stack: Stack) -> None:
    from playwright.async_api import expect

    await started_runs(stack, 1)
    await speech_model_with_tags(stack, 0)
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    viewer = await stack.key("user:dana", role="viewer")
    # A run started without a name has one the registry gave it (swift-river-12), and its page is named by it once
    # the run shows: its id meanwhile (read then, this check passed or failed by the machine's speed).
    named = await stack.graphql('{ run(entity: "acme", project: "nature", runId: "run-00") { name } }')
    run_name = named["data"]["run"]["name"]
    assert run_name and run_name != "run-00", named

    async with open_browser(url) as browser:
        page = await browser.page()
        await expect(page).to_have_title("Log in · modelreg")
        await page.get_by_label("API key").fill(viewer)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_test_id("viewer")).to_contain_text("user:dana")
        for address, title in [
            ("#/", "Registry · modelreg"),
            ("#/models/speech-asr", "speech-asr · modelreg"),
            ("#/models/speech-asr/v0/files", "speech-asr v0 · modelreg"),
            ("#/runs", "Runs · modelreg"),
            ("#/runs/acme/nature", "Runs · acme/nature · modelreg"),
            ("#/runs/acme/nature/run-00", f"{run_name} · acme/nature · modelreg"),
            ("#/audit", "Audit log · modelreg"),
            ("#/launch", "Launch · modelreg"),
            ("#/automations", "Automations · modelreg"),
            ("#/access", "Access · modelreg"),
            ("#/nowhere", "Not found · modelreg"),
        ]:
            await page.goto(url + address)
            await expect(page).to_have_title(title)

    assert browser.problems == [], browser.problems


async def test_a_model_with_a_hundred_tags_keeps_the_registry_readable_and_a_removed_tag_can_come_back(
    stack: Stack,
) -> None:
    from playwright.async_api import expect

    await speech_model_with_tags(stack, 100)
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    member = await stack.key("user:bob", role="member")

    async with open_browser(url) as browser:
        page = await browser.page(member, expect_principal="user:bob")
        await page.goto(f"{url}#/models/speech-asr")
        # The sidebar: three tags in the order people count (t2 before t10), then how many more; the next model
        # right below.
        entry = page.get_by_test_id("model-list").locator("li").filter(has_text="speech-asr")
        await expect(entry.locator(".badge")).to_have_text(["t1", "t2", "t3"])
        await expect(entry.get_by_test_id("more-tags")).to_have_text("+97 more")
        next_model = page.get_by_test_id("model-list").get_by_role("link", name="vision")
        assert (await next_model.bounding_box() or {}).get("y", 10_000) < 300
        await entry.get_by_test_id("more-tags").click()
        await expect(entry.locator(".badge")).to_have_count(100)
        await expect(entry.locator(".badge").nth(9)).to_have_text("t10")

        # The model's own header: twenty, then the rest on asking.
        tags = page.get_by_test_id("model-tags")
        await expect(tags.locator(".badge")).to_have_count(HEADER_TAGS)
        await expect(tags.get_by_role("button", name="+80 more")).to_be_visible()

        # A tag removed by its × comes back with Undo.
        await tags.get_by_role("button", name="remove tag t2 from the model").click()
        await expect(page.get_by_test_id("tag-removed")).to_contain_text("Removed tag t2.")
        await expect(tags.locator(".badge").nth(1)).to_have_text(re.compile(r"^t3"))
        await page.get_by_test_id("tag-removed").get_by_role("button", name="Undo").click()
        await expect(tags.locator(".badge").nth(1)).to_have_text(re.compile(r"^t2"))
        await expect(page.get_by_test_id("tag-removed")).to_have_count(0)

    assert browser.problems == [], browser.problems


async def test_an_automation_reads_as_words_with_its_json_on_asking(stack: Stack) -> None:
    from playwright.async_api import expect

    for request, variables in [
        ('mutation { createLaunchQueue(input: {name: "cpu"}) { name } }', None),
        (
            AUTOMATION,
            {
                "t": {"event": "alias_added", "registered_model": "speech-asr", "alias_pattern": "prod*"},
                "a": {
                    "kind": "launch",
                    "queue": "cpu",
                    "entity": "acme",
                    "project": "speech",
                    "source": {
                        "kind": "git",
                        "git_remote": "https://example.com/speech.git",
                        "entry_point": ["python", "eval.py"],
                    },
                },
            },
        ),
    ]:
        answer = await stack.graphql(request, variables)
        assert "errors" not in answer, answer
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    viewer = await stack.key("user:dana", role="viewer")

    async with open_browser(url) as browser:
        page = await browser.page(viewer, expect_principal="user:dana")
        await page.goto(f"{url}#/automations")
        # When, then, and only the fields it was given (no "image: null").
        spec = page.get_by_test_id("automation").filter(has_text="evaluate releases")
        await expect(spec).to_contain_text("When an alias is set or moved")
        await expect(spec.get_by_role("row", name="registered model speech-asr")).to_be_visible()
        await expect(spec.get_by_role("row", name="alias prod*")).to_be_visible()
        await expect(spec).to_contain_text("Then launch a job on queue cpu")
        await expect(spec.get_by_role("row", name="entry point python eval.py")).to_be_visible()
        await expect(spec).not_to_contain_text("null", use_inner_text=True)
        await expect(spec.get_by_text('"git_remote"')).to_be_hidden()
        await spec.get_by_text("JSON", exact=True).click()
        await expect(spec.get_by_text('"git_remote"')).to_be_visible()

        # Its name leads to its own address, which a link from a job or the audit log can name.
        await spec.get_by_role("link", name="evaluate releases").click()
        await expect(page).to_have_url(re.compile(r"#/automations/[0-9a-f-]{36}$"))
        await expect(page.get_by_test_id("automation")).to_have_count(1)
        await expect(page.get_by_test_id("automation")).to_contain_text("Then launch a job on queue cpu")
        await page.goto(f"{url}#/automations/{uuid.uuid4()}")
        await expect(page.get_by_text("it was deleted, or it is not yours to read")).to_be_visible()

    assert browser.problems == [], browser.problems


async def test_a_webhooks_creator_rotates_its_secret_from_its_page(stack: Stack) -> None:
    from playwright.async_api import expect

    hook = {"kind": "webhook", "url": "https://93.184.216.34/hook"}
    created = await stack.graphql(
        AUTOMATION, {"t": {"event": "alias_added", "registered_model": "speech-asr"}, "a": hook}, actor="user:ada"
    )
    automation_id = created["data"]["createAutomation"]["automation"]["id"]
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    async with open_browser(url) as browser:
        page = await browser.page(await stack.key("user:ada"), expect_principal="user:ada")
        page.on("dialog", lambda dialog: dialog.accept())  # "Give it a new webhook secret?"
        await page.goto(f"{url}#/automations/{automation_id}")
        await page.get_by_role("button", name="Rotate secret").click()
        rotated = page.get_by_test_id("rotated-secret")
        await expect(rotated).to_contain_text(re.compile(r"New webhook secret \(shown once\): [0-9a-f]{64}"))
        await expect(rotated).to_contain_text("the previous one signs too until")
        # Someone else's automation offers no rotation: the secret is shown to whoever rotates it.
        other = await browser.page(await stack.key("user:root"), expect_principal="user:root")
        await other.goto(f"{url}#/automations/{automation_id}")
        await expect(other.get_by_test_id("automation")).to_be_visible()
        await expect(other.get_by_role("button", name="Rotate secret")).to_have_count(0)
    assert browser.problems == [], browser.problems


AUTOMATIONS_PAGE = 50  # ui/pages/automations.js PAGE_SIZE


async def test_automations_come_a_page_at_a_time_and_the_page_is_kept_in_the_address(stack: Stack) -> None:
    # The page showed the first 100 and no more: the 101st could not be seen, switched off or deleted from the UI.
    from playwright.async_api import expect

    many = " ".join(
        f'a{n}: createAutomation(input: {{name: "notify {n:03}", trigger: {{event: "run_finished"}}, '
        f'action: {{kind: "webhook", url: "https://93.184.216.34/hook/{n}"}}}}) {{ automation {{ id }} }}'
        for n in range(AUTOMATIONS_PAGE + 1)
    )
    created = await stack.graphql(f"mutation {{ {many} }}", actor="user:ada")
    assert "errors" not in created, created
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    async with open_browser(url) as browser:
        page = await browser.page(await stack.key("user:ada"), expect_principal="user:ada")
        await page.goto(f"{url}#/automations")
        cards = page.get_by_test_id("automation")
        await expect(cards).to_have_count(AUTOMATIONS_PAGE)
        await expect(cards.first).to_contain_text("notify 000")
        await page.get_by_role("button", name="Next →").click()
        await expect(cards).to_have_count(1)
        await expect(cards.first).to_contain_text(f"notify {AUTOMATIONS_PAGE:03}")
        await expect(page.get_by_test_id("automations-page")).to_have_text("page 2")
        await expect(page).to_have_url(re.compile(r"#/automations\?after=[^&]+$"))
        await page.reload()
        await expect(cards).to_have_count(1)
        await expect(cards.first).to_contain_text(f"notify {AUTOMATIONS_PAGE:03}")
    assert browser.problems == [], browser.problems


async def test_a_phone_sized_window_gets_pages_no_wider_than_itself(stack: Stack) -> None:
    from playwright.async_api import expect

    await started_runs(stack, RUNS_PAGE)
    await speech_model_with_tags(stack, 100)
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    viewer = await stack.key("user:dana", role="viewer")

    async with open_browser(url) as browser:
        page = await browser.page(viewer, expect_principal="user:dana")
        await page.set_viewport_size(NARROW)
        # The sidebar above the page, the header wrapped, the tables scrolling inside their own boxes.
        await page.goto(f"{url}#/models/speech-asr")
        await expect(page.get_by_test_id("versions").locator("tbody tr")).to_have_count(1)
        await fits_the_window(page)
        await expect(page.get_by_role("heading", name="speech-asr", level=1)).to_be_in_viewport()
        await page.goto(f"{url}#/runs/acme/nature")
        await expect(page.get_by_test_id("runs").locator("tbody tr")).to_have_count(RUNS_PAGE)
        await fits_the_window(page)
        for address in [
            "#/models/speech-asr/v0",
            "#/runs/acme/nature/run-00",
            "#/runs",
            "#/launch",
            "#/audit",
            "#/access",
        ]:
            await page.goto(url + address)
            await expect(page.get_by_role("heading", level=1)).to_be_visible()
            await fits_the_window(page)

    assert browser.problems == [], browser.problems
