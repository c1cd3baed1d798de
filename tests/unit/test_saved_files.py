"""What `save()` keeps of a run's files: those its glob matches when it is called."""

from __future__ import annotations

import warnings
from pathlib import Path

import modelreg


def test_saving_a_glob_that_matches_no_file_yet_says_once_to_save_again_once_the_files_exist(tmp_path: Path) -> None:
    # W&B's "live" policy watches the glob for files to come: here nothing was kept, and nothing said so.
    checkpoints = tmp_path / "ckpts"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            for _epoch in range(2):
                assert run.save(str(checkpoints / "*.pt")) == []
            checkpoints.mkdir()
            (checkpoints / "epoch0.pt").write_bytes(b"0")
            assert run.save(str(checkpoints / "*.pt")) == [str(checkpoints / "epoch0.pt")]
    said = [str(w.message) for w in caught if "matches no file yet" in str(w.message)]
    assert len(said) == 1 and "call save again once the files exist" in said[0]
