"""Artifact files are stored once by content, verified on the way in, and served back byte for byte."""

from __future__ import annotations

import hashlib

from support.stack import Stack
from support.story import LOG_VERSION, digest_of, file_entry

from modelreg.services.http.blob_routes import BLOBS


def address(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


async def test_a_file_is_stored_under_its_digest_once_and_served_back(stack: Stack) -> None:
    assert stack.client is not None
    auth = await stack.auth()
    content = b"weights" * 100_000
    blob = f"/blobs/{address(content)}"

    assert (await stack.client.head(blob, headers=auth)).status == 404
    first = await stack.client.put(blob, data=content, headers=auth)
    assert (first.status, (await first.json())["stored"]) == (201, True)
    again = await stack.client.put(blob, data=content, headers=auth)
    assert (again.status, (await again.json())["stored"]) == (200, False)

    assert (await stack.client.head(blob, headers=auth)).status == 200
    served = await stack.client.get(blob, headers=auth)
    assert await served.read() == content


async def test_content_that_does_not_match_its_address_is_refused_and_not_stored(stack: Stack) -> None:
    assert stack.client is not None
    auth = await stack.auth()
    claimed = address(b"the real weights")
    refused = await stack.client.put(f"/blobs/{claimed}", data=b"something else", headers=auth)
    assert refused.status == 400
    assert "digest" in await refused.text()
    assert (await stack.client.head(f"/blobs/{claimed}", headers=auth)).status == 404

    not_an_address = await stack.client.put("/blobs/md5:abc", data=b"x", headers=auth)
    assert not_an_address.status == 400


async def test_content_sent_without_its_address_is_stored_under_the_digest_the_store_computes(stack: Stack) -> None:
    assert stack.client is not None
    auth = await stack.auth()
    content = b"new weights" * 300_000  # more than the 1 MiB the head index covers
    posted = await stack.client.post("/blobs", data=content, headers=auth)
    assert posted.status == 201
    assert (await posted.json())["digest"] == address(content)
    served = await stack.client.get(f"/blobs/{address(content)}", headers=auth)
    assert await served.read() == content


async def test_a_stored_file_is_found_by_its_size_and_first_mebibyte(stack: Stack) -> None:
    assert stack.client is not None
    auth = await stack.auth()
    content = b"checkpoint" * 200_000
    head = hashlib.sha256(content[: 1024 * 1024]).hexdigest()
    found = f"/blobs/heads/{len(content)}/{head}"
    assert (await (await stack.client.get(found, headers=auth)).json())["digests"] == []
    await stack.client.put(f"/blobs/{address(content)}", data=content, headers=auth)
    assert (await (await stack.client.get(found, headers=auth)).json())["digests"] == [address(content)]
    other_size = f"/blobs/heads/{len(content) + 1}/{head}"
    assert (await (await stack.client.get(other_size, headers=auth)).json())["digests"] == []
    assert (await stack.client.get("/blobs/heads/10/not-hex", headers=auth)).status == 400
    assert (await stack.client.get(found)).status == 401  # like every blob route, it needs a key


async def test_a_listed_file_missing_from_this_apis_folder_says_the_apis_must_share_one_blob_store(
    stack: Stack,
) -> None:
    # Two API hosts with a folder each: a version logged through one listed files the other had never seen, and its
    # download asked whether the version was uploaded completely.
    assert stack.client is not None
    content = b"weights logged through another API"
    version = {"entity": "acme", "project": "p", "type": "model", "name": "m", "files": [file_entry("m.pt", content)]}
    logged = await stack.graphql(LOG_VERSION, {"input": version})
    assert "errors" not in logged, logged
    stack.client.server.app[BLOBS].path(digest_of(content)).unlink()  # the other host's folder held it

    missing = await stack.client.get(f"/blobs/{digest_of(content)}", headers=await stack.auth())
    said = await missing.text()
    assert missing.status == 404
    assert "in this API's blob folder, though an artifact version lists it" in said
    assert "every API process must use the same one" in said and str(stack.settings.blob_dir) not in said

    never_uploaded = await stack.client.get(f"/blobs/{digest_of(b'never uploaded')}", headers=await stack.auth())
    assert never_uploaded.status == 404
    assert "no version lists it, and it was not uploaded" in await never_uploaded.text()
