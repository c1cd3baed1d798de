"""Where a download writes before its bytes are checked: a name of its own beside the file it becomes.

One fixed name (`model.pt.part`) was shared by every download of that file: the ranks of one distributed job
fetching a checkpoint into one folder truncated each other's bytes, and one renamed the shared file into place
while another still wrote into it, so `download()` returned a corrupt file it had verified. A version holding
`w` and `w.part` had `w` replaced by the other file's bytes. Renamed into place whole (`os.replace`), a
checked file is what any reader of the destination sees, whichever download finishes last."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4


def partial_beside(destination: Path) -> Path:
    """A hidden name in the destination's folder (so the rename stays on one file system), unique to this
    download."""
    return destination.with_name(f".{destination.name}.{uuid4().hex[:16]}.part")
