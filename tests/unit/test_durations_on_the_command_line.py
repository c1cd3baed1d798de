"""Durations are written on the command line as a person says them: `--time-limit 6h`."""

from __future__ import annotations

import click
import pytest

from modelreg.services import cli_client


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("2d", 172800)])
def test_a_duration_is_read_in_its_unit(text: str, seconds: int) -> None:
    assert cli_client.seconds(text, "--time-limit") == seconds


@pytest.mark.parametrize("text", ["", "0", "soon", "-5m", "3w", "1h30m"])
def test_a_duration_that_is_none_says_how_to_write_one(text: str) -> None:
    with pytest.raises(click.BadParameter, match="write 90s, 30m, 6h or 2d"):
        cli_client.seconds(text, "--time-limit")
