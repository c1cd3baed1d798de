"""What a draft artifact holds before it is logged (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

import modelreg
from modelreg.errors import InvalidInput


def test_a_file_added_at_a_taken_path_is_refused_unless_it_overwrites_as_in_w_and_b(tmp_path: Path) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("first")
    second.write_text("second")
    draft = modelreg.Artifact("notes", "doc")
    draft.add_file(first, name="notes.txt")

    with pytest.raises(InvalidInput, match="already has a file 'notes.txt'"):
        draft.add_file(second, name="notes.txt")
    draft.add_file(second, name="notes.txt", overwrite=True)

    assert draft.local_files() == {"notes.txt": second}
    assert [(f.path, f.size) for f in draft.manifest()] == [("notes.txt", len("second"))]
