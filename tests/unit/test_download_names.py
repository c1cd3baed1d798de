"""A version's files each download as themselves: two entries that are one file where names ignore case or Unicode
normalisation (macOS, Windows) are refused before anything is written, so a reviewer who looked at `Model.bin`
never loads a teammate's `model.bin`; on Windows, names it keeps for devices or changes are refused too."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelreg.artifact import LoggedArtifact
from modelreg.errors import InvalidInput
from modelreg.file_paths import folded_everywhere, one_file_twice, windows_name_problem
from modelreg.local_names import names_compared_in, refuse_what_cannot_be_written

CAFE_COMPOSED = unicodedata.normalize("NFC", "café.html")
CAFE_DECOMPOSED = unicodedata.normalize("NFD", "café.html")


def ignoring_case_and_normalisation(folder: Path) -> Callable[[str], str]:
    return folded_everywhere  # a macOS or Windows folder, as its file system compares names


@pytest.mark.parametrize(
    ("paths", "named"),
    [
        (["Model.bin", "model.bin"], "'Model.bin' and 'model.bin', which are one file"),
        ([CAFE_COMPOSED, CAFE_DECOMPOSED], "'caf\\\\xe9.html' and 'cafe\\\\u0301.html', which are one file"),
        (["A", "a/b"], "'A' and 'a/b': the file is the folder of the other"),
        (["Weights/x.bin", "weights/y.bin", "WEIGHTS"], "'WEIGHTS' and 'Weights/x.bin': the file is the folder"),
    ],
)
def test_a_version_whose_files_are_one_file_on_this_machine_is_not_downloaded(
    tmp_path: Path, paths: list[str], named: str
) -> None:
    with pytest.raises(InvalidInput, match=named) as refused:
        refuse_what_cannot_be_written("acme/p/m:v0", paths, tmp_path, compared_in=ignoring_case_and_normalisation)
    assert "Nothing was written" in str(refused.value) and "get_entry(name).download(root)" in str(refused.value)


class Blobs:
    """The blob store as a download reads it: bytes by digest."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def download(self, digest: str, destination: Path, on_bytes: Callable[[int], object]) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(self.files[digest])


def _version(*paths: str) -> LoggedArtifact:
    import hashlib

    contents = {path: path.encode() for path in paths}
    digests = {path: "sha256:" + hashlib.sha256(data).hexdigest() for path, data in contents.items()}
    fields: dict[str, Any] = {
        "id": "v", "entity": "acme", "project": "p", "name": "m", "type": "model", "version": "v0",
        "digest": "sha256:" + "0" * 64, "metadata": {}, "aliases": [],
        "files": [{"path": p, "size": len(contents[p]), "digest": digests[p]} for p in paths],
    }  # fmt: skip
    return LoggedArtifact(Blobs({digests[p]: contents[p] for p in paths}), fields)  # type: ignore[arg-type]


@pytest.mark.skipif(sys.platform != "linux", reason="a Linux file system tells case and normalisation apart")
def test_where_names_are_told_apart_both_files_download(tmp_path: Path) -> None:
    # Only the machine's own file system decides: a version logged on Linux still downloads there whole.
    names = names_compared_in(tmp_path)
    assert (names("Model.bin"), names(CAFE_DECOMPOSED)) == ("Model.bin", CAFE_DECOMPOSED)
    _version("Model.bin", "model.bin", "A", "a/b").download(tmp_path / "here")
    assert (tmp_path / "here" / "Model.bin").read_bytes() == b"Model.bin"
    assert (tmp_path / "here" / "model.bin").read_bytes() == b"model.bin"
    assert list(tmp_path.iterdir()) == [tmp_path / "here"]  # the file system was asked in a scratch folder, gone


def test_files_that_are_one_file_nowhere_are_downloaded_without_asking_the_file_system(tmp_path: Path) -> None:
    def never_asked(folder: Path) -> Callable[[str], str]:
        raise AssertionError("the file system was asked")

    refuse_what_cannot_be_written("m:v0", ["Model.bin", "config.json", "a/b"], tmp_path, compared_in=never_asked)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("CON", "CON names a device on Windows"),
        ("logs/nul.txt", "NUL names a device on Windows"),
        ("com1 .log", "COM1 names a device"),
        ("trail. ", "Windows drops a dot or a space that ends a name"),
        ("notes.", "Windows drops a dot or a space"),
        ("C:/Windows/x", "Windows refuses ':'"),
        ("x.txt:stream", "Windows refuses ':'"),
        ('say"hi"', "Windows refuses '\"'"),
    ],
)
def test_a_name_windows_would_not_write_as_itself_is_refused_there(tmp_path: Path, path: str, why: str) -> None:
    with pytest.raises(InvalidInput, match="cannot be downloaded on Windows") as refused:
        refuse_what_cannot_be_written("acme/p/m:v0", [path, "ok.bin"], tmp_path, windows=True)
    assert why in str(refused.value)
    refuse_what_cannot_be_written("acme/p/m:v0", [path, "ok.bin"], tmp_path, windows=False)  # Linux, macOS: fine


@pytest.mark.parametrize("path", ["console.txt", "aux_loss/x.bin", "model.v2.bin", "lpt10", ".hidden"])
def test_names_that_merely_look_like_windows_devices_are_written(path: str) -> None:
    assert windows_name_problem(path) is None


def test_folding_refuses_only_what_one_file_system_would_take_for_one_file() -> None:
    assert one_file_twice(["model.bin", "model.bin.1", "Model/x", "model2/x", "\uff0e\uff0e/x"]) is None
