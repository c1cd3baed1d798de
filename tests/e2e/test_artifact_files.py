"""Artifact files are stored once by content, verified on the way in, and served back byte for byte."""

from __future__ import annotations

import hashlib

from support.stack import Stack


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
