"""What every browser test of the web UI shares: Debian's chromium driven by Playwright, headless, against a
running stack; where screenshots go (when asked); logging in with an API key; the page errors a test must not leave."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("MODELREG_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# The screenshots docs/web-ui.md shows are committed: a test run rewrites them only when asked
# (MODELREG_SCREENSHOTS=1), so that running the tests leaves the tree as it was.
SCREENSHOTS_WANTED = os.environ.get("MODELREG_SCREENSHOTS", "") not in ("", "0")

# For a module's `pytestmark`. The UI does not care where the log lives: one run, on the one-machine default.
BROWSER_TEST_MARKS = [
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright is not installed (pip install '.[test]', which scripts/setup.sh does)",
    ),
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason=f"no chromium at {CHROMIUM} "
        "(apt-get install chromium, which scripts/setup.sh does for the tests; or set MODELREG_CHROMIUM)",
    ),
    pytest.mark.parametrize("log_kind", ["postgres"], indirect=True),
]


@dataclass
class Browser:
    """One headless chromium; `page()` opens a tab logged in with a key. Errors any tab reports are kept."""

    url: str
    chromium: Any
    problems: list[str] = field(default_factory=list)

    async def page(self, key: str | None = None, *, expect_principal: str | None = None) -> Any:
        from playwright.async_api import expect

        # A context per tab: each has its own localStorage, so two people can be logged in side by side.
        context = await self.chromium.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.set_default_timeout(10_000)
        await page.goto(self.url)
        if key is not None:
            await page.get_by_label("API key").fill(key)
            await page.get_by_role("button", name="Log in").click()
            if expect_principal:
                await expect(page.get_by_test_id("viewer")).to_contain_text(expect_principal)
        return page


async def screenshot(page: Any, name: str, **options: Any) -> None:
    """docs/screenshots/<name> of `page`, when MODELREG_SCREENSHOTS=1 asks for the screenshots to be renewed."""
    if SCREENSHOTS_WANTED:
        await page.screenshot(path=SCREENSHOTS / name, **options)


@asynccontextmanager
async def open_browser(url: str, failure_shot: str = "failure.png") -> AsyncIterator[Browser]:
    """Chromium for one test. On a failure the last tab opened is saved to docs/screenshots/<failure_shot>
    (git-ignored) to show what the test saw."""
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=10_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        browser = Browser(url=url, chromium=chromium)
        try:
            yield browser
        except Exception:
            pages = [p for c in chromium.contexts for p in c.pages]
            if pages:
                await pages[-1].screenshot(path=SCREENSHOTS / failure_shot, full_page=True)
            raise
        finally:
            await chromium.close()
