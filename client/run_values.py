"""A run's config and summary as W&B scripts use them: dicts with attribute access whose changes after
`init` are reported to the server (each change one event, shown on the run's page)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelreg.errors import InvalidInput
from modelreg.ignored import Inert

Reporter = Callable[[dict[str, Any], tuple[str, ...]], None]  # (keys set with their values, keys removed)


NON_FINITE_NAMES = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def sendable(value: Any) -> Any:
    """A plain value as JSON can carry it: inf and NaN by the names W&B shows them by (JSON has neither, nor has
    PostgreSQL's jsonb); the script's own dict keeps the float."""
    if isinstance(value, float) and not math.isfinite(value):
        return NON_FINITE_NAMES[repr(value)]
    if isinstance(value, dict):
        return {k: sendable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sendable(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A JSON value for what scripts put in a config: numpy and torch scalars, paths, tuples, namespaces."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, Inert):  # a wandb.Table or plot this client does not store
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, argparse.Namespace):
        return plain(vars(value))
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return plain(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays
        return plain(value.tolist())
    return str(value)


def as_mapping(values: Any, what: str) -> dict[str, Any]:
    """A dict, an argparse Namespace, or (for init's config) the path of a YAML file."""
    if values is None:
        return {}
    if isinstance(values, argparse.Namespace):
        values = vars(values)
    if isinstance(values, str | Path):
        values = config_file(Path(values), what)
    if not isinstance(values, Mapping):
        raise InvalidInput(f"{what} takes a dict (or an argparse Namespace), not {type(values).__name__}")
    return {str(k): plain(v) for k, v in values.items()}


# What W&B reads as the config when init gets none: in the working directory.
CONFIG_DEFAULTS = "config-defaults.yaml"


def config_file(path: Path, what: str) -> dict[str, Any]:
    """A YAML config as W&B reads one: a key written `{desc: ..., value: x}` (W&B's own layout, as in
    config-defaults.yaml) is `x`; `wandb_version` and `_wandb` are W&B's bookkeeping, left out."""
    try:
        import yaml
    except ImportError:
        raise InvalidInput(f"{what}: reading {path} needs PyYAML (pip install pyyaml)") from None
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, Mapping):
        raise InvalidInput(f"{what}: {path} holds a {type(loaded).__name__}, not a mapping of config keys")
    return {
        str(key): value["value"] if isinstance(value, Mapping) and "value" in value else value
        for key, value in loaded.items()
        if key not in ("wandb_version", "_wandb")
    }


class ReportedDict(dict[str, Any]):
    """`d["lr"]`, `d.lr`, `d.lr = 0.1`, `d.update(...)`: each change reported in one call to `report`."""

    def __init__(self, values: Mapping[str, Any] | None = None, report: Reporter | None = None) -> None:
        super().__init__(values or {})
        object.__setattr__(self, "_report", report)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no key {name!r}") from None

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        if self._report is not None:
            self._report({}, (str(key),))
        super().__delitem__(key)

    def popitem(self) -> tuple[str, Any]:
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(self))
        return key, self.pop(key)

    def clear(self) -> None:
        if self and self._report is not None:
            self._report({}, tuple(self))
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        if key not in self and default:
            return default[0]
        value = self[key]
        del self[key]
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._changed({str(key): plain(value)})

    def update(self, values: Any = None, allow_val_change: bool | None = None, **more: Any) -> None:  # type: ignore[override]
        """W&B's `update(dict_or_namespace, allow_val_change=None)`; every value may change here."""
        changes = {**as_mapping(values, f"{type(self).__name__.lower()}.update"), **as_mapping(more, "update")}
        self._changed(changes)

    def setdefaults(self, values: Any) -> None:
        """Set the keys not set yet (W&B's `config.setdefaults`)."""
        given = as_mapping(values, "setdefaults")
        self._changed({k: v for k, v in given.items() if k not in self})

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def as_dict(self) -> dict[str, Any]:
        return dict(self)

    def keep(self, values: dict[str, Any]) -> None:
        """Take values without reporting them (they reach the server another way)."""
        super().update(values)

    def forget(self, key: str) -> None:
        """Drop a value without reporting it (one kept, never sent)."""
        super().pop(key, None)

    def _changed(self, changes: dict[str, Any]) -> None:
        changes = {k: v for k, v in changes.items() if k not in self or dict.__getitem__(self, k) != v}
        if not changes:
            return
        if self._report is not None:  # first: a value the registry refuses is not kept, to be refused again at finish
            self._report(sendable(changes), ())
        super().update(changes)


class Config(ReportedDict):
    """`run.config`: set at init (sent with the run's start), changed after (a `runs.config_updated` event)."""


class Summary(ReportedDict):
    """`run.summary`: the last logged value of each metric (sent when the run finishes), and the keys a script
    sets itself (`run.summary["best_acc"] = 0.93`, sent at once as a `runs.summary_updated` event)."""
