"""Two teams, each private, in two browsers side by side: lea of lynx and oz of otter each see their own team's
runs and registered model, never the other's, and both see the shared registered model with the versions
both teams published into it. The UI shows what the API returns: nothing here is hidden by the page itself."""

from __future__ import annotations

from support.browser import BROWSER_TEST_MARKS, open_browser, screenshot
from support.stack import Stack
from support.story import LINK, LOG_VERSION, START_RUN, file_entry

pytestmark = BROWSER_TEST_MARKS

TEAMS = {"lynx": ("den", "user:lea"), "otter": ("holt", "user:oz")}
GRANT = (
    "mutation($p: String!, $s: String!, $r: Role!) { grantRole(input: {principal: $p, scope: $s, role: $r}) { role } }"
)
PRIVATE = "mutation($s: String!) { setVisibility(input: {scope: $s, visibility: PRIVATE}) { scope } }"


async def admin(stack: Stack, query: str, variables: dict) -> dict:
    answer = await stack.graphql(query, variables)
    assert "errors" not in answer, answer
    return answer["data"]


async def two_teams_publish_into_one_model(stack: Stack) -> None:
    for team, (project, person) in TEAMS.items():
        await admin(stack, START_RUN, {"input": {"entity": team, "project": project, "runId": f"{team}-train"}})
        logged = await admin(
            stack,
            LOG_VERSION,
            {
                "input": {
                    "entity": team,
                    "project": project,
                    "name": f"{team}-net",
                    "type": "model",
                    "runId": f"{team}-train",
                    "files": [file_entry("weights.bin", f"{team} weights".encode())],
                }
            },
        )
        version = logged["logArtifactVersion"]["id"]
        await admin(stack, LINK, {"model": f"{team}-models", "id": version})
        await admin(stack, LINK, {"model": "shared-model", "id": version})
        for scope in (f"entity:{team}", f"model:{team}-models"):
            await admin(stack, PRIVATE, {"s": scope})
            await admin(stack, GRANT, {"p": person, "s": scope, "r": "MEMBER"})


async def test_two_teams_side_by_side_see_their_own_work_and_the_shared_model(stack: Stack) -> None:
    from playwright.async_api import expect

    await two_teams_publish_into_one_model(stack)
    url = str(stack.client.make_url("/"))  # type: ignore[union-attr]
    async with open_browser(url) as browser:
        pages = {}
        for team, (_, person) in TEAMS.items():
            pages[team] = await browser.page(await stack.key(person, "viewer"), expect_principal=person)
        for team, page in pages.items():
            other = next(t for t in TEAMS if t != team)
            project, other_project = TEAMS[team][0], TEAMS[other][0]

            await page.goto(url + "#/runs")
            projects = page.get_by_test_id("projects")
            await expect(projects).to_contain_text(f"{team}/{project}")
            await expect(projects).not_to_contain_text(other)

            await page.goto(url + "#/")
            models = page.get_by_test_id("model-list")
            await expect(models).to_contain_text(f"{team}-models")
            await expect(models).to_contain_text("shared-model")
            await expect(models).not_to_contain_text(f"{other}-models")

            # The shared model lists both teams' versions; only its own team's links to the run that made it.
            await page.goto(url + "#/models/shared-model")
            versions = page.get_by_test_id("versions")
            await expect(versions).to_contain_text(f"{team}-net:v0")
            await expect(versions).to_contain_text(f"{other}-net:v0")
            await expect(versions.get_by_role("link", name=f"run {team}-train")).to_be_visible()
            await expect(versions.get_by_role("link", name=f"run {other}-train")).to_have_count(0)

            await page.goto(url + f"#/models/{other}-models")
            await expect(page.get_by_text(f"No registered model named {other}-models.")).to_be_visible()
            await page.goto(url + f"#/runs/{other}/{other_project}")
            await expect(page.get_by_test_id("runs-page")).to_contain_text("0 runs")
        await screenshot(pages["lynx"], "private-teams.png", full_page=True)
        assert not browser.problems, browser.problems
