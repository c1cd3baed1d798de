"""A run: one execution of training or evaluation code, with its config, metrics, inputs and outputs.

Its methods are W&B's `Run`'s, with the same names, arguments and behaviour (docs/wandb-compat.md says where
they differ), so that a W&B script runs with `import modelreg as wandb`.
"""

from __future__ import annotations

import functools
import glob
import math
import os
import secrets
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import UUID

from uuid_utils.compat import uuid7

from modelreg.artifact import Artifact, ArtifactFile, LoggedArtifact
from modelreg.artifact_paths import parse_artifact_path, registered_model_name
from modelreg.artifact_paths import registered_model_name as registered_model  # link_model's argument hides it
from modelreg.environment import capture, launch_value
from modelreg.errors import InvalidInput, NotFound, quoted
from modelreg.heartbeat import Heartbeat
from modelreg.ignored import IgnoredByModelreg, ignore
from modelreg.metric_sender import MAX_KEY_LENGTH, MAX_STEP, MetricSender, encoded
from modelreg.metric_summaries import MetricSummaries
from modelreg.run_changes import RUN_CHANGES, keys_changed
from modelreg.run_code import MAX_DIFF_BYTES
from modelreg.run_values import Config, Summary, plain, sendable
from modelreg.terminal import termlog, termwarn
from modelreg.transport import Transport, with_command_id

RUN_FILES_TYPE = "run-files"  # what `save()` and files left in `run.dir` are logged as

_START = "mutation($i: StartRunInput!) { startRun(input: $i) { runId name } }"
_FINISH = "mutation($i: FinishRunInput!) { finishRun(input: $i) { state } }"
_METRICS = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"
_HEARTBEAT = "mutation($i: RunHeartbeatInput!) { runHeartbeat(input: $i) }"
VERSION_FIELDS = (
    "id entity project name type version digest description metadata aliases latest createdAt size "
    "tags files { path size digest ref }"
)
_LOG = f"mutation($i: LogArtifactVersionInput!) {{ logArtifactVersion(input: $i) {{ {VERSION_FIELDS} }} }}"
_FIND = f"query($ref: String!) {{ artifactVersion(ref: $ref) {{ {VERSION_FIELDS} }} }}"
_FIND_ID = f"query($id: ID!) {{ artifactVersion(id: $id) {{ {VERSION_FIELDS} }} }}"
_REGISTERED = f"""query($m: String!, $alias: String!, $version: String!, $byVersion: Boolean!) {{
  registeredModel(name: $m) {{
    alias(name: $alias) @skip(if: $byVersion) {{ version aliases artifactVersion {{ {VERSION_FIELDS} }} }}
    version(name: $version) @include(if: $byVersion) {{ version aliases artifactVersion {{ {VERSION_FIELDS} }} }}
    newest: alias(name: "latest") {{ version }}
  }}
}}"""
_USE = "mutation($i: UseArtifactVersionInput!) { useArtifactVersion(input: $i) { id } }"
LINK = "mutation($i: LinkArtifactVersionInput!) { linkArtifactVersion(input: $i) { version } }"
ALERT_LEVELS = ("INFO", "WARN", "ERROR")


class AlertLevel:
    """W&B's `wandb.AlertLevel.WARN` and friends."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


def settable_aliases(aliases: Iterable[str] | str | None) -> list[str]:
    """W&B scripts pass `latest` (and sometimes `v3`) among aliases; here those are computed, not set."""
    if aliases is None:
        return []
    if isinstance(aliases, str):
        aliases = [aliases]
    return [a for a in dict.fromkeys(aliases) if a != "latest" and not (a[:1] == "v" and a[1:].isdigit())]


def find_version(transport: Transport, path: str, entity: str, project: str, type: str | None = None) -> dict:
    """The fields of the version `path` names (any form of modelreg.artifact_paths), or NotFound."""
    if _is_version_id(path):
        found = transport.graphql(_FIND_ID, {"id": path})["artifactVersion"]
        if found is None:
            raise NotFound(f"no artifact version {path!r}")
        return found
    parsed = parse_artifact_path(path, entity, project)
    if parsed.registered_model:
        by_version = parsed.selector[:1] == "v" and parsed.selector[1:].isdigit()
        variables = {"m": parsed.name, "alias": parsed.selector, "version": parsed.selector, "byVersion": by_version}
        model = transport.graphql(_REGISTERED, variables)["registeredModel"]
        link = (model or {}).get("version" if by_version else "alias")
        found = None
        if link:  # the registered model's version and aliases come along (LoggedArtifact's registry view)
            newest = model.get("newest") or {}
            registry = {
                "model": parsed.name,
                "version": link["version"],
                "aliases": link["aliases"],
                "latest": newest.get("version") == link["version"],
            }
            found = {**link["artifactVersion"], "registry": registry}
    else:
        if parsed.entity is None or parsed.project is None:
            raise InvalidInput(f"{path!r}: name its project (project/name:alias) or start a run in it")
        found = transport.graphql(_FIND, {"ref": parsed.ref()})["artifactVersion"]
    if found is None:
        where = "registered model" if parsed.registered_model else "artifact"
        raise NotFound(f"no {where} version {path!r}" + ("" if parsed.registered_model else f" ({parsed.ref()})"))
    if type is not None and found["type"] != type:
        raise InvalidInput(f"{path!r} is a {found['type']!r} artifact, not a {type!r} one")
    return found


def _is_version_id(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return "/" not in text and ":" not in text


class Run:
    def __init__(
        self,
        transport: Transport,
        entity: str,
        project: str,
        run_id: str,
        config: dict[str, Any],
        *,
        name: str | None = None,
        notes: str | None = None,
        tags: Sequence[str] = (),
        group: str | None = None,
        job_type: str | None = None,
        dir: str | Path | None = None,
    ) -> None:
        self.transport = transport
        self.entity = entity
        self.project = project
        self.id = run_id
        self.job_type = job_type
        self._name, self._notes, self._tags, self._group = name, notes, tuple(tags), group
        self.config = Config(
            config, report=lambda changes, removed: self._change("update_run_config", keys_changed(changes, removed))
        )
        self.summary = Summary(
            report=lambda changes, removed: self._change("update_run_summary", keys_changed(changes, removed))
        )
        self._dir_root = Path(dir) if dir is not None else None
        self._saved: dict[str, Path] = {}
        self._metrics = MetricSender(self._send_metric_batch)
        self._step = 0
        self._pending: dict[str, float] = {}  # logged at the current step, not committed yet
        # Data loaders and callbacks log from threads of their own: two threads committing one step at once
        # each sent it, at two steps.
        self._logging = threading.Lock()
        if hasattr(os, "register_at_fork"):  # held by a thread of the parent at a fork, it would be held for ever
            os.register_at_fork(after_in_child=functools.partial(_fresh_logging_lock, weakref.ref(self)))
        # The current step was logged to, if only with values left out (images, text): W&B counts it as a step.
        self._step_logged = False
        # What `log` and `save` left out and said so, once a run each: a training loop repeats it at every step.
        self._said: set[str] = set()
        self._summaries = MetricSummaries()  # what define_metric asked the summary to keep
        # A resumed run's metrics its summary holds the last value of from the history, not logged again since.
        self._from_history: dict[str, float] = {}
        self._finished = False
        # SIGTERM asked the process to stop: the run is being finished from another thread, and `log` takes no more
        # (a loop logging without pause kept the run's lock from the finish).
        self._stopped_by_signal = False
        # W&B's _init_pid: a process forked from this one (a DataLoader worker, a multiprocessing pool) inherits
        # the run but must not end or change it; its finish, init or summary once finished the parent's run.
        self._init_pid = os.getpid()
        self._resumed = False
        self.resume_file: Path | None = None  # init(resume=True)'s record of this run, removed at a clean finish
        self._heartbeat: Heartbeat | None = None
        self.start_time = time.time()  # W&B's: seconds since the epoch when this process started or joined it
        self.starting_step = 0  # W&B's: the step this process starts logging at (after a resumed run's last)

    @classmethod
    def start(cls, transport: Transport, **options: Any) -> Run:
        """Start a run: `options` are `start_fields`' (project, entity, config, name, tags...), plus `dir`."""
        directory = options.pop("dir", None)
        return cls.start_with(transport, start_fields(**options), dir=directory)

    @classmethod
    def start_with(cls, transport: Transport, fields: dict[str, Any], dir: str | Path | None = None) -> Run:
        """Start a run from its StartRun input (see `start_fields`)."""
        # The id stays in `fields`: a start whose answer was lost, recorded offline instead (mode="auto"), is synced
        # under it, and the server takes it for the copy it is rather than refusing a run that already exists.
        fields.setdefault("commandId", str(uuid7()))
        started = transport.graphql(_START, {"i": fields})["startRun"]
        run = cls.from_fields(transport, {**fields, "name": fields.get("name") or started.get("name")}, dir=dir)
        run.start_beating()
        return run

    @classmethod
    def from_fields(cls, transport: Transport, fields: dict[str, Any], dir: str | Path | None = None) -> Run:
        return cls(
            transport,
            fields["entity"],
            fields["project"],
            fields["runId"],
            fields["config"],
            name=fields.get("name"),
            notes=fields.get("notes"),
            tags=fields.get("tags") or (),
            group=fields.get("group"),
            job_type=fields.get("jobType"),
            dir=dir,
        )

    # What W&B's Run shows about itself.

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.id}"

    @property
    def url(self) -> str | None:
        """The run's page in the web UI."""
        return f"{self.transport.url}/#/runs/{self.entity}/{self.project}/{self.id}" if self.transport else None

    def get_url(self) -> str | None:
        return self.url

    def get_project_url(self) -> str | None:
        """The project's runs in the web UI."""
        return f"{self.transport.url}/#/runs/{self.entity}/{self.project}" if self.transport else None

    def project_name(self) -> str:
        return self.project

    @property
    def display_name(self) -> str:  # W&B's other spelling of `name`
        return self.name

    @display_name.setter
    def display_name(self, value: str) -> None:
        self.name = value

    @property
    def name(self) -> str:
        """The display name (the run id when none was given); setting it renames the run."""
        return self._name or self.id

    @name.setter
    def name(self, value: str) -> None:
        self._name = value
        self._change("describe_run", {"name": value})

    @property
    def notes(self) -> str | None:
        return self._notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._notes = value
        self._change("describe_run", {"notes": value})

    @property
    def tags(self) -> tuple[str, ...]:
        return self._tags

    @tags.setter
    def tags(self, value: Sequence[str]) -> None:
        self._tags = tuple(value)
        self._change("describe_run", {"tags": list(self._tags)})

    @property
    def group(self) -> str | None:
        return self._group

    @group.setter
    def group(self, value: str) -> None:
        self._group = value
        self._change("describe_run", {"group": value})

    @property
    def step(self) -> int:
        """The step the next `log` without `step=` records at."""
        return self._step

    @property
    def dir(self) -> str:
        """A folder for the run's files: what is left in it when the run finishes is kept with the run."""
        self._files_folder().mkdir(parents=True, exist_ok=True)
        return str(self._files_folder())

    def _files_folder(self) -> Path:
        return (self._dir_root or Path.cwd()) / "modelreg" / f"run-{self.id}" / "files"

    def start_beating(self) -> None:
        """Tell the server, while the run logs nothing, that its process is alive (client/heartbeat.py)."""
        run = {"entity": self.entity, "project": self.project, "runId": self.id}
        self._heartbeat = Heartbeat(
            lambda: self.transport.graphql(_HEARTBEAT, {"i": run}), lambda: self._metrics.delivered_at
        )

    def resume_after(self, step: int | None, logged: Sequence[dict[str, Any]] = ()) -> None:
        """A joined run goes on after the last step it logged, never over it, and its summary from what it logged
        (`logged`: the server's historySummary, each metric's last value, min, max, sum and count): a process
        killed before its finish never sent its metrics' values. A value the summary holds (the script set it, or
        a finish sent it) stays; the metrics define_metric summarizes go on from the whole history."""
        self._resumed = True
        if step is not None:
            self._step = max(self._step, step + 1)
            self.starting_step = self._step
        held = self.summary.as_dict()
        # The server's own last value (it marked the run crashed) is taken as the history's too.
        self._from_history = {m["key"]: m["last"] for m in logged if held.get(m["key"], m["last"]) == m["last"]}
        self.summary.keep(self._from_history)
        self._summaries.resume_from(logged)

    @property
    def offline(self) -> bool:
        return False

    @property
    def disabled(self) -> bool:
        return False

    @property
    def resumed(self) -> bool:
        """Whether `init(resume=...)` joined this run rather than starting it."""
        return self._resumed

    # Metrics.

    def log(self, data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        """W&B's semantics: values accumulate at the current step until committed; `commit` defaults to True
        without `step` and to False with one; a `step` below the current one is dropped with a warning, a
        later one commits what was pending first. Numbers only (nested dicts flatten to `a.b`); other values
        are ignored with a one-time warning, text kept in the summary only, as W&B keeps it. A committed step
        goes to the background sender (client/metric_sender.py), which sends batches."""
        if self._stopped_by_signal:
            return  # SIGTERM: the run is being finished, and the process ends in a moment (session.py)
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            if hasattr(step, "item") and float(step) == int(step):  # numpy integers
                step = int(step)
            else:
                raise TypeError(f"run.log(step={step!r}): a step is an int (W&B refuses other steps too)")
        # Past the last step there is: left out, not raised, since W&B takes it and a raise there ends a job of days
        # (a step below the current one, negative too, is dropped below).
        if (at := self._step if step is None else step) > MAX_STEP:
            self._say_once(
                "step",
                f"run.log at step {at:,} is left out, and every call at a step past 2**31-1 (the most a step can be "
                "here; W&B takes more): keep step= the optimizer step (or leave it out) and log a count such as the "
                "tokens seen as a metric, run.log({'tokens': n})",
            )
            return
        summary_only: dict[str, Any] = {}
        numbers = _numbers(data, summary_only=summary_only)
        if unstorable := self._metrics.unstorable_names(numbers):  # sent, they were refused with the whole batch
            numbers = {key: value for key, value in numbers.items() if key not in unstorable}
            self._say_once(
                "name",
                f"metric {quoted(unstorable[0])} is left out, and every metric named so: a name is 1 to "
                f"{MAX_KEY_LENGTH} characters without U+0000 (W&B takes longer ones): log it under a shorter name",
            )
        with self._logging:
            if step is not None and step < self._step:
                below = self._step
            else:
                below = None
                if step is not None and step > self._step:
                    self._commit_step()
                    self._step = step
                self._pending.update(numbers)
                self._step_logged = self._step_logged or bool(data)
                if self._from_history:
                    for key in numbers:
                        self._from_history.pop(key, None)
                summarized = self._summaries.summarized(numbers, self.summary) if self._summaries.defined else numbers
                self.summary.keep(summarized)
                if summary_only:  # text, inf and NaN: the last value, where define_metric said nothing of it
                    self.summary.keep({k: v for k, v in summary_only.items() if not self._summaries.defines(k)})
                if commit or (commit is None and step is None):
                    self._commit_step()
        if below is not None:
            ignore(f"run.log(step={step}) below the current step {below}", "steps only increase; W&B drops it too")

    def _say_once(self, kind: str, message: str, category: type[Warning] = IgnoredByModelreg) -> None:
        if kind not in self._said:
            self._said.add(kind)
            warnings.warn(f"modelreg: {message}", category, stacklevel=3)

    def _commit_step(self) -> None:
        if self._pending:
            # Taken first: points the sender refused stayed pending and were refused again at every later step.
            pending, self._pending = self._pending, {}
            self._metrics.log_numbers(pending, self._step)
        if self._step_logged:
            self._step_logged = False
            self._step += 1

    def flush(self) -> None:
        """Return once every metric logged so far is on the server (or in the offline spool)."""
        self._metrics.flush()

    def _send_metric_batch(self, series: list[dict[str, Any]], command_id: UUID) -> None:
        run = {"entity": self.entity, "project": self.project, "runId": self.id, "commandId": str(command_id)}
        self.transport.graphql(_METRICS, {"i": {**run, "series": encoded(series)}}, compress=True)

    def define_metric(
        self,
        name: str,
        step_metric: Any = None,
        step_sync: Any = None,
        hidden: Any = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
        **options: Any,
    ) -> None:
        """W&B's define_metric, for what the summary keeps of a metric (client/metric_summaries.py). Charts
        follow the step: step_metric, step_sync, hidden and the rest are accepted and ignored."""
        for option, value in (
            ("step_metric", step_metric),
            ("step_sync", step_sync),
            ("hidden", hidden),
            *options.items(),
        ):
            if value is not None:
                ignore(f"define_metric({option}=...)", "every logged key is charted against the step")
        if summary is not None:
            with self._logging:  # a thread of the script's may be logging
                self._summaries.define(name, summary, goal, bool(overwrite))
                if self._from_history:
                    self._summarize_history()

    def _summarize_history(self) -> None:
        """A resumed run's metrics its summary holds the history's last value of: what their definitions keep of
        the history instead (W&B's summary held that when the process before was killed)."""
        untouched = [key for key, last in self._from_history.items() if self.summary.get(key) == last]
        for key, shown in self._summaries.of_history(untouched).items():
            self._from_history.pop(key)
            if shown:
                self.summary.keep({key: shown})
            else:  # "none": no summary of it
                self.summary.forget(key)

    def watch(self, *args: Any, **kwargs: Any) -> None:
        ignore("watch()", "gradients and parameters are not recorded")

    def unwatch(self, *args: Any, **kwargs: Any) -> None:
        ignore("unwatch()")

    def log_code(self, root: str = ".", name: str | None = None, **options: Any) -> None:
        """W&B stores the script's source files; here the run records its git commit and uncommitted diff."""
        ignore("log_code()", "source files are not stored: the run records its git commit and uncommitted diff")

    def mark_preempting(self) -> None:
        ignore("mark_preempting()")

    # Changes to the run other than metrics.

    def _change(self, kind: str, fields: dict[str, Any]) -> None:
        """Send one of run_changes.RUN_CHANGES now (an offline run records it instead)."""
        self._refuse_once_finished()
        if self.inherited_by_fork(f"a change of the run ({kind})"):
            return
        self.transport.graphql(
            RUN_CHANGES[kind],
            {"i": with_command_id({"entity": self.entity, "project": self.project, "runId": self.id, **fields})},
        )

    @property
    def started_in_this_process(self) -> bool:
        """False in a process forked from the one that started (or joined) the run."""
        return os.getpid() == self._init_pid

    def inherited_by_fork(self, what: str) -> bool:
        """Whether this process was forked from the one that started the run, which then stays the run's only
        writer: `what` is left out here, with a one-time warning (as `log` is, client/metric_sender.py)."""
        if self.started_in_this_process:
            return False
        ignore(
            f"{what} in a process forked from the one that started the run",
            "the run belongs to the parent process: start a run of its own in this one with modelreg.init()",
        )
        return True

    def _refuse_once_finished(self) -> None:
        if self._finished:
            # As `log` after the end: a summary value set then was neither stored nor refused.
            raise InvalidInput(
                f"run {self.path} has finished: change it with modelreg.Api().run({self.path!r}) (its "
                "summary.update(), config, update()), or resume it with init(id=..., resume='must')"
            )

    def alert(self, title: str, text: str = "", level: Any = "INFO", wait_duration: Any = None) -> None:
        """An alert: in the run's audit history and sent to live-event subscribers (no e-mail, no Slack)."""
        level = getattr(level, "value", level)
        if str(level).upper() not in ALERT_LEVELS:
            raise InvalidInput(f"alert level {level!r} is not one of {', '.join(ALERT_LEVELS)}")
        self._change("raise_alert", {"title": title, "text": text, "level": str(level).upper()})

    def save(
        self, glob_str: str | os.PathLike[str] | None = None, base_path: str | None = None, policy: str = "live"
    ) -> list[str] | bool:
        """Keep files with the run (W&B's `save`): matched now, logged as the run's `run-files` artifact when
        the run finishes (policy "now": at once). Paths inside the run are relative to `base_path`; by default,
        as in W&B, to the working directory for a relative glob (`checkpoints/model.h5` keeps its folder) and to
        the glob's folder for an absolute one. Without a glob, W&B's old `run.save()` after a rename: nothing to
        do (every change is sent when made), True."""
        if glob_str is None:
            return True
        if base_path is not None:
            root = Path(base_path)
        else:
            root = Path(glob_str).parent if Path(glob_str).is_absolute() else Path(".")
        found = [Path(p) for p in sorted(glob.glob(str(glob_str), recursive=True)) if Path(p).is_file()]
        if not found:  # W&B's "live" policy watches the glob for files to come; here they are matched at the call
            self._say_once(
                f"save {glob_str}",
                f"save({str(glob_str)!r}) matches no file yet, and files are kept as the call finds them: call save "
                "again once the files exist (or write them into run.dir, kept whole when the run finishes)",
                UserWarning,
            )
        for path in found:
            self._saved[_relative_name(path, root)] = path.resolve()
        if policy == "now":
            self._log_run_files()
        return [str(p) for p in found]

    def _log_run_files(self) -> None:
        files = dict(self._saved)
        folder = self._files_folder()
        if folder.is_dir():
            files.update({p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()})
        if not files:
            return
        artifact = Artifact(f"run-{self.id}-files", RUN_FILES_TYPE, description=f"files saved by run {self.path}")
        for name, path in sorted(files.items()):
            if path.is_file():
                artifact.add_snapshot(path, name=name)  # a log the script still writes is logged as it is now
        self.log_artifact(artifact)

    # Artifacts.

    def log_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: Iterable[str] | str | None = None,
        tags: Iterable[str] | None = None,
    ) -> Artifact:
        """Upload what the server lacks and log the version as this run's output. A path (file or folder)
        becomes an artifact named `name` (default: the file's name) of type `type` (default "unspecified")."""
        artifact = as_artifact(artifact_or_path, name, type)
        if tags:
            ignore("log_artifact(tags=...)", "tag versions with the registry's tags instead")
        manifest = artifact.upload_files(self.transport)
        wanted = settable_aliases([*settable_aliases(aliases), *artifact.aliases])  # W&B: either place
        fields = self._artifact_fields(artifact, manifest, wanted)
        # A client-chosen id: a log sent again after a lost answer comes back as the same version.
        fields = with_command_id({**fields, "id": str(uuid7())})
        logged = self.transport.graphql(_LOG, {"i": fields})["logArtifactVersion"]
        artifact.mark_logged(logged["id"], logged["version"], manifest, LoggedArtifact(self.transport, logged))
        artifact.cleanup()
        if logged["id"] != fields["id"] and _described_otherwise(artifact, logged):
            warnings.warn(
                f"modelreg: {artifact.name} was logged again with unchanged files: the newest version, "
                f"{logged['version']}, is returned and keeps its own metadata and description, as in W&B; "
                "artifact.save() records this artifact's on it",
                IgnoredByModelreg,
                stacklevel=2,
            )
        return artifact

    def upsert_artifact(self, *args: Any, **kwargs: Any) -> Artifact:
        ignore("upsert_artifact()", "distributed artifacts are logged once, like log_artifact")
        return self.log_artifact(*args, **kwargs)

    def _artifact_fields(
        self, artifact: Artifact, manifest: list[ArtifactFile], aliases: Sequence[str]
    ) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "project": self.project,
            "name": artifact.name,
            "type": artifact.type,
            "files": [f.as_input() for f in manifest],
            "description": artifact.description,
            "metadata": sendable(plain(artifact.metadata)),  # numpy values, as W&B takes them
            "aliases": list(aliases),
            "runId": self.id,
        }

    def use_artifact(
        self, artifact_or_name: str | Artifact | LoggedArtifact, type: str | None = None, aliases: Any = None, **_: Any
    ) -> LoggedArtifact:
        """Record a version as this run's input (lineage) and return it, ready to download: an artifact object,
        or a path (`name:alias`, `name:v3`, `project/name:alias`, `entity/project/name:alias`, or a registry
        path such as `model-registry/name:production`: modelreg.artifact_paths)."""
        if isinstance(artifact_or_name, str):
            found = LoggedArtifact(
                self.transport, find_version(self.transport, artifact_or_name, self.entity, self.project, type)
            )
        elif isinstance(artifact_or_name, Artifact):
            if artifact_or_name.logged is None:
                raise InvalidInput("log the artifact before using it (run.log_artifact)")
            found = artifact_or_name.logged
        else:
            found = artifact_or_name
        self.transport.graphql(
            _USE,
            {
                "i": with_command_id(
                    {"artifactVersionId": found.id, "entity": self.entity, "project": self.project, "runId": self.id}
                )
            },
        )
        return found

    def link_artifact(
        self, artifact: Artifact | LoggedArtifact, target_path: str, aliases: Iterable[str] | str | None = None
    ) -> str | None:
        """Link a logged version to a registered model (`target_path`: "name", "model-registry/name" or
        "wandb-registry-model/name"); returns the model version (v0, v1, ...), or None in an offline run."""
        if artifact.id is None:
            raise InvalidInput("log the artifact before linking it")
        model = registered_model_name(target_path)
        link = {"registeredModel": model, "artifactVersionId": artifact.id, "aliases": settable_aliases(aliases)}
        linked = self.transport.graphql(LINK, {"i": with_command_id(link)})
        return linked["linkArtifactVersion"]["version"]

    def log_model(
        self, path: str | os.PathLike[str], name: str | None = None, aliases: Iterable[str] | None = None
    ) -> Artifact:
        """A file or folder logged as a `model` artifact (named `name`, default run-<id>-<file name>)."""
        return self.log_artifact(path, name=name or f"run-{self.id}-{Path(path).name}", type="model", aliases=aliases)

    def use_model(self, name: str) -> str:
        """Use a model artifact and return the local path of its files (the file itself when it has one)."""
        used = self.use_artifact(name)
        if "model" not in used.type:
            raise InvalidInput(f"{name!r} is a {used.type!r} artifact: use_model takes model artifacts")
        root = used.download()
        files = used.files()
        return str(root / files[0].path) if len(files) == 1 else str(root)

    def link_model(
        self,
        path: str | os.PathLike[str],
        registered_model_name: str,
        name: str | None = None,
        aliases: Iterable[str] | None = None,
    ) -> str | None:
        """Log `path` as a model (as log_model) and link it to `registered_model_name` with `aliases`. A name the
        registry would refuse is refused before anything is logged."""
        registered_model(registered_model_name)
        model = self.log_model(path, name=name)
        return self.link_artifact(model, registered_model_name, aliases=aliases)

    # The end.

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        if self._finished:
            return
        if self.inherited_by_fork("run.finish()"):
            from modelreg import session

            session.forget(self)  # this process is done with it; the parent's run goes on
            return
        exit_code = exit_code or 0
        try:
            try:  # a step the sender refuses must not keep the run from being finished, nor its points unsent
                with self._logging:
                    self._commit_step()
            finally:
                self._metrics.close()  # everything logged is delivered before the run says it finished
            self._log_run_files()
        except KeyboardInterrupt:
            # Ctrl-C while finish waited for an absent server: the user chose to stop waiting. Sending the finish
            # would wait again (and a failure there hid the interrupt), so the run is left unfinished: its beats
            # stop, and the server marks it crashed. The sender said how many points were lost.
            if self._heartbeat is not None:
                self._heartbeat.stop(wait=False)
            termwarn(f"run {self.path} was not recorded as finished (interrupted): the server will mark it crashed")
            from modelreg import session

            session.forget(self)  # the exit must not wait for it again
            raise
        except BaseException:
            self._record_end(exit_code)  # a refused step, a failed upload: the run's end is recorded still
            raise
        self._record_end(exit_code)

    def _record_end(self, exit_code: int) -> None:
        state = "finished" if exit_code == 0 else "failed"
        summary = sendable(self.summary.as_dict())  # plain values: the Summary keeps nothing else
        fields = {
            "entity": self.entity,
            "project": self.project,
            "runId": self.id,
            "state": state,
            "exitCode": exit_code,
            "summary": summary,
        }
        if self._heartbeat is not None:  # beating through the last uploads, which may take long
            self._heartbeat.stop()
        try:
            self._send_finish(fields)
        except InvalidInput as refused:
            # Its end matters more than its summary: a run left running looks alive in every list for ever.
            self._send_finish({**fields, "summary": {}})
            self._ended()
            raise InvalidInput(
                f"run {self.path} is recorded as {state}, but its summary was refused ({refused}): "
                "set the value again in a form the registry stores, and update the run (Api().run(...).update())"
            ) from None
        self._ended()
        if state == "finished" and self.resume_file is not None:
            self.resume_file.unlink(missing_ok=True)

    def _ended(self) -> None:
        self._finished = True
        from modelreg import session  # the module's current run ends with it

        session.forget(self)

    def _send_finish(self, fields: dict[str, Any]) -> None:
        self.transport.graphql(_FINISH, {"i": with_command_id(finish_input(fields))})

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None or exc is None:
            self.finish(exit_code=0)
            return
        # sys.exit(0) in the block is a clean end, sys.exit(3) ends with 3 (both were recorded as failed, 1).
        exit_code = exit_status(exc.code) if isinstance(exc, SystemExit) else 1
        if exit_code and not self._finished and self.started_in_this_process:
            # Said before finishing: the traceback shows only once __exit__ returns, and the finish waits for an
            # absent server (a script that failed looked hung, saying nothing of why).
            where = traceback.extract_tb(tb)[-1] if tb is not None else None
            at = f" (at {Path(where.filename).name}:{where.lineno})" if where is not None else ""
            termlog(
                f"run {self.path} ends with {traceback.format_exception_only(exc)[-1].strip()}{at}; "
                "finishing it (waiting for the server)"
            )
        self.finish(exit_code=exit_code)

    def __repr__(self) -> str:
        return f"<Run {self.path}>"


def exit_status(code: Any) -> int:
    """The exit code SystemExit(code) gives the process: None is 0, an int itself, anything else (a message) 1."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def finish_input(fields: dict[str, Any]) -> dict[str, Any]:
    """A finish as the API takes it: the state as its enum (FINISHED), whatever spelling a journal kept."""
    return {**fields, "state": fields["state"].upper()} if fields.get("state") else fields


def generate_id(length: int = 8) -> str:
    """A new run id: lowercase letters and digits, as W&B's `wandb.util.generate_id` (scripts that resume pass
    one they made and kept)."""
    return "".join(secrets.choice(_ID_CHARACTERS) for _ in range(length))


_ID_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def start_fields(
    *,
    project: str,
    entity: str,
    config: dict[str, Any] | None,
    job_type: str | None,
    name: str | None,
    run_id: str | None,
    notes: str | None = None,
    tags: Sequence[str] | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """The StartRun input of a new run (online or offline): its id, config and where it runs."""
    fields: dict[str, Any] = {
        "entity": entity,
        "project": project,
        "runId": run_id or generate_id(),
        "name": name,
        "jobType": job_type,
        "config": sendable({**plain(config or {}), **_launch_overrides()}),
        "environment": capture(),
    }
    _warn_of_code_left_out(fields["environment"]["git"])
    # Sent only when given, so that a server from before notes, tags and group still takes the start.
    described = {"notes": notes, "tags": list(tags) if tags else None, "group": group}
    return {**fields, **{k: v for k, v in described.items() if v is not None}}


def _warn_of_code_left_out(git: dict[str, Any] | None) -> None:
    """Said at the start, when it can still be fixed: a clone of the run (Launch) gets only the code it recorded."""
    if git is None:
        return
    if git.get("diff_not_text"):
        termwarn(
            "the uncommitted changes are not UTF-8 text, so this run cannot record them and Launch cannot clone it"
        )
    elif omitted := git.get("diff_omitted_bytes"):
        termwarn(
            f"the uncommitted changes ({omitted:,} bytes) are too large to record with this run (at most "
            f"{MAX_DIFF_BYTES // 1024} KiB), so Launch cannot clone it: commit them"
        )
    if count := git.get("untracked_omitted_count"):
        named = ", ".join(git["untracked_omitted"][:5]) + (", ..." if count > 5 else "")
        termwarn(
            f"{count} Python file(s) git does not track are left out of this run's record of its code (larger than "
            f"its {MAX_DIFF_BYTES // 1024} KiB, or not UTF-8): {named}; a clone of the run (Launch) will run without "
            "them: commit them"
        )


def _launch_overrides() -> dict[str, Any]:
    """A launched job gets its knobs through the environment; they win over the script's defaults."""
    return launch_value("MODELREG_CONFIG_OVERRIDES")


EXACT_INT = 2**53  # the largest ints a double holds exactly
# W&B's own keys in a history row, which it fills itself. Logged, `_step` overrode the row's step where it was read.
RESERVED_KEYS = frozenset({"_step", "_runtime", "_timestamp"})


def _fresh_logging_lock(run: weakref.ref[Run]) -> None:
    found = run()
    if found is not None:
        found._logging = threading.Lock()


def _numbers(data: dict[str, Any], prefix: str = "", summary_only: dict[str, Any] | None = None) -> dict[str, float]:
    """The finite numbers of a `log` call, nested dicts flattened to `a.b`; anything else is left out. Text is no
    number, however it reads ("1.10", "007", "inf"): left out too, and put in `summary_only`, as are inf and NaN
    (the summary shows them, as W&B's does: a run whose loss diverged does not rank by its last finite loss)."""
    if not isinstance(data, dict):
        raise InvalidInput(f"run.log takes a dict of metric values, not {type(data).__name__}")
    if not prefix and not RESERVED_KEYS.isdisjoint(data):
        for key in sorted(RESERVED_KEYS.intersection(data)):
            ignore(f"logging {key!r}", "W&B fills it itself: give the step as run.log(..., step=)")
        data = {key: value for key, value in data.items() if key not in RESERVED_KEYS}
    numbers: dict[str, float] = {}
    for key, value in data.items():
        if type(key) is str and not prefix:
            name = key
        elif isinstance(key, str) and not prefix:  # numpy.str_, a StrEnum: text all the same, as W&B takes it
            name = str(key)
        elif prefix:
            name = f"{prefix}{key}"
        else:
            raise TypeError(f"run.log: a metric name is text, not {type(key).__name__} ({key!r}); W&B refuses it too")
        if type(value) is float:  # the common case, at every step of a training loop: no conversion to try
            if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
                numbers[name] = value
            else:
                _not_finite(name, value, summary_only)
            continue
        if isinstance(value, dict):
            numbers.update(_numbers(value, f"{name}.", summary_only))
            continue
        # float() reads "1.10", "007" and b"7" as numbers (1.1, 7.0): they are text, whatever they look like.
        if isinstance(value, str):
            if summary_only is not None and "\x00" not in value:  # text holding U+0000 the registry refuses
                summary_only[name] = value
            ignore(f"logging text (such as {name!r})", "the history records numbers; the summary keeps the text")
            continue
        if isinstance(value, bytes | bytearray):
            ignore(f"logging {type(value).__name__} values (such as {name!r})", "only numbers are recorded")
            continue
        if hasattr(value, "item"):  # numpy, torch scalars
            try:
                value = value.item()
            except (TypeError, ValueError):  # an array of several values
                ignore(f"logging arrays (such as {name!r})", "only numbers are recorded")
                continue
        if (type(value) is int and -EXACT_INT <= value <= EXACT_INT) or type(value) is bool:
            numbers[name] = value  # the summary keeps an int or a bool, as W&B's does; the history stores a double
            continue
        try:
            number = float(value)
        except (TypeError, ValueError, AttributeError, OverflowError):
            ignore(f"logging {type(value).__name__} values (such as {name!r})", "only numbers are recorded")
            continue
        if math.isfinite(number):
            numbers[name] = number
        else:
            _not_finite(name, number, summary_only)
    return numbers


def _not_finite(name: str, value: float, summary_only: dict[str, Any] | None) -> None:
    ignore(
        f"logging {value} (such as {name!r})",
        "the history records finite numbers only; the summary shows it, as W&B's does",
    )
    if summary_only is not None:
        summary_only[name] = value


def as_artifact(artifact_or_path: Any, name: str | None, type: str | None) -> Artifact:
    if isinstance(artifact_or_path, Artifact):
        return artifact_or_path
    path = Path(artifact_or_path)
    artifact = Artifact(name or path.name, type or "unspecified")
    if path.is_dir():
        artifact.add_dir(path, policy="immutable")  # logged at once
    elif path.is_file():
        artifact.add_file(path, policy="immutable")
    else:
        raise InvalidInput(f"{path} is neither a file nor a folder to log")
    return artifact


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def _described_otherwise(artifact: Artifact, logged: dict[str, Any]) -> bool:
    """Whether the artifact asks for metadata or a description its version logged before does not have."""
    metadata_differs = bool(artifact.metadata) and plain(artifact.metadata) != plain(logged["metadata"])
    return metadata_differs or (artifact.description or None) not in (None, logged.get("description"))
