"""compose.yaml cannot run here (no Docker engine), so its structure is checked to keep it from rotting."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from modelreg.services.cli import main


def test_compose_runs_kafka_postgres_and_one_container_per_modelreg_process(repo_root: Path) -> None:
    compose = yaml.safe_load((repo_root / "compose.yaml").read_text())
    services = compose["services"]

    assert services["kafka"]["image"].startswith("apache/kafka:4")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"].startswith("postgres:")
    assert "8080:8080" in services["api"]["ports"]

    agent = services["agent"]["command"]
    assert agent[0] in main.commands and services["agent"]["environment"]["MODELREG_URL"] == "http://api:8080"
    for name in ("api", "projector", "triggers"):
        service = services[name]
        assert service["build"] == "."
        env = service["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert {"kafka", "postgres"} <= set(service["depends_on"])
        command = service["command"][0]
        assert command in main.commands, f"compose runs `modelreg {command}`, which the CLI does not have"
        assert CliRunner().invoke(main, [command, "--help"]).exit_code == 0


def test_compose_names_its_projector_so_that_a_restart_takes_its_partitions_back_at_once(repo_root: Path) -> None:
    command = yaml.safe_load((repo_root / "compose.yaml").read_text())["services"]["projector"]["command"]
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "--instance-id" in result.output
    assert command[command.index("--instance-id") + 1] == "projector-1"


def test_the_image_installs_the_server_extra(repo_root: Path) -> None:
    dockerfile = (repo_root / "Dockerfile").read_text()
    assert '".[server]"' in dockerfile and 'ENTRYPOINT ["modelreg"]' in dockerfile


def test_compose_keeps_artifact_files_in_its_object_storage_service(repo_root: Path) -> None:
    from modelreg.services.infra.blob_store_url import blob_store_at
    from modelreg.services.infra.object_store import ObjectBlobStore

    services = yaml.safe_load((repo_root / "compose.yaml").read_text())["services"]
    objects = services["objects"]
    assert "seaweedfs" in objects["image"] and "-s3" in objects["command"]
    assert "-master.telemetry=false" in objects["command"]  # it would report to its vendor otherwise
    api = services["api"]
    store = blob_store_at(api["command"][api["command"].index("--blob-store") + 1], Path("."))
    assert isinstance(store, ObjectBlobStore) and store.location.endpoint == "http://objects:8333"
    assert api["environment"]["AWS_ACCESS_KEY_ID"] == objects["environment"]["AWS_ACCESS_KEY_ID"]
    assert "objects" in api["depends_on"]
