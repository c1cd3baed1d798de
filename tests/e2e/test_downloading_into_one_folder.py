"""Downloads that meet in one folder: every rank of a distributed job fetching the checkpoint, or a version whose
file names look like each other's temporary names. Each download writes under a name of its own and renames its
checked bytes into place, so whoever reads the file reads a whole, checked file."""

from __future__ import annotations

import asyncio
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support.stack import Stack

import modelreg

CHECKPOINT = os.urandom(24 * 1024 * 1024)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log_version(url: str, folder: Path, files: dict[str, bytes]) -> str:
    with modelreg.init(project="nature", entity="acme", url=url) as run:
        artifact = modelreg.Artifact("ckpt", "model")
        for name, data in files.items():
            (folder / name).write_bytes(data)
            artifact.add_file(str(folder / name), name=name)
        return run.log_artifact(artifact).version


async def test_every_rank_downloading_one_checkpoint_into_one_folder_gets_it_whole(
    stack: Stack, tmp_path: Path
) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    version = await asyncio.to_thread(log_version, url, tmp_path, {"model.pt": CHECKPOINT})
    shared = tmp_path / "shared"

    def rank(_: int) -> str:
        folder = modelreg.Api(url).artifact(f"acme/nature/ckpt:{version}").download(shared)
        return sha256((Path(folder) / "model.pt").read_bytes())  # read at once, as torch.load would

    with ThreadPoolExecutor(4) as ranks:
        read = await asyncio.to_thread(lambda: list(ranks.map(rank, range(4))))
    assert read == [sha256(CHECKPOINT)] * 4
    assert sorted(p.name for p in shared.iterdir()) == ["model.pt"]  # no partial file left


async def test_a_file_named_like_another_files_partial_download_keeps_its_own_bytes(
    stack: Stack, tmp_path: Path
) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    small = b"27 bytes of another file..."
    version = await asyncio.to_thread(log_version, url, tmp_path, {"w": CHECKPOINT, "w.part": small})

    def download() -> Path:
        return Path(modelreg.Api(url).artifact(f"acme/nature/ckpt:{version}").download(tmp_path / "copy"))

    folder = await asyncio.to_thread(download)
    assert sha256((folder / "w").read_bytes()) == sha256(CHECKPOINT)
    assert (folder / "w.part").read_bytes() == small
