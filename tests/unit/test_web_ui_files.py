"""The web UI has no build step, so nothing else checks that its modules find each other: every import of
every module resolves to a file in ui/ or to an import-map entry that points at a vendored file, and the
installed package carries all of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from modelreg.services.http.web_ui import UI_DIR

REPO_UI = Path(__file__).resolve().parents[2] / "ui"
IMPORT = re.compile(r"""^\s*import\s+(?:[^'"]*?\s+from\s+)?["']([^"']+)["']""", re.MULTILINE)


def import_map() -> dict[str, str]:
    page = (REPO_UI / "index.html").read_text()
    found = re.search(r'<script type="importmap">(.*?)</script>', page, re.DOTALL)
    assert found, "index.html has no import map"
    return json.loads(found.group(1))["imports"]


def test_every_import_of_every_ui_module_resolves_to_a_file() -> None:
    names = import_map()
    for target in names.values():
        assert (REPO_UI / target.removeprefix("/ui/")).is_file(), f"the import map points at a missing {target}"
    modules = [p for p in REPO_UI.rglob("*.js") if "vendor" not in p.parts]
    assert {"app.js", "api.js", "registry.js", "version.js", "lineage.js", "run.js"} <= {p.name for p in modules}
    for module in modules:
        for spec in IMPORT.findall(module.read_text()):
            if spec.startswith("."):
                assert (module.parent / spec).resolve().is_file(), (
                    f"{module.relative_to(REPO_UI)} imports missing {spec}"
                )
            else:
                assert spec in names, (
                    f"{module.relative_to(REPO_UI)} imports {spec!r}, which the import map in index.html does not name"
                )


def test_the_installed_package_carries_the_whole_ui() -> None:
    shipped = {p.relative_to(UI_DIR) for p in UI_DIR.rglob("*") if p.is_file()}
    wanted = {
        p.relative_to(REPO_UI)
        for p in REPO_UI.rglob("*")
        if p.is_file() and p.name not in ("package.json", "package-lock.json")
    }
    assert wanted <= shipped, f"not installed (pyproject's package-data?): {sorted(map(str, wanted - shipped))}"
