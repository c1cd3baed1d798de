"""A file's path inside an artifact version: relative, '/'-separated, with no '.', '..' or empty parts, so that a
download writes it under the folder asked for and nowhere else, on any system. Checked by the client when a file
is added (refused at log time, a folder of files was refused whole) and by the server for every manifest."""

from __future__ import annotations

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
