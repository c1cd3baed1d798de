"""How the command line's commands talk to a modelreg API (its url, a key, an error said in a line), and read
durations as people write them."""

from __future__ import annotations

import re
from typing import Any

import click

from modelreg.services.terminal_text import say, shown


def graphql(url: str | None, api_key: str | None, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    from modelreg.errors import ModelregError
    from modelreg.transport import Transport

    try:
        return Transport(url, api_key).graphql(query, variables)
    except ModelregError as exc:
        raise click.ClickException(shown(str(exc))) from None


def warn(warnings: list[str]) -> None:
    """What the server accepted but the caller should know (a watched model that does not exist yet)."""
    for warning in warnings:
        say(f"warning: {warning}", err=True)


def with_command_id(fields: dict[str, Any]) -> dict[str, Any]:
    """A mutation's input with a new command id: sent again after a lost answer, it is applied once."""
    from modelreg.transport import with_command_id as carrying_one

    return carrying_one(fields)


_CLIENT_OPTIONS = (
    click.option(
        "--url", envvar="MODELREG_URL", default=None, help="The modelreg API (default http://127.0.0.1:8080)."
    ),
    click.option("--api-key", envvar="MODELREG_API_KEY", default=None),
)


def client_options(fn: Any) -> Any:
    for option in reversed(_CLIENT_OPTIONS):
        fn = option(fn)
    return fn


_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str, option: str) -> int:
    """`90`, `90s`, `30m`, `1.5h`, `2d` in seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if found is None or float(found[1]) <= 0:
        raise click.BadParameter(f"{text!r} is not a duration: write 90s, 30m, 6h or 2d", param_hint=option)
    return max(1, round(float(found[1]) * _UNITS_S[found[2] or "s"]))
