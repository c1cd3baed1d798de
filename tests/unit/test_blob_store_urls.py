"""Which blob store a URL names, and what is refused at the door."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelreg.direct_upload import part_digests
from modelreg.errors import InvalidInput
from modelreg.services.infra.blob_store import FolderBlobStore
from modelreg.services.infra.blob_store_url import blob_store_at
from modelreg.services.infra.object_store import ObjectBlobStore, ObjectStoreLocation


def test_no_url_or_a_path_is_the_folder_store(tmp_path: Path) -> None:
    assert isinstance(blob_store_at(None, tmp_path / "a"), FolderBlobStore)
    assert blob_store_at(str(tmp_path / "b"), tmp_path).root == tmp_path / "b"  # type: ignore[union-attr]
    assert blob_store_at(f"file://{tmp_path / 'c'}", tmp_path).root == tmp_path / "c"  # type: ignore[union-attr]


def test_an_s3_url_names_bucket_prefix_and_endpoint() -> None:
    store = blob_store_at("s3://models/team-a/blobs?endpoint=http://127.0.0.1:9000&region=eu-west-1", Path("."))
    assert isinstance(store, ObjectBlobStore)
    assert store.location == ObjectStoreLocation("models", "team-a/blobs/", "http://127.0.0.1:9000", "eu-west-1")
    digest = "sha256:" + "ab" * 32
    assert store.key(digest) == "team-a/blobs/sha256/ab/" + "ab" * 31


@pytest.mark.parametrize(
    "url",
    ["s3://", "s3://bucket?colour=blue", "s3://bucket?single_put_max=10", "s3://bucket?part_size=1", "ftp://x/y"],
)
def test_a_bad_blob_store_url_is_refused_with_what_to_write(url: str) -> None:
    with pytest.raises(InvalidInput):
        blob_store_at(url, Path("."))


def test_a_big_file_gets_bigger_parts_so_that_ten_thousand_hold_it() -> None:
    store = ObjectBlobStore(ObjectStoreLocation.from_url("s3://b"))
    assert store.part_size(1024**3) == 64 * 1024**2
    huge = 5 * 1024**4
    assert store.part_size(huge) * 10_000 >= huge


def test_part_digests_cover_the_file_in_slices(tmp_path: Path) -> None:
    import hashlib

    content = bytes(range(256)) * 100  # 25,600 bytes
    path = tmp_path / "f"
    path.write_bytes(content)
    expected = [hashlib.sha256(content[i : i + 10_000]).hexdigest() for i in (0, 10_000, 20_000)]
    assert part_digests(path, 10_000) == expected
    (tmp_path / "empty").write_bytes(b"")
    assert part_digests(tmp_path / "empty", 10_000) == [hashlib.sha256(b"").hexdigest()]
