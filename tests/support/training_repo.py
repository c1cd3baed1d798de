"""A small real training project in a git repository, as a team's code would be: the code Launch runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

TRAIN = """
import json, sys
import numpy as np
import modelreg

defaults = {"lr": 0.1, "epochs": 30, "dataset": None, "registered_model": "fresh-model", "alias": "candidate"}
with modelreg.init(project="nature", job_type="train", config=defaults) as run:
    if run.config.dataset:
        data = run.use_artifact(run.config.dataset).download("data")
        rows = np.loadtxt(data / "data.csv", delimiter=",")
    else:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(50, 2)); rows = np.column_stack([x, x @ np.array([2.0, -1.0])])
    x, y = rows[:, :2], rows[:, 2]
    w = np.zeros(2)
    for epoch in range(int(run.config.epochs)):
        w -= float(run.config.lr) * (2 / len(y)) * x.T @ (x @ w - y)
        run.log({"loss": float(np.mean((x @ w - y) ** 2))})
    accuracy = float(1 / (1 + np.mean((x @ w - y) ** 2)))
    run.log({"accuracy": accuracy})
    model = modelreg.Artifact("regressor", "model", metadata={"accuracy": accuracy, "lr": float(run.config.lr)})
    with model.new_file("weights.json") as f:
        json.dump(w.tolist(), f)
    run.log_artifact(model)
    if run.config.registered_model:
        run.link_artifact(model, run.config.registered_model, aliases=[run.config.alias])
    print("trained", run.id, "accuracy", round(accuracy, 4))
"""

EVALUATE = """
import modelreg

config = {"candidate": None, "registered_model": "fresh-model"}
with modelreg.init(project="nature", job_type="evaluation", config=config) as run:
    candidate = run.use_artifact(run.config.candidate)
    score = candidate.metadata["accuracy"]
    run.log({"accuracy": score})
    api = modelreg.Api()
    production = api.registered_model(run.config.registered_model).alias("production")
    best = api.artifact(production.artifact_version_id).metadata["accuracy"] if production else -1.0
    print(f"candidate {score:.4f} production {best:.4f}")
    if score > best:
        run.link_artifact(candidate, run.config.registered_model, aliases=["production"])
        print("promoted to production")
"""

RECORD = """
import json, os, signal, sys, time
config = json.loads(os.environ.get("MODELREG_CONFIG_OVERRIDES") or "{}")
if config.get("farewell"):  # asked to stop (a cancel), it says so where a test reads it
    def stop(*_):
        print("saving a checkpoint", flush=True)
        with open(config["farewell"], "w") as farewell:
            farewell.write("asked to stop")
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
if config.get("keys"):  # the key the job runs with, for a test to try while the job sleeps
    with open(config["keys"], "a") as keys:
        keys.write(os.environ["MODELREG_API_KEY"] + "\\n")
time.sleep(float(config.get("sleep", 0)))
with open(config["ledger"], "a") as ledger:
    ledger.write(os.environ["MODELREG_LAUNCH_JOB_ID"] + "\\n")
print("recorded", os.environ["MODELREG_LAUNCH_JOB_ID"])
"""


def make_training_repo(folder: Path) -> tuple[str, str]:
    """The repository (its own origin, so a run records a remote to clone) and its commit."""
    folder.mkdir(parents=True)
    for name, text in (("train.py", TRAIN), ("evaluate.py", EVALUATE), ("record.py", RECORD)):
        (folder / name).write_text(text.lstrip())
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=folder, check=True)
    subprocess.run([*git, "add", "."], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "training code"], cwd=folder, check=True)
    subprocess.run(["git", "remote", "add", "origin", str(folder)], cwd=folder, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, check=True, capture_output=True, text=True
    ).stdout.strip()
    return str(folder), commit
