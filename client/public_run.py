"""A run as `modelreg.Api().run(path)` reads it (W&B's public `Run`): its fields, history, artifacts, files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from modelreg.artifact import ArtifactEntry, LoggedArtifact
from modelreg.errors import NotSupported
from modelreg.run_changes import RUN_CHANGES, keys_changed
from modelreg.run_values import plain, sendable
from modelreg.transport import Transport, with_command_id

RUN_FIELDS = (
    "entity project runId name jobType state config summary environment startedAt startedBy finishedAt heartbeatAt "
    "notes tags group lastHistoryStep"
)
_HISTORY = """query($e: String!, $p: String!, $r: String!, $keys: [String!], $samples: Int!, $byStep: Boolean!) {
  run(entity: $e, project: $p, runId: $r) {
    history(keys: $keys, samples: $samples, byStep: $byStep) { key steps values }
  }
}"""
_SCAN = """query($e: String!, $p: String!, $r: String!, $keys: [String!], $first: Int!, $after: String) {
  run(entity: $e, project: $p, runId: $r) {
    scanHistory(keys: $keys, first: $first, after: $after) { items { step values } endCursor hasNextPage }
  }
}"""
_METRIC_COUNT = (
    "query($e: String!, $p: String!, $r: String!) { run(entity: $e, project: $p, runId: $r) { metricCount } }"
)
# What the server reads for one scanHistory page at most (graphql/metrics.py): SCAN_ROWS steps, and the steps times
# the metrics read SCAN_POINTS points.
SCAN_ROWS = 10_000
SCAN_POINTS = 1_000_000
_ARTIFACT_FIELDS = (
    "id entity project name type version digest description metadata aliases latest createdAt size "
    "tags files { path size digest ref }"
)
_ARTIFACTS = {
    field: f"""query($e: String!, $p: String!, $r: String!, $first: Int!, $after: String) {{
  run(entity: $e, project: $p, runId: $r) {{
    {field}(first: $first, after: $after) {{ items {{ {_ARTIFACT_FIELDS} }} endCursor hasNextPage }}
  }}
}}"""
    for field in ("loggedArtifacts", "usedArtifacts")
}
RUN_FILES_TYPE = "run-files"


class RunSummary(dict[str, Any]):
    """A read run's summary: a dict, with W&B's `_json_dict` (the same values), which export scripts read.
    `update()`, with or without values, saves what changed, as W&B's docs write it
    (`run.summary["f1"] = 0.9; run.summary.update()`); so does the run's `update()`."""

    def __init__(self, values: dict[str, Any], save: Callable[[], None] | None = None) -> None:
        super().__init__(values)
        self._save = save

    @property
    def _json_dict(self) -> dict[str, Any]:
        return dict(self)

    def update(self, values: Any = None, **more: Any) -> None:  # type: ignore[override]
        super().update(values or {}, **more)
        if self._save is not None:
            self._save()


class RunPath(list[str]):
    """`[entity, project, id]`, as W&B's public run gives it (scripts write `"/".join(run.path)`), that also
    still reads as the "entity/project/id" text earlier modelreg versions returned: printed, compared with a
    string, hashed or split, it is that text."""

    def __str__(self) -> str:
        return "/".join(self)

    def __eq__(self, other: object) -> bool:
        return str(self) == other if isinstance(other, str) else list.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(str(self))

    def split(self, sep: str | None = None, maxsplit: int = -1) -> list[str]:
        return str(self).split(sep, maxsplit)


@dataclass(frozen=True)
class RunUser:
    username: str

    @property
    def name(self) -> str:
        return self.username


class PublicRun:
    def __init__(self, transport: Transport, fields: dict[str, Any]) -> None:
        self._transport = transport
        self.entity: str = fields["entity"]
        self.project: str = fields["project"]
        self.id: str = fields["runId"]
        self.display_name: str = fields.get("name") or fields["runId"]
        self.job_type: str | None = fields.get("jobType")
        self.state: str = fields["state"].lower()  # RUNNING on the wire, "running" in Python as in the events
        self.config: dict[str, Any] = dict(fields["config"])
        self.summary: dict[str, Any] = RunSummary(fields["summary"], save=self._save_summary)
        self.environment: dict[str, Any] = fields.get("environment") or {}
        self.started_at: str = fields["startedAt"]
        self.created_at: str = fields["startedAt"]
        self.started_by: str = fields["startedBy"]
        self.finished_at: str | None = fields.get("finishedAt")
        self.heartbeat_at: str | None = fields.get("heartbeatAt")  # when it was last heard from
        self.heartbeatAt = self.heartbeat_at  # W&B's spelling
        self.notes: str | None = fields.get("notes")
        self.tags: list[str] = list(fields.get("tags") or [])
        self.group: str | None = fields.get("group")
        self.lastHistoryStep: int | None = fields.get("lastHistoryStep")  # W&B's spelling
        self._as_read = self._as_it_is()
        self._summary_as_read = plain(self.summary)  # apart: `summary.update()` saves the summary alone

    def _as_it_is(self) -> tuple[Any, ...]:
        # Copies all the way down: `run.config["model"]["layers"] = 5` changes a dict a shallow copy shared.
        return self.display_name, self.notes, list(self.tags), self.group, plain(self.config)

    def __repr__(self) -> str:
        return f"<Run {self._path} ({self.state})>"

    @property
    def name(self) -> str:
        """The display name (W&B's public `run.name`); the id is `run.id`."""
        return self.display_name

    @name.setter
    def name(self, value: str) -> None:
        self.display_name = value

    @property
    def json_config(self) -> str:
        """The config as W&B's export scripts read it: JSON of `{key: {"value": v, "desc": None}}`."""
        return json.dumps({k: {"value": v, "desc": None} for k, v in self.config.items()})

    @property
    def summary_metrics(self) -> dict[str, Any]:
        return dict(self.summary)

    @property
    def metadata(self) -> dict[str, Any]:
        """What the run recorded of where it ran (git, python, host), W&B's run metadata."""
        return self.environment

    @property
    def user(self) -> RunUser:
        """Who started it: `run.user.username`."""
        return RunUser(self.started_by.removeprefix("user:"))

    @property
    def path(self) -> RunPath:
        """`[entity, project, id]`, as W&B's public run gives it: scripts write `"/".join(run.path)`."""
        return RunPath([self.entity, self.project, self.id])

    @property
    def _path(self) -> str:
        return "/".join(self.path)

    @property
    def url(self) -> str:
        return f"{self._transport.url}/#/runs/{self._path}"

    def update(self) -> None:
        """Save what was changed on this object: name, notes, tags, group, config and summary keys."""
        name, notes, tags, group, config = self._as_read
        run = {"entity": self.entity, "project": self.project, "runId": self.id}
        described = {
            k: v
            for k, v, before in (
                ("name", self.display_name, name),
                ("notes", self.notes, notes),
                ("tags", list(self.tags), tags),
                ("group", self.group, group),
            )
            if v != before and v is not None
        }
        if described:
            self._transport.graphql(RUN_CHANGES["describe_run"], {"i": with_command_id({**run, **described})})
        self._send_keys("update_run_config", self.config, config)
        self._save_summary()
        self._as_read = self._as_it_is()

    def delete(self, delete_artifacts: bool = False) -> None:
        raise NotSupported(
            f"runs are not deleted here ({self._path}): the registry keeps every run's events. Mark it and leave it "
            'out of lists: run.tags.append("deleted"); run.update(), then api.runs(path, filters={"tags": '
            '{"$nin": ["deleted"]}}); its artifacts are deleted one by one (run.logged_artifacts(), v.delete())'
        )

    def _save_summary(self) -> None:
        self._send_keys("update_run_summary", self.summary, self._summary_as_read)
        self._summary_as_read = plain(self.summary)

    def _send_keys(self, kind: str, now: dict[str, Any], before: dict[str, Any]) -> None:
        """The keys set and removed since `before`, values as JSON carries them (numpy's included)."""
        now_plain, before_plain = plain(now), plain(before)
        changes = {k: sendable(v) for k, v in now_plain.items() if before_plain.get(k, _ABSENT) != v}
        removed = [k for k in before_plain if k not in now_plain]
        if changes or removed:
            run = {"entity": self.entity, "project": self.project, "runId": self.id}
            self._transport.graphql(
                RUN_CHANGES[kind], {"i": with_command_id({**run, **keys_changed(changes, removed)})}
            )

    # History: what `run.log` recorded, a row per step.

    def scan_history(
        self,
        keys: list[str] | None = None,
        page_size: int = 1000,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every logged step in order, as `{"_step": n, key: value, ...}` (with `keys`: only steps that have all
        of them, as W&B does), read a page of `page_size` steps at a time (the server's scanHistory), fewer when
        the page's steps times the metrics would be more points than the server reads for a page. `min_step` and
        `max_step` are applied here (scanHistory starts only after a page's cursor): the steps before `min_step`
        are read too."""
        keys, only_the_step = _metrics_asked(keys)
        rows = self._scan_page_rows(keys, page_size)
        if rows is None:
            return
        after = None
        while True:
            variables = {"e": self.entity, "p": self.project, "r": self.id, "keys": keys, "first": rows}
            run = self._transport.graphql(_SCAN, {**variables, "after": after})["run"]
            if run is None:
                return
            page = run["scanHistory"]
            for row in page["items"]:
                step, values = row["step"], row["values"]
                if max_step is not None and step >= max_step:
                    return
                if (min_step is not None and step < min_step) or (keys and any(k not in values for k in keys)):
                    continue
                yield {"_step": step} if only_the_step else {**values, "_step": step}  # a metric is never the step
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]

    def _scan_page_rows(self, keys: list[str] | None, page_size: int) -> int | None:
        """`page_size`, fitted to what the server reads for a page: 1,001 metrics are 999 steps a page, not 1,000
        (which the server refuses). None when the run is gone."""
        if keys is None:
            run = self._transport.graphql(_METRIC_COUNT, {"e": self.entity, "p": self.project, "r": self.id})["run"]
            if run is None:
                return None
            metrics = run["metricCount"]
        else:
            metrics = len(keys)  # as the server counts them
        return max(1, min(page_size, SCAN_ROWS, SCAN_POINTS // max(metrics, 1)))

    def history(
        self, samples: int = 500, keys: list[str] | None = None, x_axis: str = "_step", pandas: bool = True, **_: Any
    ) -> Any:
        """Rows `{"_step": n, key: value, ...}` by step, a pandas DataFrame when pandas is installed and
        `pandas=True`, else a list of dicts. With `keys`: at most `samples` rows at steps spread evenly over the
        steps having all of them, as W&B does, the first and last included (the server chooses the steps once for
        every metric: `history(byStep: true)`). Without: each metric sampled on its own (`samples` points, its first
        and last included) and the rows merged by step, so that a metric logged at few steps is not left out."""
        keys, only_the_step = _metrics_asked(keys)
        variables = {
            "e": self.entity,
            "p": self.project,
            "r": self.id,
            "keys": keys,
            "samples": samples,
            "byStep": keys is not None,
        }
        run = self._transport.graphql(_HISTORY, variables)["run"] or {"history": []}
        by_step: dict[int, dict[str, Any]] = {}
        for curve in run["history"]:
            for step, value in zip(curve["steps"], curve["values"], strict=True):
                by_step.setdefault(int(step), {})[curve["key"]] = value
        rows = [
            {"_step": step} if only_the_step else {**values, "_step": step}  # a metric is never the step
            for step, values in sorted(by_step.items())
        ]
        if pandas:
            try:
                import pandas as pd  # type: ignore[import-untyped]
            except ImportError:
                return rows
            return pd.DataFrame(rows)
        return rows

    # Artifacts and files.

    def _artifacts(self, field: str, per_page: int = 50) -> Iterator[LoggedArtifact]:
        after = None
        while True:
            variables = {"e": self.entity, "p": self.project, "r": self.id, "first": per_page, "after": after}
            page = self._transport.graphql(_ARTIFACTS[field], variables)["run"][field]
            yield from (LoggedArtifact(self._transport, item) for item in page["items"])
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]

    def logged_artifacts(self, per_page: int = 50) -> list[LoggedArtifact]:
        return list(self._artifacts("loggedArtifacts", per_page))

    def used_artifacts(self, per_page: int = 50) -> list[LoggedArtifact]:
        return list(self._artifacts("usedArtifacts", per_page))

    def files(self, names: list[str] | None = None, per_page: int = 50) -> list[ArtifactEntry]:
        """What the run kept with `save()` or left in `run.dir`: the files of its last `run-files` version."""
        kept = [a for a in self._artifacts("loggedArtifacts") if a.type == RUN_FILES_TYPE]
        return kept[-1].files(names) if kept else []

    def file(self, name: str) -> ArtifactEntry:
        from modelreg.errors import NotFound

        for entry in self.files([name]):
            return entry
        raise NotFound(f"run {self._path} kept no file {name!r}")


_ABSENT = object()


# What W&B writes into every row itself: `keys=["_step", "loss"]` (a common W&B idiom) asks for loss by step. Asked
# of the server as metrics, they matched no row. _runtime and _timestamp are not recorded here: left out of the rows.
_ROW_KEYS = ("_step", "_runtime", "_timestamp")


def _metrics_asked(keys: list[str] | None) -> tuple[list[str] | None, bool]:
    """The metrics `keys` asks the server for, and whether they asked for the step alone (every step's row)."""
    if keys is None:
        return None, False
    metrics = [k for k in keys if k not in _ROW_KEYS]
    if not metrics and keys:
        return None, True
    return metrics, False
