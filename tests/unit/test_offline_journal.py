"""An offline run's journal survives what a disk and a killed process do to it: a write the disk cut short
leaves nothing behind for the next record to be glued to, and a journal damaged in its middle still gives up
every whole record it holds, saying what was lost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelreg.spool import JOURNAL, Spool

START = {"entity": "acme", "project": "nature", "runId": "r1", "config": {}}


def test_a_record_the_disk_cut_short_leaves_no_part_for_the_next_to_be_glued_to(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, "r1")
    spool.record("start_run", START)
    limit = spool.journal_path.stat().st_size + 600  # room for the start and part of a big batch only
    child = textwrap.dedent(
        f"""
        import resource, signal
        from pathlib import Path
        from modelreg.spool import Spool
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full file system: write() says so, nothing kills
        spool = Spool(Path({str(spool.folder)!r}))
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, hard))
        try:
            spool.record("log_metrics", {{"series": [{{"key": "loss", "firstStep": 0, "values": [0.5] * 400}}]}})
        except OSError as exc:
            print("refused:", exc.errno)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again (a checkpoint rotated away)
        spool.record("finish_run", {{"state": "finished"}})
        """
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("refused: 27")  # EFBIG: the write was cut
    assert [e.kind for e in Spool(spool.folder).entries()] == ["start_run", "finish_run"]


def test_a_journal_damaged_in_its_middle_syncs_every_whole_record_and_says_what_was_lost(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, "r1")
    spool.record("start_run", START)
    torn = spool.record("log_metrics", {"series": [{"key": "loss", "firstStep": 0, "values": [0.5]}]})
    whole = spool.record("log_metrics", {"series": [{"key": "loss", "firstStep": 1, "values": [0.4]}]})
    spool.record("finish_run", {"state": "finished"})
    lines = spool.journal_path.read_text().split("\n")
    # As a client before the cut-back wrote it: half of a record, then the next one on the same line.
    lines[1:3] = [lines[1][: len(lines[1]) // 2] + lines[2]]
    (spool.folder / JOURNAL).write_text("\n".join(lines))

    with pytest.warns(UserWarning, match="line 2: damaged on disk"):
        entries = Spool(spool.folder).entries()
    assert [e.command_id for e in entries if e.kind == "log_metrics"] == [whole.command_id]
    assert torn.command_id not in {e.command_id for e in entries}
    assert [e.kind for e in entries] == ["start_run", "log_metrics", "finish_run"]


@pytest.mark.parametrize("content", ["", "{", '{"done": "x"}', "[]"])
def test_an_unreadable_sync_state_means_starting_the_sync_over(tmp_path: Path, content: str) -> None:
    spool = Spool.create(tmp_path, "r1")
    (spool.folder / "sync-state.json").write_text(content)
    with pytest.warns(UserWarning, match="unreadable: this sync starts from the run's first command"):
        assert spool.sync_state() == {"done": 0, "ids": {}}
    spool.save_sync_state({"done": 3, "ids": {}})
    assert json.loads((spool.folder / "sync-state.json").read_text())["done"] == 3
    assert [p.name for p in spool.folder.iterdir() if p.suffix == ".tmp"] == []
