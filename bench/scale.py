"""Past one machine, measured: artifact files through presigned URLs against a local S3 server (SeaweedFS),
the API's CPU while they move, mutation throughput with two API processes over one, and acknowledged
actions lost when an API and a projector are killed.

    python bench/scale.py [--file-mb 1024] [--seconds 20] [--actions 40]

Kafka and PostgreSQL come from KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL or are started here; the S3 server is
started here. The last line is `key=value` pairs:
upload_mb_per_s_s3 download_mb_per_s_s3 api_cpu_ms_per_gb two_api_throughput_ratio failover_acked_lost, then
the baseline measured in the same run: the same file through an API that keeps files in a folder
(upload_mb_per_s_folder download_mb_per_s_folder api_cpu_ms_per_gb_folder).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from infrastructure import infrastructure  # noqa: E402
from support.object_storage import bucket_made  # noqa: E402
from support.replicas import Installation, ModelregProcess, free_port, lost_or_doubled, spread_work  # noqa: E402

from modelreg.services.infra.local_object_store import LocalObjectStore  # noqa: E402
from modelreg.transport import Transport  # noqa: E402

START_RUN = "mutation($i: StartRunInput!) { startRun(input: $i) { runId } }"
MB = 1024 * 1024


def big_file(path: Path, size_mb: int) -> str:
    """A file of `size_mb` MiB of incompressible bytes; returns its digest."""
    hasher = hashlib.sha256()
    block = os.urandom(MB)
    with path.open("wb") as f:
        for i in range(size_mb):
            chunk = hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:]  # each MiB differs
            hasher.update(chunk)
            f.write(chunk)
    return "sha256:" + hasher.hexdigest()


def mutations_per_second(installation: Installation, apis: int, seconds: float, clients: int = 8) -> float:
    """startRun mutations (each waits for its read models) by `clients` threads spread over the first `apis`."""
    done = [0] * clients
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        api = installation.apis[n % apis]
        transport = Transport(api.url, installation.admin_key)
        try:
            while time.monotonic() < deadline:
                fields = {"entity": "acme", "project": "scale", "runId": uuid.uuid4().hex[:12]}
                transport.graphql(START_RUN, {"i": fields})
                done[n] += 1
        finally:
            transport.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file-mb", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--actions", type=int, default=40)
    args = parser.parse_args()

    with infrastructure() as infra, tempfile.TemporaryDirectory(prefix="modelreg-scale-") as tmp_name:
        tmp = Path(tmp_name)
        with LocalObjectStore(tmp / "objects") as objects:
            os.environ.update(objects.credentials)
            asyncio.run(bucket_made(objects.endpoint, "bench"))
            settings = asyncio.run(infra.fresh_settings())
            installation = Installation(
                settings.database_url,
                infra.kafka,
                settings.topic,
                f"s3://bench/blobs?endpoint={objects.endpoint}",
                tmp,
            )
            (tmp / "files").mkdir()
            try:
                installation.start(apis=2, projectors=2)
                print(f"writing a {args.file_mb} MiB file ...", file=sys.stderr)
                path = tmp / "model.bin"
                digest = big_file(path, args.file_mb)
                api = installation.apis[0]
                transport = Transport(api.url, installation.admin_key, timeout_s=600)
                cpu_before = api.cpu_seconds()
                started = time.monotonic()
                transport.upload(path, digest, lambda n: None)
                upload_s = time.monotonic() - started
                started = time.monotonic()
                transport.download(digest, tmp / "downloaded.bin", lambda n: None)
                download_s = time.monotonic() - started
                api_cpu_s = api.cpu_seconds() - cpu_before
                transport.close()
                (tmp / "downloaded.bin").unlink()
                # The baseline, in the same run: the same file through an API that keeps files in a folder.
                port = free_port()
                folder_api = ModelregProcess(
                    "api-folder",
                    ["api", "--port", str(port), "--blob-dir", str(tmp / "blobs")],
                    {**installation.env(), "MODELREG_BLOB_STORE": ""},
                    tmp,
                    port=port,
                )
                folder_api.start().wait_ready()
                baseline = Transport(folder_api.url, installation.admin_key, timeout_s=600)
                cpu_before = folder_api.cpu_seconds()
                started = time.monotonic()
                baseline.upload(path, digest, lambda n: None)
                folder_upload_s = time.monotonic() - started
                started = time.monotonic()
                baseline.download(digest, tmp / "downloaded.bin", lambda n: None)
                folder_download_s = time.monotonic() - started
                folder_cpu_s = folder_api.cpu_seconds() - cpu_before
                baseline.close()
                folder_api.stop()
                (tmp / "downloaded.bin").unlink()
                path.unlink()
                print(
                    f"baseline, folder store via the API: up {folder_upload_s:.1f} s, down {folder_download_s:.1f} s; "
                    f"API CPU {folder_cpu_s * 1000:.0f} ms",
                    file=sys.stderr,
                )
                moved_gb = 2 * args.file_mb / 1024  # up and down
                print(
                    f"{args.file_mb} MiB: up {upload_s:.1f} s, down {download_s:.1f} s (verified); "
                    f"API CPU {api_cpu_s * 1000:.0f} ms",
                    file=sys.stderr,
                )

                one = mutations_per_second(installation, 1, args.seconds)
                two = mutations_per_second(installation, 2, args.seconds)
                print(f"mutations/s: one API {one:.1f}, two APIs {two:.1f}", file=sys.stderr)

                results: dict[str, object] = {}

                def work() -> None:
                    results["acked"], results["failed"] = spread_work(installation, tmp / "files", args.actions)

                worker = threading.Thread(target=work)
                worker.start()
                time.sleep(3)
                installation.apis[1].kill()
                installation.projectors[0].kill()
                time.sleep(2)
                installation.apis[1].start()
                installation.projectors[0].start()
                worker.join()
                acked = results["acked"]
                assert isinstance(acked, list)
                deadline = time.monotonic() + 120
                problems = lost_or_doubled(installation, acked, tmp)
                while problems and time.monotonic() < deadline:
                    time.sleep(1)
                    problems = lost_or_doubled(installation, acked, tmp)
                print(
                    f"failover: {len(acked)} acknowledged, {results['failed']} not; problems: {problems[:3]}",
                    file=sys.stderr,
                )
            finally:
                installation.stop()

    print(
        f"upload_mb_per_s_s3={args.file_mb / upload_s:.1f} download_mb_per_s_s3={args.file_mb / download_s:.1f} "
        f"api_cpu_ms_per_gb={api_cpu_s * 1000 / moved_gb:.1f} two_api_throughput_ratio={two / one:.2f} "
        f"failover_acked_lost={len(problems)} upload_mb_per_s_folder={args.file_mb / folder_upload_s:.1f} "
        f"download_mb_per_s_folder={args.file_mb / folder_download_s:.1f} "
        f"api_cpu_ms_per_gb_folder={folder_cpu_s * 1000 / moved_gb:.1f}"
    )


if __name__ == "__main__":
    main()
