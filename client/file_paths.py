"""A file's path inside an artifact version: relative, '/'-separated, with no '.', '..' or empty parts, so that a
download writes it under the folder asked for and nowhere else, on any system. Checked by the client when a file
is added (refused at log time, a folder of files was refused whole) and by the server for every manifest."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable

from modelreg.errors import quoted


def file_path_problem(path: str) -> str | None:
    """What is wrong with `path` as a file's path in an artifact, or None."""
    if not path:
        return "a file's path in an artifact may not be empty"
    if "\\" in path:
        return (
            f"file path {quoted(path)} holds a backslash, which Windows reads as a folder separator: rename the "
            "file, or give it another name (name=...)"
        )
    if path.startswith("/"):
        return f"file path {quoted(path)} must be relative to the artifact's root (no leading '/')"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"file path {quoted(path)} may not contain '.', '..' or empty parts (it must stay inside the artifact)"
    return None


def folded_everywhere(path: str) -> str:
    """`path` as a file system that ignores case and Unicode normalisation sees it (macOS keeps `café` composed or
    decomposed as one file, Windows and macOS `Model.bin` and `model.bin`): two paths folded alike are one file
    there. Case folding maps a little more than any file system does (`ß` as `ss`): it errs on refusing."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def one_file_twice(
    paths: Iterable[str], folded: Callable[[str], str] = folded_everywhere, where: str = "on macOS and Windows"
) -> str | None:
    """Which two of `paths` a download writes to one place `where` names compare as `folded` says (the same file, or
    a file that is the folder of another), said for a refusal; None when each path is a place of its own."""
    files: dict[str, str] = {}
    for path in paths:
        if (other := files.setdefault(folded(path), path)) != path:
            return (
                f"{_both(other, path)}, which are one file {where} (names there ignore case or Unicode normalisation)"
            )
    for path in files.values():
        parts = folded(path).split("/")
        for depth in range(1, len(parts)):
            if (file := files.get("/".join(parts[:depth]))) is not None:
                return (
                    f"{_both(file, path)}: the file is the folder of the other {where} (names there ignore case or "
                    "Unicode normalisation)"
                )
    return None


def _both(one: str, other: str) -> str:
    # `café` composed and decomposed look alike: their code points tell them apart.
    if unicodedata.normalize("NFC", one) == unicodedata.normalize("NFC", other):
        return f"{ascii(one)} and {ascii(other)}"
    return f"{quoted(one)} and {quoted(other)}"


# Names Windows keeps for devices, with any extension (`nul.txt` is the null device, `con` a console).
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{port}{n}" for port in ("COM", "LPT") for n in (*"0123456789", "\u00b9", "\u00b2", "\u00b3")
}
_NOT_IN_WINDOWS_NAMES = set('<>:"|?*') | {chr(code) for code in range(32)}


def windows_name_problem(path: str) -> str | None:
    """What keeps `path` from being written as itself on Windows, or None: a device name (`CON`, `nul.txt`), a
    name ending in a dot or a space (Windows drops them: `x.` is `x`), or a character Windows refuses (`C:/x` is
    another drive, `x:stream` a hidden stream of `x`). Linux and macOS write them all, so only a download on
    Windows refuses them."""
    for part in path.split("/"):
        if (device := part.split(".")[0].rstrip(" ").upper()) in _WINDOWS_DEVICES:
            return f"{quoted(path)}: {device} names a device on Windows, not a file"
        if part.endswith((".", " ")):
            return f"{quoted(path)}: Windows drops a dot or a space that ends a name ({quoted(part)})"
        if bad := sorted(set(part) & _NOT_IN_WINDOWS_NAMES):
            return f"{quoted(path)}: Windows refuses {quoted(bad[0])} in a file name"
    return None
