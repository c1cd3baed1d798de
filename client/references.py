"""Artifact files recorded by reference: the bytes stay where they are (a shared disk, a web server, a
bucket); the manifest keeps the URI, the size and a digest, and `download()` fetches from the URI.

The digest is the sha256 of the content when it can be had cheaply: always for `file://` (the file is
hashed), for `http(s)://` when `checksum=True` and the body is at most CHECKSUM_BODY_LIMIT bytes. Otherwise
it is `reference_digest(uri, etag, size)`, a sha256 of the URI and of what identifies the content at it:
the ETag and Content-Length for http(s), the size for file:// with checksum=False, the URI alone for s3://
when S3 cannot be asked (no boto3, or checksum=False). Such a digest says "this URI, as it was", and a
download checks it again (same ETag and size), since the bytes themselves were never hashed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import httpx

from modelreg.errors import InvalidInput, NotFound, Unavailable
from modelreg.partial_files import partial_beside

CHECKSUM_BODY_LIMIT = 64 * 1024 * 1024
SCHEMES = ("file", "http", "https", "s3")
_CHUNK = 1024 * 1024


def reference_digest(uri: str, etag: str | None = None, size: int | None = None) -> str:
    """The digest of a reference whose content was not hashed: the URI and what identifies the content there."""
    seed = f"modelreg-reference\n{uri}\n{etag or ''}\n{'' if size is None else size}"
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def stands_for_its_uri(uri: str, size: int, digest: str) -> bool:
    """Whether the digest is `reference_digest`'s (the URI as it was, its bytes never hashed) and the URI still
    holds what it held: a file:// one is told from its recorded size; an s3 one's digest is never of its bytes; an
    http(s) one is asked for its ETag and size again (False when it cannot be asked)."""
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return digest == reference_digest(uri, None, size)
    if scheme == "s3":
        return True
    try:
        head = httpx.head(uri, follow_redirects=True, timeout=30)
        head.raise_for_status()
    except httpx.HTTPError:
        return False
    return digest == reference_digest(uri, head.headers.get("etag"), int(head.headers.get("content-length", 0)))


def _sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def local_path(uri: str) -> Path:
    return Path(url2pathname(unquote(urlparse(uri).path)))


def describe(uri: str, name: str | None, checksum: bool) -> list[tuple[str, int, str, str]]:
    """(path in the artifact, size, digest, uri) of each file `uri` names; a file:// folder names its files."""
    scheme = urlparse(uri).scheme
    if scheme not in SCHEMES:
        raise InvalidInput(f"reference {uri!r}: only file://, http://, https:// and s3:// URIs can be referenced")
    if scheme == "file":
        return _describe_local(uri, name, checksum)
    default_name = urlparse(uri).path.rstrip("/").rsplit("/", 1)[-1] or urlparse(uri).netloc
    if scheme == "s3":
        size, digest = _describe_s3(uri, checksum)
    else:
        size, digest = _describe_http(uri, checksum)
    return [(name or default_name, size, digest, uri)]


def _describe_local(uri: str, name: str | None, checksum: bool) -> list[tuple[str, int, str, str]]:
    root = local_path(uri)
    if root.is_file():
        files = [(name or root.name, root)]
    elif root.is_dir():
        prefix = f"{name.rstrip('/')}/" if name else ""
        files = [(prefix + p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*")) if p.is_file()]
    else:
        raise NotFound(f"reference {uri!r}: there is no file or folder {root}")
    described = []
    for path, file in files:
        file_uri = file.resolve().as_uri()
        size = file.stat().st_size
        digest = _sha256_file(file) if checksum else reference_digest(file_uri, None, size)
        described.append((path, size, digest, file_uri))
    return described


def _describe_http(uri: str, checksum: bool) -> tuple[int, str]:
    try:
        head = httpx.head(uri, follow_redirects=True, timeout=30)
        head.raise_for_status()
        size = int(head.headers.get("content-length", 0))
        etag = head.headers.get("etag")
        if checksum and 0 < size <= CHECKSUM_BODY_LIMIT:
            hasher, got = hashlib.sha256(), 0
            with httpx.stream("GET", uri, follow_redirects=True, timeout=60) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes(_CHUNK):
                    hasher.update(chunk)
                    got += len(chunk)
            return got, "sha256:" + hasher.hexdigest()
    except httpx.HTTPStatusError as exc:
        raise NotFound(f"reference {uri!r}: the server answered {exc.response.status_code}") from None
    except httpx.TransportError as exc:
        raise Unavailable(
            f"reference {uri!r}: cannot reach it ({exc}). add_reference asks the URL for its size and ETag from this "
            "machine, with checksum=False too (they make its digest), and download() fetches it from there: check "
            "the URL and that this machine reaches it (HTTPS_PROXY and HTTP_PROXY are read), or upload the file "
            "instead with add_file"
        ) from None
    return size, reference_digest(uri, etag, size)


def _describe_s3(uri: str, checksum: bool) -> tuple[int, str]:
    """With checksum=False (or asked to, without S3 access): size 0 and a digest of the URI alone."""
    if not checksum:
        return 0, reference_digest(uri)
    try:
        import boto3  # optional: only for checksummed s3:// references
    except ImportError:
        raise InvalidInput(
            f"reference {uri!r}: checking an s3:// object needs boto3 (pip install boto3); "
            "or record it unchecked with add_reference(uri, checksum=False)"
        ) from None
    parsed = urlparse(uri)
    head = boto3.client("s3").head_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
    size = int(head["ContentLength"])
    return size, reference_digest(uri, head.get("ETag"), size)


_MACHINES_OWN = (Path("/proc"), Path("/sys"), Path("/dev"))


def _not_a_machines_own(uri: str) -> None:
    """An unhashed reference's digest is made of its URI, so anyone may log one: a teammate's version naming
    file:///proc/self/environ, with size 0, copied the downloader's environment (their API key) into the download
    folder as a checked file. No artifact lives in /proc, /sys or /dev, nor behind a link-local address (a cloud
    machine's metadata service and its credentials)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        source = local_path(uri).resolve()
        if any(source == root or root in source.parents for root in _MACHINES_OWN):
            raise InvalidInput(
                f"reference {uri!r} names the machine's own {source}, which no artifact holds: not downloaded "
                "(ask who logged the version what it should name)"
            )
    elif parsed.hostname is not None:
        _not_link_local(parsed.hostname, uri)


def _not_link_local(host: str, uri: str) -> None:
    """The host as the machine resolves it: an address is spelt many ways (::ffff:169.254.169.254, 2852039166,
    0xa9fea9fe, a trailing dot, a DNS name), and every one of them reached the metadata service."""
    name = host.strip("[]").rstrip(".").lower()
    link_local = name == "metadata.google.internal"
    if not link_local:
        try:
            found = {info[4][0] for info in socket.getaddrinfo(name, None)}
        except (OSError, UnicodeError):
            found = set()  # unresolvable: the fetch fails on its own
        for text in found:
            address = ipaddress.ip_address(str(text).split("%")[0])
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            link_local = link_local or address.is_link_local
    if link_local:
        raise InvalidInput(
            f"reference {uri!r} leads to a link-local address (a cloud machine's metadata service), which no "
            "artifact is served from: not downloaded"
        )


def _checked_hop(request: httpx.Request) -> None:
    """Each request of a fetch, redirects included: a public address may redirect to the metadata service."""
    _not_link_local(request.url.host, str(request.url))


def fetch(uri: str, size: int, digest: str, destination: Path, on_bytes: Callable[[int], object]) -> None:
    """Copy a reference to `destination`, checking it is still what was logged."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_beside(destination)
    try:
        scheme = urlparse(uri).scheme
        etag: str | None = None
        _not_a_machines_own(uri)
        if scheme == "file":
            source = local_path(uri)
            if not source.is_file():
                raise NotFound(f"reference {uri!r} is gone: the file {source} no longer exists")
            shutil.copyfile(source, temporary)
            on_bytes(temporary.stat().st_size)
        elif scheme in ("http", "https"):
            try:
                hooks = {"request": [_checked_hop]}
                with (
                    httpx.Client(follow_redirects=True, timeout=60, event_hooks=hooks) as http,
                    http.stream("GET", uri) as response,
                ):
                    response.raise_for_status()
                    etag = response.headers.get("etag")
                    with temporary.open("wb") as out:
                        for chunk in response.iter_bytes(_CHUNK):
                            out.write(chunk)
                            on_bytes(len(chunk))
            except httpx.HTTPStatusError as exc:
                raise NotFound(f"reference {uri!r}: the server answered {exc.response.status_code}") from None
            except httpx.TransportError as exc:
                raise Unavailable(f"reference {uri!r}: cannot reach it ({exc})") from None
        else:
            raise InvalidInput(
                f"reference {uri!r}: downloading {scheme}:// references is not supported; fetch it with your S3 tools"
            )
        got_size = temporary.stat().st_size
        same_bytes = _sha256_file(temporary) == digest
        # An unhashed reference: the same URI with the same ETag (http) and size as when it was logged.
        # A local file's size was always recorded (an empty file's is 0); an http one's may be unknown (0).
        sizes_agree = got_size == size or (scheme != "file" and size == 0)
        same_source = digest == reference_digest(uri, etag, size) and sizes_agree
        if not (same_bytes or same_source):
            raise InvalidInput(
                f"reference {uri!r} changed since it was logged (digest or size differ): "
                "log a new version of the artifact"
            )
    except BaseException:
        temporary.unlink(missing_ok=True)  # a failure leaves no partial file behind
        raise
    temporary.replace(destination)
