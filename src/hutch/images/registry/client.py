"""A client of one registry: the OCI distribution API v2, over httpx.

    GET  /v2/                                   ping (200, or 401 with a challenge)
    GET  /v2/<name>/manifests/<tag|digest>      a manifest or index (HEAD: its descriptor)
    PUT  /v2/<name>/manifests/<tag|digest>
    GET  /v2/<name>/blobs/<digest>              a blob (Range to resume; HEAD: exists?)
    POST /v2/<name>/blobs/uploads/[?mount=&from=]  start an upload (or mount a blob)
    PATCH <location>                            a chunk (Content-Range: start-end)
    PUT  <location>?digest=<digest>             close the upload (with the last bytes)

Every request carries the Authorization cached for its scope; a 401 is answered
once through the Authenticator (auth.py) and the request sent again. Plain http
is used for this machine's registries (localhost, 127.0.0.0/8, [::1]) and for
those given as insecure; https otherwise. Manifests are checked against the
digest asked for (or the Docker-Content-Digest the registry gives); blobs are
streamed into a ContentStore writer, which verifies digest and size before
anything reaches the store.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from hutch.common.digest import Digest, DigestMismatch
from hutch.errors import InvalidArgument, NotFound
from hutch.images.content import ContentStore, Writer
from hutch.images.registry.auth import AuthConfig, Authenticator
from hutch.images.registry.errors import AuthError, InterruptedTransfer, RegistryError
from hutch.images.registry.reference import Reference, is_insecure_default
from hutch.oci.image_spec import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
)

MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
USER_AGENT = "hutch-registry-client"
READ_CHUNK = 1 << 20
HTTPCORE_READ = 64 << 10  # what httpcore asks of the socket per read, unless told otherwise
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

# The error codes of the distribution spec that mean "no such thing".
_NOT_FOUND_CODES = {"BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"}


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    data: bytes
    media_type: str
    digest: Digest

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


@dataclass
class BlobFetch:
    """What one blob download did (for resume checks and progress)."""

    digest: Digest
    resumed_from: int = 0  # bytes kept from an earlier pull's interrupted download
    downloaded: int = 0  # bytes received now (over all attempts)
    skipped: bool = False  # the blob was in the store already
    attempts: int = 0  # GET requests made for it


class RegistryClient:
    """One registry (``host[:port]``); safe to share between threads."""

    def __init__(self, registry: str, *, insecure: bool | None = None,
                 auth: AuthConfig | None = None, timeout: httpx.Timeout | float | None = None,
                 verify: bool | str = True, transport: httpx.BaseTransport | None = None,
                 max_connections: int = 8) -> None:
        self.registry = registry
        host = Reference(registry, "x").host
        plain = is_insecure_default(registry) if insecure is None else insecure
        self.base = f"{'http' if plain else 'https'}://{host}"
        self.auth = Authenticator(registry, auth.get(registry) if auth else None,
                                  auth.path if auth else None)
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections)
        _read_larger_chunks()
        # Plain http needs no TLS context (loading the CA bundle costs ~20 ms).
        self.http = httpx.Client(timeout=timeout or DEFAULT_TIMEOUT,
                                 verify=False if plain else verify,
                                 transport=transport, limits=limits, follow_redirects=True,
                                 headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def _send(self, method: str, url: str | httpx.URL, scope: str, *, stream: bool = False,
              headers: dict[str, str] | None = None, content: bytes | None = None,
              params: dict[str, str] | None = None) -> httpx.Response:
        """One request with auth: the cached header, then once more after a 401."""
        sent = self.auth.header(scope) if scope else None
        for attempt in range(3):
            h = dict(headers or {})
            if sent:
                h["Authorization"] = sent
            request = self.http.build_request(method, url, headers=h, content=content,
                                              params=params)
            try:
                resp = self.http.send(request, stream=stream)
            except httpx.HTTPError as e:
                raise self._transport_error(e, method, str(request.url)) from None
            if resp.status_code != 401 or attempt == 2:
                return resp
            resp.read()
            resp.close()
            sent = self.auth.challenge(self.http, resp, scope, sent)
        raise AssertionError("unreachable")

    def _transport_error(self, e: Exception, method: str, url: str) -> RegistryError:
        hint = ""
        if isinstance(e, httpx.ConnectError):
            if "ssl" in str(e).lower():
                hint = (f"; if {self.registry} speaks plain http, mark it insecure "
                        "(--insecure-registry)")
            else:
                hint = f"; is a registry running at {self.base}?"
        return RegistryError(f"{method} {url}: cannot reach {self.registry}: "
                             f"{e or type(e).__name__}{hint}")

    def _fail(self, resp: httpx.Response, what: str) -> Exception:
        """The exception for an unexpected answer (the body is read, the response closed)."""
        try:
            body = resp.read()[:64 << 10]
        except httpx.HTTPError:
            body = b""
        resp.close()
        codes, messages = _registry_errors(body)
        detail = "; ".join(messages) or _snippet(body) or resp.reason_phrase
        text = f"{what}: {self.registry} answered HTTP {resp.status_code}: {detail}"
        if resp.status_code == 404 or codes & _NOT_FOUND_CODES:
            return NotFound(text)
        if resp.status_code in (401, 403) or codes & {"DENIED", "UNAUTHORIZED"}:
            return AuthError(text)
        if resp.status_code in (400, 405, 413, 416) or codes & {"DIGEST_INVALID",
                                                               "MANIFEST_INVALID",
                                                               "NAME_INVALID", "TAG_INVALID",
                                                               "SIZE_INVALID", "UNSUPPORTED"}:
            return InvalidArgument(text)
        return RegistryError(text)

    @staticmethod
    def scope(repository: str, push: bool = False) -> str:
        return f"repository:{repository}:{'pull,push' if push else 'pull'}"

    # --- API --------------------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/: the registry speaks the API (a 401 is fine: auth comes per request)."""
        resp = self._send("GET", self.url("/v2/"), "")
        resp.close()
        if resp.status_code not in (200, 401):
            raise self._fail(resp, "ping /v2/")

    def get_manifest(self, repository: str, ref: str | Digest,
                     accept: str = MANIFEST_ACCEPT) -> FetchedManifest:
        """The manifest or index ``ref`` (a tag or a digest), checked against its digest."""
        what = f"manifest {repository}:{ref}" if not isinstance(ref, Digest) and ":" not in \
            str(ref) else f"manifest {repository}@{ref}"
        resp = self._send("GET", self.url(f"/v2/{repository}/manifests/{ref}"),
                          self.scope(repository), stream=True, headers={"Accept": accept})
        with contextlib.closing(resp):
            if resp.status_code != 200:
                raise self._fail(resp, what)
            data = _read_limited(resp, MAX_MANIFEST_SIZE, what)
        wanted = _as_digest(ref)
        header = resp.headers.get("docker-content-digest")
        if wanted is None and header:
            try:
                wanted = Digest.parse(header)
            except InvalidArgument:
                raise RegistryError(f"{what}: the registry's Docker-Content-Digest "
                                    f"{header!r} is not a digest") from None
        digest = Digest.from_bytes(data, wanted.algorithm if wanted else "sha256")
        if wanted is not None and digest != wanted:
            raise DigestMismatch(f"{what}: the registry sent content with digest {digest}, "
                                 f"expected {wanted}")
        media_type = resp.headers.get("content-type", "").split(";")[0].strip()
        media_type = _media_type(data, media_type, what)
        return FetchedManifest(data, media_type, digest)

    def head_manifest(self, repository: str, ref: str | Digest) -> Descriptor | None:
        """The descriptor of manifest ``ref``, or None when the registry has none."""
        resp = self._send("HEAD", self.url(f"/v2/{repository}/manifests/{ref}"),
                          self.scope(repository), headers={"Accept": MANIFEST_ACCEPT})
        resp.close()
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail(resp, f"HEAD manifest {repository} {ref}")
        header = resp.headers.get("docker-content-digest")
        size = resp.headers.get("content-length")
        if not header or size is None:
            return None
        return Descriptor(resp.headers.get("content-type", "").split(";")[0],
                          Digest.parse(header), int(size))

    def put_manifest(self, repository: str, ref: str | Digest, data: bytes,
                     media_type: str) -> Digest:
        """Store ``data`` as manifest ``ref`` (a tag or its digest); returns its digest."""
        digest = Digest.from_bytes(data)
        resp = self._send("PUT", self.url(f"/v2/{repository}/manifests/{ref}"),
                          self.scope(repository, push=True),
                          headers={"Content-Type": media_type}, content=data)
        resp.close()
        if resp.status_code not in (200, 201, 202):
            raise self._fail(resp, f"push of manifest {repository}:{ref}")
        header = resp.headers.get("docker-content-digest")
        if header and Digest.parse(header) != digest:
            raise DigestMismatch(f"push of manifest {repository}:{ref}: the registry says it "
                                 f"stored {header}, but hutch sent {digest}")
        return digest

    def blob_size(self, repository: str, digest: Digest, push: bool = False) -> int | None:
        """HEAD the blob: its size, or None when the repository does not have it."""
        resp = self._send("HEAD", self.url(f"/v2/{repository}/blobs/{digest}"),
                          self.scope(repository, push))
        resp.close()
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail(resp, f"HEAD blob {digest} in {repository}")
        size = resp.headers.get("content-length")
        return int(size) if size is not None and size.isdigit() else -1

    def fetch_blob(self, repository: str, desc: Descriptor, content: ContentStore, *,
                   on_bytes: Callable[[int], None] | None = None,
                   result: BlobFetch | None = None, sync_dir: bool = True) -> BlobFetch:
        """Download blob ``desc`` into ``content``, verified; resume what an earlier,
        interrupted download left (a Range request), or start that blob again.

        An interruption keeps the bytes received (the writer's ingest is named by
        the digest) for the next attempt, raising InterruptedTransfer; a wrong
        digest or size removes them. ``result`` (given again for each attempt)
        adds up what the attempts did. ``sync_dir=False``: the caller fsyncs the
        store's blob directory itself (``ContentStore.sync``) once for many blobs.
        """
        result = result or BlobFetch(desc.digest)
        if content.exists(desc.digest):
            result.skipped = result.attempts == 0
            return result
        ref = f"hutch-fetch {desc.digest}"
        writer = content.writer(ref, desc.digest, desc.size)
        try:
            if writer.offset > desc.size:
                writer.truncate(0)
            if result.attempts == 0:
                result.resumed_from = writer.offset
            if writer.offset < desc.size or desc.size == 0:
                result.attempts += 1
                self._download(repository, desc, writer, result, on_bytes)
            writer.commit(sync_dir=sync_dir)
        except DigestMismatch:
            writer.abort()
            raise
        except BaseException:
            writer.close()  # keeps what was written, for a resume
            raise
        return result

    def read_blob(self, repository: str, desc: Descriptor, limit: int) -> bytes:
        """A small blob (at most ``limit`` bytes) into memory, checked against ``desc``."""
        what = f"blob {desc.digest} of {repository}"
        if desc.size > limit:
            raise InvalidArgument(f"{what}: {desc.size} bytes, more than the {limit} "
                                  "allowed here")
        resp = self._send("GET", self.url(f"/v2/{repository}/blobs/{desc.digest}"),
                          self.scope(repository), stream=True)
        with contextlib.closing(resp):
            if resp.status_code != 200:
                raise self._fail(resp, what)
            data = _read_limited(resp, limit, what)
        got = Digest.from_bytes(data, desc.digest.algorithm)
        if got != desc.digest or len(data) != desc.size:
            raise DigestMismatch(f"{what}: the registry sent {len(data)} bytes with digest "
                                 f"{got}, expected {desc.size} bytes with {desc.digest}")
        return data

    def _download(self, repository: str, desc: Descriptor, writer: Writer, result: BlobFetch,
                  on_bytes: Callable[[int], None] | None) -> None:
        what = f"blob {desc.digest} of {repository}"
        headers = {}
        start = writer.offset
        if start:
            headers["Range"] = f"bytes={start}-"
        resp = self._send("GET", self.url(f"/v2/{repository}/blobs/{desc.digest}"),
                          self.scope(repository), stream=True, headers=headers)
        with contextlib.closing(resp):
            if resp.status_code == 206 and start:
                got = _content_range_start(resp.headers.get("content-range", ""))
                if got != start:
                    writer.truncate(0)  # not what we asked for: restart below on a 200
                    resp.close()
                    return self._download(repository, desc, writer, result, on_bytes)
            elif resp.status_code == 200:
                if start:
                    writer.truncate(0)  # the server ignored the Range: start again
                    if on_bytes is not None:
                        on_bytes(-start)
            else:
                raise self._fail(resp, what)
            try:
                for chunk in resp.iter_bytes():
                    writer.write(chunk)
                    result.downloaded += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            except httpx.HTTPError as e:
                raise InterruptedTransfer(f"download of {what} was interrupted after "
                                    f"{writer.offset} of {desc.size} bytes ({e or type(e).__name__}); "
                                    "pull again to resume it") from None
        if writer.offset != desc.size:
            raise InterruptedTransfer(f"download of {what} ended after {writer.offset} of "
                                      f"{desc.size} bytes; pull again to resume it")

    # --- uploads ----------------------------------------------------------------------------

    def mount_blob(self, repository: str, digest: Digest, source: str) -> bool:
        """Ask the registry to link ``digest`` from repository ``source`` (no bytes sent)."""
        resp = self._send("POST", self.url(f"/v2/{repository}/blobs/uploads/"),
                          f"{self.scope(repository, push=True)} {self.scope(source)}",
                          params={"mount": str(digest), "from": source})
        resp.close()
        if resp.status_code == 201:
            return True
        if resp.status_code == 202:  # not mountable: an upload was opened instead; drop it
            location = resp.headers.get("location")
            if location:
                self._send("DELETE", self._resolve(location), self.scope(repository, True)) \
                    .close()
            return False
        raise self._fail(resp, f"mount of blob {digest} from {source} into {repository}")

    def upload_blob(self, repository: str, digest: Digest, size: int,
                    chunks: Iterable[bytes], *, chunked: bool) -> None:
        """Upload a blob: one PUT with all bytes (monolithic), or PATCH per chunk, then PUT.

        ``chunks`` yields the blob's bytes (in memory one chunk at a time, so a
        request can be sent again after a 401).
        """
        what = f"upload of blob {digest} to {repository}"
        scope = self.scope(repository, push=True)
        resp = self._send("POST", self.url(f"/v2/{repository}/blobs/uploads/"), scope)
        resp.close()
        if resp.status_code != 202:
            raise self._fail(resp, what)
        location = self._location(resp, what)
        sent = 0
        if not chunked:
            body = b"".join(chunks)
            if len(body) != size:
                raise DigestMismatch(f"{what}: the store holds {len(body)} bytes, "
                                     f"expected {size}")
            resp = self._send("PUT", location.copy_merge_params({"digest": str(digest)}),
                              scope, content=body,
                              headers={"Content-Type": "application/octet-stream"})
        else:
            for chunk in chunks:
                if not chunk:
                    continue
                end = sent + len(chunk) - 1
                resp = self._send("PATCH", location, scope, content=chunk,
                                  headers={"Content-Type": "application/octet-stream",
                                           "Content-Range": f"{sent}-{end}"})
                resp.close()
                if resp.status_code != 202:
                    raise self._fail(resp, f"{what} (chunk at {sent})")
                location = self._location(resp, what)
                sent += len(chunk)
            if sent != size:
                raise DigestMismatch(f"{what}: the store holds {sent} bytes, expected {size}")
            resp = self._send("PUT", location.copy_merge_params({"digest": str(digest)}),
                              scope, content=b"")
        resp.close()
        if resp.status_code != 201:
            raise self._fail(resp, f"{what} (closing it)")
        header = resp.headers.get("docker-content-digest")
        if header and Digest.parse(header) != digest:
            raise DigestMismatch(f"{what}: the registry stored {header}")

    def _resolve(self, location: str) -> httpx.URL:
        return httpx.URL(self.base + "/").join(location)

    def _location(self, resp: httpx.Response, what: str) -> httpx.URL:
        location = resp.headers.get("location")
        if not location:
            raise RegistryError(f"{what}: the registry answered {resp.status_code} without a "
                                "Location for the upload")
        return self._resolve(location)

    # --- listing ----------------------------------------------------------------------------

    def tags(self, repository: str) -> list[str]:
        resp = self._send("GET", self.url(f"/v2/{repository}/tags/list"),
                          self.scope(repository))
        if resp.status_code != 200:
            raise self._fail(resp, f"tags of {repository}")
        obj = _json(resp.content)
        tags = obj.get("tags") if isinstance(obj, dict) else None
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


@contextmanager
def client_for(ref: Reference, *, insecure_registries: Iterable[str] = (),
               auth: AuthConfig | None = None, **kw: Any) -> Iterator[RegistryClient]:
    """A RegistryClient for ``ref``'s registry (plain http if it is listed insecure)."""
    insecure = True if ref.registry in set(insecure_registries) else None
    client = RegistryClient(ref.registry, insecure=insecure, auth=auth, **kw)
    try:
        yield client
    finally:
        client.close()


# --- helpers ---------------------------------------------------------------------------------

def _read_larger_chunks() -> None:
    """Have httpcore read responses READ_CHUNK bytes at a time instead of 64 KiB.

    A blob is tens or hundreds of MB; each read costs a trip through httpcore
    and h11 and a write and hash of the chunk, so on a fast link 1 MiB reads
    make a pull about 15% quicker (benchmarks/registry_pull.py). httpcore has
    no option for it, only this class attribute; it is left alone when it is
    not what this was written for.
    """
    try:
        from httpcore._sync.http11 import HTTP11Connection
    except ImportError:  # pragma: no cover (another httpcore layout)
        return
    if getattr(HTTP11Connection, "READ_NUM_BYTES", None) == HTTPCORE_READ:
        HTTP11Connection.READ_NUM_BYTES = READ_CHUNK


def _as_digest(ref: str | Digest) -> Digest | None:
    if isinstance(ref, Digest):
        return ref
    return Digest.parse(ref) if ":" in ref else None


def _read_limited(resp: httpx.Response, limit: int, what: str) -> bytes:
    parts = []
    total = 0
    try:
        for chunk in resp.iter_bytes(READ_CHUNK):
            total += len(chunk)
            if total > limit:
                raise InvalidArgument(f"{what}: more than {limit} bytes; a manifest is small")
            parts.append(chunk)
    except httpx.HTTPError as e:
        raise RegistryError(f"{what}: the download was interrupted: {e}") from None
    return b"".join(parts)


def _media_type(data: bytes, header: str, what: str) -> str:
    """The manifest's media type: its own mediaType field, else the Content-Type."""
    obj = _json(data)
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what}: the registry sent something that is not a JSON "
                              "manifest")
    own = obj.get("mediaType")
    if isinstance(own, str) and own:
        return own
    if header in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST):
        return header
    return OCI_INDEX if "manifests" in obj else OCI_MANIFEST


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _registry_errors(body: bytes) -> tuple[set[str], list[str]]:
    obj = _json(body)
    codes: set[str] = set()
    messages: list[str] = []
    if isinstance(obj, dict) and isinstance(obj.get("errors"), list):
        for err in obj["errors"]:
            if isinstance(err, dict):
                code = str(err.get("code", ""))
                codes.add(code)
                msg = str(err.get("message", "")) or code
                detail = err.get("detail")
                if detail and isinstance(detail, (str, dict, list)):
                    msg += f" ({json.dumps(detail) if not isinstance(detail, str) else detail})"
                messages.append(msg)
    return codes, messages


def _snippet(body: bytes, n: int = 200) -> str:
    return body[:n].decode("utf-8", "replace").strip()


def _content_range_start(value: str) -> int | None:
    # "bytes 100-199/200"
    unit, _, rng = value.partition(" ")
    if unit != "bytes":
        return None
    start, _, _ = rng.partition("-")
    return int(start) if start.isdigit() else None


__all__ = ["BlobFetch", "FetchedManifest", "RegistryClient", "client_for"]
