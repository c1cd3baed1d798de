"""Logging artifact versions (content-addressed: the same files are the same version), using them in a run,
and tagging them."""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

import pytest
from pydantic import ValidationError
from support.write_side import MEMBER, WriteSide
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, InvalidInput, NotFound, Unavailable
from modelreg.events.artifacts import ArtifactVersionLogged, ManifestEntry
from modelreg.services.commands.commands import (
    LogArtifactVersion,
    StartRun,
    TagArtifactVersion,
    UntagArtifactVersion,
    UseArtifactVersion,
)
from modelreg.services.commands.handlers import manifest_digest

COLLECTION = {"entity": "acme", "project": "fraud", "name": "weights"}


def logging(*files: ManifestEntry, **fields: Any) -> LogArtifactVersion:
    return LogArtifactVersion(**COLLECTION, artifact_type="model", manifest=files, **fields)


async def test_a_version_of_uploaded_files_is_numbered_in_its_collection() -> None:
    registry = WriteSide()
    first = await registry(logging(registry.stored_file(b"one")), MEMBER)
    second = await registry(logging(registry.stored_file(b"two")), MEMBER)
    versions = registry.read_models.registry.versions
    assert [versions[first.subject_id]["version_index"], versions[second.subject_id]["version_index"]] == [0, 1]
    logged = registry.appended()[0]
    assert (logged.type, logged.stream) == ("artifacts.version_logged", "artifact:acme/fraud/weights")
    assert logged.payload.digest == manifest_digest(logged.payload.manifest)
    assert uuid.UUID(str(first.subject_id)).version == 7


async def test_the_same_files_again_are_the_newest_version_not_a_new_one() -> None:
    registry = WriteSide()
    file = registry.stored_file(b"same")
    first = await registry(logging(file))
    again = await registry(logging(file))
    assert (again.subject_id, again.events) == (first.subject_id, [])


async def test_the_same_files_logged_again_with_aliases_give_the_newest_version_those_aliases() -> None:
    # A checkpoint logged each epoch with aliases=["best"], its files unchanged: W&B gives the version `best`.
    registry = WriteSide()
    file = registry.stored_file(b"same")
    first = await registry(logging(file, aliases=("a1",)), MEMBER)
    again = await registry(logging(file, aliases=("a1", "best")), MEMBER)

    assert again.subject_id == first.subject_id
    assert [(e.type, e.payload.aliases_added) for e in again.events] == [("artifacts.version_edited", ("best",))]
    assert registry.read_models.registry.versions[first.subject_id]["aliases"] == ["a1", "best"]
    assert (await registry(logging(file, aliases=("best",)), MEMBER)).events == []  # held already: nothing to do


def test_a_versions_digest_does_not_depend_on_the_order_of_its_files_but_on_references() -> None:
    a = ManifestEntry(path="a", size=1, digest="sha256:" + "a" * 64)
    b = ManifestEntry(path="b", size=1, digest="sha256:" + "b" * 64)
    assert manifest_digest((a, b)) == manifest_digest((b, a))
    elsewhere = a.model_copy(update={"ref": "s3://bucket/a"})
    assert manifest_digest((elsewhere, b)) != manifest_digest((a, b))


async def test_a_collection_keeps_its_type() -> None:
    registry = WriteSide()
    await registry(logging(registry.stored_file(b"one")))
    with pytest.raises(Conflict, match="has type 'model', not 'dataset': use another name"):
        await registry(
            LogArtifactVersion(**COLLECTION, artifact_type="dataset", manifest=(registry.stored_file(b"x"),))
        )


async def test_a_manifest_lists_each_path_once() -> None:
    registry = WriteSide()
    file = registry.stored_file(b"one")
    with pytest.raises(InvalidInput, match="lists a file path twice"):
        await registry(logging(file, file))


async def test_a_manifest_may_not_list_a_file_that_is_a_folder_of_another() -> None:
    # Logged, it could never be downloaded: `d` is written as a file, then `d/x` needs it to be a folder.
    registry = WriteSide()
    file = registry.stored_file(b"one")
    with pytest.raises(InvalidInput, match="lists 'd' as a file and as a folder of 'd/e/x'"):
        await registry(logging(file.model_copy(update={"path": "d/e/x"}), file.model_copy(update={"path": "d"})))
    await registry(logging(file.model_copy(update={"path": "d/e/x"}), file.model_copy(update={"path": "d.txt"})))


@pytest.mark.parametrize(
    ("paths", "named"),
    [
        (("Model.bin", "model.bin"), "lists 'Model.bin' and 'model.bin', which are one file on macOS and Windows"),
        (
            (unicodedata.normalize("NFC", "café.html"), unicodedata.normalize("NFD", "café.html")),
            "lists 'caf\\\\xe9.html' and 'cafe\\\\u0301.html', which are one file",
        ),
        (("A", "a/b"), "lists 'A' and 'a/b': the file is the folder of the other on macOS and Windows"),
    ],
)
async def test_a_manifest_may_not_list_two_files_that_are_one_where_names_ignore_case_or_normalisation(
    paths: tuple[str, ...], named: str
) -> None:
    # Downloaded on a Mac, one would be written over the other: a reviewer who read `Model.bin` loads `model.bin`.
    registry = WriteSide()
    file = registry.stored_file(b"one")
    with pytest.raises(InvalidInput, match=named):
        await registry(logging(*(file.model_copy(update={"path": path}) for path in paths)))
    assert registry.appended() == []


def test_a_version_logged_before_such_files_were_refused_still_reads() -> None:
    # Refused by the command, not by the event: versions already on a log decode and project as they did.
    entries = [{"path": path, "size": 1, "digest": "sha256:" + "a" * 64} for path in ("Model.bin", "model.bin")]
    logged = ArtifactVersionLogged.model_validate(
        {"artifact_version_id": uuid7(), "entity": "acme", "project": "fraud", "name": "weights",
         "artifact_type": "model", "digest": "sha256:" + "b" * 64, "manifest": entries}
    )  # fmt: skip
    assert [entry.path for entry in logged.manifest] == ["Model.bin", "model.bin"]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("model\u202egnp.exe", "RIGHT-TO-LEFT OVERRIDE \\(U\\+202E\\)"),
        ("weights\nREADME.md", "a control character \\(U\\+000A\\)"),
        ("a\u200bb.bin", "ZERO WIDTH SPACE \\(U\\+200B\\)"),
    ],
    ids=["right-to-left override", "line break", "zero-width space"],
)
async def test_a_file_path_that_would_show_as_another_is_refused(path: str, named: str) -> None:
    registry = WriteSide()
    file = registry.stored_file(b"one").model_copy(update={"path": path})
    with pytest.raises(InvalidInput, match=f"holds {named}, which would show the path as another"):
        await registry(logging(file))
    assert registry.appended() == []


async def test_a_file_path_in_any_script_is_kept() -> None:
    registry = WriteSide()
    file = registry.stored_file(b"one").model_copy(update={"path": "données/モデル/модель.pt"})
    await registry(logging(file))
    assert registry.appended_types() == ["artifacts.version_logged"]


async def test_every_uploaded_file_must_be_in_the_blob_store() -> None:
    registry = WriteSide()
    missing = ManifestEntry(path="a.bin", size=3, digest="sha256:" + "0" * 64)
    other = ManifestEntry(path="b.bin", size=3, digest="sha256:" + "1" * 64)
    with pytest.raises(
        InvalidInput, match=r"'a.bin': the blob store has no sha256:0+ \(and 1 other file\(s\) likewise\)"
    ):
        await registry(logging(missing, other))


async def test_a_file_must_declare_the_size_that_was_uploaded() -> None:
    registry = WriteSide()
    stored = registry.stored_file(b"four")
    with pytest.raises(InvalidInput, match="declares 5 bytes, but its stored blob .* has 4: declare the size"):
        await registry(logging(stored.model_copy(update={"size": 5})))


async def test_a_reference_is_recorded_without_being_in_the_blob_store() -> None:
    registry = WriteSide()
    registry.app.blobs = None  # a process without a blob store logs references only
    reference = ManifestEntry(path="data.csv", size=10, digest="sha256:" + "2" * 64, ref="s3://bucket/data.csv")
    await registry(logging(reference))
    with pytest.raises(Unavailable, match="no blob store"):
        await registry(logging(ManifestEntry(path="x", size=1, digest="sha256:" + "3" * 64)))


async def test_a_version_logged_by_a_run_needs_the_run() -> None:
    registry = WriteSide()
    with pytest.raises(NotFound, match="run acme/fraud/r9 does not exist: log from a started run"):
        await registry(logging(registry.stored_file(b"one"), run_id="r9"))
    await registry(StartRun(entity="acme", project="fraud", run_id="r9"))
    accepted = await registry(logging(registry.stored_file(b"one"), run_id="r9"))
    assert registry.appended()[-1].payload.logged_by_run == "r9" and accepted.events


async def test_a_client_chosen_id_names_one_version_only() -> None:
    registry = WriteSide()
    chosen = uuid7()
    first = await registry(logging(registry.stored_file(b"one"), artifact_version_id=chosen))
    assert first.subject_id == chosen
    assert (await registry(logging(registry.stored_file(b"one"), artifact_version_id=chosen))).events == []
    with pytest.raises(Conflict, match=f"artifact version {chosen} already exists with other content"):
        await registry(logging(registry.stored_file(b"two"), artifact_version_id=chosen))


def test_a_client_chosen_id_is_a_uuid7() -> None:
    with pytest.raises(ValidationError, match="must be a UUIDv7"):
        logging(artifact_version_id=uuid.uuid4())


async def test_a_run_uses_a_version_that_exists() -> None:
    registry = WriteSide()
    version = (await registry(logging(registry.stored_file(b"one")))).subject_id
    use = UseArtifactVersion(artifact_version_id=version, entity="acme", project="fraud", run_id="r1")
    with pytest.raises(NotFound, match="run acme/fraud/r1 does not exist"):
        await registry(use)
    with pytest.raises(NotFound, match="does not exist"):
        await registry(use.model_copy(update={"artifact_version_id": uuid7()}))
    await registry(StartRun(entity="acme", project="fraud", run_id="r1"))
    recorded = use.model_copy(update={"command_id": uuid7()})
    await registry(recorded)
    assert (await registry(recorded)).events == []
    assert registry.appended()[-1].stream == "run:acme/fraud/r1"


async def test_tagging_a_version_by_number_or_alias_once() -> None:
    registry = WriteSide()
    version = (await registry(logging(registry.stored_file(b"one"), aliases=("best",)))).subject_id
    tag = TagArtifactVersion(**COLLECTION, version="best", tag="golden")
    assert (await registry(tag)).subject_id == version
    assert (await registry(tag.model_copy(update={"version": "v0"}))).events == []
    assert registry.read_models.registry.versions[version]["tags"] == ["golden"]


async def test_untagging_needs_the_version_and_the_tag() -> None:
    registry = WriteSide()
    await registry(logging(registry.stored_file(b"one")))
    with pytest.raises(NotFound, match="no artifact version acme/fraud/weights:v7"):
        await registry(UntagArtifactVersion(**COLLECTION, version="v7", tag="golden"))
    with pytest.raises(NotFound, match="acme/fraud/weights:latest has no tag 'golden'"):
        await registry(UntagArtifactVersion(**COLLECTION, version="latest", tag="golden"))
    await registry(TagArtifactVersion(**COLLECTION, version="latest", tag="golden"))
    await registry(UntagArtifactVersion(**COLLECTION, version="latest", tag="golden"))
    assert registry.appended_types()[-1] == "artifacts.version_untagged"
