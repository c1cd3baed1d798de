"""`modelreg login` once, and scripts find the server and the key on their own."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.stack import Stack

import modelreg
from modelreg.services.cli import main
from modelreg.user_settings import load_login


async def issue_key(stack: Stack, user: str) -> str:
    return await stack.key(f"user:{user}", role="member")


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELREG_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("MODELREG_URL", raising=False)
    monkeypatch.delenv("MODELREG_API_KEY", raising=False)
    return tmp_path / "config"


def login(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["login", *args], input=input)


async def test_login_checks_the_key_and_remembers_it_for_this_user_only(stack: Stack, config_dir: Path) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/")).rstrip("/")
    key = await issue_key(stack, "bob")

    refused = await asyncio.to_thread(login, "--host", url, "--key", "mr_000000000000_not-a-key")
    assert refused.exit_code != 0 and "did not accept this key" in refused.output
    assert load_login() is None

    prompted = await asyncio.to_thread(login, "--host", url, input=key + "\n")
    assert prompted.exit_code == 0, prompted.output
    assert key not in prompted.output  # asked for hidden
    assert (load_login().url, load_login().api_key) == (url, key)  # type: ignore[union-attr]
    assert stat.S_IMODE((config_dir / "settings").stat().st_mode) == 0o600


async def test_a_script_uses_the_login_unless_the_environment_or_its_arguments_say_otherwise(
    stack: Stack, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/")).rstrip("/")
    bob, carol = await issue_key(stack, "bob"), await issue_key(stack, "carol")
    assert (await asyncio.to_thread(login, "--host", url, "--key", bob)).exit_code == 0

    def started_by(**options: str) -> str:
        with modelreg.init(project="nature", entity="acme", **options) as run:
            pass
        return modelreg.Api(url, bob).run(run.path).started_by

    assert await asyncio.to_thread(started_by) == "user:bob"  # no argument, no environment: the login
    monkeypatch.setenv("MODELREG_API_KEY", carol)
    assert await asyncio.to_thread(started_by) == "user:carol"  # the environment wins over the login
    monkeypatch.setenv("MODELREG_API_KEY", "mr_000000000000_revoked")
    assert await asyncio.to_thread(started_by, api_key=bob) == "user:bob"  # an argument wins over both

    monkeypatch.delenv("MODELREG_API_KEY")
    other = modelreg.Api("http://127.0.0.1:9")  # another server never receives the stored key
    assert "authorization" not in other.transport._http.headers
