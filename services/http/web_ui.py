"""The web UI: static files (no build step) served at `/`, a client of the public GraphQL API only.

`ui/` in the repository is installed as the package data of `modelreg.ui`; its libraries are vendored
ES modules under `ui/vendor/` (see scripts/vendor_ui.sh). The page asks for an API key and sends it
with every GraphQL request, so these files themselves need none.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

import modelreg

# The folder that really holds the files: a strict editable install (`pip install -e .`, see setup.cfg) links
# each file from the source tree, and the static route below serves no symlinks.
UI_DIR = (Path(modelreg.__file__).parent / "ui" / "index.html").resolve().parent


async def _index(request: web.Request) -> web.FileResponse:
    # Never cached, so that a new release's module URLs are picked up at once; the modules revalidate.
    return web.FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def add_ui_routes(app: web.Application, ui_dir: Path = UI_DIR) -> None:
    """`/` is the single page (hash routes: `/#/models/<name>`), `/ui/...` its modules and styles."""
    if not (ui_dir / "index.html").is_file():
        raise FileNotFoundError(f"the web UI is missing from {ui_dir}: reinstall modelreg (`pip install .`)")
    app.router.add_get("/", _index)
    app.router.add_static("/ui/", ui_dir, follow_symlinks=False, append_version=False)
