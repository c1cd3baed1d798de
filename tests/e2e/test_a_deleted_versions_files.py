"""A version deleted (a legal erasure request, a dataset that should never have been logged) no longer hands out
its files: not to the team's admin, not to a viewer of the public team. A file another live version lists stays
readable through that one, since the store keeps one copy per content; and knowing a deleted file's digest is no
way back to its bytes."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from support.stack import Stack
from support.story import LOG_VERSION, digest_of, file_entry

pytestmark = pytest.mark.parametrize("log_kind", ["postgres"])

PII, SHARED = b"name,email\njohn,john@example.com\n", b"name,email\n"
FACES = {"entity": "acme", "project": "faces", "type": "dataset"}
DELETE = "mutation($ref: String!) { deleteArtifactVersion(input: {ref: $ref}) { id } }"
PRIVATE_LYNX = 'mutation { setVisibility(input: {scope: "entity:lynx", visibility: PRIVATE}) { scope } }'


async def ok(stack: Stack, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = await stack.graphql(query, variables)
    assert "errors" not in answer, answer
    return answer["data"]


async def customer_faces_logged_then_deleted(stack: Stack) -> str:
    """acme logs customer-faces (pii.csv and a header file) and public-faces (the same header file); another
    team is private, so that a viewer of acme has something hidden and an admin nothing. The deleted version's id."""
    await ok(stack, PRIVATE_LYNX)
    files = [file_entry("pii.csv", PII), file_entry("header.csv", SHARED)]
    logged = await ok(stack, LOG_VERSION, {"input": {**FACES, "name": "customer-faces", "files": files}})
    await ok(stack, LOG_VERSION, {"input": {**FACES, "name": "public-faces", "files": [file_entry("h.csv", SHARED)]}})
    assert stack.client is not None
    viewer = await stack.auth("user:carol", "viewer")
    assert (await stack.client.get(f"/blobs/{digest_of(PII)}", headers=viewer)).status == 200
    await ok(stack, DELETE, {"ref": "acme/faces/customer-faces:v0"})
    return str(logged["logArtifactVersion"]["id"])


async def test_a_deleted_versions_files_download_for_no_one_and_a_file_another_version_lists_still_does(
    stack: Stack,
) -> None:
    await customer_faces_logged_then_deleted(stack)
    assert stack.client is not None
    first_mib = hashlib.sha256(PII).hexdigest()
    for who, role in [("user:alice", "admin"), ("user:carol", "viewer")]:
        headers = await stack.auth(who, role)
        download = await stack.client.get(f"/blobs/{digest_of(PII)}", headers=headers)
        head = await stack.client.head(f"/blobs/{digest_of(PII)}", headers=headers)
        candidates = await stack.client.get(f"/blobs/heads/{len(PII)}/{first_mib}", headers=headers)
        assert (download.status, head.status, (await candidates.json())["digests"]) == (404, 404, []), who
        shared = await stack.client.get(f"/blobs/{digest_of(SHARED)}", headers=headers)
        assert (shared.status, await shared.read()) == (200, SHARED), who


async def test_listing_a_deleted_versions_file_in_another_version_needs_its_bytes(stack: Stack) -> None:
    deleted = await customer_faces_logged_then_deleted(stack)
    assert stack.client is not None
    # The digest is still shown (history, lineage, the audit log): a member lists it in a version of its own.
    shown = await ok(
        stack, "query($id: ID!) { artifactVersion(id: $id) { deletedAt files { digest } } }", {"id": deleted}
    )
    assert digest_of(PII) in [f["digest"] for f in shown["artifactVersion"]["files"]]
    member = await stack.key("user:otto", "member")
    headers = {"Authorization": f"Bearer {member}"}
    claim = {"path": "people.csv", "size": len(PII), "digest": digest_of(PII)}
    variables = {"input": {**FACES, "name": "claim", "files": [claim]}}
    refused = await stack.graphql(LOG_VERSION, variables, key=member)
    assert f"the blob store has no {digest_of(PII)}: upload each file" in refused["errors"][0]["message"], refused
    assert (await stack.client.get(f"/blobs/{digest_of(PII)}", headers=headers)).status == 404
    # Whoever holds the same bytes sends them, as the client does for a missing file, and lists them from then on.
    sent = await stack.client.put(f"/blobs/{digest_of(PII)}", data=PII, headers=headers)
    assert (sent.status, (await sent.json())["stored"]) == (201, True)
    assert "errors" not in await stack.graphql(LOG_VERSION, variables, key=member)
    assert await (await stack.client.get(f"/blobs/{digest_of(PII)}", headers=headers)).read() == PII
