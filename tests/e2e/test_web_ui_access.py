"""The Access page in a browser: an admin issues zoe a key (shown once), makes her a member of one model,
zoe (in her own browser) gets the member controls there, and once the admin revokes her key she is back
at the login page: at once where a page follows live events (its socket is closed), else at her next action. The
admin is told what outlives her last key (her grant), and what a key issued to user:zoe again inherits."""

from __future__ import annotations

from support.browser import BROWSER_TEST_MARKS, open_browser, screenshot
from support.live_events import log_readers_reach
from support.stack import Stack
from support.story import demo_story

pytestmark = BROWSER_TEST_MARKS


async def test_an_admin_gives_zoe_a_key_and_member_on_a_model_then_revokes_the_key(stack: Stack) -> None:
    from playwright.async_api import expect

    await demo_story(stack)
    url = str(stack.client.make_url("/"))  # type: ignore[union-attr]
    admin_key = await stack.key("user:alice")

    async with open_browser(url) as browser:
        admin = await browser.page(admin_key, expect_principal="user:alice")

        # The admin issues zoe a viewer key: shown once, with a warning and a copy button.
        await admin.get_by_role("link", name="Access", exact=True).click()
        await expect(admin.get_by_test_id("principal").filter(has_text="user:alice")).to_contain_text("in use")
        issue = admin.get_by_test_id("issue-key-form")
        await issue.get_by_label("Kind").select_option("user")
        await issue.get_by_label("Id").fill("zoe")
        await issue.get_by_label("Role").select_option("viewer")
        await issue.get_by_label("Label").fill("zoe's laptop")
        await issue.get_by_label("Expires").select_option("in 90 days")  # a contractor's key
        await issue.get_by_role("button", name="Issue key").click()
        shown = admin.get_by_test_id("issued-key")
        await expect(shown).to_contain_text("will not be shown again")
        await expect(shown.get_by_role("button", name="Copy")).to_be_visible()
        zoe_key = await shown.get_by_label("New API key").input_value()
        assert zoe_key.startswith("mr_")
        zoe_row = admin.get_by_test_id("principal").filter(has_text="user:zoe")
        await expect(zoe_row.get_by_test_id("key")).to_contain_text("zoe's laptop")
        await expect(zoe_row.get_by_test_id("key")).to_contain_text("· expires")
        await expect(zoe_row.get_by_test_id("key-last-used")).to_have_text(" · never used")
        in_use = admin.get_by_test_id("principal").get_by_test_id("key").filter(has_text="in use")
        await expect(in_use.get_by_test_id("key-last-used")).to_contain_text("last used")  # the admin's own, now
        await expect(zoe_row).to_contain_text(zoe_key[: len("mr_") + 12])  # the key's public prefix

        # An invalid scope is refused by the API, and the page says why.
        grant = admin.get_by_test_id("grant-form")
        await grant.get_by_label("Principal").fill("user:zoe")
        await grant.get_by_label("Scope").fill("everything")
        await grant.get_by_role("button", name="Grant").click()
        await expect(admin.get_by_role("alert")).to_contain_text("scope")

        # ... then grants her member on the model.
        await grant.get_by_label("Scope").fill("model:nature-classification")
        await grant.get_by_label("Role").select_option("member")
        await grant.get_by_role("button", name="Grant").click()
        await expect(zoe_row.get_by_test_id("grant")).to_contain_text("model:nature-classification")
        await expect(zoe_row.get_by_test_id("grant")).to_contain_text("member")
        await expect(admin.get_by_role("alert")).to_have_count(0)
        await screenshot(admin, "access.png", full_page=True)

        # Once hidden, the key is nowhere, and no page will show it again.
        await shown.get_by_role("button", name="Done: hide the key").click()
        await expect(shown).to_have_count(0)
        await admin.reload()
        await expect(zoe_row).to_be_visible()
        assert zoe_key not in await admin.content()

        # Zoe, in her own browser: no Access entry, her own access read-only, and member controls on that model.
        zoe = await browser.page(zoe_key, expect_principal="user:zoe")
        await expect(zoe.get_by_role("link", name="Access", exact=True)).to_have_count(0)
        await zoe.get_by_test_id("viewer").click()
        mine = zoe.get_by_test_id("principal")
        await expect(mine).to_have_count(1)
        await expect(mine.get_by_test_id("grant")).to_contain_text("model:nature-classification")
        await expect(mine.get_by_test_id("key")).to_contain_text("in use")
        await expect(zoe.get_by_role("button", name="revoke", exact=False)).to_have_count(0)
        await expect(zoe.get_by_test_id("issue-key-form")).to_have_count(0)
        await screenshot(zoe, "access-own.png", full_page=True)
        await zoe.goto(url + "#/models/nature-classification/v0")
        form = zoe.get_by_test_id("alias-form")
        await expect(form).to_be_visible()
        await log_readers_reach(stack, 2)  # the live events of the admin's Access page and of zoe's version page
        # Zoe in another browser, on the audit log, which follows no live events.
        zoe_elsewhere = await browser.page(zoe_key, expect_principal="user:zoe")
        await zoe_elsewhere.get_by_role("link", name="Audit log", exact=True).click()
        await expect(zoe_elsewhere.get_by_test_id("audit")).to_be_visible()

        # The admin revokes zoe's key (after a confirm) ...
        await zoe_row.get_by_role("button", name=f"revoke key {zoe_key[: len('mr_') + 12]}_").click()
        await zoe_row.get_by_role("button", name="Revoke", exact=True).click()
        await expect(zoe_row.get_by_test_id("key")).to_contain_text("revoked by user:alice")
        await expect(zoe_row).to_contain_text("no live key")

        # ... zoe's version page is back at the login page at once, saying why ...
        await expect(zoe.get_by_label("API key")).to_be_visible()
        await expect(zoe.get_by_role("alert")).to_contain_text("the API key was revoked")
        await expect(form).to_have_count(0)
        # ... and the audit log at her next action there.
        await zoe_elsewhere.get_by_label("Actor").fill("user:carol")
        await expect(zoe_elsewhere.get_by_label("API key")).to_be_visible()
        await expect(zoe_elsewhere.get_by_role("alert")).to_contain_text("unknown or revoked API key")

        # Her last key revoked, the admin is told what stays: her grant, which a key issued to user:zoe would hold.
        await expect(zoe_row.get_by_test_id("warnings")).to_contain_text(
            "this was user:zoe's last live key, and the roles granted to it stay: member on model:nature-classification"
        )
        # A key issued to user:zoe again (someone else of that name?) says what it inherits.
        await issue.get_by_label("Id").fill("zoe")
        await issue.get_by_role("button", name="Issue key").click()
        await expect(shown.get_by_test_id("issued-key-grants")).to_contain_text(
            "It holds the roles user:zoe already holds: member on model:nature-classification."
        )
        await expect(shown.get_by_test_id("warnings")).to_contain_text("user:zoe holds no other live key")
        # A grant on a mistyped model is taken, and the page names the model meant.
        await grant.get_by_label("Principal").fill("user:zoe")
        await grant.get_by_label("Scope").fill("model:nature-clasification")
        await grant.get_by_role("button", name="Grant").click()
        await expect(admin.get_by_test_id("warnings").filter(has_text="did you mean")).to_contain_text(
            "no registered model nature-clasification exists yet: the grant holds there once one is created with that "
            "name (did you mean model:nature-classification?)"
        )

    # The refused key's 401s are the only errors the browsers may report.
    assert [p for p in browser.problems if "401" not in p] == [], browser.problems


async def test_a_team_admin_sees_who_holds_a_role_in_the_team_and_grants_and_takes_back_roles_there(
    stack: Stack,
) -> None:
    from playwright.async_api import expect

    url = str(stack.client.make_url("/"))  # type: ignore[union-attr]
    tam = await stack.key("user:tam", role="member")
    granted = 'mutation { grantRole(input: {principal: "user:tam", scope: "entity:acme", role: ADMIN}) { role } }'
    assert "errors" not in await stack.graphql(granted)

    async with open_browser(url) as browser:
        page = await browser.page(tam, expect_principal="user:tam")
        await page.goto(f"{url}#/access")
        team = page.get_by_test_id("scope-members").filter(has_text="entity:acme")
        members = team.get_by_test_id("member")
        await expect(members).to_have_count(1)
        await expect(members.first).to_contain_text("user:tam")

        form = team.get_by_test_id("scope-grant-form")
        await form.get_by_label("Principal").fill("user:dana")
        await form.get_by_label("Role").select_option("VIEWER")
        await form.get_by_role("button", name="Grant").click()
        await expect(members).to_have_count(2)
        await expect(members.filter(has_text="user:dana")).to_contain_text("viewer")
        await expect(team).to_contain_text("user:dana")  # no key was ever issued to user:dana: said, not refused

        await team.get_by_role("button", name="revoke entity:acme of user:dana").click()
        await team.get_by_role("button", name="Revoke", exact=True).click()
        await expect(members).to_have_count(1)
    assert browser.problems == [], browser.problems
