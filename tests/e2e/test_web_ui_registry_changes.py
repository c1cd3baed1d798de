"""Changing the registry from the web UI, each role within its rights: a member links a new artifact version to
a model with an alias, tags it and the model, and unlinks it again; an admin protects an alias, which the member
then may no longer move or unlink; a viewer is offered none of it."""

from __future__ import annotations

from typing import Any

from support.browser import BROWSER_TEST_MARKS, open_browser, screenshot
from support.stack import Stack
from support.story import LINK, LOG_VERSION, demo_story, file_entry, version_input
from support.waiting import until

pytestmark = BROWSER_TEST_MARKS

HISTORY = (
    '{ registeredModel(name: "nature-classification") { tags history(first: 50) { items { action actor details } } } }'
)


async def test_members_link_tag_and_unlink_and_admins_protect_aliases_from_the_ui(stack: Stack) -> None:
    from playwright.async_api import expect

    await demo_story(stack)
    logged = await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"model-c", runId="train-1")})
    new_id = logged["data"]["logArtifactVersion"]["id"]
    url = str(stack.client.make_url("/"))
    member = await stack.key("user:mia", role="member")
    admin = await stack.key("user:ola", role="admin")
    viewer = await stack.key("user:dana", role="viewer")

    async with open_browser(url) as browser:
        page = await browser.page(member, expect_principal="user:mia")
        page.on("dialog", lambda dialog: dialog.accept())  # the unlink's confirmation

        # The new classifier version, not in the registry yet: the member tags it and links it as a candidate.
        await page.goto(f"{url}#/artifacts/{new_id}")
        await expect(page.get_by_test_id("linked-to")).to_contain_text("not linked")
        tags = page.get_by_test_id("version-tags")
        await tags.get_by_label("Tag this version").fill("reviewed")
        await tags.get_by_role("button", name="Add tag").click()
        await expect(tags).to_contain_text("reviewed")
        link = page.get_by_test_id("link-form")
        await link.get_by_label("Registered model").fill("nature-classification")
        await link.get_by_label("Aliases to set").fill("candidate")
        await screenshot(page, "artifact-link.png", full_page=True)
        await link.get_by_role("button", name="Link to nature-classification").click()

        # ... which opens the version it became: v2, holding candidate.
        await expect(page.get_by_role("heading", name="nature-classification v2")).to_be_visible()
        await expect(page.get_by_test_id("aliases")).to_contain_text("candidate")
        await expect(page.get_by_test_id("version-tags")).to_contain_text("reviewed")
        model_tags = page.get_by_test_id("model-tags")
        await model_tags.get_by_label("Tag the model").fill("vision")
        await model_tags.get_by_role("button", name="Add tag").click()
        await expect(model_tags).to_contain_text("vision")
        await page.goto(f"{url}#/artifacts/{new_id}")
        await expect(page.get_by_test_id("linked-to")).to_contain_text("nature-classification v2")
        await expect(page.get_by_test_id("linked-to")).to_contain_text("candidate")

        # The member unlinks v2 again (after a confirmation), and is back on the model's versions.
        await page.goto(f"{url}#/models/nature-classification/v2")
        await page.get_by_role("button", name="Unlink v2 from nature-classification").click()
        versions = page.get_by_test_id("versions").locator("tbody tr")
        await expect(versions).to_have_count(2)
        await expect(versions.filter(has_text="v2")).to_have_count(0)
        model = (await stack.graphql(HISTORY))["data"]["registeredModel"]
        assert model["tags"] == ["vision"]
        unlinked = [r for r in model["history"]["items"] if r["action"] == "registry.version_unlinked"]
        assert [(r["actor"], r["details"]["artifact_version_id"]) for r in unlinked] == [("user:mia", new_id)]

        # Members see no protected-alias settings; v1 holds production, which an admin now protects.
        await page.get_by_text("Manage nature-classification").click()
        await expect(page.get_by_test_id("link-form")).to_be_visible()
        await expect(page.get_by_test_id("protected-aliases")).to_have_count(0)
        admin_page = await browser.page(admin, expect_principal="user:ola")
        await admin_page.goto(f"{url}#/models/nature-classification")
        await admin_page.get_by_text("Manage nature-classification").click()
        protected = admin_page.get_by_test_id("protected-aliases")
        await protected.get_by_label("Protect alias").fill("production")
        await protected.get_by_role("button", name="Protect").click()
        await expect(protected.get_by_role("button", name="unprotect alias production")).to_be_visible()
        await screenshot(admin_page, "model-settings.png", full_page=True)

        # The member may no longer unlink v1 or remove production; the admin still may.
        await page.goto(f"{url}#/models/nature-classification/v1")
        await expect(page.get_by_test_id("unlink")).to_contain_text("only the model's admins may unlink it")
        await expect(page.get_by_role("button", name="remove alias production")).to_have_count(0)
        await admin_page.goto(f"{url}#/models/nature-classification/v1")
        await expect(admin_page.get_by_role("button", name="Unlink v1 from nature-classification")).to_be_visible()
        await expect(admin_page.get_by_role("button", name="remove alias production")).to_be_visible()
        # Moving or removing it asks first: deployments follow it. Declined, nothing changes.
        asked: list[str] = []

        async def decline(dialog: Any) -> None:
            asked.append(dialog.message)
            await dialog.dismiss()

        admin_page.on("dialog", decline)
        await admin_page.get_by_role("button", name="remove alias production").click()
        await until(lambda: len(asked) == 1)
        assert asked[0].startswith("Remove the protected alias production from v1?"), asked
        await expect(admin_page.get_by_test_id("aliases")).to_contain_text("production")
        admin_page.remove_listener("dialog", decline)

        # A link the server refuses says why, next to the form: the member links to a model they only view.
        granted = await stack.graphql(
            'mutation { grantRole(input: {principal: "user:mia", scope: "model:fraud-detector", role: VIEWER}) '
            "{ role } }"
        )
        assert "errors" not in granted, granted
        await page.goto(f"{url}#/artifacts/{new_id}")
        link = page.get_by_test_id("link-form")
        await link.get_by_label("Registered model").fill("fraud-detector")
        await link.get_by_role("button", name="Link to fraud-detector").click()
        await expect(link.get_by_role("alert")).to_contain_text("viewer")

        # A viewer is offered none of it.
        watcher = await browser.page(viewer, expect_principal="user:dana")
        await watcher.goto(f"{url}#/models/nature-classification/v1")
        await expect(watcher.get_by_test_id("aliases")).to_contain_text("production")
        await expect(watcher.get_by_test_id("model-tags")).to_contain_text("vision")
        for control in ["alias-form", "unlink", "link-form"]:
            await expect(watcher.get_by_test_id(control)).to_have_count(0)
        await expect(watcher.get_by_label("Tag the model")).to_have_count(0)
        await watcher.goto(f"{url}#/models/nature-classification")
        await expect(watcher.get_by_test_id("versions")).to_be_visible()
        await expect(watcher.get_by_test_id("model-settings")).to_have_count(0)
        await watcher.goto(f"{url}#/artifacts/{new_id}")
        await expect(watcher.get_by_test_id("linked-to")).to_contain_text("not linked")
        await expect(watcher.get_by_test_id("link-form")).to_have_count(0)
        await expect(watcher.get_by_label("Tag this version")).to_have_count(0)

    # Refusals come back as GraphQL errors (HTTP 200), so no request failed in a way the console reports.
    assert browser.problems == [], browser.problems


async def test_a_versions_files_show_as_a_folder_tree_and_its_metadata_shows_the_runs_hyperparameters(
    stack: Stack,
) -> None:
    from playwright.async_api import expect

    await demo_story(stack)
    files = [
        file_entry("model/weights.bin", b"w" * 3000),
        file_entry("model/config.json", b"{}"),
        file_entry("README.md", b"# hi"),
    ]
    logged = await stack.graphql(
        LOG_VERSION,
        {
            "input": {
                **version_input("classifier", b"", runId="train-1"),
                "files": files,
                "metadata": {"val_accuracy": 0.93},
            }
        },
    )
    version_id = logged["data"]["logArtifactVersion"]["id"]
    readme = files[2]["digest"]
    stored = await stack.client.put(f"/blobs/{readme}", data=b"# hi", headers=await stack.auth())
    assert stored.status in (200, 201), await stored.text()
    linked = await stack.graphql(LINK, {"model": "nature-classification", "id": version_id})
    assert linked["data"]["linkArtifactVersion"]["version"] == "v2", linked
    url = str(stack.client.make_url("/"))

    async with open_browser(url) as browser:
        page = await browser.page(await stack.key("user:dana", role="viewer"), expect_principal="user:dana")
        await page.goto(f"{url}#/models/nature-classification/v2/files")
        tree = page.get_by_test_id("files")
        folder = tree.get_by_role("button", name="folder model/")
        await expect(folder).to_have_attribute("aria-expanded", "true")
        await expect(tree.locator("tr.folder")).to_contain_text("2 files")
        await expect(tree.locator("tbody tr")).to_have_count(4)  # model/, its two files, README.md
        await expect(tree.locator("tfoot")).to_contain_text("3 files")
        await screenshot(page, "version-files.png")
        await folder.click()
        await expect(tree.locator("tbody tr")).to_have_count(2)
        await expect(tree).not_to_contain_text("weights.bin")
        async with page.expect_download() as download_info:
            await tree.get_by_role("button", name="download README.md").click()
        assert (await download_info.value).suggested_filename == "README.md"

        await page.get_by_role("tab", name="Metadata").click()
        await expect(page.locator("main")).to_contain_text("val_accuracy")
        hyperparameters = page.get_by_test_id("hyperparameters")
        await expect(hyperparameters).to_contain_text("run train-1")
        await expect(hyperparameters).to_contain_text("lr")
        await expect(hyperparameters).to_contain_text("0.05")
    assert browser.problems == [], browser.problems


async def test_a_card_the_renderer_cannot_take_is_shown_as_written_and_can_still_be_edited(stack: Stack) -> None:
    # 99,990 nested quotes overflow the markdown renderer's stack: thrown in the page, every version's Overview
    # showed nothing below its tabs, the card's Edit button included.
    from playwright.async_api import expect

    await demo_story(stack)
    card = ">" * 99_990 + " the end"
    update = (
        'mutation($d: String!) { updateModelCard(input: {registeredModel: "nature-classification", description: $d}) '
        "{ name } }"
    )
    assert "errors" not in await stack.graphql(update, {"d": card})
    url = str(stack.client.make_url("/"))

    async with open_browser(url) as browser:
        page = await browser.page(await stack.key("user:mia", role="member"), expect_principal="user:mia")
        await page.goto(f"{url}#/models/nature-classification/v1")
        shown = page.get_by_test_id("model-card")
        await expect(shown.locator("pre")).to_contain_text("the end")
        await expect(shown.get_by_role("button", name="Edit")).to_be_visible()
        await expect(page.get_by_test_id("aliases")).to_be_visible()
    assert browser.problems == [], browser.problems


async def test_saving_a_card_a_colleague_changed_meanwhile_is_refused_and_erases_nothing(stack: Stack) -> None:
    from playwright.async_api import expect

    await demo_story(stack)
    url = str(stack.client.make_url("/"))
    update = (
        'mutation($d: String!) { updateModelCard(input: {registeredModel: "nature-classification", description: $d}) '
        "{ name } }"
    )

    async with open_browser(url) as browser:
        page = await browser.page(await stack.key("user:zoe", role="member"), expect_principal="user:zoe")
        await page.goto(f"{url}#/models/nature-classification/v1")
        card = page.get_by_test_id("model-card")
        await card.get_by_role("button", name="Edit").click()
        await card.get_by_label("Outputs").fill("10 class scores")
        assert "errors" not in await stack.graphql(update, {"d": "# Nature, as the admin wrote it meanwhile"})
        await card.get_by_role("button", name="Save the model card").click()
        await expect(card).to_contain_text("changed since it was read for this edit: read it again")
        await card.get_by_role("button", name="Cancel").click()
        await expect(card).to_contain_text("as the admin wrote it meanwhile")
    assert browser.problems == [], browser.problems
