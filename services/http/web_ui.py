"""The web UI: static files (no build step) served at `/`, a client of the public GraphQL API only.

`ui/` in the repository is installed as the package data of `modelreg.ui`; its libraries are vendored
ES modules under `ui/vendor/` (see scripts/vendor_ui.sh). The page asks for an API key and sends it
with every GraphQL request, so these files themselves need none.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from aiohttp import web

import modelreg

# The folder that really holds the files: a strict editable install (`pip install -e .`, see setup.cfg) links
# each file from the source tree, and the static route below serves no symlinks.
UI_DIR = (Path(modelreg.__file__).parent / "ui" / "index.html").resolve().parent


def page_policy(index_html: str) -> str:
    """The page's Content-Security-Policy: its scripts are its own modules and its import map (by hash); it
    talks to its own origin only, posts forms nowhere else and is shown in no other site's frame. A second line
    behind the model card's sanitiser (ui/html.js), which any member writes and admins read."""
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", index_html, flags=re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline)
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: https: http:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


@functools.cache
def graphiql_page() -> str:
    """GraphiQL's page at /graphql (a GET from a browser), before its query, variables and operation name are filled
    in. Its libraries are the UI's own files (ui/vendor/)."""
    return (UI_DIR / "graphiql.html").read_text()


def add_ui_routes(app: web.Application, ui_dir: Path = UI_DIR) -> None:
    """`/` is the single page (hash routes: `/#/models/<name>`), `/ui/...` its modules and styles."""
    if not (ui_dir / "index.html").is_file():
        raise FileNotFoundError(f"the web UI is missing from {ui_dir}: reinstall modelreg (`pip install .`)")
    headers = {
        # Never cached, so that a new release's module URLs are picked up at once; the modules revalidate.
        "Cache-Control": "no-cache",
        "Content-Security-Policy": page_policy((ui_dir / "index.html").read_text()),
        "X-Frame-Options": "DENY",  # browsers older than frame-ancestors
        "X-Content-Type-Options": "nosniff",
        # A card's remote image learns nothing of where it is shown, not even this registry's address.
        "Referrer-Policy": "no-referrer",
    }

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(ui_dir / "index.html", headers=headers)

    app.router.add_get("/", index)
    # The page under its file's name too, with its policy: the static route below would serve it without.
    app.router.add_get("/ui/index.html", index)
    app.router.add_static("/ui/", ui_dir, follow_symlinks=False, append_version=False)
