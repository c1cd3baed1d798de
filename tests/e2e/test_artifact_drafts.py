"""The next version of a dataset starts from the last one: keep most files, drop one, add one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.stack import Stack

import modelreg


def blobs(blob_dir: Path) -> dict[str, int]:
    """Each stored blob and its inode: a blob uploaded again would be a new file."""
    return {p.parent.name + p.name: p.stat().st_ino for p in (blob_dir / "sha256").rglob("*") if p.is_file()}


async def test_a_draft_of_a_logged_version_logs_the_next_version_uploading_only_what_changed(
    stack: Stack, tmp_path: Path, settings
) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text(f"content of {name}")

    def first_version() -> modelreg.Artifact:
        with modelreg.init(project="nature", entity="acme", url=url) as run:
            labels = modelreg.Artifact("labels", "dataset", description="hand labels", metadata={"source": "team"})
            for name in ("a.txt", "b.txt", "c.txt"):
                labels.add_file(tmp_path / name)
            return run.log_artifact(labels)

    v0 = await asyncio.to_thread(first_version)
    before = blobs(settings.blob_dir)
    (tmp_path / "d.txt").write_text("new labels")

    def next_version() -> tuple[modelreg.Artifact, modelreg.Artifact]:
        with modelreg.init(project="nature", entity="acme", url=url) as run:
            draft = run.use_artifact("labels:latest").new_draft()
            draft.remove("b.txt")
            draft.add_file(tmp_path / "d.txt")
            logged = run.log_artifact(draft)
            again = logged.new_draft()  # a logged Artifact drafts too
            again.remove("a.txt")
            return logged, run.log_artifact(again)

    v1, v2 = await asyncio.to_thread(next_version)

    assert (v0.version, v1.version, v2.version) == ("v0", "v1", "v2")

    def read(version: str) -> modelreg.LoggedArtifact:
        return modelreg.Api(url).artifact(f"acme/nature/labels:{version}")

    first, second, third = [await asyncio.to_thread(read, v) for v in ("v0", "v1", "v2")]
    kept = {f.path: f.digest for f in first.files()}
    added = {f.path: f.digest for f in second.files()}["d.txt"]
    assert {f.path: f.digest for f in second.files()} == {
        "a.txt": kept["a.txt"],
        "c.txt": kept["c.txt"],
        "d.txt": added,
    }
    assert (second.description, second.metadata, second.type) == ("hand labels", {"source": "team"}, "dataset")
    after = blobs(settings.blob_dir)
    assert {k: after[k] for k in before} == before  # the kept files were not uploaded again
    assert set(after) - set(before) == {added.removeprefix("sha256:")}  # only d.txt was
    assert [f.path for f in third.files()] == ["c.txt", "d.txt"]
