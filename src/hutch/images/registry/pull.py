"""Pull an image from a registry into the content store and name it.

1. The manifest (or index) named by the reference's tag or digest, checked
   against its digest. From an index, the manifest for the platform
   (linux/amd64 unless asked otherwise).
2. The config and the layers, several at a time (a thread pool, the largest
   first, each on a kept-alive connection of the client's pool); each blob
   streams into a content-store writer that hashes what it writes and verifies
   digest and size before the blob is linked into place. Blobs already in the
   store are not fetched. A blob whose download was interrupted keeps its
   bytes in a named ingest: the next attempt (within this pull, or a later
   one) asks only for the rest with a Range request, or starts that blob over
   when the registry cannot do ranges.
3. With a signature store: the image's signatures, from the artifact tagged
   ``sha256-<hex>.sig`` beside it (registry/signatures.py; none when the tag is
   missing), fetched beside the blobs, each checked, the valid ones kept in the
   store.
4. ``verify(reference, digest)``, when given (the trust policy: it raises to
   refuse the image), then the name (``registry/repository:tag``, or
   ``@digest``) is written last. A refused pull writes no name; its blobs stay
   for gc.

Durability: each blob is fsynced when it is committed; the store's blob
directory once, before the name is written (not after each blob).

The store's lock is held shared and every blob is in a lease until the name
points at it, so a concurrent gc never takes half a pull.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hutch.common.digest import Digest
from hutch.errors import Conflict, HutchError, InvalidArgument, NotFound
from hutch.images.content import BlobInfo, ContentStore
from hutch.images.gc import store_lock
from hutch.images.metadata import MetadataStore
from hutch.images.registry.auth import AuthConfig
from hutch.images.registry.client import BlobFetch, FetchedManifest, RegistryClient, client_for
from hutch.images.registry.errors import InterruptedTransfer, RegistryError
from hutch.images.registry.progress import NullProgress, Progress
from hutch.images.registry.reference import Reference, parse_reference
from hutch.images.walk import ResolvedImage, resolve
from hutch.oci.image_spec import (
    DEFAULT_PLATFORM,
    Descriptor,
    Platform,
    is_index,
    is_manifest,
    parse_config,
    parse_index,
    parse_manifest,
)

if TYPE_CHECKING:
    from hutch.images.registry.signatures import FetchedSignatures
    from hutch.images.signing import SignatureStore

Verify = Callable[[Reference, Digest], None]

DEFAULT_WORKERS = 4  # downloads at once: the layers of most images, on 2 cores
DEFAULT_RETRIES = 2  # more attempts for a blob whose download breaks off (each resumes)
MAX_NESTING = 4
INGEST_WAIT = 600.0  # seconds to wait for another process downloading the same blob


class _Stopped(RegistryError):
    """A blob not started because another one failed."""


@dataclass
class PullResult:
    name: str  # the image's name in the metadata store
    reference: Reference
    target: Descriptor  # what the name points at (an index or a manifest)
    image: ResolvedImage  # the manifest for the platform, with its config
    blobs: list[BlobFetch] = field(default_factory=list)
    signatures: FetchedSignatures | None = None  # when a signature store was given

    @property
    def downloaded(self) -> int:
        return sum(b.downloaded for b in self.blobs)

    @property
    def fetched(self) -> list[Digest]:
        """Blobs that were (at least partly) downloaded now."""
        return [b.digest for b in self.blobs if not b.skipped]


def pull(reference: str | Reference, content: ContentStore, meta: MetadataStore, *,
         platform: Platform | str | None = None, insecure_registries: Iterable[str] = (),
         auth: AuthConfig | None = None, progress: Progress | None = None,
         workers: int = DEFAULT_WORKERS, retries: int = DEFAULT_RETRIES,
         client: RegistryClient | None = None, signatures: SignatureStore | None = None,
         verify: Verify | None = None) -> PullResult:
    """Pull ``reference`` (``busybox``, ``host:5000/app:1``, ``...@sha256:...``).

    ``platform``: ``os/arch[/variant]`` to pick from an index (linux/amd64
    by default); given explicitly, a single-platform image for another
    platform is refused. ``signatures``: where to keep the image's signatures
    found in the registry. ``verify(reference, digest)``: called with the digest
    the name will point at, before it is written; what it raises refuses the
    image (with notes on the signatures found). Returns the named image,
    resolved for the platform.
    """
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    explicit = platform is not None
    wanted = (Platform.parse(platform) if isinstance(platform, str) else platform) \
        or DEFAULT_PLATFORM
    if workers < 1:
        raise InvalidArgument(f"pull needs at least one worker, not {workers}")
    progress = progress or NullProgress()
    if client is None:
        with client_for(ref, insecure_registries=insecure_registries, auth=auth) as own:
            return _pull(ref, content, meta, own, wanted, explicit, progress, workers, retries,
                         signatures, verify)
    return _pull(ref, content, meta, client, wanted, explicit, progress, workers, retries,
                 signatures, verify)


def _pull(ref: Reference, content: ContentStore, meta: MetadataStore, client: RegistryClient,
          wanted: Platform, explicit: bool, progress: Progress, workers: int,
          retries: int, signatures: SignatureStore | None,
          verify: Verify | None) -> PullResult:
    repo = ref.repository
    with store_lock(content, exclusive=False), meta.lease() as lease, \
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="hutch-pull-side") as side:
        # Beside the blobs: storing the manifests (an fsync each), fetching signatures.
        top = client.get_manifest(repo, ref.digest or ref.object)
        kept = [_keep(content, meta, lease, top, side)]
        target = top.descriptor
        found_sigs = side.submit(_fetch_signatures, client, repo, target.digest) \
            if signatures is not None else None
        fetched = top
        for _ in range(MAX_NESTING):
            if not is_index(fetched.media_type):
                break
            index = parse_index(fetched.data, fetched.media_type)
            chosen = index.select(wanted)
            if not chosen:
                have = sorted({str(m.platform) for m in index.manifests if m.platform})
                raise NotFound(f"{ref}: the image has no manifest for {wanted} (it has: "
                               f"{', '.join(have) or 'none'}); choose one with --platform")
            child = chosen[0]
            fetched = client.get_manifest(repo, child.digest)
            if len(fetched.data) != child.size:
                raise InvalidArgument(f"{ref}: manifest {child.digest} has {len(fetched.data)} "
                                      f"bytes, but the index says {child.size}")
            kept.append(_keep(content, meta, lease, fetched, side))
        else:
            raise InvalidArgument(f"{ref}: indexes nested more than {MAX_NESTING} deep")
        if not is_manifest(fetched.media_type):
            raise InvalidArgument(f"{ref}: {fetched.digest} has media type "
                                  f"{fetched.media_type!r}, not an image manifest")
        manifest = parse_manifest(fetched.data, fetched.media_type)
        blobs: list[BlobFetch] = []

        meta.add_to_lease(lease, manifest.config.digest,
                          *[layer.digest for layer in manifest.layers])
        layers = [(d, "layer") for d in manifest.layers]
        # An explicit platform for a single-platform image: its config says whether it
        # fits, before any layer is fetched. Otherwise the config goes with the layers.
        check_first = explicit and not is_index(top.media_type)
        if check_first:
            blobs.append(_fetch(client, repo, manifest.config, content, progress, retries,
                                "config"))
            config = parse_config(content.read(manifest.config.digest))
            if not wanted.matches(config.platform):
                raise InvalidArgument(f"{ref} is an image for {config.platform}, not {wanted} "
                                      "(it has no index of platforms)")
        else:
            layers.insert(0, (manifest.config, "config"))
        blobs.extend(_fetch_all(client, repo, layers, content, progress, workers, retries))
        config = parse_config(content.read(manifest.config.digest))
        if len(config.diff_ids) != len(manifest.layers):
            raise InvalidArgument(f"{ref}: the manifest has {len(manifest.layers)} layers but "
                                  f"the config's rootfs.diff_ids has {len(config.diff_ids)}")
        if not is_index(target.media_type):
            target = Descriptor(target.media_type, target.digest, target.size,
                                platform=config.platform)
        for stored in kept:
            stored.result()
        image = resolve(content, target, wanted if is_index(target.media_type)
                        else config.platform)
        sigs = None
        if found_sigs is not None and signatures is not None:
            sigs = found_sigs.result()
            if sigs.valid:
                signatures.add(sigs.valid)
        if verify is not None:
            try:
                verify(ref, target.digest)
            except HutchError as e:
                for note in sigs.notes(f"{ref.name}") if sigs is not None else []:
                    e.add_note(note)
                raise
        name = str(ref)
        content.sync()  # the blobs' names in the store are durable before the image's
        meta.put(name, target)
    return PullResult(name, ref, target, image, blobs, sigs)


def _fetch_signatures(client: RegistryClient, repo: str, digest: Digest) -> FetchedSignatures:
    """The image's signatures from the registry, checked; a failure to fetch them is
    recorded, not raised (the policy decides if it matters)."""
    from hutch.images.registry import signatures as remote
    try:
        return remote.fetch(client, repo, digest)
    except HutchError as e:
        return remote.FetchedSignatures(digest, error=str(e))


def _keep(content: ContentStore, meta: MetadataStore, lease: str, m: FetchedManifest,
          pool: ThreadPoolExecutor) -> Future[BlobInfo]:
    """Store a fetched manifest (in ``pool``), in the lease before it is in the store."""
    meta.add_to_lease(lease, m.digest)
    return pool.submit(content.ingest_bytes, m.data, m.digest, sync_dir=False)


def _fetch_all(client: RegistryClient, repo: str, blobs: list[tuple[Descriptor, str]],
               content: ContentStore, progress: Progress, workers: int,
               retries: int) -> list[BlobFetch]:
    """Fetch ``blobs`` (descriptor, kind), a few at a time; the first failure stops the
    rest (those running finish, so their bytes are kept) and is raised."""
    unique = list({d.digest: (d, kind) for d, kind in blobs}.values())
    if not unique:
        return []
    # The largest start first, so that what runs alone at the end is a small one.
    largest_first = sorted(range(len(unique)), key=lambda i: unique[i][0].size, reverse=True)
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=min(workers, len(unique)),
                            thread_name_prefix="hutch-pull") as pool:
        started = {i: pool.submit(_fetch, client, repo, unique[i][0], content, progress,
                                  retries, unique[i][1], stop) for i in largest_first}
        futures: list[Future[BlobFetch]] = [started[i] for i in range(len(unique))]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            stop.set()
            for f in pending:
                f.cancel()
            wait(pending)
            error = failed.exception()
            assert error is not None
            others = [f.exception() for f in futures
                      if f is not failed and f.done() and not f.cancelled()
                      and f.exception() is not None
                      and not isinstance(f.exception(), _Stopped)]
            for other in others:
                error.add_note(f"also: {other}")
            raise error
    return [f.result() for f in futures]


def _fetch(client: RegistryClient, repo: str, desc: Descriptor, content: ContentStore,
           progress: Progress, retries: int, kind: str,
           stop: threading.Event | None = None) -> BlobFetch:
    key = str(desc.digest)
    if stop is not None and stop.is_set():
        raise _Stopped(f"pull stopped before {kind} {desc.digest}")
    if content.exists(desc.digest):
        info = content.info(desc.digest)
        if info.size != desc.size:
            raise InvalidArgument(f"{kind} {desc.digest}: the store has {info.size} bytes, "
                                  f"the manifest says {desc.size}")
        progress.add(key, f"{kind} {desc.digest.short()}", desc.size)
        progress.finish(key, "already here")
        return BlobFetch(desc.digest, skipped=True)
    progress.add(key, f"{kind} {desc.digest.short()}", desc.size)
    deadline = time.monotonic() + INGEST_WAIT
    result = BlobFetch(desc.digest)
    failures = 0
    while True:
        try:
            client.fetch_blob(repo, desc, content, result=result, sync_dir=False,
                              on_bytes=lambda n: progress.advance(key, n))
        except Conflict:
            # Another process downloads the same blob right now: wait for it.
            if content.exists(desc.digest):
                result.skipped = result.attempts == 0
                break
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        except InterruptedTransfer:
            failures += 1
            if failures > retries or (stop is not None and stop.is_set()):
                raise
            time.sleep(min(0.2 * failures, 1.0))
            continue
        break
    progress.finish(key, "resumed" if result.resumed_from or failures else "done")
    return result
