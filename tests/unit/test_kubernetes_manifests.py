"""deploy/k8s/ cannot be applied here (no cluster): kubeconform checks every manifest against Kubernetes'
own schemas (strict: no unknown fields), and the manifests are checked to run what the CLI has."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from support.kubeconform import kubeconform, offline_schemas

from modelreg.services.cli import main

KINDS = [
    "namespace-v1",
    "configmap-v1",
    "service-v1",
    "deployment-apps-v1",
    "statefulset-apps-v1",
    "poddisruptionbudget-policy-v1",
]


def test_every_manifest_is_valid_kubernetes(repo_root: Path, tmp_path: Path) -> None:
    schemas = offline_schemas(tmp_path / "schemas", KINDS)
    result = subprocess.run(
        [
            str(kubeconform()),
            "-strict",
            "-summary",
            "-schema-location",
            f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            str(repo_root / "deploy" / "k8s"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout


def test_a_broken_manifest_is_caught(tmp_path: Path) -> None:
    schemas = offline_schemas(tmp_path / "schemas", KINDS)
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two, selector: {}}\n"
    )
    location = f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"
    result = subprocess.run(
        [str(kubeconform()), "-strict", "-schema-location", location, str(tmp_path / "bad.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "replicas" in result.stdout


def test_each_projector_pod_is_named_in_the_group_by_its_stable_pod_name(repo_root: Path) -> None:
    projector = yaml.safe_load((repo_root / "deploy" / "k8s" / "projector.yaml").read_text())
    assert projector["kind"] == "StatefulSet"  # pod names survive restarts and rolling updates
    env = {e["name"]: e for e in projector["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELREG_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    option = next(p for p in main.commands["projector"].params if p.name == "instance_id")
    assert option.envvar == "MODELREG_INSTANCE_ID"


def test_the_deployments_run_commands_of_the_cli_with_liveness_probes(repo_root: Path) -> None:
    documents = [
        d for f in sorted((repo_root / "deploy" / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
    ]
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] in ("Deployment", "StatefulSet")}
    assert set(deployments) == {"modelreg-api", "modelreg-projector", "modelreg-triggers", "modelreg-agent"}
    for deployment in deployments.values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][0] in main.commands
        assert deployment["spec"]["replicas"] >= 2  # every kind runs more than once (docs/scaling.md says why)
    api = deployments["modelreg-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for name in ("modelreg-projector", "modelreg-triggers"):  # no HTTP of their own: a port for the probe
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        (port,) = container["ports"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port["name"]}
        assert int(env["MODELREG_PROBE_PORT"]) == port["containerPort"]
    for process in ("projector", "triggers"):
        option = next(p for p in main.commands[process].params if p.name == "probe_port")
        assert option.envvar == "MODELREG_PROBE_PORT"
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    assert config["MODELREG_BLOB_STORE"].startswith("s3://")
