"""What an agent would submit where it cannot run a job itself: a Kubernetes Job manifest, a Docker check."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest
from uuid_utils.compat import uuid7

from modelreg.services.agent.agent import docker_answers, docker_argv
from modelreg.services.agent.job_environment import job_environment
from modelreg.services.agent.kubernetes_jobs import attempt_key_secret, job_manifest
from modelreg.services.automations.templates import render


def test_a_git_job_becomes_a_kubernetes_job_that_checks_out_the_commit_and_applies_the_diff() -> None:
    job_id = uuid4()
    job = {
        "job_id": job_id,
        "attempt": 2,
        "entity": "acme",
        "config": {"lr": 0.01, "epochs": 3},
        "overrides": {"lr": 0.01},
        "source": {
            "kind": "git",
            "git_remote": "https://git.example.com/nature.git",
            "git_commit": "abc1234",
            "diff_patch": "--- a/train.py\n+++ b/train.py\n",
            "entry_point": ["python", "train.py"],
        },
    }
    manifest = job_manifest(
        job,
        {"namespace": "ml", "image": "python:3.11", "cpu": 4, "memory": "8Gi", "gpu": 1},
        server_url="http://modelreg:8080",
    )

    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert manifest["kind"] == "Job" and manifest["metadata"]["namespace"] == "ml"
    assert manifest["metadata"]["labels"]["modelreg/job-id"] == str(job_id) and manifest["spec"]["backoffLimit"] == 0
    assert container["command"] == ["python", "train.py"] and container["workingDir"] == "/code"
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"}
    assert env["MODELREG_CONFIG_OVERRIDES"] == '{"epochs": 3, "lr": 0.01}' and env["MODELREG_LAUNCH_JOB_ID"] == str(
        job_id
    )
    (checkout,) = pod["initContainers"]
    assert {e["name"]: e["value"] for e in checkout["env"]} == {
        "GIT_REMOTE": "https://git.example.com/nature.git",
        "GIT_COMMIT": "abc1234",
    }
    assert checkout["command"][2].endswith('git checkout "$GIT_COMMIT" && git apply /patch/diff')
    # The diff from the attempt's Secret, as a file: as a variable, one over 128 KiB failed the checkout.
    (patch,) = [v["secret"] for v in pod["volumes"] if v["name"] == "patch"]
    assert patch == {"secretName": f"modelreg-{job_id}-2-key", "items": [{"key": "diff-patch", "path": "diff"}]}
    # The attempt's own key, from a Secret of its own that the agent submits first; never the agent's key.
    (key_from,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == "MODELREG_API_KEY"]
    secret = attempt_key_secret(job, {"namespace": "ml"}, "mr_attempt2key_x")
    assert key_from == {"name": secret["metadata"]["name"], "key": "api-key"}
    assert secret["metadata"]["namespace"] == "ml"
    assert secret["stringData"] == {"api-key": "mr_attempt2key_x", "diff-patch": "--- a/train.py\n+++ b/train.py\n"}
    assert str(job_id) in secret["metadata"]["name"] and len(manifest["metadata"]["name"]) <= 63


def test_two_jobs_enqueued_in_the_same_minute_never_share_a_secret() -> None:
    """uuid7 ids of one minute share their first digits: named by those, one job's pod would read the other's key."""
    first, second = ({"job_id": uuid7(), "attempt": 1} for _ in range(2))
    assert str(first["job_id"])[:8] == str(second["job_id"])[:8]
    names = {attempt_key_secret(job, {}, "mr_x")["metadata"]["name"] for job in (first, second)}
    assert len(names) == 2


IMAGE_JOB = {
    "attempt": 1,
    "entity": "acme",
    "config": {},
    "overrides": {},
    "source": {"kind": "image", "image": "ghcr.io/acme/train:1.2", "entry_point": ["train"]},
}


def test_an_image_job_runs_its_own_image() -> None:
    manifest = job_manifest({**IMAGE_JOB, "job_id": uuid4()}, {}, server_url="http://modelreg:8080")
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/train:1.2"
    assert "initContainers" not in manifest["spec"]["template"]["spec"]
    assert "activeDeadlineSeconds" not in manifest["spec"]


def test_a_jobs_time_limit_is_its_kubernetes_jobs_deadline() -> None:
    job = {**IMAGE_JOB, "job_id": uuid4(), "timeLimitS": 7200}
    assert job_manifest(job, {}, server_url="http://modelreg:8080")["spec"]["activeDeadlineSeconds"] == 7200


def test_where_no_docker_engine_answers_the_agent_says_so() -> None:
    why = docker_answers()
    assert why is None or "docker" in why.lower()  # this machine has the client but no engine: a reason, not a crash


def test_templates_fill_strings_and_keep_the_type_of_a_whole_variable() -> None:
    variables = {"artifact_ref": "acme/nature/fresh-data:v3", "accuracy": 0.93}
    template = {
        "dataset": "${artifact_ref}",
        "note": "data ${artifact_ref} at ${accuracy}",
        "score": "${accuracy}",
        "keep": "${unknown}",
        "n": 1,
    }
    assert render(template, variables) == {
        "dataset": "acme/nature/fresh-data:v3",
        "note": "data acme/nature/fresh-data:v3 at 0.93",
        "score": 0.93,
        "keep": "${unknown}",
        "n": 1,
    }


def test_a_docker_queue_runs_the_checked_out_code_in_the_queues_image_with_the_config_injected() -> None:
    from pathlib import Path

    from modelreg.services.agent.agent import docker_argv

    source = {"kind": "git", "git_remote": "r", "entry_point": ["python", "train.py"]}
    argv = docker_argv(
        source,
        {"image": "acme/train-base:3", "gpus": "all"},
        Path("/tmp/job"),
        {"MODELREG_CONFIG_OVERRIDES": '{"lr": 0.01}'},
    )
    # The value reaches the container from docker's environment: on the command line, `ps` would show it.
    assert argv[:3] == ["docker", "run", "--rm"] and argv[argv.index("-e") + 1] == "MODELREG_CONFIG_OVERRIDES"
    assert not any("0.01" in part for part in argv)
    assert argv[argv.index("-v") + 1] == "/tmp/job:/code" and argv[-3:] == ["acme/train-base:3", "python", "train.py"]
    assert argv[argv.index("--gpus") + 1] == "all"


def test_a_job_cannot_pass_options_to_docker_as_its_image() -> None:
    from pathlib import Path

    from modelreg.services.agent.agent import docker_argv
    from modelreg.services.agent.job_workspace import WorkspaceError

    escape = {"kind": "image", "image": "--privileged", "entry_point": ["-v", "/:/host", "alpine", "chroot", "/host"]}
    with pytest.raises(WorkspaceError, match="'--privileged' is not an image reference"):
        docker_argv(escape, {}, Path("/tmp/job"), {})
    pinned = {"kind": "image", "image": "ghcr.io/acme/eval@sha256:" + "a" * 64, "entry_point": ["python", "x.py"]}
    assert docker_argv(pinned, {}, Path("/tmp/job"), {})[-3] == pinned["image"]


def test_a_job_inherits_the_agents_devices_and_none_of_its_credentials() -> None:
    from modelreg.services.agent.job_environment import passed_on

    machine = {
        "PATH": "/usr/bin",
        "HOME": "/home/agent",
        "LC_ALL": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "1",  # the agent was pinned to a GPU: its jobs run there, not on every GPU
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
    }
    agent = {**machine, "AWS_SECRET_ACCESS_KEY": "agent-host-secret", "MODELREG_API_KEY": "mr_agent", "HF_TOKEN": "x"}
    assert passed_on(agent) == machine
    assert passed_on(agent, ["HF_TOKEN"])["HF_TOKEN"] == "x"  # `--job-env HF_TOKEN`: the operator's choice


def test_a_config_too_large_for_a_variable_reaches_the_job_in_a_file(tmp_path: Path) -> None:
    config = {"vocabulary": [f"token-{n}" for n in range(30_000)], "lr": 0.1}  # about 400 KB as JSON
    job = {"id": str(uuid4()), "entity": "acme", "project": "nature", "config": config, "overrides": {"lr": 0.1}}
    with pytest.raises(OSError) as refused:  # why: Linux takes no variable over 128 KiB
        subprocess.run([sys.executable, "-c", "pass"], env={"MODELREG_CONFIG_OVERRIDES": json.dumps(config)})
    assert refused.value.errno == errno.E2BIG

    env = job_environment(job, 1, files=tmp_path)
    assert "MODELREG_CONFIG_OVERRIDES" not in env and env["MODELREG_LAUNCH_OVERRIDES"] == '{"lr": 0.1}'
    read = "import json; from modelreg.environment import launch_value as v; print(json.dumps(v(%r)))"
    seen = subprocess.run(
        [sys.executable, "-c", read % "MODELREG_CONFIG_OVERRIDES"], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(seen.stdout) == config

    source = {"kind": "image", "image": "python:3.12", "entry_point": ["python", "x.py"]}
    argv = docker_argv(source, {}, tmp_path / "code", env, tmp_path)
    assert argv[argv.index(f"{tmp_path}:{tmp_path}:ro") - 1] == "-v"
    assert job_environment(job, 1)["MODELREG_CONFIG_OVERRIDES"] == json.dumps(config, sort_keys=True)  # Kubernetes'
