"""Names as long as the registry takes (a model's, a project's, a run's: 128 to 200 characters, without a space, as
generated names are) wrap in the web UI instead of widening the page past the window, so that its controls stay in
reach without scrolling sideways."""

from __future__ import annotations

from typing import Any

from support.browser import BROWSER_TEST_MARKS, open_browser
from support.stack import Stack
from support.story import LINK, LOG_VERSION, START_RUN, version_input

pytestmark = BROWSER_TEST_MARKS

PROJECT = "p" * 128
RUN_NAME = "r" * 200
MODEL = "m" * 128


async def ok(stack: Stack, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = await stack.graphql(query, variables)
    assert "errors" not in answer, answer
    return answer["data"]


async def test_names_as_long_as_the_registry_takes_wrap_within_the_window(stack: Stack) -> None:
    from playwright.async_api import expect

    run = {"entity": "acme", "project": PROJECT, "runId": "r1"}
    await ok(stack, START_RUN, {"input": {**run, "name": RUN_NAME, "tags": ["t" * 64]}})
    logged = await ok(stack, LOG_VERSION, {"input": version_input("a" * 128, b"weights", project=PROJECT)})
    await ok(stack, LINK, {"model": MODEL, "id": logged["logArtifactVersion"]["id"], "aliases": ["s" * 64]})
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    async with open_browser(url) as browser:
        page = await browser.page(await stack.key("user:dana", role="viewer"), expect_principal="user:dana")
        await page.set_viewport_size({"width": 1024, "height": 800})
        for address, shown in [
            (f"#/runs/acme/{PROJECT}", RUN_NAME),
            (f"#/runs/acme/{PROJECT}/r1", RUN_NAME),
            (f"#/models/{MODEL}", MODEL),
            (f"#/models/{MODEL}/v0", MODEL),
        ]:
            await page.goto(f"{url}{address}")
            await expect(page.get_by_text(shown).first).to_be_visible()
            widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert widths[0] <= widths[1], (address, widths)
