"""GraphiQL at /graphql, in a browser on a machine without internet access (as this one): the page's libraries
are the server's own files, a web UI user's key is used, another key typed under Headers never reaches the
address bar, and the page loads nothing from another host."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

from support.browser import BROWSER_TEST_MARKS, open_browser
from support.stack import Stack
from support.story import demo_story

pytestmark = BROWSER_TEST_MARKS

VIEWER = "{ viewer { id role } }"


def hosts_asked(page: Any) -> set[str]:
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    return hosts


async def test_a_web_ui_user_opens_graphiql_and_runs_a_query_with_their_key(stack: Stack) -> None:
    from playwright.async_api import expect

    await demo_story(stack)
    url = str(stack.client.make_url("/"))  # type: ignore[union-attr]
    own_host = urlsplit(url).netloc
    key = await stack.key("user:alice")

    async with open_browser(url, failure_shot="graphiql-failure.png") as browser:
        page = await browser.page(key, expect_principal="user:alice")
        hosts = hosts_asked(page)
        await page.goto(f"{url}graphql?query={quote('{ registeredModels { items { name } } }')}")
        await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
        await expect(page.locator(".result-window")).to_contain_text("nature-classification")

        # The schema was read with the key: the documentation lists the API's fields.
        await page.get_by_role("button", name="Show Documentation Explorer").click()
        await page.locator(".graphiql-doc-explorer").get_by_text("Query", exact=True).click()
        await expect(page.locator(".graphiql-doc-explorer")).to_contain_text("registeredModels")

    assert hosts == {own_host}, hosts
    assert browser.problems == [], browser.problems


async def test_a_key_typed_under_headers_is_used_and_never_kept_in_the_address(stack: Stack) -> None:
    from playwright.async_api import expect

    url = str(stack.client.make_url("/"))  # type: ignore[union-attr]
    own_host = urlsplit(url).netloc
    key = await stack.key("user:bob", role="viewer")

    async with open_browser(url, failure_shot="graphiql-failure.png") as browser:
        page = await browser.page()  # never logged in to the web UI: no key on this origin
        hosts = hosts_asked(page)
        await page.goto(f"{url}graphql?query={quote(VIEWER)}")
        await page.get_by_role("button", name="Headers").click()
        await page.locator(".graphiql-editor-tool .graphiql-editor").last.click()
        await page.keyboard.type(json.dumps({"Authorization": f"Bearer {key}"}))
        await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
        await expect(page.locator(".result-window")).to_contain_text("user:bob")
        await expect(page.locator(".result-window")).to_contain_text("viewer")

        # The query edited is kept in the address, for a link; the key is not.
        await page.locator(".graphiql-query-editor .CodeMirror").click()
        await page.keyboard.press("End")
        await page.keyboard.type(" ")
        await expect(page).to_have_url(re.compile(r"query=.*viewer.*\+"))
        assert key not in page.url and "Authorization" not in page.url, page.url

    assert hosts == {own_host}, hosts
    # Only the schema's first reading, before the key was typed, was refused.
    assert [p for p in browser.problems if "401" not in p] == [], browser.problems
