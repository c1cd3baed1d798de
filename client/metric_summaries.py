"""What a run's summary keeps of each logged metric, as W&B's `define_metric(name, summary=..., goal=...)` says.

Without a definition, the summary holds a metric's last logged value. With one, it holds a dict of what was
asked, as W&B stores it: `define_metric("acc", summary="max")` gives `summary["acc"] == {"max": 0.93}`;
"min", "max", "mean", "last", "best" (the min, or the max with `goal="maximize"`; without a goal, which W&B's
documentation asks for, a warning says so) and "none" (nothing), several comma-separated, and several definitions
of one name add up (`overwrite=True` replaces). A name ending in `*` defines every key that starts with the rest
(`val/*`).

A resumed run goes on from its history (`resume_from`: each metric's last value, min, max, sum and count, which
the server reads from its metric chunks), so that a max or a mean spans every process that logged to it, as
W&B's, which streams the summary while the run logs, keeps them after a preemption.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modelreg.errors import InvalidInput

KINDS = frozenset({"min", "max", "mean", "best", "last", "none"})
GOALS = ("minimize", "maximize")


@dataclass(frozen=True)
class Definition:
    kinds: frozenset[str]
    goal: str | None = None


@dataclass
class MetricSummaries:
    defined: dict[str, Definition] = field(default_factory=dict)
    _of_key: dict[str, Definition | None] = field(default_factory=dict)  # by logged key, once looked up
    _seen: dict[str, dict[str, float]] = field(default_factory=dict)  # min, max, total, count and last per key

    def define(self, name: str, summary: str, goal: str | None, overwrite: bool) -> None:
        kinds = frozenset(kind.strip() for kind in summary.split(",") if kind.strip())
        if not kinds or kinds - KINDS:
            raise InvalidInput(
                f"define_metric(summary={summary!r}): give one or more of {', '.join(sorted(KINDS))}, comma-separated"
            )
        if goal is not None and goal not in GOALS:
            raise InvalidInput(f"define_metric(goal={goal!r}): give 'minimize' or 'maximize'")
        earlier = None if overwrite else self.defined.get(name)
        if earlier is not None:
            kinds, goal = kinds | earlier.kinds, goal or earlier.goal
        if "best" in summary and goal is None:
            # W&B's documentation asks for a goal with "best" and its client takes none without a word; the script
            # runs on, told which way "best" goes here.
            warnings.warn(
                f'modelreg: define_metric({name!r}, summary="best") without a goal: W&B asks for goal="minimize" or '
                'goal="maximize"; "best" is the minimum until a goal is given',
                stacklevel=3,
            )
        self.defined[name] = Definition(kinds, goal)
        self._of_key.clear()

    def resume_from(self, logged: Iterable[dict[str, Any]]) -> None:
        """A resumed run's history (the server's Run.historySummary), which its metrics' summaries go on from."""
        for metric in logged:
            seen = self._seen[metric["key"]] = {"min": metric["min"], "max": metric["max"], "last": metric["last"]}
            # A null sum was too large to add up: the mean is not carried, it goes on from this process's values.
            if metric["sum"] is not None:
                seen.update(total=metric["sum"], count=metric["points"])

    def of_history(self, keys: Iterable[str]) -> dict[str, dict[str, float]]:
        """What the summary keeps of each of `keys` that a definition names, from what was seen of it: a resumed
        run's history before it logs the metric again ({} for "none": nothing)."""
        kept = {}
        for key in keys:
            definition = self._definition(key)
            if definition is not None and key in self._seen:
                kept[key] = self._view(definition, self._seen[key])
        return kept

    def summarized(self, numbers: dict[str, float], summary: dict[str, Any]) -> dict[str, Any]:
        """What the summary takes of one step's `numbers`, given what it holds (`summary`)."""
        kept: dict[str, Any] = {}
        for key, value in numbers.items():
            definition = self._definition(key)
            if definition is None:
                kept[key] = value
            elif shown := self._shown(key, value, definition, summary.get(key)):
                kept[key] = shown
        return kept

    def defines(self, key: str) -> bool:
        """Whether a definition covers `key` (its own name, or a name ending in `*`)."""
        return self._definition(key) is not None

    def _definition(self, key: str) -> Definition | None:
        if key not in self._of_key:
            found = self.defined.get(key)
            if found is None:
                found = next(
                    (d for name, d in self.defined.items() if name.endswith("*") and key.startswith(name[:-1])), None
                )
            self._of_key[key] = found
        return self._of_key[key]

    def _shown(self, key: str, value: float, definition: Definition, held: Any) -> dict[str, float]:
        shown = dict(held) if isinstance(held, dict) else {}
        seen = self._seen.setdefault(key, {})
        # A resumed run whose history summary left this metric out (past its first 1,000) goes on from the
        # extremes its summary holds.
        for extreme in ("min", "max"):
            if extreme not in seen and isinstance(shown.get(extreme), int | float):
                seen[extreme] = shown[extreme]
        if value <= seen.get("min", value):
            seen["min"] = value
        if value >= seen.get("max", value):
            seen["max"] = value
        seen["total"] = seen.get("total", 0.0) + value
        seen["count"] = seen.get("count", 0) + 1
        seen["last"] = value
        shown.update(self._view(definition, seen))
        return shown

    @staticmethod
    def _view(definition: Definition, seen: dict[str, float]) -> dict[str, float]:
        kinds = definition.kinds
        view = {kind: seen[kind] for kind in sorted(kinds & {"min", "max"})}
        if "best" in kinds:
            view["best"] = seen["max" if definition.goal == "maximize" else "min"]
        if "mean" in kinds and seen.get("count"):
            view["mean"] = seen["total"] / seen["count"]
        if "last" in kinds:
            view["last"] = seen["last"]
        return view
