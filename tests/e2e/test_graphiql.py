"""GraphiQL at /graphql, in a browser on a machine without internet access (as this one): the page's libraries
are the server's own files, a web UI user's key is used, another key typed under Headers never reaches the
address bar, and the page loads nothing from another host."""

from __future__ import annotations

import asyncio
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


async def test_a_mutation_a_link_brings_runs_with_the_web_ui_key_only_once_its_holder_confirms_it(stack: Stack) -> None:
    from playwright.async_api import expect

    url = str(stack.client.make_url("/"))  # type: ignore[union-attr]
    key = await stack.key("user:alice")
    # A link anyone can send an admin: a harmless query on screen, a mutation further down, and the link naming it.
    document = (
        "query Me { viewer { id } }" + "\n" * 60 + 'mutation Evil { createLaunchQueue(input: {name: "evil"}) { name } }'
    )
    link = f"{url}graphql?query={quote(document)}&operationName=Evil"
    queues = "{ launchQueues { items { name } } }"

    async with open_browser(url, failure_shot="graphiql-failure.png") as browser:
        page = await browser.page(key, expect_principal="user:alice")
        asked: list[str] = []

        async def answer(dialog: Any, accept: bool) -> None:
            asked.append(dialog.message)
            await (dialog.accept() if accept else dialog.dismiss())

        page.once("dialog", lambda dialog: asyncio.ensure_future(answer(dialog, accept=False)))
        await page.goto(link)
        await page.locator(".graphiql-query-editor .CodeMirror").click()
        await page.keyboard.press("Control+End")  # the cursor on the mutation: the one a user runs on purpose
        await page.keyboard.press("Control+Enter")
        await expect(page.locator(".result-window")).to_contain_text("you did not confirm the mutation")
        assert asked and "mutation Evil" in asked[0]
        assert (await stack.graphql(queues))["data"]["launchQueues"]["items"] == []

        page.once("dialog", lambda dialog: asyncio.ensure_future(answer(dialog, accept=True)))
        await page.keyboard.press("Control+Enter")
        await expect(page.locator(".result-window")).to_contain_text('"evil"')
        assert (await stack.graphql(queues))["data"]["launchQueues"]["items"] == [{"name": "evil"}]

        # A query runs as it did, without a word.
        await page.locator(".graphiql-query-editor .CodeMirror").click()
        await page.keyboard.press("Control+Home")
        await page.keyboard.press("Control+Enter")
        await expect(page.locator(".result-window")).to_contain_text("user:alice")
        assert len(asked) == 2

    assert [p for p in browser.problems if "401" not in p] == [], browser.problems


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
