"""The `modelreg` command line as a key holder runs it against the stack's API: each command in a thread (the API
under test answers from the test's event loop), its standard output returned, a failure failing the test."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner

from modelreg.services.cli import main
from support.stack import Stack


class CommandLine:
    def __init__(self, url: str, api_key: str) -> None:
        self.env = {"MODELREG_URL": url, "MODELREG_API_KEY": api_key}

    async def __call__(self, *args: str) -> str:
        return await asyncio.to_thread(self._run, args)

    async def with_warnings(self, *args: str) -> tuple[str, str]:
        """Its standard output and its standard error (where warnings go)."""
        return await asyncio.to_thread(self._run_both, args)

    def _run(self, args: tuple[str, ...]) -> str:
        return self._run_both(args)[0]

    def _run_both(self, args: tuple[str, ...]) -> tuple[str, str]:
        result = CliRunner().invoke(main, list(args), env=self.env)
        assert result.exit_code == 0, result.output
        return result.stdout, result.stderr


async def command_line(stack: Stack, principal: str = "user:ada") -> CommandLine:
    """As `principal`, with an admin key unless it has another already."""
    assert stack.client is not None
    return CommandLine(str(stack.client.make_url("/")).rstrip("/"), await stack.key(principal))
