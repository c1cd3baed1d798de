"""A checkpoint saved again while it is logged is logged as one save: read again once it holds still, refused
with what to do if it never does."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from modelreg.artifact import Artifact
from modelreg.errors import InvalidInput
from modelreg.steady_files import READS, read_steadily


def test_a_file_saved_again_while_read_is_read_again_whole(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt.pt"
    checkpoint.write_bytes(b"A" * 4096)  # step 1000
    reads: list[bytes] = []

    def read(size: int) -> str:
        with checkpoint.open("rb", buffering=0) as f:
            head = f.read(1024)
            if not reads:
                checkpoint.write_bytes(b"B" * 4096)  # step 2000 saved, same size, while the first read goes on
            data = head + f.read()
        reads.append(data)
        assert len(data) == size
        return hashlib.sha256(data).hexdigest()

    digest = read_steadily(checkpoint, read)
    assert reads[0] == b"A" * 1024 + b"B" * 3072  # torn: what was logged before
    assert digest == hashlib.sha256(b"B" * 4096).hexdigest() and len(reads) == 2


def test_a_file_that_never_holds_still_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("epoch 0\n")

    def read(size: int) -> None:
        with log.open("a") as f:
            f.write("epoch n\n")  # written to all the time

    with pytest.raises(InvalidInput, match=f"changed while it was read, {READS} times.*log it once it is written"):
        read_steadily(log, read)


def test_a_log_still_written_to_is_saved_as_its_lines_so_far(tmp_path: Path) -> None:
    # run.save("train.log") while the script logs a line a millisecond: read again and again, it was refused,
    # and finish() lost every file the run saved with it.
    log = tmp_path / "train.log"
    log.write_text("epoch 0\n" * 1000)
    written = threading.Event()
    stop = threading.Event()

    def logging_on() -> None:
        with log.open("a") as f:
            while not stop.is_set():
                f.write("epoch n\n")
                f.flush()
                written.set()

    writer = threading.Thread(target=logging_on)
    writer.start()
    try:
        written.wait()
        artifact = Artifact("run-files", "run_files")
        artifact.add_snapshot(log, name="train.log")
        (snapshot,) = artifact.local_files().values()
        assert read_steadily(snapshot, lambda size: size) == snapshot.stat().st_size  # holds still: it is a copy
    finally:
        stop.set()
        writer.join()
    assert log.read_bytes().startswith(snapshot.read_bytes()) and snapshot.read_bytes().endswith(b"\n")
