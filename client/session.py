"""The process's current run, as W&B's module-level API uses it: `modelreg.init()` starts it (and makes it
`modelreg.run`, its config `modelreg.config`, its summary `modelreg.summary`); `modelreg.log`, `finish`,
`save`, `alert`, `use_artifact`, `log_artifact`... act on it.

`init` takes W&B's arguments. What it leaves out comes from the environment, MODELREG_* first, then W&B's
WANDB_* names (WANDB_PROJECT, WANDB_ENTITY, WANDB_RUN_ID, WANDB_MODE, WANDB_NAME, WANDB_NOTES, WANDB_TAGS,
WANDB_RUN_GROUP, WANDB_JOB_TYPE, WANDB_DIR, WANDB_RESUME, WANDB_API_KEY, WANDB_BASE_URL), so that a job
Launch started (which sets MODELREG_ENTITY, MODELREG_PROJECT and MODELREG_RUN_ID) joins its run with a bare
`init()`.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from modelreg import metric_sender
from modelreg.before_init import BEFORE_INIT
from modelreg.disabled_run import DisabledRun
from modelreg.errors import InvalidInput, ModelregError, NotFound, Unavailable
from modelreg.ignored import IgnoredByModelreg, ignore, ignore_unknown
from modelreg.offline_run import OfflineRun
from modelreg.run import Run, exit_status, start_fields
from modelreg.run_values import CONFIG_DEFAULTS, as_mapping
from modelreg.spool import DEFAULT_ROOT
from modelreg.transport import Transport
from modelreg.user_settings import LoginSettings, save_login

MODES = ("online", "offline", "auto", "disabled")
# W&B's `resume` values; WANDB_RESUME and MODELREG_RESUME spell True and False as text.
RESUME_VALUES = ("allow", "must", "never", "auto", True, False)
_RESUME_TEXT = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_MODE_NAMES = {"dryrun": "offline", "run": "online", "shared": "online"}
# wandb.Settings keys init understands, and the init argument each stands for.
_SETTINGS = {
    "mode": "mode",
    "project": "project",
    "entity": "entity",
    "run_id": "id",
    "id": "id",
    "run_name": "name",
    "run_notes": "notes",
    "run_tags": "tags",
    "run_group": "group",
    "run_job_type": "job_type",
    "reinit": "reinit",
    "resume": "resume",
    "root_dir": "dir",
    "base_url": "url",
    "api_key": "api_key",
}
_RUN_FIELDS = "runId name jobType state config summary notes tags group lastHistoryStep"
_RUN = f"""query($e: String!, $p: String!, $r: String!) {{
  run(entity: $e, project: $p, runId: $r) {{ {_RUN_FIELDS} historySummary {{ key last min max sum points }} }}
}}"""
_RUN_OF_AN_OLDER_SERVER = f"""query($e: String!, $p: String!, $r: String!) {{
  run(entity: $e, project: $p, runId: $r) {{ {_RUN_FIELDS} }}
}}"""

_current: Run | None = None
_launched_run_started = False
# Every run init started in this process (by pid: a forked child does not finish its parent's) and nothing
# finished yet (reinit="create_new" keeps several).
_open: list[tuple[int, Run]] = []
_exit_code: list[int] = []  # 1 after an uncaught exception, or what sys.exit was given
# How long a SIGTERM lets the open runs be flushed and finished before the process ends as SIGTERM ends it: within
# the shortest grace a stop gives before its SIGKILL (the Launch agent's cancel and `docker stop`: 10 s).
TERM_WAIT_S = 8.0
_terminating: list[threading.Thread] = []  # the thread a SIGTERM started, which the exit waits for


class OfflineFallback(UserWarning):
    """mode="auto" found no server and recorded the run offline instead."""


def current_run() -> Run | None:
    return _current


def _publish(run: Run | None) -> None:
    """`modelreg.run`, `modelreg.config` and `modelreg.summary` follow the current run."""
    global _current
    _current = run
    package = sys.modules["modelreg"]
    package.run = run  # type: ignore[attr-defined]
    package.config = run.config if run is not None else BEFORE_INIT  # type: ignore[attr-defined]
    package.summary = run.summary if run is not None else BEFORE_INIT  # type: ignore[attr-defined]


def forget(run: Run) -> None:
    """A finished run stops being the current one."""
    _open[:] = [(pid, r) for pid, r in _open if r is not run]
    if _current is run:
        _publish(None)


def _finish_at_exit() -> None:
    """As W&B does, a run the script left open is finished when the interpreter exits: failed when an uncaught
    exception ended the script, else finished, with what it logged and its summary."""
    for ending in _terminating:  # a SIGTERM's finish under way: the process ends when it is done, not before
        ending.join(TERM_WAIT_S + 1)
    exit_code = _exit_code[-1] if _exit_code else 0
    for run in [r for pid, r in _open if pid == os.getpid()]:
        failed: list[str] = []

        def finish(run: Run = run, failed: list[str] = failed) -> None:
            try:
                run.finish(exit_code=exit_code)
            except Exception as exc:  # noqa: BLE001 -- the interpreter is going: say it, then try the next run
                failed.append(exc.message if isinstance(exc, ModelregError) else repr(exc))

        # Bounded: a server that does not answer must not keep the process from ending. The bound is shared with
        # the metric senders' flush at exit, which ran first (see metric_sender.EXIT_WAIT_S).
        finishing = threading.Thread(target=finish, name="modelreg-finish-at-exit", daemon=True)
        finishing.start()
        finishing.join(metric_sender.exit_time_left())
        if finishing.is_alive():
            failed.append(f"no answer within {metric_sender.EXIT_WAIT_S:g} s of the exit")
        if failed:
            print(f"modelreg: run {run.path} could not be finished at exit: {failed[0]}", file=sys.stderr)


def _finish_when_terminated(signum: int, _frame: Any) -> None:
    """SIGTERM, a scheduler's stop (Kubernetes, Slurm, a spot instance's reclaim, the Launch agent's cancel), ended
    the process at once: the points of its last window were lost and its run left running until the server marked
    it crashed. The open runs are flushed and finished (failed, 143: 128 + SIGTERM) within TERM_WAIT_S, then the
    process ends as SIGTERM ends it. The script is not interrupted by an exception (a bare `except:` would have
    swallowed the stop), and a second SIGTERM ends it at once.

    The work is a thread's, and this handler returns at once: the main thread, stopped where the signal found it,
    may hold a lock the finish needs (a `run.log` waiting for room in the sender's buffer holds the run's)."""
    if signal.getsignal(signal.SIGTERM) is not _finish_when_terminated:
        # Another handler took SIGTERM after init and calls this one too (Lightning chains the handler it found):
        # the process ends its own way (Lightning checkpoints, then raises), and the exit finishes the runs.
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    runs = [r for pid, r in _open if pid == os.getpid()]
    _open[:] = [(pid, r) for pid, r in _open if pid != os.getpid()]  # this thread finishes them, not the exit
    for run in runs:
        run._stopped_by_signal = True

    def finish() -> None:
        for run in runs:
            print(f"modelreg: SIGTERM: finishing run {run.path} (its last points are sent)", file=sys.stderr)
            try:
                run.finish(exit_code=128 + signum)
            except Exception as exc:  # noqa: BLE001 -- the process is going: say it, then try the next run
                print(f"modelreg: run {run.path} could not be finished: {exc}", file=sys.stderr)

    def end_when_finished() -> None:
        finishing = threading.Thread(target=finish, name="modelreg-finish-at-sigterm", daemon=True)
        finishing.start()
        finishing.join(TERM_WAIT_S)
        if finishing.is_alive():
            print(
                f"modelreg: SIGTERM: the runs were not finished within {TERM_WAIT_S:g} s; the server will mark "
                "them crashed",
                file=sys.stderr,
            )
        os.kill(os.getpid(), signal.SIGTERM)

    ending = threading.Thread(target=end_when_finished, name="modelreg-sigterm", daemon=True)
    _terminating.append(ending)
    ending.start()


def _watch_the_exit() -> None:
    """Once per process: remember how the script ends (an uncaught exception, sys.exit's code: each then
    handed on to what was there before), and finish the open runs at exit."""
    if getattr(_watch_the_exit, "done", False):
        return
    previous_hook, previous_exit = sys.excepthook, sys.exit

    def excepthook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        _exit_code.append(1)
        previous_hook(kind, value, tb)

    def exit(status: Any = None) -> None:  # noqa: A001 -- sys.exit's own name
        _exit_code.append(exit_status(status))
        previous_exit(status)

    sys.excepthook = excepthook
    sys.exit = exit  # type: ignore[assignment]
    # Only where nobody chose what SIGTERM does (the script, its framework): their handler stays theirs.
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        and os.environ.get("MODELREG_FINISH_ON_SIGTERM", "1") != "0"
    ):
        signal.signal(signal.SIGTERM, _finish_when_terminated)
    # Registered before any run's metric sender (atexit runs last-registered first): each sender flushes what
    # its run logged, then this finishes the runs.
    atexit.register(_finish_at_exit)
    _watch_the_exit.done = True  # type: ignore[attr-defined]


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def init(
    project: str | None = None,
    entity: str | None = None,
    config: Any = None,
    job_type: str | None = None,
    name: str | None = None,
    notes: str | None = None,
    tags: Any = None,
    group: str | None = None,
    dir: str | Path | None = None,
    id: str | None = None,
    resume: bool | str | None = None,
    reinit: bool | str | None = None,
    mode: str | None = None,
    settings: Any = None,
    *,
    url: str | None = None,
    api_key: str | None = None,
    offline_dir: str | Path | None = None,
    config_exclude_keys: Sequence[str] | None = None,
    config_include_keys: Sequence[str] | None = None,
    **unknown: Any,
) -> Run:
    """Start a run (W&B's `wandb.init`) and make it the current one.

    `mode`: "online" (default), "offline" (recorded in `offline_dir`, else MODELREG_OFFLINE_DIR, else
    <dir>/modelreg-offline, else ./modelreg-offline, for `modelreg sync`), "auto" (online when the server answers,
    else offline with an OfflineFallback warning) or "disabled" (nothing is recorded). `resume` ("allow", "must",
    "auto", True) joins a running run with the same `id` instead of refusing it ("must": an `id` is required).
    The server is `url` (else MODELREG_URL, else the `modelreg login` settings), the caller the holder of
    `api_key` (else MODELREG_API_KEY, same order).
    W&B arguments with no meaning here are accepted with a one-time warning.
    """
    global _launched_run_started
    given = {k: v for k, v in locals().items() if k not in ("unknown", "settings") and v is not None}
    ignore_unknown("init", unknown)
    for key, value in dict(settings or {}).items():
        if key in _SETTINGS and _SETTINGS[key] not in given and value is not None:
            given[_SETTINGS[key]] = value
        elif key not in _SETTINGS:
            ignore(f"Settings({key}=...)")
    options = _resolved(given)

    if _current is not None and not _current.started_in_this_process:
        # A forked worker's own run: the one it inherited is its parent's, which goes on (finishing it here
        # ended the parent's run on the server, and the parent's later points were refused).
        _publish(None)
    if _current is not None:
        policy = options["reinit"]
        if policy == "return_previous":
            return _current
        if policy != "create_new":
            _current.finish()
    _watch_the_exit()
    resume_file = _resume_file(options)
    if resume_file is not None and options["run_id"] is None and resume_file.is_file():
        options["run_id"] = _run_to_resume(resume_file)
    run = _start(options)
    if resume_file is not None and not run.offline:
        resume_file.parent.mkdir(parents=True, exist_ok=True)
        resume_file.write_text(json.dumps({"run_id": run.id, "entity": run.entity, "project": run.project}))
        run.resume_file = resume_file
    _launched_run_started = _launched_run_started or run.id == os.environ.get("MODELREG_RUN_ID")
    _open.append((os.getpid(), run))
    _publish(run)
    return run


def _resume_file(options: dict[str, Any]) -> Path | None:
    """W&B's wandb-resume.json: with `resume=True` or "auto", the run this folder's script started last is
    kept there until it finishes cleanly, so the script started again (a preempted job) joins it."""
    if options["resume"] not in (True, "auto") or options["mode"] not in ("online", "auto"):
        return None
    return Path(options["dir"] or Path.cwd()) / "modelreg" / "resume.json"


def _run_to_resume(resume_file: Path) -> str | None:
    try:
        kept = json.loads(resume_file.read_text())
    except (OSError, ValueError):
        return None  # unreadable: a new run, as if there were none
    return kept.get("run_id") if isinstance(kept, dict) and isinstance(kept.get("run_id"), str) else None


def _kept_keys(config: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """W&B's `config_exclude_keys` / `config_include_keys`: a key left out (a token, say) is never sent."""
    excluded, included = given.get("config_exclude_keys"), given.get("config_include_keys")
    if excluded is not None and included is not None:
        raise InvalidInput("init: give config_exclude_keys or config_include_keys, not both (as W&B)")
    if excluded is not None:
        left_out = set(excluded)
        return {key: value for key, value in config.items() if key not in left_out}
    if included is not None:
        kept = set(included)
        return {key: value for key, value in config.items() if key in kept}
    return config


def _config(given: Any) -> dict[str, Any]:
    """init's config over W&B's config-defaults.yaml, when the working directory has one (as W&B reads it)."""
    config = as_mapping(given, "init(config=...)")
    defaults = Path(CONFIG_DEFAULTS)
    if isinstance(given, str | Path) or not defaults.is_file():
        return config
    return {**as_mapping(defaults, CONFIG_DEFAULTS), **config}


def _resolved(given: dict[str, Any]) -> dict[str, Any]:
    """init's arguments, with what was left out taken from the environment."""
    tags = given.get("tags") or _env("MODELREG_TAGS", "WANDB_TAGS")
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    mode = given.get("mode") or _env("MODELREG_MODE", "WANDB_MODE") or "online"
    mode = _MODE_NAMES.get(mode, mode)
    if mode not in MODES:
        raise InvalidInput(f"mode {mode!r} is not one of {', '.join(MODES)} (check MODELREG_MODE / WANDB_MODE)")
    # A launched job's run id names the process's first run; a second init in the job starts another run.
    launched_id = None if _launched_run_started else os.environ.get("MODELREG_RUN_ID")
    run_id = given.get("id") or launched_id or _env("WANDB_RUN_ID")
    resume = _resume(given.get("resume", _env("MODELREG_RESUME", "WANDB_RESUME") or ("allow" if launched_id else None)))
    if resume == "must" and run_id is None and mode != "disabled":
        # Started as a new run at step 0, the script's resumed training logged over nothing it knew of.
        raise InvalidInput(
            "init(resume='must') joins the run with the id it is given: pass id=, or set MODELREG_RUN_ID or "
            "WANDB_RUN_ID (resume=True or 'auto' join the run this folder's script left unfinished)"
        )
    return {
        "project": given.get("project") or _env("MODELREG_PROJECT", "WANDB_PROJECT") or "uncategorized",
        "entity": given.get("entity") or _env("MODELREG_ENTITY", "WANDB_ENTITY"),
        "config": _kept_keys(_config(given.get("config")), given),
        "job_type": given.get("job_type") or _env("MODELREG_JOB_TYPE", "WANDB_JOB_TYPE"),
        "name": given.get("name") or _env("MODELREG_NAME", "WANDB_NAME"),
        "notes": given.get("notes") or _env("MODELREG_NOTES", "WANDB_NOTES"),
        "tags": list(tags or []),
        "group": given.get("group") or _env("MODELREG_RUN_GROUP", "WANDB_RUN_GROUP"),
        "dir": given.get("dir") or _env("MODELREG_DIR", "WANDB_DIR"),
        "run_id": run_id,
        # A launched job's run is joined when the process starts it again (a second init, a retried script).
        "resume": resume,
        "reinit": given.get("reinit"),
        "mode": mode,
        "url": given.get("url") or _env("WANDB_BASE_URL"),
        "api_key": given.get("api_key") or (None if os.environ.get("MODELREG_API_KEY") else _env("WANDB_API_KEY")),
        "offline_dir": given.get("offline_dir"),
    }


def _resume(value: Any) -> bool | str | None:
    """`resume` as W&B takes it (True or False written as text from the environment); anything else refused."""
    value = _RESUME_TEXT.get(value.lower(), value.lower()) if isinstance(value, str) else value
    if value is not None and value not in RESUME_VALUES:
        valid = ", ".join(repr(v) for v in RESUME_VALUES)
        raise InvalidInput(f"init(resume={value!r}): give one of {valid} (check MODELREG_RESUME / WANDB_RESUME)")
    return value


def _offline_folder(options: dict[str, Any]) -> str | Path | None:
    """Where an offline run is recorded: `offline_dir`, else MODELREG_OFFLINE_DIR, else under `dir` (as W&B's
    <dir>/wandb/offline-run-*), else ./modelreg-offline."""
    if options["offline_dir"] or os.environ.get("MODELREG_OFFLINE_DIR") or not options["dir"]:
        return options["offline_dir"]
    return Path(options["dir"]) / DEFAULT_ROOT


def _start(options: dict[str, Any]) -> Run:
    mode = options["mode"]
    fields_of = {k: options[k] for k in ("project", "config", "job_type", "name", "run_id", "notes", "tags", "group")}
    if mode == "disabled":
        return DisabledRun.from_fields(None, start_fields(entity=options["entity"] or "default", **fields_of))  # type: ignore[arg-type]
    if mode == "offline":
        if options["resume"] not in (None, False, "never"):
            # W&B ignores it too, with a word; without one, the sync later refused the run as one that exists.
            warnings.warn(
                f"modelreg: resume={options['resume']!r} in offline mode is accepted and ignored (an offline run is "
                "recorded and synced as a new run; to add to a run that exists, log online)",
                IgnoredByModelreg,
                stacklevel=3,
            )
        return OfflineRun.start_offline(
            _offline_folder(options),
            entity=options["entity"] or "default",
            entity_of_key=options["entity"] is None,
            dir=options["dir"],
            **fields_of,
        )
    transport = Transport(options["url"], options["api_key"])
    fields = None
    try:
        entity = options["entity"] or _viewer_entity(transport)
        joined = _resumed(transport, options, entity)
        if joined is not None:
            return joined
        fields = start_fields(entity=entity, **fields_of)
        return Run.start_with(transport, fields, dir=options["dir"])
    except Unavailable as exc:
        if mode != "auto":
            raise
        transport.close()
        # The run keeps the id and environment its online start was tried with.
        entity = fields["entity"] if fields else options["entity"] or "default"
        offline = OfflineRun.start_offline(
            _offline_folder(options),
            entity=entity,
            **fields_of,
            fields=fields,
            entity_of_key=fields is None and options["entity"] is None,
            dir=options["dir"],
        )
        warnings.warn(
            f"modelreg: {exc.message}. Recording this run offline instead; upload it later with "
            f"`modelreg sync {offline.spool.folder}`.",
            OfflineFallback,
            stacklevel=3,
        )
        return offline


def _viewer_entity(transport: Transport) -> str:
    from modelreg.api import default_entity

    return default_entity(transport)


def _resumed(transport: Transport, options: dict[str, Any], entity: str) -> Run | None:
    """The run to join when `resume` allows it and the run exists; None to start a new one."""
    resume, run_id = options["resume"], options["run_id"]
    if resume in (None, False, "never") or run_id is None:
        return None
    found = _run_as_stored(transport, {"e": entity, "p": options["project"], "r": run_id})
    if found is None:
        if resume == "must":
            raise NotFound(f"run {entity}/{options['project']}/{run_id} does not exist, and resume='must'")
        return None
    run = Run(
        transport,
        entity,
        options["project"],
        run_id,
        found["config"],
        name=found["name"],
        notes=found["notes"],
        tags=found["tags"],
        group=found["group"],
        job_type=found["jobType"],
        dir=options["dir"],
    )
    if found["state"] != "RUNNING":  # the RunState enum on the wire
        run._change("resume_run", {})  # it ended: running again (a runs.run_resumed event)
    run.start_beating()
    run.summary.keep(found["summary"] or {})  # what it had; its finish merges in what this process adds
    run.config.update(options["config"])  # what this process passes wins, as events
    run.resume_after(found["lastHistoryStep"], found.get("historySummary", ()))  # what a killed process never sent
    return run


def _run_as_stored(transport: Transport, path: dict[str, str]) -> dict[str, Any] | None:
    try:
        return transport.graphql(_RUN, path)["run"]
    except ModelregError as exc:
        if "historySummary" not in exc.message and "historySummary" not in exc.path:
            raise
        # A server of an older build (it knows no such field), or one that could not answer it (a history too long
        # to read, a server of this build's first release failing on a sum it could not carry): the summary goes
        # on from what the run's summary holds, as it did.
        return transport.graphql(_RUN_OF_AN_OLDER_SERVER, path)["run"]


# W&B's module-level functions, acting on the current run.


def _require_run(call: str) -> Run:
    if _current is None:
        raise InvalidInput(f"call modelreg.init() before modelreg.{call}()")
    return _current


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None, sync: bool | None = None) -> None:
    _require_run("log").log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    if _current is not None:
        _current.finish(exit_code=exit_code)


def save(glob_str: str | None = None, base_path: str | None = None, policy: str = "live") -> list[str] | bool:
    return _require_run("save").save(glob_str, base_path=base_path, policy=policy)


def restore(
    name: str, run_path: str | Sequence[str] | None = None, replace: bool = False, root: str | None = None
) -> IO[str] | None:
    """W&B's `restore`: a file a run kept (`save()`, `run.dir`), downloaded under `root` (the current run's
    folder, else the working directory) and opened for reading; None when the run kept no such file.
    `run_path` is entity/project/run_id (or a public run's `path` list), the current run's by default."""
    from modelreg.api import Api

    path = run_path or _require_run("restore").path
    api = Api(transport=_current.transport) if type(_current) is Run else Api()  # an online run: its server
    try:
        entry = api.run(path).file(name)
    except NotFound:
        return None
    folder = root or (_current.dir if isinstance(_current, Run) else ".")
    return open(entry.download(folder, replace=replace), encoding="utf-8")  # noqa: SIM115 -- handed to the caller


def alert(title: str, text: str = "", level: Any = "INFO", wait_duration: Any = None) -> None:
    _require_run("alert").alert(title, text, level, wait_duration)


def define_metric(name: str, *args: Any, **kwargs: Any) -> None:
    if _current is None:
        ignore("define_metric() before init", "it defines a metric of the current run")
        return
    _current.define_metric(name, *args, **kwargs)


def use_artifact(artifact_or_name: Any, type: str | None = None, aliases: Any = None, use_as: str | None = None) -> Any:
    return _require_run("use_artifact").use_artifact(artifact_or_name, type=type)


def log_artifact(
    artifact_or_path: Any, name: str | None = None, type: str | None = None, aliases: Any = None, tags: Any = None
) -> Any:
    return _require_run("log_artifact").log_artifact(artifact_or_path, name=name, type=type, aliases=aliases, tags=tags)


def link_artifact(artifact: Any, target_path: str, aliases: Any = None) -> Any:
    return _require_run("link_artifact").link_artifact(artifact, target_path, aliases=aliases)


def log_model(path: Any, name: str | None = None, aliases: Any = None) -> Any:
    return _require_run("log_model").log_model(path, name=name, aliases=aliases)


def use_model(name: str) -> str:
    return _require_run("use_model").use_model(name)


def link_model(path: Any, registered_model_name: str, name: str | None = None, aliases: Any = None) -> Any:
    return _require_run("link_model").link_model(path, registered_model_name, name=name, aliases=aliases)


def login(
    key: str | None = None,
    host: str | None = None,
    relogin: bool | None = None,
    anonymous: str | None = None,
    timeout: int | None = None,
    verify: bool = False,
    **unknown: Any,
) -> bool:
    """W&B's `wandb.login`: with a `key`, check it against the server (`host`, else the usual one), remember
    it as `modelreg login` does, and use it in this process; without one, say whether a key is at hand."""
    ignore_unknown("login", unknown)
    if anonymous not in (None, "never"):
        ignore("login(anonymous=...)", "every call to modelreg is made with a key")
    if key is None:
        return bool(os.environ.get("MODELREG_API_KEY") or os.environ.get("WANDB_API_KEY") or _stored_key(host))
    transport = Transport(host, key)
    try:
        transport.graphql("query { viewer { id } }")
    except ModelregError as exc:
        raise InvalidInput(f"login: the server at {transport.url} refused this key ({exc.message})") from None
    finally:
        transport.close()
    save_login(LoginSettings(transport.url, key))
    os.environ["MODELREG_API_KEY"], os.environ["MODELREG_URL"] = key, transport.url
    return True


def _stored_key(host: str | None) -> bool:
    from modelreg.user_settings import load_login

    stored = load_login()
    return stored is not None and (host is None or stored.key_for(host) is not None)
