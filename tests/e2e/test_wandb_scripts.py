"""W&B scripts, written as W&B's documentation writes them, run against a real server with one change: their
import (`import modelreg as wandb`). Each script is a function run in a thread (the server answers from the
test's event loop); the server is found where a user's script finds it (MODELREG_URL, MODELREG_API_KEY)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import numpy
import pytest
from support.browser import BROWSER_TEST_MARKS, open_browser
from support.live_events import graphql_socket, log_readers_reach
from support.stack import Stack
from support.waiting import wait_until

import modelreg as wandb
from modelreg.errors import Conflict, InvalidInput, NotFound


@pytest.fixture
def log_kind() -> str:
    """The log of `modelreg server`, where a W&B user's scripts first run. What the logs themselves do is the event log
    contract's (tests/integration/test_event_log_contract.py, both logs), and what a script does reaches the server
    the same way over either: run on both, these stories cost CI 50 s and told nothing more."""
    return "postgres"


# The browser test's own skip conditions (the module's other tests need no browser).
BROWSER_READY = not any(mark.args and mark.args[0] for mark in BROWSER_TEST_MARKS if mark.name == "skipif")


@pytest.fixture
def server(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Stack:
    """The scripts pass no URL: they find the server in the environment, and write their files in a temp dir."""
    assert stack.client is not None
    monkeypatch.setenv("MODELREG_URL", str(stack.client.make_url("/")).rstrip("/"))
    for name in ("MODELREG_ENTITY", "MODELREG_PROJECT", "MODELREG_RUN_ID", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return stack


async def in_thread(script: Any, *args: Any) -> Any:
    return await asyncio.to_thread(script, *args)


# From W&B's "Track experiments" and "Artifacts" quickstarts.


def quickstart_training() -> str:
    with open("dataset.csv", "w") as f:
        f.write("x,y\n" + "\n".join(f"{i},{2 * i}" for i in range(10)))
    run = wandb.init(
        project="quickstart",
        config={"learning_rate": 0.02, "architecture": "CNN", "dataset": "CIFAR-100", "epochs": 3},
        tags=["baseline", "cnn"],
        notes="first try",
        group="sweep-1",
        job_type="train",
    )
    artifact = wandb.Artifact(name="my_data", type="dataset")
    artifact.add_file(local_path="dataset.csv")
    run.log_artifact(artifact)

    for epoch in range(wandb.config.epochs):
        acc = 1 - 2 ** -(epoch + 1) - wandb.config.learning_rate
        loss = 2 ** -(epoch + 1) + wandb.config.learning_rate
        wandb.log({"acc": acc, "loss": loss})
    wandb.config.update({"batch_size": 32})
    wandb.config.dropout = 0.2
    wandb.summary["best_acc"] = 0.855
    wandb.log({"eval": {"acc": 0.8}}, step=10, commit=False)
    wandb.log({"eval": {"loss": 0.3}})
    run_id = run.id
    wandb.finish()
    assert wandb.run is None
    return run_id


def quickstart_consuming(run_id: str) -> tuple[list[str], str]:
    with wandb.init(project="quickstart", job_type="evaluate") as run:
        artifact = run.use_artifact("my_data:latest")
        datadir = artifact.download()
        assert Path(datadir + "/dataset.csv").read_text().startswith("x,y")  # W&B returns a str; so does this
        entry = artifact.get_entry("dataset.csv")
        assert entry.download(root="single") == str(Path("single") / "dataset.csv")
        assert Path(artifact.file()).read_text().startswith("x,y")  # W&B's one-file accessor
        api = wandb.Api()
        produced = api.run(f"quickstart/{run_id}")
        return sorted(p.name for p in Path(datadir).iterdir()), produced.logged_artifacts()[0].name


async def test_the_quickstart_logs_config_metrics_summary_and_a_dataset_that_another_run_uses(server: Stack) -> None:
    run_id = await in_thread(quickstart_training)
    files, logged = await in_thread(quickstart_consuming, run_id)

    assert files == ["dataset.csv"] and logged == "my_data"
    answer = await server.graphql(
        """query($r: String!) { run(entity: "alice", project: "quickstart", runId: $r) {
             state config summary tags notes group jobType metrics { key step value } } }""",
        {"r": run_id},
    )
    run = answer["data"]["run"]
    assert run["state"] == "FINISHED" and run["jobType"] == "train"
    assert (run["tags"], run["notes"], run["group"]) == (["baseline", "cnn"], "first try", "sweep-1")
    assert run["config"] == {
        "learning_rate": 0.02,
        "architecture": "CNN",
        "dataset": "CIFAR-100",
        "epochs": 3,
        "batch_size": 32,
        "dropout": 0.2,
    }
    assert run["summary"]["best_acc"] == 0.855 and run["summary"]["eval.loss"] == 0.3
    steps = {(m["key"], m["step"]) for m in run["metrics"]}
    assert {("acc", 0), ("acc", 2), ("eval.acc", 10), ("eval.loss", 10)} <= steps
    assert ("acc", 3) not in steps  # step=10 moved the run on; nothing was logged in between

    changes = await server.graphql(
        'query($s: String!) { auditLog(stream: $s, action: "runs.config_updated") { items { details } } }',
        {"s": f"run:alice/quickstart/{run_id}"},
    )
    assert [c["details"]["changes"] for c in changes["data"]["auditLog"]["items"]] == [
        {"dropout": 0.2},
        {"batch_size": 32},
    ]  # newest first: each change after init is an event the run's page reloads on


IGNORED = """
import json, warnings
import modelreg as wandb

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    run = wandb.init(
        project="quickstart",
        save_code=True,
        sync_tensorboard=False,
        settings=wandb.Settings(start_method="thread", _disable_stats=True),
    )
    for _ in range(2):  # said the first time only
        wandb.watch(object())
        wandb.define_metric("acc", step_metric="epoch")
        run.log_code(".")
        wandb.log({"image": wandb.Image(object()), "acc": 0.5})
    run.finish()
print(json.dumps([str(w.message) for w in caught if issubclass(w.category, wandb.IgnoredByModelreg)]))
"""


async def test_w_and_b_options_with_no_meaning_here_are_accepted_with_a_warning_each(
    server: Stack, tmp_path: Path
) -> None:
    (tmp_path / "ignored.py").write_text(IGNORED)
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "ignored.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout.strip().splitlines()[-1])
    for what in (
        "save_code",
        "sync_tensorboard",
        "start_method",
        "_disable_stats",
        "watch",
        "define_metric",
        "Image()",
        "log_code",
    ):
        assert sum(what in message for message in said) == 1, (what, said)


# Scripts as people leave them: no wandb.finish(), a crash, a rich summary, tables and plots built to be logged.

LEFT_OPEN = """
import sys
import modelreg as wandb

run = wandb.init(project="exits", id=sys.argv[1], config={"lr": 0.1})
for i in range(5):
    wandb.log({"loss": 1 / (i + 1)})
wandb.run.summary["best"] = {"loss": 0.2, "epoch": 4}
wandb.run.summary["classes"] = ["cat", "dog"]
best_val_loss = float("inf")  # the usual start of early stopping: JSON has no inf
wandb.run.summary["best_val_loss"] = best_val_loss
assert wandb.run.summary["best_val_loss"] == float("inf")  # the script's own dict keeps the float
with open("notes.txt", "w") as notes:
    notes.write("kept with the run")
wandb.save("notes.txt")  # uploaded when the run finishes: here, at exit
import os
os.makedirs("checkpoints", exist_ok=True)
with open("checkpoints/model.h5", "w") as weights:
    weights.write("w")
wandb.save("checkpoints/model.h5")  # kept with its folder, as W&B keeps it
wandb.summary["chart"] = wandb.plot.line_series(xs=[0, 1], ys=[[1, 2]])  # not stored, and no error
table = wandb.Table(columns=["id", "pred"])
table.add_data(0, "cat")
wandb.log({"predictions": table, "confusion": wandb.plot.confusion_matrix(y_true=[0], preds=[0], class_names=["a"])})
try:
    wandb.agent("sweep-1", function=lambda: None, count=2)
except wandb.InvalidInput as refused:
    print(refused.message)
if sys.argv[2] == "crash":
    raise RuntimeError("CUDA out of memory")
if sys.argv[2] == "exit":
    sys.exit(3)
"""

RESUMED = """
import json
import modelreg as wandb

run = wandb.init(project="exits", id="kept", resume="must")
print(json.dumps(dict(run.summary)))
wandb.log({"loss": 0.1})
wandb.finish()
"""


async def test_a_script_that_ends_without_finish_or_crashes_leaves_a_finished_or_failed_run_with_its_summary(
    server: Stack, tmp_path: Path
) -> None:
    (tmp_path / "left_open.py").write_text(LEFT_OPEN)
    (tmp_path / "resumed.py").write_text(RESUMED)

    def script(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    ended = {how: await asyncio.to_thread(script, "left_open.py", how, how) for how in ("kept", "crash", "exit")}
    assert [ended[how].returncode for how in ("kept", "crash", "exit")] == [0, 1, 3], ended["kept"].stderr
    assert "CUDA out of memory" in ended["crash"].stderr and "could not be finished" not in ended["kept"].stderr
    assert "modelreg runs no sweeps" in ended["kept"].stdout
    query = 'query($r: String!) { run(entity: "alice", project: "exits", runId: $r) { state summary } }'
    runs = {r: (await server.graphql(query, {"r": r}))["data"]["run"] for r in ("kept", "crash", "exit")}
    summary = {
        "loss": 0.2,
        "best": {"loss": 0.2, "epoch": 4},
        "classes": ["cat", "dog"],
        "best_val_loss": "Infinity",  # as W&B shows it
        "chart": None,
    }
    assert runs == {
        "kept": {"state": "FINISHED", "summary": summary},
        "crash": {"state": "FAILED", "summary": summary},
        "exit": {"state": "FAILED", "summary": summary},
    }
    files = await in_thread(lambda: [f.name for f in wandb.Api().run("alice/exits/kept").files()])
    assert "notes.txt" in files and "checkpoints/model.h5" in files

    # Resumed, the run has its summary; what this process logs is merged in, and nothing else is lost.
    resumed = await asyncio.to_thread(script, "resumed.py")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1]) == summary
    after = (await server.graphql(query, {"r": "kept"}))["data"]["run"]
    assert after == {"state": "FINISHED", "summary": {**summary, "loss": 0.1}}


# W&B's "Resume a run" guide: a preemptible job started again in the same folder joins the run it left.

PREEMPTED = """
import json, os, sys
import modelreg as wandb

run = wandb.init(project="preempt", resume=True)
start = (run.id, run.resumed, run.step, run.starting_step)
for _ in range(3):
    wandb.log({"loss": 1.0})
if sys.argv[1] == "preempted":
    run.flush()
    os._exit(1)  # no finish, no atexit: as a SIGKILL leaves it
print(json.dumps(start))
wandb.finish()
"""


async def test_a_preempted_script_started_again_with_resume_true_joins_the_run_it_left(
    server: Stack, tmp_path: Path
) -> None:
    (tmp_path / "preempted.py").write_text(PREEMPTED)

    def script(how: str) -> subprocess.CompletedProcess[str]:
        run = [sys.executable, "preempted.py", how]
        return subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert (await asyncio.to_thread(script, "preempted")).returncode == 1
    kept = json.loads((tmp_path / "modelreg" / "resume.json").read_text())
    again = await asyncio.to_thread(script, "finishes")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == [kept["run_id"], True, 3, 3]  # its run, after the 3 steps logged
    assert not (tmp_path / "modelreg" / "resume.json").exists()  # it finished: the next start is a new run
    fresh_id, resumed, *_ = json.loads((await asyncio.to_thread(script, "finishes")).stdout)
    assert fresh_id != kept["run_id"] and not resumed
    query = 'query($r: String!) { run(entity: "alice", project: "preempt", runId: $r) { state metrics { step } } }'
    run = (await server.graphql(query, {"r": kept["run_id"]}))["data"]["run"]
    assert run == {"state": "FINISHED", "metrics": [{"step": s} for s in range(6)]}


def resume_without_a_run_to_join(resume: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    with pytest.raises(InvalidInput) as refused:
        wandb.init(project="nothing-to-join", resume=resume)
    assert wandb.run is None
    return refused.value.message


async def test_resume_must_without_an_id_and_an_unknown_resume_are_refused_before_a_run_starts(
    server: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both started a new run at step 0, the script's resumed training logging over nothing it knew of.
    must = await in_thread(resume_without_a_run_to_join, "must", monkeypatch)
    assert "resume='must'" in must and "pass id=, or set MODELREG_RUN_ID or WANDB_RUN_ID" in must
    bogus = await in_thread(resume_without_a_run_to_join, "bogus", monkeypatch)
    assert "init(resume='bogus'): give one of 'allow', 'must', 'never', 'auto', True, False" in bogus
    started = await server.graphql('{ runs(entity: "alice", project: "nothing-to-join") { items { runId } } }')
    assert started["data"]["runs"]["items"] == []


# W&B's export and analysis scripts, as its public API guide writes them.


def log_for_analysis(folder: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with wandb.init(project="analysis", id="trained") as run:
        seen["live"] = (run.display_name, run.starting_step, run.start_time > 0, run.get_project_url())
        for loss in (0.5, 0.4):
            wandb.log({"loss": loss})
            wandb.log({"examples": [wandb.Image(None)], "caption": "a cat"})  # not stored, yet a step as in W&B
        seen["step"] = run.step
        with tempfile.TemporaryDirectory() as scratch:  # W&B copies a file when it is added
            (Path(scratch) / "model.pt").write_text("epoch 1")
            model = wandb.Artifact("analysed", "model")
            model.add_file(str(Path(scratch) / "model.pt"))
        (folder / "ckpt.pt").write_text("epoch 1")
        model.add_file(str(folder / "ckpt.pt"))
        (folder / "ckpt.pt").write_text("epoch 2, written after it was added")
        run.log_artifact(model)
        seen["logged again"] = run.log_artifact(model).version  # its copies are gone: described by what was logged
        run.name = "renamed"
        seen["save"] = run.save()  # W&B's old way to save a rename: nothing to do
    logged = wandb.Api().artifact("analysis/analysed:latest")
    seen["entries"] = (sorted(model.manifest.entries), {p: e.size for p, e in logged.manifest.entries.items()})
    try:
        logged.add_file(str(folder / "ckpt.pt"))
    except InvalidInput as finalized:  # W&B's ArtifactFinalizedError
        seen["finalized"] = str(finalized)
    seen["files"] = {
        name: Path(logged.get_entry(name).download(folder / "got")).read_text() for name in ("model.pt", "ckpt.pt")
    }
    try:
        logged.get_entry("absent.pt")
    except KeyError as missing:  # W&B raises KeyError
        seen["missing"] = str(missing)
    seen["artifact"] = (logged.state, logged.url.endswith(f"/#/artifacts/{logged.id}"))
    collection = wandb.Api().artifact_collection("model", "analysis/analysed")
    seen["collection"] = (collection.is_sequence(), collection.aliases, logged.tags)
    prefixed = Path(logged.download(folder / "prefixed", path_prefix="ckpt"))
    seen["prefixed"] = sorted(p.name for p in prefixed.iterdir())
    return seen


def analyse_runs() -> dict[str, Any]:
    seen: dict[str, Any] = {}
    api = wandb.Api()
    for run in api.runs("analysis"):
        seen["path"] = run.path
        again = api.run("/".join(run.path))
        seen["joined"] = (again.id, api.run(run.path).id)
        seen["exported"] = (json.loads(run.json_config), run.summary_metrics["loss"], run.user.username)
        run.summary["eval_f1"] = 0.88
        run.summary.update()  # as W&B's "Update metrics for a run" writes it
        run.summary.update({"eval_auc": 0.9})
        run.summary["weights"] = numpy.array([0.5, 0.25])
        run.update()
    scoped = wandb.Api(overrides={"entity": "alice", "project": "analysis"})
    read = scoped.run("trained")
    seen["summary"] = {k: read.summary.get(k) for k in ("eval_f1", "eval_auc", "weights")}
    return seen


async def test_analysis_scripts_read_runs_paths_and_files_and_save_summaries_as_w_and_b_writes_them(
    server: Stack, tmp_path: Path
) -> None:
    logged = await in_thread(log_for_analysis, tmp_path)
    assert logged["live"][1:3] == (0, True) and logged["live"][3].endswith("/#/runs/alice/analysis")
    assert re.fullmatch(r"[a-z]+-[a-z]+-1", logged["live"][0])  # a name given as W&B gives one (the run id before)
    assert logged["step"] == 4 and logged["save"] is True and logged["logged again"] == "v0"
    assert logged["files"] == {"model.pt": "epoch 1", "ckpt.pt": "epoch 1"}  # as they were when added
    assert "has no file 'absent.pt'" in logged["missing"]
    assert logged["artifact"] == ("COMMITTED", True) and logged["prefixed"] == ["ckpt.pt"]
    assert logged["entries"] == (["ckpt.pt", "model.pt"], {"ckpt.pt": len("epoch 1"), "model.pt": len("epoch 1")})
    assert "is logged and its files cannot change (add_file)" in logged["finalized"]
    assert "artifact.new_draft()" in logged["finalized"]
    assert logged["collection"] == (True, ["latest"], [])
    query = '{ run(entity: "alice", project: "analysis", runId: "trained") { name metrics { key step } } }'
    run = (await server.graphql(query))["data"]["run"]
    assert run["name"] == "renamed"
    assert [(p["key"], p["step"]) for p in run["metrics"]] == [("loss", 0), ("loss", 2)]

    seen = await in_thread(analyse_runs)
    assert seen["path"] == ["alice", "analysis", "trained"] and seen["joined"] == ("trained", "trained")
    assert seen["exported"] == ({}, 0.4, "alice")
    assert seen["summary"] == {"eval_f1": 0.88, "eval_auc": 0.9, "weights": [0.5, 0.25]}


# From W&B's registry guide: log a model, link it into the registry, fetch it by its registry path.


def link_into_the_registry(path: Path) -> str:
    path.write_text("weights")
    with wandb.init(project="mnist", job_type="train") as run:
        artifact = wandb.Artifact(name="mnist-cnn", type="model", metadata={"acc": 0.97})
        artifact.add_file(local_path=str(path), name="model.pt")
        run.log_artifact(artifact, aliases=["latest", "best"])
        run.link_artifact(artifact, target_path="wandb-registry-model/mnist-classifier", aliases=["staging"])
        artifact.wait()
        return artifact.id  # type: ignore[return-value]


def fetch_from_the_registry() -> dict[str, Any]:
    api = wandb.Api()
    found = {
        form: api.artifact(form).id
        for form in (
            "alice/model-registry/mnist-classifier:staging",
            "model-registry/mnist-classifier:staging",
            "wandb-registry-model/mnist-classifier:latest",
            "model-registry/mnist-classifier:v0",
            "mnist/mnist-cnn:best",
            "alice/mnist/mnist-cnn:v0",
        )
    }
    registry = api.artifact_collection(type_name="model", name="wandb-registry-model/mnist-classifier")
    found["collection"] = (registry.name, registry.aliases, [v.id for v in registry.versions()], registry.is_sequence())
    with wandb.init(project="serving", job_type="inference") as run:
        model = run.use_artifact("model-registry/mnist-classifier:staging", type="model")
        model_path = run.use_model("model-registry/mnist-classifier:staging")
        found["used"] = model.id
        found["metadata"] = model.metadata
        found["path"] = Path(model_path).read_text()
    return found


async def test_a_model_linked_with_a_registry_path_is_found_by_every_path_w_and_b_users_write(
    server: Stack, tmp_path: Path
) -> None:
    version_id = await in_thread(link_into_the_registry, tmp_path / "cnn.pt")
    found = await in_thread(fetch_from_the_registry)

    assert found.pop("collection") == ("mnist-classifier", ["latest", "staging"], [version_id], False)
    assert {k: v for k, v in found.items() if k not in ("metadata", "path")} == dict.fromkeys(
        [
            "alice/model-registry/mnist-classifier:staging",
            "model-registry/mnist-classifier:staging",
            "wandb-registry-model/mnist-classifier:latest",
            "model-registry/mnist-classifier:v0",
            "mnist/mnist-cnn:best",
            "alice/mnist/mnist-cnn:v0",
            "used",
        ],
        version_id,
    )
    assert found["metadata"] == {"acc": 0.97} and found["path"] == "weights"
    with pytest.raises(NotFound, match="registered model"):
        await in_thread(lambda: wandb.Api().artifact("model-registry/mnist-classifier:production"))


def promote_in_the_registry(folder: Path) -> dict[str, Any]:
    with wandb.init(project="promote", job_type="train") as run:
        for n in range(2):
            (folder / "m.pt").write_text(f"weights {n}")
            artifact = wandb.Artifact("clf", "model")
            artifact.add_file(str(folder / "m.pt"))
            run.log_artifact(artifact, aliases=["mine"])
        run.link_artifact(artifact, target_path="wandb-registry-model/promoted", aliases=["staging"])
        artifact.wait()
    api = wandb.Api()
    staged = api.artifact("wandb-registry-model/promoted:staging")
    seen = (staged.name, staged.version, list(staged.aliases), staged.source_name)
    staged.aliases.remove("staging")
    staged.aliases.append("production")
    staged.metadata["approved_by"] = "alice"
    staged.save()
    production = api.artifact("wandb-registry-model/promoted:production")
    source = api.artifact("promote/clf:v1")
    with wandb.init(project="promote", job_type="train") as run:
        (folder / "m.pt").write_text("weights 2")
        newer = wandb.Artifact("clf", "model")
        newer.add_file(str(folder / "m.pt"))
        run.log_artifact(newer)
        run.link_artifact(newer, target_path="wandb-registry-model/promoted")
        newer.wait()
    return {
        "seen": seen,
        "production": (production.id == staged.id, production.aliases),
        "source": (source.aliases, source.metadata),
        "after a newer link": [
            api.artifact(f"wandb-registry-model/promoted:{selector}").aliases for selector in ("production", "v1")
        ],
    }


async def test_aliases_moved_on_a_version_read_through_the_registry_move_in_the_registry(
    server: Stack, tmp_path: Path
) -> None:
    found = await in_thread(promote_in_the_registry, tmp_path)

    # The registry's view, as in W&B: the registered model's name, version and aliases; the source beside.
    # The registered model's newest version lists `latest` through the registry too, as W&B scripts check.
    assert found["seen"] == ("promoted", "v0", ["staging", "latest"], "clf:v1")
    assert found["production"] == (True, ["production", "latest"])
    assert found["after a newer link"] == [["production"], ["latest"]]
    # The logged version's own aliases untouched (W&B lists `latest` on the newest), its metadata edited.
    assert found["source"] == (["mine", "latest"], {"approved_by": "alice"})
    with pytest.raises(NotFound, match="registered model"):
        await in_thread(lambda: wandb.Api().artifact("wandb-registry-model/promoted:staging"))


def list_through_the_registry(folder: Path) -> dict[str, Any]:
    with wandb.init(project="listing", job_type="train") as run:
        for n in range(2):
            (folder / "m.pt").write_text(f"weights {n}")
            artifact = wandb.Artifact("listed", "model")
            artifact.add_file(str(folder / "m.pt"))
            run.log_artifact(artifact)
            run.link_artifact(artifact, target_path="wandb-registry-model/My-Model")
        gone = wandb.Artifact("gone", "dataset")
        gone.add_file(str(folder / "m.pt"))
        run.log_artifact(gone)
    api = wandb.Api()
    api.artifact("listing/gone:v0").delete()
    registry_paths = [
        "model-registry/My-Model",
        "alice/model-registry/My-Model",
        "wandb-registry-model/My-Model",
        "alice/wandb-registry-model/My-Model",
    ]
    found: dict[str, Any] = {
        path: (
            [a.version for a in api.artifact_versions("model", path)],
            [a.version for a in api.artifacts("model", path)],
        )
        for path in registry_paths
    }
    found["collection"] = [
        a.version for a in api.artifact_collection("model", "wandb-registry-model/My-Model").versions()
    ]
    found["sources"] = [a.source_name for a in api.artifact_versions("model", "wandb-registry-model/My-Model")]
    registries = list(api.registries())  # W&B's Registry objects: one, "model", whose collections are the models
    found["registries"] = [(r.name, r.full_name) for r in registries]
    found["registry collections"] = {c.name: c.version_count for c in registries[0].collections()}
    found["registry versions"] = [a.version for a in registries[0].versions({"name": "My-Model"})]
    found["another registry"] = list(api.registries({"name": "dataset"}))
    found["project"] = [a.version for a in api.artifact_versions("model", "listing/listed")]
    found["emptied"] = list(api.artifacts("dataset", "listing/gone"))
    refused: dict[str, tuple[str, str]] = {}
    for what, call in {
        "no such model": lambda: api.artifact_versions("model", "wandb-registry-model/No-Such-Model"),
        "no such collection": lambda: api.artifacts("model", "listing/no-such"),
        "model of another type": lambda: api.artifact_versions("dataset", "wandb-registry-model/My-Model"),
        "collection of another type": lambda: api.artifacts("dataset", "listing/listed"),
        "one collection of another type": lambda: api.artifact_collection("dataset", "listing/listed"),
    }.items():
        try:
            call()
        except (NotFound, InvalidInput) as refusal:
            refused[what] = (type(refusal).__name__, str(refusal))
    found["refused"] = refused
    found["exists"] = [
        api.artifact_collection_exists(name, kind)
        for name, kind in [("listing/listed", "model"), ("listing/listed", "dataset"), ("listing/no-such", "model")]
    ]
    return found


async def test_a_registered_model_s_versions_are_listed_by_every_registry_path_and_a_wrong_name_or_type_is_refused(
    server: Stack, tmp_path: Path
) -> None:
    found = await in_thread(list_through_the_registry, tmp_path)

    for path in ("model-registry/My-Model", "wandb-registry-model/My-Model"):  # they were [] before
        assert found[path] == found[f"alice/{path}"] == (["v0", "v1"], ["v0", "v1"])
    assert found["collection"] == ["v0", "v1"] and found["sources"] == ["listed:v0", "listed:v1"]
    assert found["registries"] == [("model", "wandb-registry-model")] and found["another registry"] == []
    assert found["registry collections"]["My-Model"] == 2 and found["registry versions"] == ["v0", "v1"]
    assert found["project"] == ["v0", "v1"] and found["emptied"] == []
    refused = found["refused"]
    assert refused["no such model"] == ("NotFound", "no registered model 'No-Such-Model'")
    assert refused["no such collection"] == ("NotFound", "no artifact collection alice/listing/no-such")
    assert refused["model of another type"][0] == "InvalidInput"
    assert "holds 'model' artifacts, not 'dataset' ones" in refused["model of another type"][1]
    assert refused["collection of another type"] == (
        "InvalidInput",
        "'listing/listed' holds 'model' artifacts, not 'dataset' ones: ask for type 'model'",
    )
    assert "holds 'model' artifacts, not 'dataset'" in refused["one collection of another type"][1]
    assert found["exists"] == [True, False, False]


def unlink_from_the_registry(folder: Path) -> dict[str, Any]:
    with wandb.init(project="hc", job_type="train") as run:
        for name in ("ckpt", "other"):
            (folder / f"{name}.pt").write_text(name)
            artifact = wandb.Artifact(name, "model")
            artifact.add_file(str(folder / f"{name}.pt"))
            run.log_artifact(artifact)
            run.link_artifact(artifact, target_path="wandb-registry-model/CkptReg", aliases=["prod"])
    api = wandb.Api()
    seen: dict[str, Any] = {}
    linked, source = api.artifact("wandb-registry-model/CkptReg:v0"), api.artifact("hc/ckpt:v0")
    seen["is_link"] = (linked.is_link, source.is_link, artifact.is_link)
    try:
        source.unlink()
    except InvalidInput as refusal:
        seen["not a link"] = str(refusal)
    try:
        source.delete(delete_aliases=True)
    except Conflict as refusal:
        seen["linked"] = str(refusal)
    linked.unlink()  # only the link goes
    seen["unlinked"] = (
        [v.version for v in api.registered_model("CkptReg").versions],
        api.artifact_exists("hc/ckpt:v0"),
    )
    source.delete(delete_aliases=True)
    seen["then deleted"] = api.artifact_exists("hc/ckpt:v0")
    with warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("always")
        api.artifact("wandb-registry-model/CkptReg:prod").delete()  # W&B's: a link's delete() unlinks it
        kept = api.artifact("hc/other:v0")
        kept.aliases.append("v7")
        kept.aliases.remove("latest")
        kept.save()
    seen["told"] = [str(w.message) for w in told]
    seen["link deleted"] = (api.registered_model("CkptReg").versions, api.artifact("hc/other:v0").aliases)
    return seen


async def test_a_version_read_through_the_registry_is_a_link_that_unlink_and_delete_take_out_of_the_registry_only(
    server: Stack, tmp_path: Path
) -> None:
    seen = await in_thread(unlink_from_the_registry, tmp_path)

    assert seen["is_link"] == (True, False, False)
    assert "alice/hc/ckpt:v0 is not a linked artifact and cannot be unlinked" in seen["not a link"]
    assert "is linked to CkptReg:v0: unlink it from the registry before deleting it" in seen["linked"]
    assert 'modelreg.Api().artifact("model-registry/CkptReg:v0").unlink()' in seen["linked"]
    assert 'unlinkArtifactVersion(input: {registeredModel: "CkptReg"' in seen["linked"]
    assert seen["unlinked"] == (["v1"], True) and seen["then deleted"] is False
    unlinking, computed = seen["told"]
    assert "delete() unlinks it from 'CkptReg' (as W&B's does) and alice/hc/other:v0 stays" in unlinking
    assert "leaves latest, v7 as it was: `latest` (the newest version) and `vN`" in computed
    assert seen["link deleted"] == ([], ["latest"])
    audit = await server.graphql('{ auditLog(stream: "registered_model:CkptReg") { items { action } } }')
    actions = [r["action"] for r in audit["data"]["auditLog"]["items"]]
    assert actions.count("registry.version_unlinked") == 2


def register_under_names_with_spaces(folder: Path) -> dict[str, Any]:
    (folder / "model.pt").write_text("weights")
    seen: dict[str, Any] = {}
    try:
        wandb.init(project="My Project")
    except InvalidInput as refusal:
        seen["project"] = str(refusal)
    with wandb.init(project="naming") as run:
        for target in ("My Model", "model-registry/My Model"):
            try:
                run.link_model(str(folder / "model.pt"), target, name="named")
            except InvalidInput as refusal:
                seen[target] = str(refusal)
        run_id = run.id
    seen["logged"] = [a.name for a in wandb.Api().run(f"naming/{run_id}").logged_artifacts() if a.type == "model"]
    return seen


async def test_a_registered_model_name_the_registry_refuses_is_refused_before_link_model_logs_anything(
    server: Stack, tmp_path: Path
) -> None:
    seen = await in_thread(register_under_names_with_spaces, tmp_path)

    assert "'My Project' is not a name" in seen["project"]  # the naming rule is kept (docs/wandb-compat.md)
    assert "the registered model name 'My Model' is not a name" in seen["My Model"]
    assert "the registered model name 'My Model' is not a name" in seen["model-registry/My Model"]
    assert seen["logged"] == []  # it logged the model, then failed the link


# Artifacts edited after logging: W&B's artifact.save() and artifact.delete().


def log_versions(folder: Path, contents: list[str]) -> list[str]:
    ids = []
    with wandb.init(project="data", job_type="ingest") as run:
        for n, content in enumerate(contents):
            (folder / "rows.txt").write_text(content)
            artifact = wandb.Artifact("rows", "dataset", description=f"batch {n}")
            artifact.add_file(str(folder / "rows.txt"))
            ids.append(run.log_artifact(artifact).id)
    return ids


def edit_and_delete() -> dict[str, Any]:
    api = wandb.Api(overrides={"project": "data"})
    first = api.artifact("rows:v0")
    first.description = "the cleaned batch"
    first.metadata["rows"] = 3
    first.aliases.append("golden")
    first.save()
    moved = api.artifact("rows:v1")
    moved.aliases.append("golden")  # an alias names one version: it leaves v0
    moved.save()
    seen = {"golden": api.artifact("rows:golden").version, "v0": api.artifact("rows:v0").aliases}
    seen["v0 edited"] = (api.artifact("rows:v0").description, api.artifact("rows:v0").metadata)
    try:
        moved.delete()
    except Conflict as refused:
        seen["refused"] = str(refused)
    moved.delete(delete_aliases=True)
    seen["listed"] = [a.version for a in api.artifacts("dataset", "data/rows")]
    seen["latest"] = [(a.version, "latest" in a.aliases) for a in api.artifacts("dataset", "data/rows")]
    seen["collections"] = [(c.name, c.version_count) for c in api.artifact_collections("data", "dataset")]
    seen["types"] = [t.name for t in api.artifact_types("data")]
    try:
        api.artifact("rows:v1")
    except NotFound:
        seen["v1 gone"] = True
    return seen


async def test_saving_and_deleting_logged_artifacts_are_events_and_a_deleted_number_is_never_reused(
    server: Stack, tmp_path: Path
) -> None:
    await in_thread(log_versions, tmp_path, ["a", "b", "c"])
    seen = await in_thread(edit_and_delete)

    assert seen["golden"] == "v1" and seen["v0"] == []
    assert seen["v0 edited"] == ("the cleaned batch", {"rows": 3})
    assert "golden" in seen["refused"] and "delete_aliases=True" in seen["refused"]
    assert seen["listed"] == ["v0", "v2"] and seen["v1 gone"]
    assert seen["latest"] == [("v0", False), ("v2", True)]  # W&B lists `latest` among the newest's aliases
    assert seen["collections"] == [("rows", 2)] and seen["types"] == ["dataset"]

    again = await in_thread(log_versions, tmp_path, ["b", "d"])  # v1's content, then new content
    listed = (
        await server.graphql(
            '{ artifactVersions(entity: "alice", project: "data", name: "rows") { items { id version } } }'
        )
    )["data"]["artifactVersions"]["items"]
    assert [v["version"] for v in listed] == ["v0", "v2", "v3", "v4"]  # v1 stays unused
    assert listed[2]["id"] == again[0]
    audit = await server.graphql('{ auditLog(stream: "artifact:alice/data/rows") { items { action details } } }')
    actions = [r["action"] for r in audit["data"]["auditLog"]["items"]]
    assert actions.count("artifacts.version_edited") == 2 and actions.count("artifacts.version_deleted") == 1


def checkpoints_each_epoch(folder: Path) -> dict[str, Any]:
    """A checkpoint logged at every epoch with aliases, its files unchanged after the first, and numpy values in
    its metadata, as training loops write them; a run given no name; a summary set after the run ended."""
    (folder / "w.bin").write_bytes(b"weights that stop changing")
    with wandb.init(project="checkpoints") as run:
        for epoch, alias in enumerate(["epoch-0", "best"]):
            checkpoint = wandb.Artifact("ckpt", type="model", metadata={"acc": numpy.float32(0.5), "epoch": epoch})
            checkpoint.add_file(str(folder / "w.bin"))
            run.log_artifact(checkpoint, aliases=[alias])
        checkpoint.metadata["seen"] = numpy.int64(3)
    logged = wandb.Api().artifact("checkpoints/ckpt:best")
    logged.metadata["auc"] = numpy.float64(0.75)
    logged.save()
    logged.metadata["curve"] = numpy.array([0.5, 0.25])  # compared with what was saved: an ambiguous truth value
    logged.save()
    logged = wandb.Api().artifact("checkpoints/ckpt:best")
    found: dict[str, Any] = {"best": (logged.version, sorted(logged.aliases), logged.metadata)}
    found["by the name it shows"] = [r.id for r in wandb.Api().runs("checkpoints", filters={"display_name": run.name})]
    try:
        run.summary["late"] = 1
    except wandb.errors.Error as refused:
        found["late"] = str(refused)
    found["id"] = run.id
    return found


async def test_a_checkpoint_logged_again_unchanged_gets_its_new_aliases_and_numpy_metadata_is_kept(
    server: Stack, tmp_path: Path
) -> None:
    found = await in_thread(checkpoints_each_epoch, tmp_path)

    # W&B's answer: the same version, with the alias asked for (it was dropped without a word).
    version, aliases, metadata = found["best"]
    assert (version, aliases) == ("v0", ["best", "epoch-0", "latest"])
    assert metadata == {"acc": 0.5, "epoch": 0, "auc": 0.75, "curve": [0.5, 0.25]}  # numpy was a TypeError
    assert found["by the name it shows"] == [found["id"]]  # a run given no name shows its id, and is found by it
    assert "has finished: change it with modelreg.Api().run(" in found["late"]  # it was neither stored nor refused


# Finding runs with W&B's public API: filters, order, history, artifacts, files.


def sweep_of_runs(folder: Path) -> None:
    for n, (lr, acc, tags) in enumerate(
        [(0.1, 0.71, ["baseline"]), (0.01, 0.92, ["tuned"]), (0.001, 0.88, ["tuned", "slow"]), (0.05, 0.5, [])]
    ):
        with wandb.init(
            project="sweep",
            name=f"resnet-{n}" if n < 3 else "vgg",
            config={"lr": lr, "opt": {"name": "adam"}},
            tags=tags,
        ) as run:
            for step in range(4):
                run.log({"loss": 1 / (step + 1), "acc": acc * (step + 1) / 4, "val": {"acc": acc - 0.1}})
            if n == 0:
                (folder / "notes.md").write_text("kept with the run")
                run.save(str(folder / "notes.md"), base_path=str(folder))
                run.log_artifact(str(folder / "notes.md"), name="notes", type="doc")
            if n == 1:
                run.use_artifact("notes:latest", type="doc")
    with wandb.init(project="sweep", name="resnet-crashed", config={"lr": 0.2}) as run:
        run.finish(exit_code=1)


def find_runs(folder: Path) -> dict[str, Any]:
    api = wandb.Api()
    names = lambda **kw: [r.name for r in api.runs("sweep", per_page=2, **kw)]  # noqa: E731
    found: dict[str, Any] = {
        "lr > 0.01": names(filters={"config.lr": {"$gt": 0.01}}),
        "lr in": names(filters={"config.lr.value": {"$in": [0.1, 0.001]}}),
        "nested": names(filters={"config.opt.name": "adam", "state": "finished"}),
        # W&B keeps config={"opt": {"name": ...}} as {"opt": {"value": {"name": ...}}}: its scripts filter so.
        "nested as W&B keeps it": names(filters={"config.opt.value.name": "adam", "state": "finished"}),
        "or": names(filters={"$or": [{"tags": "baseline"}, {"summary_metrics.acc": {"$gte": 0.9}}]}),
        "and regex": names(filters={"$and": [{"display_name": {"$regex": "^resnet"}}, {"state": {"$ne": "failed"}}]}),
        "tags in": names(filters={"tags": {"$in": ["slow", "baseline"]}}),
        "by acc": names(filters={"state": "finished"}, order="+summary_metrics.acc"),
        # Logged as a nested dict, filtered and ordered as W&B's scripts write it.
        "val.acc >= 0.8": names(filters={"summary_metrics.val.acc": {"$gte": 0.8}}),
        "val.acc not 0.4": names(filters={"summary_metrics.val.acc": {"$ne": 0.4}, "state": "finished"}),
        "by val.acc": names(filters={"state": "finished"}, order="-summary_metrics.val.acc"),
        "failed": names(filters={"state": "failed"}),
    }
    finished = api.runs("sweep", filters={"state": "finished"}, order="-summary_metrics.acc")
    found["len and index"] = (len(finished), finished[0].name, finished[-1].name)
    best = api.runs("sweep", filters={"display_name": "resnet-1"})[0]
    found["best"] = (best.config, best.summary["acc"], best.tags, best.state)
    assert best.summary._json_dict == dict(best.summary)  # W&B's export scripts read it
    api.flush()  # W&B's scripts call it before reading again; nothing is cached here
    first = next(iter(api.runs("sweep", filters={"display_name": "resnet-0"})))
    found["history"] = first.history(keys=["loss"], pandas=False)
    found["sampled"] = len(first.history(samples=2, pandas=False))
    found["scan"] = [row["acc"] for row in first.scan_history(keys=["acc"])]
    found["logged"] = sorted(a.name for a in first.logged_artifacts())
    found["files version aliases"] = [a.aliases for a in first.logged_artifacts() if a.name.startswith("run-")]
    found["first id"] = first.id
    found["used"] = [a.name for a in best.used_artifacts()]
    found["files"] = [(f.name, f.size) for f in first.files()]
    with wandb.restore("notes.md", run_path=f"{first.entity}/{first.project}/{first.id}", root=str(folder)) as kept:
        found["restored"] = kept.read()
    found["not kept"] = wandb.restore("absent.pt", run_path=f"{first.entity}/{first.project}/{first.id}")
    found["file download"] = Path(first.file("notes.md").download(root=str(folder / "again"), replace=True)).name
    try:
        api.artifact("sweep/never-logged:latest")
    except wandb.errors.CommError as missing:  # W&B scripts ask whether an artifact exists so
        found["missing"] = type(missing).__name__
    wandb.termlog("found the runs")  # W&B's terminal helpers
    found["projects"] = [(p.path, p.run_count) for p in api.projects() if p.name == "sweep"]
    found["project"] = (api.project("sweep").path, len(api.project("sweep").runs()))
    return found


async def test_runs_are_found_with_w_and_b_filters_and_orders_and_read_back_with_their_history(
    server: Stack, tmp_path: Path
) -> None:
    await in_thread(sweep_of_runs, tmp_path)
    found = await in_thread(find_runs, tmp_path)

    assert found["lr > 0.01"] == ["resnet-crashed", "vgg", "resnet-0"]  # newest first
    assert found["lr in"] == ["resnet-2", "resnet-0"]
    assert found["nested"] == found["nested as W&B keeps it"] == ["vgg", "resnet-2", "resnet-1", "resnet-0"]
    assert found["or"] == ["resnet-1", "resnet-0"]
    assert found["and regex"] == ["resnet-2", "resnet-1", "resnet-0"]
    assert found["tags in"] == ["resnet-2", "resnet-0"]
    assert found["by acc"] == ["vgg", "resnet-0", "resnet-2", "resnet-1"]
    assert found["val.acc >= 0.8"] == ["resnet-1"]
    assert found["val.acc not 0.4"] == ["resnet-2", "resnet-1", "resnet-0"]
    assert found["by val.acc"] == ["resnet-1", "resnet-2", "resnet-0", "vgg"]
    assert found["failed"] == ["resnet-crashed"]
    assert found["len and index"] == (4, "resnet-1", "vgg")
    assert found["best"] == ({"lr": 0.01, "opt": {"name": "adam"}}, 0.92, ["tuned"], "finished")
    assert found["history"] == [{"_step": s, "loss": 1 / (s + 1)} for s in range(4)]
    assert found["sampled"] == 2
    assert found["scan"] == pytest.approx([0.71 * (s + 1) / 4 for s in range(4)])
    assert found["logged"] == ["notes", f"run-{found['first id']}-files"]
    assert found["files version aliases"] == [["latest"]]  # the only version of its collection, as W&B lists it
    assert found["used"] == ["notes"] and found["files"] == [("notes.md", len("kept with the run"))]
    assert found["restored"] == "kept with the run" and found["not kept"] is None
    assert found["file download"] == "notes.md" and found["missing"] == "NotFound"
    entity = found["project"][0][0]
    assert found["projects"] == [([entity, "sweep"], 5)] and found["project"] == ([entity, "sweep"], 5)

    # What answers filters on config, summary and tags: their GIN indexes (asked with sequential scans priced
    # out, since a handful of rows is cheaper to scan than any index).
    # A connection of its own: the `pool` fixture migrates again beside the running stack and waits on it.
    connection = await asyncpg.connect(server.settings.database_url)
    try:
        await connection.execute("SET enable_seqscan = off")
        for condition, index in [
            ("""config @> '{"lr": 0.01}'""", "runs_by_config"),
            ("""summary @> '{"acc": 0.92}'""", "runs_by_summary"),
            ("config @? '$.\"lr\"'", "runs_by_config"),
            ("tags && ARRAY['tuned']", "runs_by_tag"),
        ]:
            plan = "\n".join(r[0] for r in await connection.fetch(f"EXPLAIN SELECT run_id FROM runs WHERE {condition}"))
            assert index in plan, plan
    finally:
        await connection.close()


def scan_a_thousand_and_one_metrics() -> dict[str, Any]:
    with wandb.init(project="hc") as run:
        for step in range(3):
            wandb.log({f"grad_norm/layer{k}": step + k / 1000 for k in range(1001)})
        path = run.path
    public = wandb.Api().run(path)
    every_key = [f"grad_norm/layer{k}" for k in range(1001)]
    return {
        "rows": list(public.scan_history()),
        "with keys": list(public.scan_history(keys=every_key)),
        "a long page": [row["_step"] for row in public.scan_history(keys=["grad_norm/layer7"], page_size=20_000)],
        "from step 1": [row["_step"] for row in public.scan_history(min_step=1, page_size=1)],
    }


async def test_a_run_of_over_a_thousand_metrics_is_scanned_whole_in_pages_the_server_reads(server: Stack) -> None:
    # 1,001 metrics x the default 1,000 steps a page could be over the 1,000,000 points the server reads for one
    # page: it refused the scan, which W&B answers.
    found = await in_thread(scan_a_thousand_and_one_metrics)

    expected = [{"_step": step, **{f"grad_norm/layer{k}": step + k / 1000 for k in range(1001)}} for step in range(3)]
    assert found["rows"] == expected and found["with keys"] == expected
    assert found["a long page"] == [0, 1, 2] and found["from step 1"] == [1, 2]


async def test_a_metric_stored_under_w_and_bs_step_name_never_moves_the_row_it_is_read_in(server: Stack) -> None:
    # Logged by clients before it was left out (and by any GraphQL client): read back, it overrode the step.
    await server.graphql('mutation { startRun(input: {entity: "alice", project: "steps", runId: "old"}) { runId } }')
    series = [{"key": "m", "firstStep": 0, "values": [0, 1, 2]}, {"key": "_step", "firstStep": 1, "values": [100]}]
    batch = {"entity": "alice", "project": "steps", "runId": "old", "series": series}
    await server.graphql("mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }", {"i": batch})

    public = await in_thread(wandb.Api().run, "alice/steps/old")
    assert [row["_step"] for row in await in_thread(lambda: list(public.scan_history()))] == [0, 1, 2]
    assert [row["_step"] for row in await in_thread(public.history, 500, None, "_step", False)] == [0, 1, 2]


def list_projects_while_one_becomes_active() -> list[str]:
    listed = []
    for project in wandb.Api().projects("alice", per_page=1):
        listed.append(project.name)
        if len(listed) == 1:  # a run starts elsewhere between pages, as one does on a busy team
            unseen = sorted({"p1", "p2", "p3"} - set(listed))
            with wandb.init(entity="alice", project=unseen[-1]) as run:
                run.log({"loss": 0.1})
    return listed


async def test_every_project_is_listed_once_while_runs_start_between_pages(server: Stack) -> None:
    # Listed by activity, a project that became active between pages moved ahead of the cursor: never listed.
    for project in ("p1", "p2", "p3"):
        start = f'mutation {{ startRun(input: {{entity: "alice", project: "{project}", runId: "r"}}) {{ runId }} }}'
        await server.graphql(start)

    assert sorted(await in_thread(list_projects_while_one_becomes_active)) == ["p1", "p2", "p3"]


def log_loss_by_step() -> str:
    with wandb.init(project="steps") as run:
        for step in range(5):
            wandb.log({"loss": 1.0 / (step + 1), "acc": step / 10})
        return run.path


async def test_asking_for_the_step_among_the_keys_as_w_and_b_scripts_do_reads_the_metrics_by_step(
    server: Stack,
) -> None:
    # `history(keys=["_step", "loss"])` is how W&B scripts ask for a curve: _step was asked of the server as a
    # metric, and no row had it.
    public = await in_thread(wandb.Api().run, await in_thread(log_loss_by_step))
    scanned = await in_thread(lambda: list(public.scan_history(keys=["_step", "loss"])))
    assert scanned == [{"_step": s, "loss": 1.0 / (s + 1)} for s in range(5)]
    sampled = await in_thread(public.history, 500, ["_step", "loss", "_timestamp"], "_step", False)
    assert sampled == scanned
    steps_only = await in_thread(lambda: list(public.scan_history(keys=["_step"])))
    assert steps_only == [{"_step": s} for s in range(5)]


# Alerts: an audit record and a live event.


def raise_an_alert() -> str:
    with wandb.init(project="alerts") as run:
        wandb.alert(title="Low accuracy", text="accuracy 0.4 is below 0.5", level=wandb.AlertLevel.WARN)
        return run.id


async def test_an_alert_is_an_audit_record_and_a_live_event(server: Stack) -> None:
    async with graphql_socket(server, headers=await server.auth()) as socket:
        await socket.init()
        await socket.subscribe("alerts", 'subscription { events(types: ["runs.alert_raised"]) { payload actor } }')
        await log_readers_reach(server, 1)
        run_id = await in_thread(raise_an_alert)
        (event,) = await socket.next_events("alerts", 1)
    assert event["payload"]["title"] == "Low accuracy" and event["actor"] == "user:alice"
    assert event["payload"]["level"] == "WARN" and event["payload"]["run_id"] == run_id
    audit = await server.graphql('{ auditLog(action: "runs.alert_raised") { items { actor details } } }')
    assert [r["details"]["text"] for r in audit["data"]["auditLog"]["items"]] == ["accuracy 0.4 is below 0.5"]


# A Launch job: its process finds its entity, project, run and config where W&B Launch puts them.

LAUNCHED = """
import modelreg as wandb

run = wandb.init()
wandb.config.setdefaults({"lr": 0.1, "epochs": 2})
for epoch in range(wandb.config.epochs):
    wandb.log({"loss": wandb.config.lr / (epoch + 1)})
print("joined", run.entity, run.project, run.id, wandb.config.lr)
wandb.finish()
"""


async def test_a_launched_w_and_b_script_joins_its_jobs_project_and_run_with_a_bare_init(
    server: Stack, tmp_path: Path
) -> None:
    from test_launch_and_automations import CREATE_QUEUE, ENQUEUE, _finished, _job, agents

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "job.py").write_text(LAUNCHED)
    for command in (
        ["init", "-q"],
        ["add", "job.py"],
        ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "job"],
    ):
        subprocess.run(["git", *command], cwd=repo, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    await server.graphql(CREATE_QUEUE, {"n": "cpu"})
    source = {"kind": "git", "git_remote": str(repo), "git_commit": commit, "entry_point": ["python", "job.py"]}
    job_id = (await server.graphql(ENQUEUE, {"s": source, "c": {"lr": 0.05}}))["data"]["enqueueJob"]["id"]

    assert server.client is not None
    url = str(server.client.make_url("/")).rstrip("/")
    async with agents(url, await server.key("service:agent", role="member")):
        await wait_until(lambda: _finished(server, job_id), timeout_s=90)
    job = await _job(server, job_id)
    assert job["state"] == "FINISHED", (job["reason"], job["exitCode"], job["output"])
    joined = next(o["text"] for o in job["output"]["items"] if o["text"].startswith("joined")).split()
    assert joined[1:3] == ["acme", "nature"] and joined[4] == "0.05"  # the job's config wins over setdefaults
    run_ids = (await server.graphql("query($id: ID!) { launchJob(id: $id) { runIds } }", {"id": job_id}))["data"]
    assert run_ids["launchJob"]["runIds"] == [joined[3]]
    run = (
        await server.graphql(
            'query($r: String!) { run(entity: "acme", project: "nature", runId: $r) { state config environment } }',
            {"r": joined[3]},
        )
    )["data"]["run"]
    assert run["state"] == "FINISHED" and run["config"] == {"lr": 0.05, "epochs": 2}
    assert run["environment"]["launch"]["job_id"] == job_id


# Offline, the same script is recorded and synced with its config changes.


def offline_script(folder: Path) -> str:
    # W&B's config-defaults.yaml, read from the working directory, each key in W&B's {desc, value} layout.
    Path("config-defaults.yaml").write_text("epochs:\n  desc: passes over the data\n  value: 2\nlr:\n  value: 0.1\n")
    run_id = wandb.util.generate_id()
    with wandb.init(project="plane", id=run_id, mode="offline", offline_dir=str(folder), tags=["offline"]) as run:
        assert wandb.config.epochs * 2 == 4
        wandb.config.update({"lr": 0.3, "clip": float("inf")})
        run.summary.update({"best": 1.0, "worst": float("nan")})
        wandb.log({"loss": 0.5})
        return run.id


async def test_an_offline_w_and_b_script_syncs_to_the_keys_entity_with_its_config_changes_and_tags(
    server: Stack, tmp_path: Path
) -> None:
    from modelreg.spool import offline_run_folders
    from modelreg.sync import sync_offline_run
    from modelreg.transport import Transport

    run_id = await in_thread(offline_script, tmp_path / "spool")
    (folder,) = offline_run_folders([tmp_path / "spool"])
    await in_thread(lambda: sync_offline_run(folder, Transport()))
    run = (
        await server.graphql(
            'query($r: String!) { run(entity: "alice", project: "plane", runId: $r) { state config summary tags } }',
            {"r": run_id},
        )
    )["data"]["run"]
    assert len(run_id) == 8 and run_id.isalnum()
    assert run["state"] == "FINISHED" and run["tags"] == ["offline"]
    assert run["config"] == {"epochs": 2, "lr": 0.3, "clip": "Infinity"}
    assert (run["summary"]["best"], run["summary"]["worst"], run["summary"]["loss"]) == (1.0, "NaN", 0.5)


# The rest of a W&B script's everyday surface: login, resuming, renaming, disabled mode, models, artifact files.


def resume_rename_and_hand_on(folder: Path, key: str, url: str) -> dict[str, Any]:
    seen: dict[str, Any] = {"logged in": wandb.login(key=key, host=url)}
    first = wandb.init(project="handover", id="trainer-1", name="draft")
    first.name, first.notes, first.tags = "trainer", "resumed once", ("v2",)
    seen["url"] = first.url
    first.log({"loss": 1.0})
    first.log({"loss": 0.9})
    first.flush()
    # As a restarted process would (the first one died without finishing): it joins the running run.
    again = wandb.init(project="handover", id="trainer-1", resume="allow", config={"seed": 7}, reinit="create_new")
    seen["joined"] = (again.id, again.name, again.tags, dict(again.config), again.step)
    again.log({"loss": 0.8})  # after the steps the first process logged, not over them
    (folder / "model.pt").write_text("weights")
    again.link_model(
        str(folder / "model.pt"), "model-registry/handover-model", name="handover-cnn", aliases=["candidate"]
    )
    wandb.finish()
    seen["finished again"] = wandb.run is None
    with wandb.init(project="handover", id="trainer-1", resume="must") as reopened:  # it ended: running again
        seen["reopened"] = (reopened.resumed, reopened.step, wandb.Api().run("handover/trainer-1").state)
        reopened.log({"loss": 0.7})

    with wandb.init(mode="disabled") as off:
        off.log({"loss": 1.0})
        seen["disabled"] = (off.disabled, off.url)

    with wandb.init(project="handover", job_type="eval") as run:
        model = run.use_artifact("handover-cnn:latest")
        model.download(folder / "checkout")
        (folder / "checkout" / "stray.txt").write_text("not part of it")
        model.checkout(folder / "checkout")
        model.verify(folder / "checkout")
        seen["checked out"] = sorted(p.name for p in (folder / "checkout").iterdir())
        seen["files"] = [
            (f.name, f.size, f.digest.startswith("sha256:"), f.url.endswith(f.digest))
            for f in model.files(names=["model.pt"])
        ]
        seen["linked"] = model.link("wandb-registry-model/handover-backup", aliases=["latest", "first"])
        seen["lineage"] = (model.logged_by().id, [r.id for r in model.used_by()])
        seen["eval run"] = run.id

    api = wandb.Api(api_key=key, timeout=30)
    public = api.run("handover/trainer-1")
    public.tags.append("reviewed")
    public.config["seed"] = 8
    public.update()
    seen["updated"] = (api.run("handover/trainer-1").tags, api.run("handover/trainer-1").config)
    public.config["optimizer"], public.summary["eval"] = {"lr": 0.1}, {"f1": 0.5}
    public.update()
    public.config["optimizer"]["lr"] = 0.2  # edited in place, in a dict read from the server
    public.summary["eval"]["f1"] = 0.9
    public.update()
    nested = api.run("handover/trainer-1")
    seen["edited in place"] = (nested.config["optimizer"], nested.summary["eval"])
    public.summary["scratch"] = 1
    public.update()
    del public.summary["scratch"]
    public.update()
    seen["summary key removed"] = "scratch" in api.run("handover/trainer-1").summary

    with wandb.init(project="handover", id="scratchpad") as scratch:
        scratch.summary["tmp"] = 1
        scratch.config.update({"drop": True, "keep": 1})
        del scratch.summary["tmp"]
        del scratch.config.drop
    removed = api.run("handover/scratchpad")
    seen["removed while running"] = ("tmp" in removed.summary, removed.config)
    seen["type"] = [c.name for c in api.artifact_type("model", "handover").collections()]
    seen["backup"] = api.artifact("model-registry/handover-backup:first").name
    return seen


async def test_a_script_logs_in_resumes_renames_and_hands_its_model_on(
    server: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELREG_CONFIG_DIR", str(tmp_path / "settings"))
    monkeypatch.delenv("MODELREG_API_KEY")
    assert server.client is not None
    url = str(server.client.make_url("/")).rstrip("/")
    key = await server.key("user:alice")
    seen = await in_thread(resume_rename_and_hand_on, tmp_path, key, url)

    assert seen["logged in"] and (tmp_path / "settings" / "settings").is_file()
    assert seen["url"] == f"{url}/#/runs/alice/handover/trainer-1"
    assert seen["joined"] == ("trainer-1", "trainer", ("v2",), {"seed": 7}, 2)
    assert seen["finished again"] and seen["reopened"] == (True, 3, "running")
    assert seen["disabled"] == (True, None)
    assert seen["summary key removed"] is False
    assert seen["removed while running"] == (False, {"keep": 1})
    assert seen["checked out"] == ["model.pt"]
    assert seen["files"] == [("model.pt", len("weights"), True, True)]
    assert seen["linked"] == "v0" and seen["lineage"] == ("trainer-1", [seen["eval run"]])
    assert seen["updated"] == (["v2", "reviewed"], {"seed": 8})
    assert seen["edited in place"] == ({"lr": 0.2}, {"f1": 0.9})
    assert (
        seen["type"] == ["handover-cnn"] and seen["backup"] == "handover-backup"
    )  # W&B: a link's name is its registry collection's
    run = (
        await server.graphql(
            '{ run(entity: "alice", project: "handover", runId: "trainer-1") '
            "{ name notes state metrics { step value } } }"
        )
    )["data"]["run"]
    assert run == {
        "name": "trainer",
        "notes": "resumed once",
        "state": "FINISHED",
        "metrics": [{"step": s, "value": v} for s, v in enumerate([1.0, 0.9, 0.8, 0.7])],
    }
    model = (
        await server.graphql('{ registeredModel(name: "handover-model") { alias(name: "candidate") { version } } }')
    )["data"]["registeredModel"]
    assert model["alias"]["version"] == "v0"


# What a running script changes shows on its run's page as it happens.


@pytest.mark.skipif(not BROWSER_READY, reason="playwright or chromium is missing (scripts/setup.sh installs them)")
async def test_a_config_change_and_an_alert_appear_live_on_the_open_run_page(server: Stack) -> None:
    from playwright.async_api import expect

    assert server.client is not None
    url = str(server.client.make_url("/")).rstrip("/")
    run = await in_thread(lambda: wandb.init(project="live", config={"lr": 0.1}, tags=["watched"], notes="to watch"))
    async with open_browser(url + "/") as browser:
        page = await browser.page(await server.key("user:dana", role="viewer"), expect_principal="user:dana")
        await page.goto(f"{url}/#/runs/alice/live/{run.id}")
        await expect(page.get_by_test_id("run-tags")).to_contain_text("watched")
        await expect(page.get_by_test_id("run-notes")).to_have_text("to watch")
        await expect(page.locator(".live")).to_contain_text("live")

        await in_thread(lambda: run.config.update({"lr": 0.05}))
        await in_thread(lambda: run.alert("Loss spiked", "loss 9.1 at step 300", wandb.AlertLevel.ERROR))
        changes = page.get_by_test_id("run-changes")
        await expect(changes).to_contain_text('{"lr":0.05}')
        await expect(changes).to_contain_text("ERROR Loss spiked loss 9.1 at step 300")
        await expect(page.get_by_role("main")).to_contain_text("0.05")  # the config table, reloaded

        def drop_lr() -> None:
            del run.config["lr"]

        await in_thread(drop_lr)
        await expect(changes).to_contain_text("removed lr")
    await in_thread(run.finish)
