"""Artifact files in S3-compatible object storage (a real SeaweedFS): the bytes go between the client and the
store through presigned URLs; the API plans, verifies, and refuses what does not match."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.stack import Stack

import modelreg
from modelreg.errors import InvalidInput
from modelreg.services.infra.blob_migration import migrate_folder_to_bucket
from modelreg.services.infra.blob_store import FolderBlobStore
from modelreg.services.infra.object_store import ObjectBlobStore, ObjectStoreLocation
from modelreg.services.settings import Settings
from modelreg.transport import Transport

MiB = 1024 * 1024


def address(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


@pytest.fixture
def log_kind() -> str:
    return "postgres"  # the log is not what these tests are about: one run, on the Postgres log


@pytest.fixture
async def bucket_stack(settings: Settings, object_store_url: str) -> AsyncIterator[Stack]:
    async with Stack(dataclasses.replace(settings, blob_store=object_store_url), with_triggers=False) as running:
        yield running


def log_and_fetch(url: str, folder: Path) -> tuple[modelreg.Artifact, Path]:
    with modelreg.init(project="nature", entity="acme", job_type="train", url=url) as run:
        model = modelreg.Artifact("classifier", "model")
        model.add_dir(folder / "model")
        run.log_artifact(model)
        logged = run.use_artifact("classifier:latest")
        return model, logged.download(folder / "downloaded")


async def test_files_go_to_the_bucket_through_presigned_urls_and_come_back_verified(
    bucket_stack: Stack, object_store_url: str, tmp_path: Path
) -> None:
    assert bucket_stack.client is not None
    small = b"config" * 1000
    big = bytes(range(256)) * (12 * MiB // 256 + 77)  # over single_put_max: 3 parts of 5 MiB
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_bytes(small)
    (tmp_path / "model" / "weights.bin").write_bytes(big)

    model, downloaded = await asyncio.to_thread(log_and_fetch, str(bucket_stack.client.make_url("/")), tmp_path)

    assert model.uploaded_bytes == len(small) + len(big)
    assert (downloaded / "config.json").read_bytes() == small
    assert (downloaded / "weights.bin").read_bytes() == big
    async with ObjectBlobStore(ObjectStoreLocation.from_url(object_store_url)) as bucket:
        assert await bucket.sizes([address(small), address(big)]) == {
            address(small): len(small),
            address(big): len(big),
        }
    # The API does not take the bytes itself: they go to the bucket.
    refused = await bucket_stack.client.put(f"/blobs/{address(small)}", data=small, headers=await bucket_stack.auth())
    assert refused.status == 409
    assert "presigned" in await refused.text()


async def test_a_presigned_upload_of_other_content_is_refused_by_the_store_and_nothing_is_addressable(
    bucket_stack: Stack, tmp_path: Path
) -> None:
    assert bucket_stack.client is not None
    auth = await bucket_stack.auth()
    claimed = address(b"the real weights")
    plan = await (
        await bucket_stack.client.post("/blobs/uploads", json={"digest": claimed, "size": 14}, headers=auth)
    ).json()
    assert plan["method"] == "single"

    async with httpx.AsyncClient() as http:
        sent = await http.put(plan["url"], content=b"other weights!", headers=plan["headers"])
        assert sent.status_code == 400 and "BadDigest" in sent.text
        unsigned = await http.put(plan["url"], content=b"other weights!")  # dropping the checksum header
        assert unsigned.status_code >= 400

    assert (await bucket_stack.client.head(f"/blobs/{claimed}", headers=auth)).status == 404
    assert (await bucket_stack.client.get(f"/blobs/{claimed}", headers=auth, allow_redirects=False)).status == 404


async def test_a_multipart_upload_resumes_with_the_parts_the_store_has(bucket_stack: Stack, tmp_path: Path) -> None:
    assert bucket_stack.client is not None
    auth = await bucket_stack.auth()
    content = bytes(range(251)) * (11 * MiB // 251)  # 3 parts: 5, 5 and 1 MiB
    part = 5 * MiB
    parts = [hashlib.sha256(content[i : i + part]).hexdigest() for i in range(0, len(content), part)]
    fields = {"digest": address(content), "size": len(content), "part_size": part, "parts": parts}

    first = await (await bucket_stack.client.post("/blobs/uploads", json=fields, headers=auth)).json()
    assert [p["number"] for p in first["parts"]] == [1, 2, 3]
    async with httpx.AsyncClient() as http:
        sent = await http.put(first["parts"][0]["url"], content=content[:part], headers=first["parts"][0]["headers"])
        assert sent.status_code == 200
        # The connection is lost here. Asked again with the upload, the server lists what the store has.
        again = await (
            await bucket_stack.client.post("/blobs/uploads", json={**fields, "upload": first["upload"]}, headers=auth)
        ).json()
        assert [p["number"] for p in again["parts"]] == [2, 3]
        early = await bucket_stack.client.post(
            "/blobs/uploads/complete", json={**fields, "upload": first["upload"]}, headers=auth
        )
        assert early.status == 400 and "missing parts" in await early.text()
        for p in again["parts"]:
            offset = (p["number"] - 1) * part
            assert (await http.put(p["url"], content=content[offset : offset + part], headers=p["headers"])).is_success

    done = await bucket_stack.client.post(
        "/blobs/uploads/complete", json={**fields, "upload": first["upload"]}, headers=auth
    )
    assert done.status == 201
    head = await bucket_stack.client.head(f"/blobs/{address(content)}", headers=auth)
    assert (head.status, head.headers["Content-Length"]) == (200, str(len(content)))


PART = 5 * MiB
ELEVEN_MIB = bytes(range(251)) * (11 * MiB // 251)  # 3 parts: 5, 5 and 1 MiB


async def planned_and_sent(stack: Stack, content: bytes, twice: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """A multipart upload planned and every part sent (part `twice` sent twice); its fields and part digests."""
    assert stack.client is not None
    parts = [hashlib.sha256(content[i : i + PART]).hexdigest() for i in range(0, len(content), PART)]
    fields = {"digest": address(content), "size": len(content), "part_size": PART, "parts": parts}
    plan = await (await stack.client.post("/blobs/uploads", json=fields, headers=await stack.auth())).json()
    async with httpx.AsyncClient() as http:
        for p in plan["parts"]:
            offset = (p["number"] - 1) * PART
            for _ in range(2 if p["number"] == twice else 1):
                sent = await http.put(p["url"], content=content[offset : offset + PART], headers=p["headers"])
                assert sent.is_success
    return {**fields, "upload": plan["upload"]}, parts


async def test_a_part_sent_twice_is_one_part_and_the_upload_completes(bucket_stack: Stack) -> None:
    # A client that retried a part whose answer it lost; the store may list each copy.
    assert bucket_stack.client is not None
    auth = await bucket_stack.auth()
    content = ELEVEN_MIB
    fields, _ = await planned_and_sent(bucket_stack, content, twice=1)
    again = await (await bucket_stack.client.post("/blobs/uploads", json=fields, headers=auth)).json()
    assert again["parts"] == []
    done = await bucket_stack.client.post("/blobs/uploads/complete", json=fields, headers=auth)
    assert done.status == 201, await done.text()
    head = await bucket_stack.client.head(f"/blobs/{address(content)}", headers=auth)
    assert (head.status, head.headers["Content-Length"]) == (200, str(len(content)))


async def test_completing_with_part_digests_other_than_the_parts_sent_is_refused_as_bad_input(
    bucket_stack: Stack,
) -> None:
    assert bucket_stack.client is not None
    auth = await bucket_stack.auth()
    fields, parts = await planned_and_sent(bucket_stack, ELEVEN_MIB)
    wrong = {**fields, "parts": [parts[1], parts[0], parts[2]]}
    refused = await bucket_stack.client.post("/blobs/uploads/complete", json=wrong, headers=auth)
    assert refused.status == 400, await refused.text()
    done = await bucket_stack.client.post("/blobs/uploads/complete", json=fields, headers=auth)
    assert done.status == 201, await done.text()


async def test_parts_that_join_to_content_of_another_digest_are_refused_and_deleted(bucket_stack: Stack) -> None:
    assert bucket_stack.client is not None
    auth = await bucket_stack.auth()
    sent_content = b"x" * (6 * MiB)
    claimed = address(b"y" * (6 * MiB))
    part = 5 * MiB
    parts = [hashlib.sha256(sent_content[i : i + part]).hexdigest() for i in range(0, len(sent_content), part)]
    fields = {"digest": claimed, "size": len(sent_content), "part_size": part, "parts": parts}
    plan = await (await bucket_stack.client.post("/blobs/uploads", json=fields, headers=auth)).json()
    async with httpx.AsyncClient() as http:
        for p in plan["parts"]:
            offset = (p["number"] - 1) * part
            chunk = sent_content[offset : offset + part]
            assert (await http.put(p["url"], content=chunk, headers=p["headers"])).is_success

    refused = await bucket_stack.client.post(
        "/blobs/uploads/complete", json={**fields, "upload": plan["upload"]}, headers=auth
    )
    assert refused.status == 400 and "not " + claimed in await refused.text()
    assert (await bucket_stack.client.head(f"/blobs/{claimed}", headers=auth)).status == 404


async def test_a_manifest_may_name_only_files_the_bucket_holds(bucket_stack: Stack) -> None:
    assert bucket_stack.client is not None
    auth = await bucket_stack.auth()
    claimed = address(b"the real weights")
    plan = await (
        await bucket_stack.client.post("/blobs/uploads", json={"digest": claimed, "size": 16}, headers=auth)
    ).json()
    async with httpx.AsyncClient() as http:  # planned, but never sent (or sent wrong): not in the bucket
        await http.put(plan["url"], content=b"other weights!!!", headers=plan["headers"])
    mutation = "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id } }"
    files = [{"path": "weights.bin", "size": 16, "digest": claimed}]
    variables = {"i": {"entity": "acme", "project": "nature", "name": "m", "type": "model", "files": files}}
    answer = await (
        await bucket_stack.client.post("/graphql", json={"query": mutation, "variables": variables}, headers=auth)
    ).json()
    assert "the blob store has no " + claimed in answer["errors"][0]["message"]


async def test_migrate_blobs_copies_a_folder_store_into_a_bucket_verified_and_resumable(
    object_store_url: str, tmp_path: Path
) -> None:
    folder = FolderBlobStore(tmp_path / "blobs")
    contents = [b"first file" * 1000, b"second file" * 100_000, bytes(range(256)) * (6 * MiB // 256)]

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        yield data

    for data in contents:
        await folder.put(address(data), chunks(data))
    damaged_content = b"damaged on disk"
    await folder.put(address(damaged_content), chunks(damaged_content))
    folder.path(address(damaged_content)).write_bytes(b"bit rot")

    location = ObjectStoreLocation.from_url(object_store_url)
    first = await migrate_folder_to_bucket(tmp_path / "blobs", location)
    assert (first.copied, first.skipped, len(first.failed)) == (3, 0, 1)
    assert address(damaged_content) in first.failed[0]
    again = await migrate_folder_to_bucket(tmp_path / "blobs", location)
    assert (again.copied, again.skipped, len(again.failed)) == (0, 3, 1)

    async with ObjectBlobStore(location) as bucket:
        assert await bucket.sizes([address(d) for d in contents]) == {address(d): len(d) for d in contents}
        assert await bucket.sizes([address(damaged_content)]) == {}


async def test_a_client_whose_file_changes_during_upload_gets_a_clear_error(
    bucket_stack: Stack, tmp_path: Path
) -> None:
    assert bucket_stack.client is not None
    path = tmp_path / "weights.bin"
    path.write_bytes(b"before" * 1000)
    digest = address(path.read_bytes())
    path.write_bytes(b"after!" * 1000)  # same size, other bytes: the store refuses them

    def upload() -> None:
        transport = Transport(str(bucket_stack.client.make_url("/")))
        try:
            transport.upload(path, digest, lambda n: None)
        finally:
            transport.close()

    with pytest.raises(InvalidInput, match="did the file change"):
        await asyncio.to_thread(upload)


async def test_the_migrate_blobs_command_reports_what_it_copied(object_store_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from modelreg.services.cli import main

    folder = FolderBlobStore(tmp_path / "blobs")
    content = b"a checkpoint" * 10_000

    async def once() -> AsyncIterator[bytes]:
        yield content

    await folder.put(address(content), once())
    arguments = ["migrate-blobs", "--from", str(tmp_path / "blobs"), "--to", object_store_url]
    first = await asyncio.to_thread(CliRunner().invoke, main, arguments)
    again = await asyncio.to_thread(CliRunner().invoke, main, arguments)
    assert (first.exit_code, again.exit_code) == (0, 0), first.output + again.output
    assert "1 file(s) copied" in first.output and "1 already there" in again.output


async def test_bytes_only_a_private_team_holds_are_asked_for_again_not_reported_stored(
    bucket_stack: Stack, tmp_path: Path
) -> None:
    assert bucket_stack.client is not None
    secret = b"lynx weights, private"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(secret)
    transport = Transport(str(bucket_stack.client.make_url("/")))  # the stack's admin key, from the environment
    try:
        await asyncio.to_thread(transport.upload, tmp_path / "model" / "weights.bin", address(secret), lambda n: None)
    finally:
        transport.close()
    mutation = "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id } }"
    files = [{"path": "weights.bin", "size": len(secret), "digest": address(secret)}]
    variables = {"i": {"entity": "lynx", "project": "den", "name": "m", "type": "model", "files": files}}
    hidden = 'mutation { setVisibility(input: {scope: "entity:lynx", visibility: PRIVATE}) { scope } }'
    admin = await bucket_stack.auth()
    for query, given in [(mutation, variables), (hidden, {})]:
        sent = await bucket_stack.client.post("/graphql", json={"query": query, "variables": given}, headers=admin)
        assert "errors" not in await sent.json()
    question = {"digest": address(secret), "size": len(secret)}
    for who, answer in [("user:alice", "stored"), ("user:otto", "single")]:  # an admin; a member of no team
        headers = await bucket_stack.auth(who, "admin" if who == "user:alice" else "member")
        plan = await (await bucket_stack.client.post("/blobs/uploads", json=question, headers=headers)).json()
        head = await bucket_stack.client.head(f"/blobs/{address(secret)}", headers=headers)
        assert (plan["method"], head.status) == (answer, 200 if answer == "stored" else 404), who


async def test_whoever_sends_the_bytes_of_a_private_teams_file_may_list_it_and_nobody_can_replace_it(
    bucket_stack: Stack, tmp_path: Path
) -> None:
    assert bucket_stack.client is not None
    small, big = b"lynx weights, private", bytes(range(251)) * (6 * MiB // 251)  # one PUT; two parts
    for name, content in (("small.bin", small), ("big.bin", big)):
        (tmp_path / name).write_bytes(content)
    admin = await bucket_stack.auth()
    transport = Transport(str(bucket_stack.client.make_url("/")))  # the stack's admin key, from the environment
    try:
        for name, content in (("small.bin", small), ("big.bin", big)):
            await asyncio.to_thread(transport.upload, tmp_path / name, address(content), lambda n: None)
    finally:
        transport.close()
    mutation = "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id } }"

    async def log(entity: str, headers: dict[str, str]) -> dict[str, object]:
        files = [{"path": n, "size": len(c), "digest": address(c)} for n, c in (("small.bin", small), ("big.bin", big))]
        variables = {"i": {"entity": entity, "project": "den", "name": "m", "type": "model", "files": files}}
        sent = await bucket_stack.client.post(
            "/graphql", json={"query": mutation, "variables": variables}, headers=headers
        )
        return await sent.json()

    hidden = 'mutation { setVisibility(input: {scope: "entity:lynx", visibility: PRIVATE}) { scope } }'
    assert "errors" not in await log("lynx", admin)
    assert (
        "errors" not in await (await bucket_stack.client.post("/graphql", json={"query": hidden}, headers=admin)).json()
    )
    otto_key = await bucket_stack.key("user:otto", "member")
    otto = {"Authorization": f"Bearer {otto_key}"}
    assert "the blob store has no" in (await log("acme", otto))["errors"][0]["message"]

    # Parts of other bytes sent as a proof are refused, and the stored copy is not touched (checked below).
    part = 5 * MiB
    wrong = b"?" * (len(big) + part)  # of another size too: on the build before, this deleted lynx's file
    parts = [hashlib.sha256(wrong[i : i + part]).hexdigest() for i in range(0, len(wrong), part)]
    fields = {"digest": address(big), "size": len(wrong), "part_size": part, "parts": parts}
    plan = await (await bucket_stack.client.post("/blobs/uploads", json=fields, headers=otto)).json()
    async with httpx.AsyncClient() as http:
        for p in plan["parts"]:
            offset = (p["number"] - 1) * part
            assert (await http.put(p["url"], content=wrong[offset : offset + part], headers=p["headers"])).is_success
        refused = await bucket_stack.client.post(
            "/blobs/uploads/complete", json={**fields, "upload": plan["upload"]}, headers=otto
        )
        assert refused.status == 400, await refused.text()
        single = await (
            await bucket_stack.client.post(
                "/blobs/uploads", json={"digest": address(small), "size": len(small)}, headers=otto
            )
        ).json()
        assert single["method"] == "single" and single["upload"].startswith("proof:")
        assert (await http.put(single["url"], content=b"x" * len(small), headers=single["headers"])).is_error
        unsent = await bucket_stack.client.post(
            "/blobs/uploads/complete",
            json={"digest": address(small), "size": len(small), "upload": single["upload"]},
            headers=otto,
        )
        assert unsent.status == 400 and "nothing was sent" in await unsent.text()
        assert (await http.put(single["url"], content=small, headers=single["headers"])).is_success
        for _ in range(2):  # the second time as after a lost answer: the proof is gone, its sender recorded
            proven = await bucket_stack.client.post(
                "/blobs/uploads/complete",
                json={"digest": address(small), "size": len(small), "upload": single["upload"]},
                headers=otto,
            )
            assert proven.status == 201, await proven.text()
    assert "errors" in await log("acme", otto)

    # Otto's client sends the same bytes (a file both teams have): from then on otto lists them.
    transport = Transport(str(bucket_stack.client.make_url("/")), api_key=otto_key)
    try:
        for name, content in (("small.bin", small), ("big.bin", big)):
            await asyncio.to_thread(transport.upload, tmp_path / name, address(content), lambda n: None)
        assert "errors" not in await log("acme", otto)
        await asyncio.to_thread(transport.download, address(big), tmp_path / "fetched.bin", lambda n: None)
    finally:
        transport.close()
    assert (tmp_path / "fetched.bin").read_bytes() == big
    for content in (small, big):
        head = await bucket_stack.client.head(f"/blobs/{address(content)}", headers=admin)
        assert (head.status, head.headers["Content-Length"]) == (200, str(len(content)))

    # A stored digest declared with another size is no upload to start: completing one would replace good bytes.
    other_size = await bucket_stack.client.post(
        "/blobs/uploads", json={"digest": address(big), "size": len(big) + part}, headers=admin
    )
    assert other_size.status == 400 and f"with {len(big)} bytes" in await other_size.text()


class CheckedBeforeTheOwnerLanded(ObjectBlobStore):
    """A completion whose look at the address ran just before another upload of the file landed there: the
    window that a check-then-complete leaves, which the store's conditional completion must close."""

    def __init__(self, location: ObjectStoreLocation) -> None:
        super().__init__(location)
        self.looked = False

    async def size(self, digest: str) -> int | None:
        if not self.looked:
            self.looked = True
            return None
        return await super().size(digest)


async def _parts_at_the_address(store: ObjectBlobStore, digest: str, content: bytes, part: int) -> dict[str, Any]:
    """An upload's plan with every part sent (as a client does before completing)."""
    parts = [hashlib.sha256(content[i : i + part]).hexdigest() for i in range(0, len(content), part)]
    plan = await store.plan_upload(digest, len(content), part, parts, None)
    async with httpx.AsyncClient() as http:
        for p in plan["parts"]:
            offset = (p["number"] - 1) * part
            chunk = content[offset : offset + part]
            assert (await http.put(p["url"], content=chunk, headers=p["headers"])).is_success
    return {"token": plan["upload"], "parts": parts}


async def _stored_bytes(store: ObjectBlobStore, digest: str) -> bytes:
    async with httpx.AsyncClient() as http:
        return (await http.get(await store.download_url(digest))).content


async def test_parts_of_other_bytes_completed_late_never_replace_a_verified_file(object_store_url: str) -> None:
    location = ObjectStoreLocation.from_url(object_store_url)
    content, junk, part = bytes(range(251)) * (6 * MiB // 251), b"j" * (6 * MiB // 251 * 251), 5 * MiB
    digest = address(content)
    async with ObjectBlobStore(location) as owner, CheckedBeforeTheOwnerLanded(location) as intruder:
        await owner.create_bucket()
        mine = await _parts_at_the_address(owner, digest, content, part)
        theirs = await _parts_at_the_address(owner, digest, junk, part)  # both started before either ended

        assert await owner.complete_upload(digest, len(content), mine["token"], mine["parts"]) == (
            len(content),
            True,
        )
        # The intruder's look at the address saw nothing; on the build before, its parts then replaced the
        # owner's file, failed their check, and were deleted with it.
        assert await intruder.complete_upload(digest, len(junk), theirs["token"], theirs["parts"]) == (
            len(junk),
            False,
        )

        assert await owner.size(digest) == len(content)
        assert await _stored_bytes(owner, digest) == content


async def test_other_bytes_left_unchecked_at_an_address_are_checked_and_removed_by_the_next_completion(
    object_store_url: str,
) -> None:
    from modelreg.errors import Unavailable

    location = ObjectStoreLocation.from_url(object_store_url)
    content, junk, part = b"k" * (7 * MiB), b"?" * (7 * MiB), 5 * MiB
    digest = address(content)
    async with ObjectBlobStore(location) as store:
        await store.create_bucket()
        mine = await _parts_at_the_address(store, digest, content, part)
        theirs = await _parts_at_the_address(store, digest, junk, part)
        # Joined at the address, not yet checked: what an API process holds while it hashes the object, or
        # leaves behind when it dies hashing.
        listed = await store._listed_parts(store.key(digest), theirs["token"])
        assert await store._join(
            store.key(digest), theirs["token"], [store._completed_part(p, theirs["parts"]) for p in listed]
        )

        # The next completion hashes what is there, removes it, and leaves its own upload open.
        with pytest.raises(Unavailable, match="complete again"):
            await store.complete_upload(digest, len(content), mine["token"], mine["parts"])
        assert await store.size(digest) is None
        assert await store.complete_upload(digest, len(content), mine["token"], mine["parts"]) == (len(content), True)
        assert await _stored_bytes(store, digest) == content

        # Asked again (its answer lost), the completion answers that the file is stored.
        assert await store.complete_upload(digest, len(content), mine["token"], mine["parts"]) == (len(content), False)


async def test_a_file_joined_at_its_address_by_a_completion_whose_answer_was_lost_is_checked_and_kept(
    object_store_url: str,
) -> None:
    location = ObjectStoreLocation.from_url(object_store_url)
    content, part = bytes(range(256)) * (6 * MiB // 256), 5 * MiB
    digest = address(content)
    async with ObjectBlobStore(location) as store:
        await store.create_bucket()
        mine = await _parts_at_the_address(store, digest, content, part)
        listed = await store._listed_parts(store.key(digest), mine["token"])
        # The API process that joined the parts died before it hashed them: nothing vouches for the object.
        assert await store._join(
            store.key(digest), mine["token"], [store._completed_part(p, mine["parts"]) for p in listed]
        )
        assert await store.size(digest) is None

        assert await store.complete_upload(digest, len(content), mine["token"], mine["parts"]) == (len(content), False)
        assert await store.size(digest) == len(content)


async def _sent_in_one_put(client: Any, path: Path, content: bytes, api_key: str | None) -> list[dict[str, Any]]:
    """Uploads `content` as the training client does (a presigned PUT to the bucket); the manifest entry to log it."""
    path.write_bytes(content)
    transport = Transport(str(client.make_url("/")), api_key=api_key)
    try:
        await asyncio.to_thread(transport.upload, path, address(content), lambda sent: None)
    finally:
        transport.close()
    return [{"path": path.name, "size": len(content), "digest": address(content)}]


async def test_a_member_who_does_not_read_every_team_logs_a_new_file_sent_in_one_presigned_put(
    bucket_stack: Stack, tmp_path: Path
) -> None:
    # One PUT straight to the bucket leaves no record of its sender: the version listing the file must still log.
    assert bucket_stack.client is not None
    client, admin = bucket_stack.client, await bucket_stack.auth()
    hidden = 'mutation { setVisibility(input: {scope: "entity:lynx", visibility: PRIVATE}) { scope } }'
    assert "errors" not in await (await client.post("/graphql", json={"query": hidden}, headers=admin)).json()
    member = await bucket_stack.key("user:otto", "member")
    content = b"otto's brand new weights"
    files = await _sent_in_one_put(client, tmp_path / "w.bin", content, api_key=member)
    log = {
        "query": "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id } }",
        "variables": {"i": {"entity": "acme", "project": "p", "name": "m", "type": "model", "files": files}},
    }
    logged = await (await client.post("/graphql", json=log, headers={"Authorization": f"Bearer {member}"})).json()
    assert "errors" not in logged, logged
    assert (await client.head(f"/blobs/{address(content)}", headers=admin)).status == 200


async def test_a_deleted_versions_file_is_handed_out_through_no_presigned_url(
    bucket_stack: Stack, tmp_path: Path
) -> None:
    assert bucket_stack.client is not None
    client, admin = bucket_stack.client, await bucket_stack.auth()
    content = b"name,email\njohn,john@example.com\n"
    files = await _sent_in_one_put(client, tmp_path / "pii.csv", content, api_key=None)  # the stack's admin key
    log = {
        "query": "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id } }",
        "variables": {
            "i": {"entity": "acme", "project": "faces", "name": "customers", "type": "dataset", "files": files}
        },
    }
    delete = {"query": 'mutation { deleteArtifactVersion(input: {ref: "acme/faces/customers:v0"}) { id } }'}
    blob = f"/blobs/{address(content)}"
    assert "errors" not in await (await client.post("/graphql", json=log, headers=admin)).json()
    assert (await client.get(blob, headers=admin, allow_redirects=False)).status == 307
    assert "errors" not in await (await client.post("/graphql", json=delete, headers=admin)).json()
    answer = await client.get(blob, headers=admin, allow_redirects=False)
    assert (answer.status, "Location" in answer.headers) == (404, False)
