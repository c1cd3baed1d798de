"""A team trains where there is no server (a plane, an air-gapped cluster), then syncs to the registry:
runs, metrics, artifacts (files and all), lineage and times arrive as they happened, once."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner
from support.stack import Stack

import modelreg
from modelreg.offline_run import OfflineRun
from modelreg.services.cli import main
from modelreg.spool import Spool, offline_run_folders
from modelreg.sync import sync_offline_run
from modelreg.transport import Transport


def closed_port_url() -> str:
    """A URL where nothing listens: the offline scripts must never need it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def train_offline(folder: Path, offline_dir: Path) -> dict:
    """A pipeline in one offline run: prepare data, use it, train, log and link the model; then a second
    offline run evaluates that data by its id. Returns what the scripts saw."""
    images = folder / "images"
    images.mkdir(parents=True)
    for i in range(3):
        (images / f"{i}.jpg").write_bytes(bytes([i]) * 500)
    url = closed_port_url()
    with modelreg.init(
        project="nature",
        entity="acme",
        job_type="train",
        config={"lr": 0.1},
        url=url,
        mode="offline",
        offline_dir=offline_dir,
        id="plane-1",
    ) as run:
        assert isinstance(run, OfflineRun)
        dataset = modelreg.Artifact("nature-images", "dataset", metadata={"images": 3})
        dataset.add_dir(images)
        run.log_artifact(dataset, aliases=["raw"])
        (images / "0.jpg").write_bytes(b"edited after logging")  # the spool kept what was logged
        data = run.use_artifact("nature-images:latest")
        local = data.download(folder / "data")
        assert (local / "0.jpg").read_bytes() == bytes([0]) * 500
        for epoch in range(3):
            run.log({"loss": 1.0 / (epoch + 1)})
            run.flush()
        model = modelreg.Artifact("classifier", "model")
        with model.new_file("model.json") as f:
            json.dump({"weights": [0.1] * 4}, f)
        (folder / "tokenizer.json").write_text("{}")
        model.add_reference((folder / "tokenizer.json").as_uri())  # recorded by URI, offline too
        run.log_artifact(model)
        assert run.link_artifact(model, "nature-classification", aliases=["staging"]) is None
    with modelreg.init(
        project="nature", entity="acme", job_type="eval", url=url, mode="offline", offline_dir=offline_dir, id="plane-2"
    ) as evaluation:
        evaluation.use_artifact(dataset.id)  # a version known by its id
        evaluation.log({"accuracy": 0.9})
    return {"dataset": dataset.id, "model": model.id, "dataset_version": dataset.version}


def journal_times(offline_dir: Path, run_id: str) -> list[tuple[str, datetime]]:
    (folder,) = [f for f in offline_run_folders([offline_dir]) if f.name.endswith(run_id)]
    return [(e.kind, e.occurred_at) for e in Spool(folder).entries()]


def sync_with_cli(url: str, offline_dir: Path) -> str:
    result = CliRunner().invoke(main, ["sync", str(offline_dir), "--url", url])
    assert result.exit_code == 0, result.output
    return result.output


RUN = """query($r: String!) { run(entity: "acme", project: "nature", runId: $r) {
  state jobType config startedAt finishedAt syncedAt startedOfflineAt finishedOfflineAt
  metrics { key step value } } }"""
LINEAGE = (
    """query($ref: String!) { lineage(ref: $ref, direction: DOWNSTREAM, depth: 1) { edges { source target kind } } }"""
)
VERSION = (
    """query($id: ID!) { artifactVersion(id: $id) { id version aliases createdAt files { path size digest ref } } }"""
)
MODEL = """{ registeredModel(name: "nature-classification") {
  versions { items { version aliases linkedAt artifactVersion { id } } } } }"""
AUDIT = "{ auditLog(first: 500) { items { eventId action occurredAt recordedOfflineAt details } } }"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_run_recorded_with_no_server_syncs_with_its_metrics_artifacts_lineage_and_times(
    stack: Stack, tmp_path: Path
) -> None:
    assert stack.client is not None
    offline_dir = tmp_path / "modelreg-offline"
    seen = await asyncio.to_thread(train_offline, tmp_path, offline_dir)
    assert seen["dataset_version"] is None  # numbered by the registry at sync
    recorded = journal_times(offline_dir, "plane-1")
    assert [kind for kind, _ in recorded] == [
        "start_run",
        "log_artifact",
        "use_artifact",
        "log_metrics",
        "log_metrics",
        "log_metrics",
        "log_artifact",
        "link_artifact",
        "finish_run",
    ]
    output = await asyncio.to_thread(sync_with_cli, str(stack.client.make_url("/")), offline_dir)
    assert "synced acme/nature/plane-1" in output and "synced acme/nature/plane-2" in output

    run = (await stack.graphql(RUN, {"r": "plane-1"}))["data"]["run"]
    assert (run["state"], run["jobType"], run["config"]) == ("FINISHED", "train", {"lr": 0.1})
    # Its times are when the server received it; when it happened on the laptop is kept beside them.
    assert at(run["startedOfflineAt"]) == recorded[0][1] and at(run["finishedOfflineAt"]) == recorded[-1][1]
    assert recorded[-1][1] < at(run["startedAt"]) < at(run["finishedAt"]) <= at(run["syncedAt"])
    assert [(m["step"], m["value"]) for m in run["metrics"]] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]

    dataset = (await stack.graphql(VERSION, {"id": seen["dataset"]}))["data"]["artifactVersion"]
    assert (dataset["id"], dataset["version"], dataset["aliases"]) == (seen["dataset"], "v0", ["raw"])
    assert at(dataset["createdAt"]) > recorded[-1][1]  # received at the sync
    assert [f["size"] for f in dataset["files"]] == [500, 500, 500]  # what was logged, not the later edit

    around = (await stack.graphql(LINEAGE, {"ref": seen["dataset"]}))["data"]["lineage"]["edges"]
    dataset_node = f"artifact:{seen['dataset']}"
    assert sorted((e["source"], e["target"], e["kind"]) for e in around) == [
        (dataset_node, "run:acme/nature/plane-1", "USED"),  # the same run logged it, then used it
        (dataset_node, "run:acme/nature/plane-2", "USED"),
        ("run:acme/nature/plane-1", dataset_node, "PRODUCED"),
    ]
    produced = (await stack.graphql(LINEAGE, {"ref": seen["model"]}))["data"]["lineage"]
    upstream = (
        await stack.graphql(
            """query($ref: String!) { lineage(ref: $ref, direction: UPSTREAM, depth: 1) { edges { source kind } } }""",
            {"ref": seen["model"]},
        )
    )["data"]["lineage"]["edges"]
    assert upstream == [{"source": "run:acme/nature/plane-1", "kind": "PRODUCED"}] and produced["edges"] == []
    model_files = (await stack.graphql(VERSION, {"id": seen["model"]}))["data"]["artifactVersion"]["files"]
    assert [(f["path"], f["ref"]) for f in model_files] == [
        ("model.json", None),
        ("tokenizer.json", (tmp_path / "tokenizer.json").as_uri()),
    ]

    (linked,) = (await stack.graphql(MODEL))["data"]["registeredModel"]["versions"]["items"]
    assert (linked["version"], linked["aliases"], linked["artifactVersion"]["id"]) == ("v0", ["staging"], seen["model"])
    assert at(linked["linkedAt"]) > recorded[-1][1]  # a link's time is the server's, never the client's

    evaluation = (await stack.graphql(RUN, {"r": "plane-2"}))["data"]["run"]
    assert evaluation["state"] == "FINISHED" and evaluation["metrics"] == [{"key": "accuracy", "step": 0, "value": 0.9}]
    audit = (await stack.graphql(AUDIT))["data"]["auditLog"]["items"]
    synced = [r for r in audit if r["action"] == "runs.offline_run_synced"]
    assert len(synced) == 2

    # The run's own commands show both times; the link and the sync record only the server's.
    def of_plane_1(details: dict) -> bool:
        return "plane-1" in (details.get("run_id"), details.get("logged_by_run")) or "registered_model" in details

    plane = sorted((r for r in audit if of_plane_1(r["details"])), key=lambda r: (at(r["occurredAt"]), r["eventId"]))
    assert [(r["action"], r["recordedOfflineAt"] and at(r["recordedOfflineAt"])) for r in plane] == [
        ("runs.run_started", recorded[0][1]),
        ("artifacts.version_logged", recorded[1][1]),
        ("artifacts.version_used", recorded[2][1]),
        *[("runs.metrics_logged", when) for _, when in recorded[3:6]],
        ("artifacts.version_logged", recorded[6][1]),
        ("registry.version_linked", None),
        ("registry.alias_added", None),
        ("runs.run_finished", recorded[8][1]),
        ("runs.offline_run_synced", None),
    ]


async def test_a_sync_cut_half_way_resumes_and_repeated_syncs_append_nothing_twice(
    stack: Stack, tmp_path: Path
) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    offline_dir = tmp_path / "modelreg-offline"
    seen = await asyncio.to_thread(train_offline, tmp_path, offline_dir)
    first, second = offline_run_folders([offline_dir])

    class CableCut(Exception):
        pass

    def cut_after_four(sent: int) -> None:
        if sent == 4:
            raise CableCut

    def sync(folder: Path, **options: object) -> object:
        transport = Transport(url)
        try:
            return sync_offline_run(folder, transport, show_progress=False, **options)  # type: ignore[arg-type]
        finally:
            transport.close()

    with pytest.raises(CableCut):
        await asyncio.to_thread(sync, first, on_sent=cut_after_four)
    half = [
        r for r in (await stack.graphql(AUDIT))["data"]["auditLog"]["items"] if not r["action"].startswith("identity.")
    ]
    assert len(half) == 4  # the test's own API key aside

    resumed = await asyncio.to_thread(sync, first)
    assert (resumed.sent, resumed.commands, resumed.finished) == (5, 9, True)
    await asyncio.to_thread(sync, second)
    complete = sorted(r["eventId"] for r in (await stack.graphql(AUDIT))["data"]["auditLog"]["items"])

    again = await asyncio.to_thread(sync, first)
    assert again.sent == 0
    for folder in (first, second):  # the sync state lost: every command is sent again, and refused as known
        (folder / "sync-state.json").unlink()
        assert (await asyncio.to_thread(sync, folder)).sent > 0
    assert sorted(r["eventId"] for r in (await stack.graphql(AUDIT))["data"]["auditLog"]["items"]) == complete

    versions = (
        await stack.graphql(
            '{ artifactVersions(entity: "acme", project: "nature", name: "nature-images") { items { id } } }'
        )
    )["data"]["artifactVersions"]["items"]
    assert versions == [{"id": seen["dataset"]}]
    assert len((await stack.graphql(MODEL))["data"]["registeredModel"]["versions"]["items"]) == 1
    run = (await stack.graphql(RUN, {"r": "plane-1"}))["data"]["run"]
    assert len(run["metrics"]) == 3


async def test_a_recorded_value_the_server_refuses_stops_the_sync_unless_left_out_and_the_run_still_ends(
    stack: Stack, tmp_path: Path
) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    def record() -> Path:
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            run.log({"loss": 0.5})
            run.summary["note"] = "weights\x00v2"  # no server to say that PostgreSQL cannot store it
            run.summary["best"] = 0.9
        (folder,) = offline_run_folders([tmp_path])
        return folder

    def record_another() -> str:
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            run.log({"loss": 0.4})
            return run.id

    folder = await asyncio.to_thread(record)
    later = await asyncio.to_thread(record_another)
    # The whole offline folder: the run the server refuses is said, and the one recorded after it synced.
    stopped = await asyncio.to_thread(CliRunner().invoke, main, ["sync", str(tmp_path), "--url", url])
    assert stopped.exit_code != 0 and "line 3 (update_run_summary) was refused" in stopped.output
    assert "U+0000" in stopped.output and "--skip-refused" in stopped.output
    assert f"synced acme/nature/{later}" in stopped.output and "1 of 2 offline runs not synced" in stopped.output
    run_id = Spool(folder).entries()[0].input["runId"]
    query = 'query($r: String!) { run(entity: "acme", project: "nature", runId: $r) { state summary } }'
    assert (await stack.graphql(query, {"r": run_id}))["data"]["run"]["state"] == "RUNNING"

    synced = await asyncio.to_thread(CliRunner().invoke, main, ["sync", str(folder), "--url", url, "--skip-refused"])
    assert synced.exit_code == 0, synced.output
    assert "2 left out, refused" in synced.output
    skipped = json.loads((folder / "sync-state.json").read_text())["skipped"]
    assert [line.split(":")[0] for line in skipped] == [
        "line 3 (update_run_summary)",
        "line 5 (finish_run's summary; the finish itself is synced)",
    ]
    run = (await stack.graphql(query, {"r": run_id}))["data"]["run"]
    assert run["state"] == "FINISHED" and run["summary"]["best"] == 0.9 and "note" not in run["summary"]


async def test_an_offline_run_given_the_id_of_a_run_that_exists_is_warned_at_init_and_told_why_at_sync(
    stack: Stack, tmp_path: Path
) -> None:
    # W&B ignores `resume` offline, with a word; here the sync refused the run with advice about rights.
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    fields = {"entity": "acme", "project": "nature", "runId": "preempted"}
    await stack.graphql("mutation($i: StartRunInput!) { startRun(input: $i) { runId } }", {"i": fields})

    def record() -> None:
        with pytest.warns(modelreg.IgnoredByModelreg, match="resume='allow' in offline mode is accepted and ignored"):
            run = modelreg.init(
                project="nature", entity="acme", id="preempted", resume="allow", mode="offline", offline_dir=tmp_path
            )
        with run:
            run.log({"loss": 0.5})

    await asyncio.to_thread(record)
    refused = await asyncio.to_thread(CliRunner().invoke, main, ["sync", str(tmp_path), "--url", url])
    assert refused.exit_code != 0
    assert "already exists" in refused.output and "cannot join one that exists" in refused.output


async def test_times_from_a_client_must_have_a_zone_and_not_be_in_the_future(stack: Stack) -> None:
    start = "mutation($i: StartRunInput!) { startRun(input: $i) { runId } }"
    fields = {"entity": "acme", "project": "nature", "runId": "clock"}
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    refused = await stack.graphql(start, {"i": {**fields, "occurredAt": future}})
    assert "in the future" in refused["errors"][0]["message"]
    naive = await stack.graphql(start, {"i": {**fields, "occurredAt": "2026-01-01T10:00:00"}})
    assert "timezone" in naive["errors"][0]["message"]
    assert (await stack.graphql(RUN, {"r": "clock"}))["data"]["run"] is None


def test_a_journal_names_a_kept_file_by_its_digest_never_by_a_path_out_of_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.blob_path("sha256:" + "ab" * 32) == tmp_path / "blobs" / ("ab" * 32)
    for edited in ("sha256:../../../etc/passwd", "sha256:/etc/passwd", "../journal.jsonl"):
        with pytest.raises(modelreg.errors.InvalidInput, match="not by sha256:<64 hex digits>"):
            spool.blob_path(edited)


async def test_a_start_applied_whose_answer_was_lost_then_recorded_offline_syncs_as_the_same_start(
    stack: Stack, tmp_path: Path
) -> None:
    # A proxy in front of the API passes the start on, then times out (504) and answers 503 from then on: the
    # server has the run; the client, told nothing, records it offline (mode="auto"). Its sync was refused for
    # ever ("run ... already exists"), and the message offered --skip-refused, which never leaves a start out.
    assert stack.client is not None
    api = stack.client
    passed_on: list[bytes] = []

    async def gateway(request: web.Request) -> web.Response:
        if passed_on:
            return web.Response(status=503, text="upstream unavailable")
        body = await request.read()
        passed_on.append(body)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with api.post(request.path, data=body, headers=headers) as answer:
            await answer.read()
        return web.Response(status=504, text="gateway timeout")

    proxy = web.Application()
    proxy.router.add_route("*", "/{tail:.*}", gateway)
    runner = web.AppRunner(proxy)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def record() -> str:
        with pytest.warns(modelreg.OfflineFallback):
            run = modelreg.init(
                project="nature", entity="acme", url=f"http://127.0.0.1:{port}", mode="auto", offline_dir=tmp_path
            )
        with run:
            run.log({"loss": 0.5})
        return run.id

    try:
        run_id = await asyncio.to_thread(record)
    finally:
        await runner.cleanup()
    assert len(passed_on) == 1 and b"startRun" in passed_on[0]
    output = await asyncio.to_thread(sync_with_cli, str(api.make_url("/")), tmp_path)
    assert f"synced acme/nature/{run_id}" in output
    synced = (await stack.graphql(RUN, {"r": run_id}))["data"]["run"]
    assert synced["state"] == "FINISHED" and [m["value"] for m in synced["metrics"]] == [0.5]


def test_with_no_server_mode_auto_records_offline_and_says_so(tmp_path: Path) -> None:
    with pytest.warns(modelreg.OfflineFallback, match="modelreg sync"):
        run = modelreg.init(project="nature", entity="acme", url=closed_port_url(), mode="auto", offline_dir=tmp_path)
    with run:
        assert isinstance(run, OfflineRun)
        run.log({"loss": 1.0})
    (folder,) = offline_run_folders([tmp_path])
    assert [e.kind for e in Spool(folder).entries()] == ["start_run", "log_metrics", "finish_run"]


def test_an_offline_run_keeps_its_files_and_its_record_under_dir_as_an_online_run_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # dir= and WANDB_DIR were ignored offline: run.dir and the record went under the working directory.
    monkeypatch.delenv("MODELREG_OFFLINE_DIR", raising=False)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    scratch = tmp_path / "scratch"
    with modelreg.init(project="nature", entity="acme", mode="offline", dir=str(scratch)) as run:
        assert Path(run.dir) == scratch / "modelreg" / f"run-{run.id}" / "files"
        assert run.spool.folder.parent == scratch / "modelreg-offline"  # W&B's <dir>/wandb/offline-run-*
    assert f"modelreg sync {run.spool.folder}\n" in capsys.readouterr().err
    with pytest.warns(modelreg.OfflineFallback, match=f"modelreg sync {scratch / 'modelreg-offline'}/offline-run-"):
        fallen_back = modelreg.init(project="nature", entity="acme", url=closed_port_url(), mode="auto", dir=scratch)
    with fallen_back:
        assert Path(fallen_back.dir).is_relative_to(scratch) and fallen_back.spool.folder.is_relative_to(scratch)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "from-env"))
    with modelreg.init(project="nature", entity="acme", mode="offline") as run:
        assert run.spool.folder.is_relative_to(tmp_path / "from-env") and run.dir.startswith(str(tmp_path / "from-env"))
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path / "spool") as run:
        assert run.spool.folder.parent == tmp_path / "spool"  # the offline folder, when given, still wins
    assert not list((tmp_path / "work").iterdir())
    assert len(offline_run_folders([scratch / "modelreg-offline"])) == 2


def test_offline_use_artifact_needs_an_id_or_an_artifact_of_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELREG_MODE", "offline")
    monkeypatch.setenv("MODELREG_OFFLINE_DIR", str(tmp_path))
    with modelreg.init(project="nature", entity="acme") as run:
        with pytest.raises(modelreg.ModelregError, match="offline"):
            run.use_artifact("someone-elses-data:latest")
