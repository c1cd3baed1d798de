"""The demo's story told by training scripts through `import modelreg`, against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from pathlib import Path

import pytest
from support.stack import Stack

import modelreg
from modelreg.errors import InvalidInput, NotFound


def preprocess(url: str, folder: Path) -> modelreg.Artifact:
    images = folder / "images"
    (images / "train").mkdir(parents=True)
    for i in range(3):
        (images / "train" / f"{i}.jpg").write_bytes(bytes([i]) * 1000)
    with modelreg.init(project="nature", entity="acme", job_type="preprocess", url=url) as run:
        dataset = modelreg.Artifact("nature-images", "dataset", metadata={"images": 3})
        dataset.add_dir(images)
        return run.log_artifact(dataset)


def train(url: str, folder: Path, lr: float, alias: str) -> tuple[str, modelreg.Artifact, str]:
    with modelreg.init(
        project="nature", entity="acme", job_type="train", config={"lr": lr, "epochs": 3}, url=url
    ) as run:
        data = run.use_artifact("nature-images:latest")
        local = data.download(folder / f"data-{run.id}")
        assert sorted(p.name for p in (local / "train").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
        for epoch in range(run.config.epochs):
            run.log({"loss": 1.0 / (epoch + 1) - lr, "accuracy": 0.5 + lr * epoch})
        model = modelreg.Artifact("classifier", "model", metadata={"lr": lr})
        with model.new_file("model.json") as f:
            json.dump({"weights": [lr] * 4}, f)
        run.log_artifact(model)
        version = run.link_artifact(model, "nature-classification", aliases=[alias])
        return run.id, model, version


async def test_training_scripts_log_data_metrics_and_models_and_link_them(stack: Stack, tmp_path: Path) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    dataset = await asyncio.to_thread(preprocess, url, tmp_path)
    first_run, first_model, first_version = await asyncio.to_thread(train, url, tmp_path, 0.01, "staging")
    second_run, second_model, second_version = await asyncio.to_thread(train, url, tmp_path, 0.1, "production")

    assert (dataset.version, first_version, second_version) == ("v0", "v0", "v1")
    answer = (
        await stack.graphql(
            """query($run: String!) {
             run(entity: "acme", project: "nature", runId: $run) {
               state config summary environment metrics(key: "loss") { step value } }
             registeredModel(name: "nature-classification") {
               versions { items { version aliases artifactVersion { id } } } }
           }""",
            {"run": second_run},
        )
    )["data"]
    run = answer["run"]
    assert run["state"] == "FINISHED"
    assert run["config"] == {"lr": 0.1, "epochs": 3}
    assert [m["step"] for m in run["metrics"]] == [0, 1, 2]
    assert run["summary"]["accuracy"] == pytest.approx(0.7)
    assert run["environment"]["python"]["version"] and run["environment"]["requirements"]
    assert answer["registeredModel"]["versions"]["items"] == [
        {"version": "v0", "aliases": ["staging"], "artifactVersion": {"id": first_model.id}},
        {"version": "v1", "aliases": ["production"], "artifactVersion": {"id": second_model.id}},
    ]


async def test_logging_identical_content_again_uploads_nothing_and_makes_no_new_version(
    stack: Stack, tmp_path: Path, settings
) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    first = await asyncio.to_thread(preprocess, url, tmp_path / "a")
    blobs = sorted((settings.blob_dir / "sha256").rglob("*"))
    again = await asyncio.to_thread(preprocess, url, tmp_path / "b")

    assert (first.id, first.version) == (again.id, again.version)
    assert sorted((settings.blob_dir / "sha256").rglob("*")) == blobs


async def test_mistakes_in_training_code_get_clear_errors(stack: Stack, tmp_path: Path) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    def mistakes() -> list[str]:
        caught = []
        with modelreg.init(project="nature", entity="acme", url=url) as run:
            for attempt in (
                lambda: run.use_artifact("no-such-dataset:latest"),
                lambda: run.log_artifact(modelreg.Artifact("bad/name", "model")),
                lambda: run.link_artifact(modelreg.Artifact("never-logged", "model"), "m"),
            ):
                with pytest.raises((InvalidInput, NotFound)) as error:
                    attempt()
                caught.append(str(error.value))
        return caught

    caught = await asyncio.to_thread(mistakes)
    assert "no-such-dataset" in caught[0]
    assert "name" in caught[1]
    assert "log the artifact before linking" in caught[2]


async def test_a_summary_the_registry_refuses_at_finish_still_ends_the_run_and_says_what_was_refused(
    stack: Stack,
) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    def a_nul_in_the_summary() -> tuple[str, str, str]:
        with modelreg.init(project="nature", entity="acme", url=url) as run:
            run.log({"loss": 0.5})
            with pytest.raises(InvalidInput, match="U[+]0000"):  # text PostgreSQL cannot store
                run.summary["note"] = "weights\x00v2"
            assert "note" not in run.summary  # so the finish does not send it again
        # A value that reaches the summary without the registry's say: a dict in it, changed in place.
        unchecked = modelreg.init(project="nature", entity="acme", url=url)
        unchecked.summary["best"] = {"acc": 0.9}
        unchecked.summary["best"]["note"] = "weights\x00v2"
        with pytest.raises(InvalidInput) as refused:
            unchecked.finish()
        unchecked.finish()  # ended: nothing more to send
        return run.id, unchecked.id, str(refused.value)

    first, second, said = await asyncio.to_thread(a_nul_in_the_summary)
    assert "is recorded as finished, but its summary was refused" in said and "U+0000" in said
    query = 'query($r: String!) { run(entity: "acme", project: "nature", runId: $r) { state summary } }'
    ended = [(await stack.graphql(query, {"r": run_id}))["data"]["run"] for run_id in (first, second)]
    assert [run["state"] for run in ended] == ["FINISHED", "FINISHED"] and ended[0]["summary"]["loss"] == 0.5


LINEAGE = """query($ref: String!, $direction: LineageDirection, $depth: Int, $fanOut: Int) {
  lineage(ref: $ref, direction: $direction, depth: $depth, fanOut: $fanOut) {
    nodes { id kind depth run { runId jobType config } artifactVersion { name version } }
    edges { source target kind }
    truncated
  }
}"""


async def test_a_model_version_leads_back_to_its_training_run_the_dataset_and_the_preprocessing_run(
    stack: Stack, tmp_path: Path
) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    dataset = await asyncio.to_thread(preprocess, url, tmp_path)
    train_run, model, _ = await asyncio.to_thread(train, url, tmp_path, 0.01, "staging")
    other_run, _, _ = await asyncio.to_thread(train, url, tmp_path, 0.1, "production")

    up = (await stack.graphql(LINEAGE, {"ref": model.id, "direction": "UPSTREAM", "depth": 5}))["data"]["lineage"]
    described = [
        (n["depth"], n["kind"], (n["run"] or {}).get("jobType") or n["artifactVersion"]["name"]) for n in up["nodes"]
    ]
    assert described == [
        (0, "ARTIFACT", "classifier"),
        (1, "RUN", "train"),
        (2, "ARTIFACT", "nature-images"),
        (3, "RUN", "preprocess"),
    ]
    train_node = next(n for n in up["nodes"] if n["kind"] == "RUN" and n["depth"] == 1)
    assert train_node["run"] == {"runId": train_run, "jobType": "train", "config": {"lr": 0.01, "epochs": 3}}
    assert {(e["kind"]) for e in up["edges"]} == {"PRODUCED", "USED"} and len(up["edges"]) == 3

    down = (
        await stack.graphql(LINEAGE, {"ref": f"acme/nature/nature-images:{dataset.version}", "direction": "DOWNSTREAM"})
    )["data"]["lineage"]
    assert {n["run"]["runId"] for n in down["nodes"] if n["kind"] == "RUN" and n["depth"] == 1} >= {
        train_run,
        other_run,
    }
    assert down["truncated"] == []

    narrow = (await stack.graphql(LINEAGE, {"ref": dataset.id, "direction": "DOWNSTREAM", "depth": 1, "fanOut": 1}))[
        "data"
    ]["lineage"]
    assert narrow["truncated"] == [f"artifact:{dataset.id}"]
    assert len([n for n in narrow["nodes"] if n["depth"] == 1]) == 1


async def test_scripts_read_the_registry_through_the_api(stack: Stack, tmp_path: Path) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    await asyncio.to_thread(preprocess, url, tmp_path)
    train_run, model, _ = await asyncio.to_thread(train, url, tmp_path, 0.01, "production")

    def read() -> tuple:
        api = modelreg.Api(url)
        dataset = api.artifact("acme/nature/nature-images:latest")
        registered = api.registered_model("nature-classification")
        return (
            dataset.logged_by().job_type,
            [r.id for r in dataset.used_by()],
            api.run(f"acme/nature/{train_run}").config,
            registered.alias("production").artifact_id,
            api.artifact(f"acme/nature/classifier:{model.version}").logged_by().id,
        )

    logged_by, used_by, config, production, model_run = await asyncio.to_thread(read)
    assert (logged_by, used_by, config) == ("preprocess", [train_run], {"lr": 0.01, "epochs": 3})
    assert (production, model_run) == (model.id, train_run)


def log_big(url: str, folder: Path) -> tuple[modelreg.Artifact, modelreg.Artifact, modelreg.LoggedArtifact, list[str]]:
    with modelreg.init(project="nature", entity="acme", job_type="train", url=url) as run:
        first = modelreg.Artifact("big-classifier", "model")
        first.add_dir(folder)
        run.log_artifact(first)
        again = modelreg.Artifact("big-classifier", "model", metadata={"epoch": 2})
        again.add_dir(folder)
        with warnings.catch_warnings(record=True) as told:
            warnings.simplefilter("always")
            run.log_artifact(again)
        assert again.logged is not None and again.logged.metadata == {}  # the version keeps its own, as in W&B
        again.save()  # as the warning says
        return first, again, run.use_artifact("big-classifier:latest"), [str(w.message) for w in told]


async def test_a_big_file_is_sent_in_one_pass_and_not_again_when_logged_unchanged(stack: Stack, tmp_path: Path) -> None:
    from modelreg.artifact import ONE_PASS_FROM_BYTES

    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    weights = bytes(range(256)) * (ONE_PASS_FROM_BYTES // 256 + 1000)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(weights)
    (tmp_path / "model" / "config.json").write_text("{}")

    first, again, logged, told = await asyncio.to_thread(log_big, url, tmp_path / "model")

    assert first.uploaded_bytes == len(weights) + 2
    assert again.uploaded_bytes == 0
    assert again.version == first.version  # the same content: no new version
    assert [m for m in told if "logged again with unchanged files" in m and "artifact.save()" in m]
    assert logged.metadata == {"epoch": 2}
    local = await asyncio.to_thread(logged.download, tmp_path / "downloaded")
    assert (local / "weights.bin").read_bytes() == weights


VIEWER = "query { viewer { id } }"


def train_with_forked_workers(url: str, folder: Path, workers: int) -> tuple[str, list[int]]:
    """A training process whose workers (forked, as a DataLoader's or a multiprocessing pool's) ask the server
    things, end the run they inherited, change it, and start runs of their own, while the parent goes on."""
    with modelreg.init(project="nature", entity="acme", url=url, config={"lr": 0.1}) as run:
        run.log({"loss": 1.0})
        children = []
        for n in range(workers):
            child = os.fork()
            if child == 0:
                code = 1
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        for _ in range(40):  # on the connections it inherited, garbled by the parent's answers
                            run.transport.graphql(VIEWER)
                        run.summary["worker"] = n
                        run.config.update({"worker": n})
                        run.finish()
                        modelreg.finish()
                        own = modelreg.init(project="nature", entity="acme", url=url, name=f"worker-{n}")
                        own.log({"worker_loss": float(n)})
                        own.finish()
                        (folder / f"worker-{n}").write_text(own.id)
                    code = 0
                finally:
                    os._exit(code)
            children.append(child)
        for _ in range(40):  # the parent meanwhile, on the same connections before the fix
            run.transport.graphql(VIEWER)
        codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
        for step in range(1, 4):
            run.log({"loss": 1.0 / (step + 1)})
    return run.id, codes


async def test_forked_workers_leave_the_parents_run_alone_and_get_connections_of_their_own(
    stack: Stack, tmp_path: Path
) -> None:
    # A worker's finish or init ended the parent's run (its later points were refused, its finish raised), its
    # summary and config changes reached the run, and its requests shared the parent's sockets (4-11% garbled).
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    parent, codes = await asyncio.to_thread(train_with_forked_workers, url, tmp_path, 4)
    assert codes == [0, 0, 0, 0]
    query = """query($r: String!) {
      run(entity: "acme", project: "nature", runId: $r) { name state config summary metrics(key: "loss") { step } }
    }"""
    run = (await stack.graphql(query, {"r": parent}))["data"]["run"]
    assert (run["state"], run["config"], [m["step"] for m in run["metrics"]]) == ("FINISHED", {"lr": 0.1}, [0, 1, 2, 3])
    assert "worker" not in run["summary"]
    for n in range(4):
        own = (await stack.graphql(query, {"r": (tmp_path / f"worker-{n}").read_text()}))["data"]["run"]
        assert (own["name"], own["state"], own["summary"]["worker_loss"]) == (f"worker-{n}", "FINISHED", float(n))
