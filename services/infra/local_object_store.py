"""A real S3-compatible server for development, tests and CI: SeaweedFS, built once from the Go module proxy.

SeaweedFS (Apache-2.0) speaks S3 with SigV4, presigned URLs, multipart uploads and `x-amz-checksum-sha256`
verification, which is what the object-store backend relies on. Its module's go.mod has a replace
directive, so `go install module@version` refuses it: the module is downloaded (`go mod download`) and
built from its own folder instead. The binary is cached per version (like Kafka's jars), so only the first
run on a machine needs Go and the proxy (about 5 minutes on 2 cores).

`LocalObjectStore(folder).start()` runs master, volume, filer and S3 gateway in one process on free loopback
ports, with the static credentials below (the environment's AWS_* variables, which SeaweedFS reads as its
admin identity), telemetry off.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)

SEAWEEDFS_MODULE = "github.com/seaweedfs/seaweedfs"
SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
ACCESS_KEY = "modelreg-local"
SECRET_KEY = "modelreg-local-secret"


class LocalObjectStoreError(RuntimeError):
    pass


def default_cache_dir() -> Path:
    root = os.environ.get("MODELREG_OBJECT_STORE_CACHE", platformdirs.user_cache_dir("modelreg"))
    return Path(root) / f"seaweedfs-{SEAWEEDFS_VERSION}"


def build_seaweedfs(cache_dir: Path | None = None) -> Path:
    """The `weed` binary, built with Go from the module proxy on first use and cached."""
    cache_dir = cache_dir or default_cache_dir()
    binary = cache_dir / "weed"
    if binary.exists():
        return binary
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise LocalObjectStoreError("Go is not on PATH: it builds the local S3 server (SeaweedFS) once")
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("building SeaweedFS %s with Go into %s (once)", SEAWEEDFS_VERSION, binary)
    env = {**os.environ, "GOFLAGS": "-buildvcs=false"}
    found = subprocess.run(
        [go, "mod", "download", "-json", f"{SEAWEEDFS_MODULE}@{SEAWEEDFS_VERSION}"],
        capture_output=True,
        text=True,
        env=env,
    )
    if found.returncode != 0:
        raise LocalObjectStoreError(f"go could not download SeaweedFS:\n{found.stdout[-2000:]}{found.stderr[-2000:]}")
    source = Path(json.loads(found.stdout)["Dir"])
    partial = cache_dir / "weed.partial"
    built = subprocess.run(
        [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "./weed"],
        cwd=source,
        capture_output=True,
        text=True,
        env=env,
    )
    if built.returncode != 0:
        raise LocalObjectStoreError(f"go could not build SeaweedFS:\n{built.stderr[-3000:]}")
    partial.replace(binary)  # only a complete binary is ever at its cached name
    return binary


def _free_ports(n: int) -> list[int]:
    """n free loopback ports whose +10000 (SeaweedFS's gRPC convention) is not used either."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55535 and port not in ports:
            ports.append(port)
    return ports


class LocalObjectStore:
    """One SeaweedFS server with its S3 gateway, data in `folder`. A context manager."""

    def __init__(self, folder: Path, binary: Path | None = None) -> None:
        self.folder = Path(folder)
        self.binary = binary
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        """The environment a client of this store needs (botocore reads these)."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"}

    def start(self, timeout_s: float = 90.0) -> LocalObjectStore:
        binary = self.binary or build_seaweedfs()
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
        self.port = s3
        args = [
            str(binary),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=1024",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.max=0",
            # SeaweedFS turns every volume read-only (a PUT answers 500) below 1% of the disk free by default,
            # gigabytes on a large disk: a development store keeps writing until the disk is really full.
            "-volume.minFreeSpace=256MiB",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        out = (self.folder / "seaweedfs.log").open("ab")
        self._process = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
            env={**os.environ, **self.credentials},
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LocalObjectStoreError(f"SeaweedFS exited; see {self.folder / 'seaweedfs.log'}")
            if self._ready():
                return self
            time.sleep(0.3)
        self.stop()
        raise LocalObjectStoreError(f"SeaweedFS's S3 gateway did not answer within {timeout_s} s")

    def _ready(self) -> bool:
        """The gateway answers and the volume server has joined (a bucket can be written)."""
        try:
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def __enter__(self) -> LocalObjectStore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
