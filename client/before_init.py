"""What `modelreg.config` and `modelreg.summary` are before `modelreg.init()`: a placeholder that says so."""

from __future__ import annotations

from typing import Any

from modelreg.errors import InvalidInput


class _BeforeInit:
    """`modelreg.config` / `modelreg.summary` before `init`: any use says to call init first."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise InvalidInput("call modelreg.init() before using modelreg.config or modelreg.summary")

    __getattr__ = __getitem__ = __setitem__ = __iter__ = __len__ = __contains__ = _refuse

    def __setattr__(self, name: str, value: Any) -> None:
        self._refuse()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<before modelreg.init()>"


BEFORE_INIT = _BeforeInit()
