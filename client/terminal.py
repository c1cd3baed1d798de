"""W&B's `wandb.termlog`, `termwarn` and `termerror`: a line on stderr, prefixed as modelreg's own messages are."""

from __future__ import annotations

import sys
from typing import Any

PREFIX = "modelreg: "


def termlog(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True, **_: Any) -> None:
    sys.stderr.write((PREFIX if prefix else "") + str(string) + ("\n" if newline else ""))
    sys.stderr.flush()


def termwarn(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True, **_: Any) -> None:
    termlog(f"WARNING {string}", newline=newline, prefix=prefix)


def termerror(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True, **_: Any) -> None:
    termlog(f"ERROR {string}", newline=newline, prefix=prefix)
