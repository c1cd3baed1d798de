"""Artifact files in S3-compatible object storage, moved by clients through presigned URLs.

The API never carries the bytes: it hands out presigned URLs and checks what landed. A blob's address in
the bucket is `<prefix>sha256/<2 hex>/<62 hex>`, and an object there counts as stored only when the store
vouches for its SHA-256:

- a file up to `single_put_max` (5 GiB, S3's limit for one PUT) is sent in one presigned PUT straight to its
  address, with its SHA-256 in a signed `x-amz-checksum-sha256` header: the store computes the digest as
  the bytes arrive and refuses the PUT (BadDigest) if it differs, and a PUT is atomic, so a wrong or
  half-sent file is never at an address. The store keeps the checksum, and `sizes()` reads it back.
- a bigger file is sent as a multipart upload to its address, in parts (each with its own signed SHA-256,
  so a corrupted part is refused on its own and sent again), in parallel, resumable from the parts the
  store lists; an unfinished multipart upload is no object, so nothing half-written is addressable. S3
  cannot vouch for the SHA-256 of a whole multipart object, so completing it is a verification step: the
  API reads it back and hashes it; a match is recorded in `<prefix>verified/<hex>` (the object's ETag,
  written only by this server, so that an object replaced later is not vouched for), a mismatch deleted.
  Completing is conditional (`If-None-Match: *`): parts of other bytes never replace an object at the
  address, whoever completes them when, and a mismatch is deleted only while it is the object completed
  (`If-Match` its ETag), so a check never removes what another upload put there meanwhile.

The credentials are the usual ones (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance
role) that botocore finds; aiobotocore signs every request and URL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
import re
import uuid
from collections.abc import Collection
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from modelreg.errors import InvalidInput, Unavailable
from modelreg.services.infra.blob_holders import holder_mark
from modelreg.services.infra.blob_store import DIGEST, HEX, DigestMismatch

log = logging.getLogger(__name__)
SINGLE_PUT_MAX = 5 * 1024**3  # S3's largest single PUT
MIN_PART = 5 * 1024**2  # S3's smallest part (but the last)
MAX_PART = 5 * 1024**3
MAX_PARTS = 10_000
URL_LIFETIME_S = 3600  # an upload's: parts planned at once may be sent an hour later
# A download's is followed at once (a redirect from GET /blobs), and carries no key: one passed on, or kept past
# the revocation of its key or of a grant, reads the file for as long as it lives.
DOWNLOAD_URL_LIFETIME_S = 300
VERIFY_CHUNK = 8 * 1024 * 1024
# An upload token naming a proof of possession: "proof:<32 hex>", then ":<multipart upload id>" for parts.
PROOF = "proof:"
UPLOAD_GONE = "the upload expired or was completed: start it again without 'upload'"
HEX32 = re.compile(r"^[0-9a-f]{32}\Z")
RACED = "another upload reached the file's address first, with other bytes: complete again (the parts sent are kept)"


def _upload_id(token: str | None) -> str | None:
    """The multipart upload id a token carries (None: a single PUT's proof, or no upload yet)."""
    if token is None:
        return None
    if token.startswith(PROOF):
        _, _, upload_id = token.removeprefix(PROOF).partition(":")
        return upload_id or None
    return token


@dataclass(frozen=True)
class ObjectStoreLocation:
    """Where the blobs are: `s3://bucket/prefix?endpoint=http://host:port&region=...`."""

    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str = "us-east-1"
    single_put_max: int = SINGLE_PUT_MAX
    part_size: int | None = None  # None: 64 MiB, or more for a file that 10,000 of them would not hold
    # Where clients reach the store, if not at `endpoint` (compose, a cluster): presigned URLs name this host.
    public_endpoint: str | None = None

    @classmethod
    def from_url(cls, url: str) -> ObjectStoreLocation:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise InvalidInput(f"{url!r} is not an object store URL: use s3://bucket/prefix?endpoint=http://host:port")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint", "public_endpoint", "region", "single_put_max", "part_size"}
        if unknown:
            raise InvalidInput(
                f"unknown option(s) {sorted(unknown)} in {url!r}: use endpoint, public_endpoint, region, "
                "single_put_max, part_size"
            )
        prefix = parts.path.strip("/")
        single = int(query.get("single_put_max", SINGLE_PUT_MAX))
        if not MIN_PART <= single <= SINGLE_PUT_MAX:
            raise InvalidInput(f"single_put_max must be between {MIN_PART} and {SINGLE_PUT_MAX} bytes")
        part_size = int(query["part_size"]) if "part_size" in query else None
        if part_size is not None and not MIN_PART <= part_size <= MAX_PART:
            raise InvalidInput(f"part_size must be between {MIN_PART} and {MAX_PART} bytes")
        return cls(
            bucket=parts.netloc,
            prefix=f"{prefix}/" if prefix else "",
            endpoint=query.get("endpoint"),
            region=query.get("region", "us-east-1"),
            single_put_max=single,
            part_size=part_size,
            public_endpoint=query.get("public_endpoint"),
        )


def _b64(hexdigest: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def _hex_of(digest: str) -> str:
    match = DIGEST.match(digest)
    if match is None:
        raise InvalidInput(f"{digest!r} is not a blob address: use sha256:<64 lowercase hex>")
    return match.group(1)


def part_count(size: int, part_size: int) -> int:
    return max(1, math.ceil(size / part_size))


def _latest_of_each_number(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A part sent twice (a client's retry after a lost answer, a resumed upload) is one part, the latest sent,
    as S3 keeps it; SeaweedFS lists every copy, and the upload then looked incomplete for good."""
    latest: dict[int, dict[str, Any]] = {}
    for part in parts:
        seen = latest.get(part["PartNumber"])
        if (
            seen is None
            or not (seen.get("LastModified") and part.get("LastModified"))
            or (part["LastModified"] >= seen["LastModified"])
        ):
            latest[part["PartNumber"]] = part
    return [latest[number] for number in sorted(latest)]


class ObjectBlobStore:
    """The blob store in a bucket. `async with ObjectBlobStore(location):` opens its client."""

    def __init__(self, location: ObjectStoreLocation) -> None:
        self.location = location
        self._stack = AsyncExitStack()
        self._s3: Any = None
        self._signer: Any = None  # signs the presigned URLs: the same client, or one naming the public endpoint

    async def __aenter__(self) -> ObjectBlobStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            # Checksums only where we ask for them: botocore's default CRC32 on every PUT would also be put
            # into presigned URLs, which the client could not honour.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=64,
        )
        session = get_session()
        self._s3 = await self._stack.enter_async_context(
            session.create_client(
                "s3", endpoint_url=self.location.endpoint, region_name=self.location.region, config=config
            )
        )
        self._signer = self._s3
        if self.location.public_endpoint:
            self._signer = await self._stack.enter_async_context(
                session.create_client(
                    "s3", endpoint_url=self.location.public_endpoint, region_name=self.location.region, config=config
                )
            )

    async def close(self) -> None:
        await self._stack.aclose()

    async def create_bucket(self) -> None:
        """Make the bucket if it is missing (tests, `modelreg migrate-blobs`); deployments make their own."""
        from botocore.exceptions import ClientError

        try:
            await self._s3.head_bucket(Bucket=self.location.bucket)
        except ClientError:
            await self._s3.create_bucket(Bucket=self.location.bucket)

    def key(self, digest: str) -> str:
        hexdigest = _hex_of(digest)
        return f"{self.location.prefix}sha256/{hexdigest[:2]}/{hexdigest[2:]}"

    # -- what is stored ------------------------------------------------------------------------------------

    async def size(self, digest: str) -> int | None:
        """The size of the blob if the store holds it at its address, verified; None otherwise."""
        from botocore.exceptions import ClientError

        hexdigest = _hex_of(digest)
        try:
            head = await self._s3.head_object(Bucket=self.location.bucket, Key=self.key(digest), ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        vouched = head.get("ChecksumSHA256") == _b64(hexdigest) or await self._verified_etag(digest) == head["ETag"]
        return int(head["ContentLength"]) if vouched else None

    async def _etag(self, key: str) -> str:
        """The object's ETag as HEAD reports it (what `size()` compares a verification marker with)."""
        return (await self._s3.head_object(Bucket=self.location.bucket, Key=key))["ETag"]

    def _marker(self, digest: str) -> str:
        return f"{self.location.prefix}verified/{_hex_of(digest)}"

    async def _vouch(self, digest: str, etag: str) -> None:
        """Record that the object with `etag` at the address was read back here and has `digest`."""
        await self._s3.put_object(Bucket=self.location.bucket, Key=self._marker(digest), Body=etag.encode())

    async def _verified_etag(self, digest: str) -> str | None:
        """The ETag of the object this server read back and found to have `digest` (multipart uploads)."""
        from botocore.exceptions import ClientError

        try:
            response = await self._s3.get_object(Bucket=self.location.bucket, Key=self._marker(digest))
        except ClientError:
            return None
        async with response["Body"] as body:
            return (await body.read()).decode()

    async def sizes(self, digests: Collection[str]) -> dict[str, int]:
        """The size of each of `digests` held (and verified) here; at most 32 look-ups at a time."""
        gate = asyncio.Semaphore(32)

        async def one(digest: str) -> tuple[str, int | None]:
            async with gate:
                try:
                    return digest, await self.size(digest)
                except InvalidInput:
                    return digest, None

        found = await asyncio.gather(*(one(d) for d in digests))
        return {d: s for d, s in found if s is not None}

    async def download_url(self, digest: str) -> str:
        return await self._signer.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.location.bucket, "Key": self.key(digest)},
            ExpiresIn=DOWNLOAD_URL_LIFETIME_S,
        )

    # -- uploads -------------------------------------------------------------------------------------------

    async def plan_upload(
        self,
        digest: str,
        size: int,
        part_size: int | None,
        part_digests: list[str] | None,
        token: str | None,
        *,
        proof: bool = False,
    ) -> dict[str, Any]:
        """What the client does next to store `digest`: nothing (stored already), one presigned PUT, or
        presigned parts. With `proof` (a file the caller may not be told is stored), the bytes go to a key of
        their own whatever the store holds, and `complete_upload` verifies them there: the stored copy is never
        rewritten by someone proving they hold it."""
        hexdigest = _hex_of(digest)
        if size < 0:
            raise InvalidInput("size must be >= 0")
        if not proof:
            stored = await self.size(digest)
            if stored == size:
                return {"method": "stored"}
            if stored is not None:  # completing an upload of other bytes there would replace good ones
                raise InvalidInput(f"the store holds {digest} with {stored} bytes, not {size}: declare the file's size")
        if token is not None and proof != token.startswith(PROOF):
            raise InvalidInput(UPLOAD_GONE)
        if proof and token is None:
            token = PROOF + uuid.uuid4().hex
        key = self._upload_key(digest, token)
        if size <= self.location.single_put_max:
            url = await self._signer.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self.location.bucket,
                    "Key": key,
                    "ChecksumSHA256": _b64(hexdigest),
                    "ContentLength": size,
                },
                ExpiresIn=URL_LIFETIME_S,
            )
            plan = {"method": "single", "url": url, "headers": {"x-amz-checksum-sha256": _b64(hexdigest)}}
            return plan | ({"upload": token} if proof else {})
        if part_size is None or part_digests is None:
            return {"method": "multipart", "part_size": self.part_size(size)}
        self._check_parts(size, part_size, part_digests)
        upload_id = _upload_id(token)
        if upload_id is None:
            created = await self._s3.create_multipart_upload(
                Bucket=self.location.bucket, Key=key, ChecksumAlgorithm="SHA256"
            )
            upload_id = created["UploadId"]
            token = f"{token}:{upload_id}" if proof else upload_id
        done = {p["PartNumber"]: p for p in await self._listed_parts(key, upload_id)}
        urls = []
        for number, part_hex in enumerate(part_digests, start=1):
            expected = min(part_size, size - (number - 1) * part_size)
            listed = done.get(number)
            # Already in the store: resuming. (A store that lists no part checksums is taken at its sizes: the
            # whole file is verified when the upload completes anyway.)
            if (
                listed is not None
                and listed["Size"] == expected
                and listed.get("ChecksumSHA256") in (None, _b64(part_hex))
            ):
                continue
            url = await self._signer.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.location.bucket,
                    "Key": key,
                    "UploadId": upload_id,
                    "PartNumber": number,
                    "ChecksumSHA256": _b64(part_hex),
                    "ContentLength": expected,
                },
                ExpiresIn=URL_LIFETIME_S,
            )
            urls.append({"number": number, "url": url, "headers": {"x-amz-checksum-sha256": _b64(part_hex)}})
        return {"method": "multipart", "part_size": part_size, "upload": token, "parts": urls}

    def _upload_key(self, digest: str, token: str | None) -> str:
        """Where an upload's bytes go: the blob's address, or for a proof a key named by its token."""
        if token is None or not token.startswith(PROOF):
            return self.key(digest)
        proof_id = token.removeprefix(PROOF).split(":", 1)[0]
        if not HEX32.match(proof_id):
            raise InvalidInput(UPLOAD_GONE)
        return f"{self.location.prefix}proofs/{_hex_of(digest)}/{proof_id}"

    def part_size(self, size: int) -> int:
        """Parts of 64 MiB (or as configured), or bigger where 10,000 of them would not hold the file."""
        return max(self.location.part_size or 64 * 1024**2, math.ceil(size / MAX_PARTS / MIN_PART) * MIN_PART)

    def _check_parts(self, size: int, part_size: int, part_digests: list[str]) -> None:
        if not MIN_PART <= part_size <= MAX_PART:
            raise InvalidInput(f"part_size must be between {MIN_PART} and {MAX_PART} bytes")
        if len(part_digests) != part_count(size, part_size) or len(part_digests) > MAX_PARTS:
            raise InvalidInput(
                f"a file of {size} bytes in parts of {part_size} has {part_count(size, part_size)} parts "
                f"(at most {MAX_PARTS}): send one sha256 (64 lowercase hex) per part"
            )
        if not all(HEX.match(p) for p in part_digests):
            raise InvalidInput("each part's digest is the sha256 of its bytes, as 64 lowercase hex")

    async def _listed_parts(self, key: str, upload_id: str) -> list[dict[str, Any]]:
        from botocore.exceptions import ClientError

        parts: list[dict[str, Any]] = []
        marker = 0
        try:
            while True:
                page = await self._s3.list_parts(
                    Bucket=self.location.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
                parts.extend(page.get("Parts", []))
                if not page.get("IsTruncated"):
                    return _latest_of_each_number(parts)
                marker = int(page["NextPartNumberMarker"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404", "NoSuchKey"):
                raise InvalidInput(UPLOAD_GONE) from None
            raise

    async def complete_upload(
        self, digest: str, size: int, token: str, part_digests: list[str] | None = None
    ) -> tuple[int, bool]:
        """Join the parts, then verify the whole file's SHA-256: only a match is vouched for. Each part's
        SHA-256 (`part_digests`, else as the store lists them) is named again, which S3 requires and checks.
        Returns the size and whether the caller's bytes were verified (a proof of possession, deleted once
        checked), not only found stored."""
        key = self._upload_key(digest, token)
        proof = token.startswith(PROOF)
        if not proof:
            stored = await self.size(digest)
            if stored is not None:
                # Another client finished the same content first; parts of other bytes must not replace it.
                await self._abort(key, token)
                if stored != size:
                    raise InvalidInput(f"the store holds {digest} with {stored} bytes, not {size}")
                return size, False
        upload_id = _upload_id(token)
        if upload_id is None:  # a proof sent in one PUT, which the store checked against the signed SHA-256
            return await self._single_proof(digest, size, key), True
        try:
            parts = sorted(await self._listed_parts(key, upload_id), key=lambda p: p["PartNumber"])
        except InvalidInput:
            if proof:
                raise
            # Completed already: an answer lost, or a completion asked again while the first one checks.
            return await self._check_address(digest, size, key, token, gone=True)
        if [p["PartNumber"] for p in parts] != list(range(1, len(parts) + 1)) or sum(p["Size"] for p in parts) != size:
            raise InvalidInput(
                f"the upload has {len(parts)} part(s) of {sum(p['Size'] for p in parts)} bytes, not all of the "
                f"{size}: send the missing parts (ask again with 'upload') before completing"
            )
        joined = await self._join(key, upload_id, [self._completed_part(p, part_digests) for p in parts])
        if not joined and not proof:
            return await self._check_address(digest, size, key, token)
        # (A proof's key is its own: found filled, it holds this upload, joined by an attempt whose answer was lost.)
        return await self._verify(digest, size, key, proof), True

    async def _verify(self, digest: str, size: int, key: str, proof: bool) -> int:
        """Hash the object just joined at `key`: a match at the address is vouched for, a mismatch removed; a
        proof's object is removed either way."""
        from botocore.exceptions import ClientError

        try:
            etag = await self._etag(key)
            actual, length = await self._sha256_of(key, etag)
        except ClientError:
            if proof:
                raise Unavailable(f"the bytes sent for {digest} went away while checked: send them again") from None
            # Replaced meanwhile: by a single PUT, which the store checks, of the same file; or removed.
            return (await self._check_address(digest, size, key, None))[0]
        if actual != _hex_of(digest) or length != size or proof:
            await self._delete_if_unchanged(key, etag)
        if actual != _hex_of(digest) or length != size:
            raise DigestMismatch(
                f"the uploaded parts join to sha256:{actual} ({length} bytes), not {digest} of {size} bytes: the "
                "upload was corrupted or mislabelled"
            )
        if not proof:
            await self._vouch(digest, etag)
        return size

    async def _join(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> bool:
        """Complete the multipart upload if nothing is at `key` yet; False (the upload left open) if something
        is: the store checks and completes in one step, so two completions never both land."""
        from botocore.exceptions import ClientError

        request = {
            "Bucket": self.location.bucket,
            "Key": key,
            "UploadId": upload_id,
            "MultipartUpload": {"Parts": parts},
        }
        try:
            await self._s3.complete_multipart_upload(**request, IfNoneMatch="*")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412"):
                return False
            if code in ("NoSuchUpload", "404"):  # completed or aborted meanwhile, by a completion of the same upload
                raise InvalidInput(UPLOAD_GONE) from None
            if code in ("ConditionalRequestConflict", "409"):  # another completion of this key is under way
                raise Unavailable(RACED) from None
            if code in ("BadDigest", "InvalidPart", "InvalidPartOrder"):  # the caller named parts it did not send
                raise InvalidInput(
                    f"the object store refused to join the parts ({code}): complete with the SHA-256 of each part "
                    "as sent, or ask again with 'upload' and send the parts it lists"
                ) from None
            if code != "NotImplemented":
                raise
            log.warning("the object store has no conditional writes: completing %s unguarded", key)
            await self._s3.complete_multipart_upload(**request)
        return True

    async def _check_address(
        self, digest: str, size: int, key: str, token: str | None, *, gone: bool = False
    ) -> tuple[int, bool]:
        """Something is at the address that this upload did not (or no longer can) put there. Vouched for, it
        is the file, and this upload is dropped. Unverified, it is checked here as its own completion checks it,
        each step conditional on its ETag (two checks of one object agree, and neither touches another object):
        the file is then vouched for; other bytes are removed, and completing again joins this upload's parts.
        `gone`: this upload was completed already, so with nothing at the address there is nothing to check."""
        from botocore.exceptions import ClientError

        stored = await self.size(digest)
        if stored is None:
            try:
                etag = await self._etag(key)
                actual, length = await self._sha256_of(key, etag)
            except ClientError:
                if gone:
                    raise InvalidInput(UPLOAD_GONE) from None
                raise Unavailable(RACED) from None  # removed while looked at: the address is free again
            if actual != _hex_of(digest):
                await self._delete_if_unchanged(key, etag)
                raise InvalidInput(UPLOAD_GONE) if gone else Unavailable(RACED)
            await self._vouch(digest, etag)
            stored = length
        if token is not None:
            await self._abort(key, token)
        if stored != size:
            raise InvalidInput(f"the store holds {digest} with {stored} bytes, not {size}")
        return size, False

    async def _delete_if_unchanged(self, key: str, etag: str) -> None:
        """Delete the object at `key` if it is still the one with `etag` (not what another upload put there)."""
        from botocore.exceptions import ClientError

        try:
            await self._s3.delete_object(Bucket=self.location.bucket, Key=key, IfMatch=etag)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "NotImplemented":  # a store without conditional deletes: as before, unguarded
                await self._s3.delete_object(Bucket=self.location.bucket, Key=key)
            elif code not in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise

    async def _single_proof(self, digest: str, size: int, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            head = await self._s3.head_object(Bucket=self.location.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError:
            raise InvalidInput("nothing was sent for this upload: PUT the file to the URL it gave first") from None
        await self._s3.delete_object(Bucket=self.location.bucket, Key=key)
        if head.get("ChecksumSHA256") != _b64(_hex_of(digest)) or int(head["ContentLength"]) != size:
            raise DigestMismatch(f"the bytes sent are not {digest} of {size} bytes: send the file's own bytes")
        return size

    async def _abort(self, key: str, token: str) -> None:
        from botocore.exceptions import ClientError

        try:
            await self._s3.abort_multipart_upload(Bucket=self.location.bucket, Key=key, UploadId=_upload_id(token))
        except ClientError:
            pass  # expired or completed already: nothing of it is addressable

    # -- who proved to hold a file (services/infra/blob_holders.py) -----------------------------------------

    def _holder_key(self, digest: str, holder: str) -> str:
        return f"{self.location.prefix}held/{_hex_of(digest)}/{holder_mark(holder)}"

    async def record_holder(self, digest: str, holder: str) -> None:
        await self._s3.put_object(Bucket=self.location.bucket, Key=self._holder_key(digest, holder), Body=b"")

    async def held_by(self, digests: Collection[str], holder: str) -> set[str]:
        from botocore.exceptions import ClientError

        gate = asyncio.Semaphore(32)

        async def held(digest: str) -> str | None:
            async with gate:
                try:
                    await self._s3.head_object(Bucket=self.location.bucket, Key=self._holder_key(digest, holder))
                    return digest
                except ClientError:
                    return None

        return {d for d in await asyncio.gather(*(held(d) for d in digests)) if d is not None}

    @staticmethod
    def _completed_part(listed: dict[str, Any], part_digests: list[str] | None) -> dict[str, Any]:
        part = {"PartNumber": listed["PartNumber"], "ETag": listed["ETag"]}
        number = listed["PartNumber"]
        if part_digests is not None and 0 < number <= len(part_digests) and HEX.match(part_digests[number - 1]):
            part["ChecksumSHA256"] = _b64(part_digests[number - 1])
        elif "ChecksumSHA256" in listed:
            part["ChecksumSHA256"] = listed["ChecksumSHA256"]
        return part

    async def _sha256_of(self, key: str, etag: str) -> tuple[str, int]:
        """The SHA-256 (hex) and length of the object at `key` if it is still the one with `etag`."""
        hasher, length = hashlib.sha256(), 0
        response = await self._s3.get_object(Bucket=self.location.bucket, Key=key, IfMatch=etag)
        async with response["Body"] as body:
            while chunk := await body.read(VERIFY_CHUNK):
                length += len(chunk)
                await asyncio.to_thread(hasher.update, chunk)
        return hasher.hexdigest(), length

    async def put_verified(self, digest: str, data: bytes | Any, size: int) -> None:
        """Store bytes this process holds (migrate-blobs) under `digest`, the store checking the SHA-256."""
        await self._s3.put_object(
            Bucket=self.location.bucket,
            Key=self.key(digest),
            Body=data,
            ContentLength=size,
            ChecksumSHA256=_b64(_hex_of(digest)),
        )

    async def put_file(self, digest: str, path: Any) -> int:
        """Copy a local file (a folder store's blob: `modelreg migrate-blobs`) to its address, verified: one PUT
        the store checks against the SHA-256, or parts it checks one by one while this process hashes the
        whole (it read every byte itself, so a match may be vouched for)."""
        size = path.stat().st_size
        if size <= self.location.single_put_max:
            with path.open("rb") as body:
                await self.put_verified(digest, body, size)
            return size
        hexdigest, key, part_size = _hex_of(digest), self.key(digest), self.part_size(size)
        created = await self._s3.create_multipart_upload(
            Bucket=self.location.bucket, Key=key, ChecksumAlgorithm="SHA256"
        )
        whole, parts = hashlib.sha256(), []
        try:
            with path.open("rb") as f:
                for number in range(1, part_count(size, part_size) + 1):
                    data = f.read(part_size)
                    whole.update(data)
                    sent = await self._s3.upload_part(
                        Bucket=self.location.bucket,
                        Key=key,
                        UploadId=created["UploadId"],
                        PartNumber=number,
                        Body=data,
                        ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
                    )
                    part = {"PartNumber": number, "ETag": sent["ETag"], "ChecksumSHA256": sent.get("ChecksumSHA256")}
                    parts.append({k: v for k, v in part.items() if v is not None})
            if whole.hexdigest() != hexdigest:
                raise DigestMismatch(
                    f"{path} has sha256:{whole.hexdigest()}, not {digest}: the folder store is damaged"
                )
        except BaseException:
            await self._s3.abort_multipart_upload(Bucket=self.location.bucket, Key=key, UploadId=created["UploadId"])
            raise
        await self._s3.complete_multipart_upload(
            Bucket=self.location.bucket, Key=key, UploadId=created["UploadId"], MultipartUpload={"Parts": parts}
        )
        await self._vouch(digest, await self._etag(key))
        return size
