"""Which files of a version this machine's file system could not write each as itself: two entries that are one file
where names ignore case or Unicode normalisation (macOS, Windows, a vfat or SMB mount), or, on Windows, a name it
keeps for a device or changes. Checked before a download writes anything, so versions logged before the server
refused such entries are safe too."""

from __future__ import annotations

import os
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

from modelreg.errors import InvalidInput
from modelreg.file_paths import one_file_twice, windows_name_problem

ON_WINDOWS = os.name == "nt"


def refuse_what_cannot_be_written(
    version: str,
    paths: Sequence[str],
    folder: Path,
    *,
    windows: bool = ON_WINDOWS,
    compared_in: Callable[[Path], Callable[[str], str]] | None = None,
) -> None:
    """InvalidInput, before anything is written, when the files of `version` at `paths` cannot each be written
    under `folder` as itself (`compared_in`: how a folder's file system compares names, asked of it by default)."""
    if windows:
        for path in paths:
            if (problem := windows_name_problem(path)) is not None:
                raise InvalidInput(
                    f"{version} cannot be downloaded on Windows: {problem}. Nothing was written: download it on "
                    "Linux or macOS, or log it again with the file renamed"
                )
    # Folded every way first: most versions collide in none, and then the file system is not asked.
    if one_file_twice(paths) is None:
        return
    compared = (compared_in or names_compared_in)(folder)
    if (collision := one_file_twice(paths, compared, where=f"in {folder}")) is not None:
        raise InvalidInput(
            f"{version} lists {collision}: downloaded together, one would be written over the other. Nothing was "
            "written: fetch them one at a time (get_entry(name).download(root)) into folders of their own, or log "
            "the version again with them renamed"
        )


def names_compared_in(folder: Path) -> Callable[[str], str]:
    """A path as `folder`'s file system compares names: found by writing `é` decomposed in a scratch folder there
    and looking for `é` composed and `É` (macOS finds both, Windows the capital, Linux neither)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".modelreg-names-", dir=folder) as scratch:
            Path(scratch, "e\u0301").touch()
            ignores_case = Path(scratch, "E\u0301").exists()
            ignores_normalisation = Path(scratch, "\u00e9").exists()
    except OSError:  # a folder it cannot write in: a download fails there anyway; assume the strictest
        ignores_case = ignores_normalisation = True

    def compared(path: str) -> str:
        if ignores_normalisation:
            path = unicodedata.normalize("NFC", path)
        return unicodedata.normalize("NFC", path.casefold()) if ignores_case else path

    return compared
