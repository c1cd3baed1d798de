"""The web UI's page runs only its own scripts and is framed by no other site."""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from modelreg.services.http.web_ui import UI_DIR, add_ui_routes, page_policy


def test_the_page_allows_its_import_map_by_hash_and_no_other_inline_script() -> None:
    index = (UI_DIR / "index.html").read_text()
    import_map = index.split('<script type="importmap">', 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    policy = page_policy(index)
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy


async def test_the_page_is_served_with_its_policy() -> None:
    app = web.Application()
    add_ui_routes(app)
    async with TestClient(TestServer(app)) as client:
        page = await client.get("/")
        assert page.status == 200
        assert page.headers["Content-Security-Policy"] == page_policy((UI_DIR / "index.html").read_text())
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert page.headers["Cache-Control"] == "no-cache"
