"""A Launch job as the Kubernetes Job manifest a `kubernetes` queue's agent submits.

The queue's resource_config says where and with what: namespace, image (the job's own image wins),
cpu, memory, gpu, service_account. Git jobs run in that image with an init step that checks out the code.
The attempt's own API key goes in a Secret of its own, submitted before the Job: never the agent's key.
"""

from __future__ import annotations

from typing import Any

from modelreg.services.agent.job_environment import job_environment

NOT_RECORDED = "<the attempt's API key: submitted, never recorded>"


def _name(job: dict[str, Any]) -> str:
    """The whole job id: its first digits are a uuid7's timestamp, which jobs enqueued within a minute share, and
    two jobs' Secrets of one name would hand one job the other's key. Under 63 characters, as a Job's name must be."""
    return f"modelreg-{job['job_id']}-{job['attempt']}"


def _labels(job: dict[str, Any]) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": "modelreg", "modelreg/job-id": str(job["job_id"])}


def attempt_key_secret(job: dict[str, Any], resource_config: dict[str, Any], api_key: str) -> dict[str, Any]:
    """The Secret the Job reads MODELREG_API_KEY from, created (never applied over another of its name) before the
    Job; immutable. The key is revoked when the attempt ends, so a Secret left behind holds nothing usable. It holds
    the run's uncommitted diff too, which its checkout applies: up to 512 KiB, where one environment variable (as it
    was passed) takes 128 KiB on Linux, and `sh` refused a larger one."""
    data = {"api-key": api_key}
    source = job.get("source") or {}
    if source.get("kind") == "git" and source.get("diff_patch"):
        data["diff-patch"] = source["diff_patch"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"{_name(job)}-key",
            "namespace": resource_config.get("namespace", "default"),
            "labels": _labels(job),
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": data,
    }


def job_manifest(job: dict[str, Any], resource_config: dict[str, Any], *, server_url: str) -> dict[str, Any]:
    source = job["source"]
    image = source.get("image") or resource_config.get("image") or "python:3.11-slim"
    limits = {
        k: str(v) for k, v in (("cpu", resource_config.get("cpu")), ("memory", resource_config.get("memory"))) if v
    }
    if resource_config.get("gpu"):
        limits["nvidia.com/gpu"] = str(resource_config["gpu"])
    env = [
        {"name": "MODELREG_URL", "value": server_url},
        {"name": "MODELREG_API_KEY", "valueFrom": {"secretKeyRef": {"name": f"{_name(job)}-key", "key": "api-key"}}},
        *({"name": name, "value": value} for name, value in job_environment(job, job.get("attempt", 1)).items()),
    ]
    container: dict[str, Any] = {
        "name": "job",
        "image": image,
        "command": list(source["entry_point"]),
        "env": env,
        "resources": {"limits": limits, "requests": limits},
    }
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if source["kind"] == "git":
        # The remote and commit as variables, quoted: a remote is never read by the shell, nor by git as an option.
        checkout = 'git clone -- "$GIT_REMOTE" /code && cd /code && git checkout "$GIT_COMMIT"'
        mounts: list[dict[str, Any]] = [{"name": "code", "mountPath": "/code"}]
        pod["volumes"] = [{"name": "code", "emptyDir": {}}]
        if source.get("diff_patch"):
            checkout += " && git apply /patch/diff"
            mounts.append({"name": "patch", "mountPath": "/patch", "readOnly": True})
            patch = {"secretName": f"{_name(job)}-key", "items": [{"key": "diff-patch", "path": "diff"}]}
            pod["volumes"].append({"name": "patch", "secret": patch})
        pod["initContainers"] = [
            {
                "name": "checkout",
                "image": "alpine/git",
                "command": ["sh", "-c", checkout],
                "env": [
                    {"name": "GIT_REMOTE", "value": source["git_remote"]},
                    {"name": "GIT_COMMIT", "value": source.get("git_commit") or "HEAD"},
                ],
                "volumeMounts": mounts,
            }
        ]
        container["workingDir"] = "/code"
        container["volumeMounts"] = [{"name": "code", "mountPath": "/code"}]
    if resource_config.get("service_account"):
        pod["serviceAccountName"] = resource_config["service_account"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": _name(job),
            "namespace": resource_config.get("namespace", "default"),
            "labels": _labels(job),
        },
        "spec": {
            "backoffLimit": 0,
            # The job's time limit, which the cluster enforces as the agent does for its own processes.
            **({"activeDeadlineSeconds": job["timeLimitS"]} if job.get("timeLimitS") else {}),
            "template": {"metadata": {"labels": {"modelreg/job-id": str(job["job_id"])}}, "spec": pod},
        },
    }
