"""W&B calls and settings that mean nothing here: accepted, and said so once per name (a UserWarning), so
that a W&B script runs unchanged but for its import. docs/wandb-compat.md lists them."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

_warned: set[str] = set()


class IgnoredByModelreg(UserWarning):
    """A W&B call or setting that modelreg accepts and ignores."""


def ignore(what: str, why: str = "it has no meaning in modelreg") -> None:
    """Warn, the first time only, that `what` is ignored."""
    if what in _warned:
        return
    _warned.add(what)
    warnings.warn(f"modelreg: {what} is accepted and ignored ({why})", IgnoredByModelreg, stacklevel=3)


def ignore_unknown(call: str, given: dict[str, Any]) -> None:
    for name in given:
        ignore(f"{call}({name}=...)")


class Settings(dict[str, Any]):
    """`modelreg.Settings(...)`, W&B's `wandb.Settings`: any keyword is taken; init() reads the few it knows
    (mode, project, entity, run_id/id, run_name/name, run_notes, run_tags, run_group, run_job_type, reinit,
    base_url, api_key) and ignores the others with a warning."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)


# What code that converts values asks of a value (numpy's item/tolist): an Inert has none of it.
_NOT_THERE = frozenset({"item", "tolist", "numpy", "keys"})


class Inert:
    """What an ignored W&B class or namespace gives back (`wandb.Table(...)`, `wandb.plot.line(...)`): every call,
    attribute and item works and gives back another one, so a script that builds one (`table.add_data(...)`)
    runs on. Logging one leaves it out, as any value that is not a number (with a warning)."""

    _name: str

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __call__(self, *args: Any, **kwargs: Any) -> Inert:
        ignore(f"modelreg.{self._name}()")
        return Inert(self._name)

    def __getattr__(self, attribute: str) -> Inert:
        if attribute.startswith("__") or attribute in _NOT_THERE:
            raise AttributeError(attribute)
        return Inert(f"{self._name}.{attribute}")

    def __setattr__(self, attribute: str, value: Any) -> None:
        pass

    def __getitem__(self, key: Any) -> Inert:
        return Inert(self._name)

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"<modelreg.{self._name}: ignored>"


def ignored_callable(name: str) -> Any:
    """A no-op standing for a W&B function that has no meaning here (wandb.watch...); for a class or namespace
    (wandb.Image, wandb.Table, wandb.plot), an Inert."""
    if name[:1].isupper() or name.startswith("plot"):
        return Inert(name)

    def accepted(*args: Any, **kwargs: Any) -> None:
        ignore(f"modelreg.{name}()")
        return None

    accepted.__name__ = name
    return accepted
