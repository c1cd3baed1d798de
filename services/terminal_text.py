"""What the command line prints of text others wrote: a name, a reason, an error holding a control character
(ESC starting a terminal sequence that clears the screen, moves the cursor or, with OSC 52, writes the clipboard)
or a formatting one (a right-to-left override) shows it as an escape, not as what it would do to the terminal."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import click

_KEPT = frozenset("\n\t")
# What a job's output keeps of a terminal's means: colours (SGR), and the carriage return of progress bars.
_COLOUR = re.compile(r"(\x1b\[[0-9;]*m)")
_KEPT_IN_OUTPUT = frozenset("\n\t\r")


def shown(text: str, kept: frozenset[str] = _KEPT) -> str:
    """`text` with each control and formatting character but line breaks and tabs written as its escape."""
    if text.isprintable():
        return text
    return "".join(
        f"\\u{ord(char):04x}" if char not in kept and unicodedata.category(char) in ("Cc", "Cf") else char
        for char in text
    )


def shown_output(text: str) -> str:
    """A job's output as its terminal showed it (colours, progress bars), any other sequence as its escape."""
    return "".join(part if _COLOUR.fullmatch(part) else shown(part, _KEPT_IN_OUTPUT) for part in _COLOUR.split(text))


def say(message: Any = "", *, err: bool = False, nl: bool = True) -> None:
    """click.echo of a message that may hold text others wrote."""
    click.echo(shown(str(message)), err=err, nl=nl)
