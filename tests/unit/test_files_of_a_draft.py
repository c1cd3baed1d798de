"""What a draft artifact holds before it is logged (no server)."""

from __future__ import annotations

import re
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

    assert {name: path.read_text() for name, path in draft.local_files().items()} == {"notes.txt": "second"}
    assert [(f.path, f.size) for f in draft.manifest()] == [("notes.txt", len("second"))]


def test_a_file_is_copied_when_added_unless_its_policy_says_it_will_not_change(tmp_path: Path) -> None:
    checkpoint, weights = tmp_path / "ckpt.pt", tmp_path / "weights" / "w.bin"
    weights.parent.mkdir()
    checkpoint.write_text("epoch 1")
    weights.write_text("big")
    draft = modelreg.Artifact("model", "model")
    draft.add_file(checkpoint)
    draft.add_dir(weights.parent, name="weights", policy="immutable")
    checkpoint.write_text("epoch 2")  # saved again after it was added: the version holds epoch 1, as in W&B
    checkpoint.unlink()

    files = draft.local_files()
    assert files["ckpt.pt"].read_text() == "epoch 1" and files["weights/w.bin"] == weights
    with pytest.raises(InvalidInput, match="policy='copy'\\): give \"mutable\""):
        draft.add_file(weights, name="other", policy="copy")
    draft.cleanup()
    assert not files["ckpt.pt"].exists()


def test_a_folder_is_added_through_its_linked_folders_as_w_and_b_walks_them(tmp_path: Path) -> None:
    snapshot, checkpoint = tmp_path / "snapshot", tmp_path / "hub" / "blobs"
    checkpoint.mkdir(parents=True)
    (checkpoint / "weights.bin").write_text("big")
    (snapshot / "sub").mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "blobs").symlink_to(checkpoint)  # as a Hugging Face snapshot links its files
    (snapshot / "sub" / "up").symlink_to(snapshot)  # a loop: walked once
    (snapshot / "gone").symlink_to(tmp_path / "deleted")
    draft = modelreg.Artifact("bert", "model")

    draft.add_dir(snapshot, policy="immutable")

    assert sorted(draft.local_files()) == ["blobs/weights.bin", "config.json"]


def test_a_name_or_a_file_path_the_registry_would_refuse_is_refused_when_given(tmp_path: Path) -> None:
    """Refused only at log time, after every file of a folder was hashed and uploaded; a backslash was said to be
    "not relative"."""
    with pytest.raises(InvalidInput, match="Artifact name 'my model:v1' is not a name: a name starts with a letter"):
        modelreg.Artifact("my model:v1", "model")
    weights = tmp_path / "w.bin"
    weights.write_text("w")
    draft = modelreg.Artifact("model", "model")
    for name, said in (
        ("../escape.txt", "may not contain '.', '..' or empty parts"),
        ("/abs.txt", "must be relative to the artifact's root"),
        ("back\\slash.txt", "holds a backslash, which Windows reads as a folder separator"),
    ):
        with pytest.raises(InvalidInput, match=re.escape(said)):
            draft.add_file(weights, name=name)
    assert draft.local_files() == {}
