"""The folder a download lands in, as both W&B scripts and modelreg's own use it."""

from __future__ import annotations

from pathlib import Path


class LocalFolder(str):
    """A folder's path as a `str`, which W&B's `download()` returns (`folder + "/model.pt"` works), that also
    joins as a `pathlib.Path` does (`folder / "model.pt"`), as scripts written for modelreg do."""

    __slots__ = ()

    def __truediv__(self, other: str | Path) -> Path:
        return Path(self) / other

    @property
    def path(self) -> Path:
        return Path(self)
