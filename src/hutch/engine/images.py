"""The engine's image service: names -> images in the store -> a container's parent snapshot.

One per instance root (``Layout``): the content store, the names (SQLite), the
signatures and the trust policy live below it. A reference is normalized as
Docker does (``busybox`` == ``docker.io/library/busybox:latest``).

``container_root(name)`` unpacks the image's layers into the snapshotter once
(snapshots named by chain id, shared by every image with the same base) and
returns the top one, the parent of a container's root, with the image's run
config. It holds ``images.lock`` (flock) while it works, as do the builtin
build, ``prune`` and ``remove``, so concurrent hutch processes neither unpack
twice nor sweep a chain another is about to use.

The built-in ``busybox`` is a real image: the first time it is needed it is
built from the template into a layer tar, a config and a manifest, stored and
tagged ``busybox:latest`` (reproducibly: time stamps are the busybox binary's).
Images built here (a template, ``image import ROOTFS``) are trusted locally:
the policy is for images that come from elsewhere (archives, registries).

``ensure(ref, pull)`` is what ``run``/``create`` ask for (Docker's ``--pull``):
``missing`` pulls an image the store lacks when its reference names a registry
(``host[:port]/repo:tag``; a bare ``alpine`` is looked up locally only, so no
name ever reaches Docker Hub by surprise), ``always`` pulls it each time,
``never`` does not. A pull brings the image's signatures along and checks the
trust policy before the name is written; built-in images are never pulled.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hutch.common.digest import Digest
from hutch.engine.paths import Layout
from hutch.errors import HutchError, InvalidArgument, NotFound, WrongState

BUILTIN = {"docker.io/library/busybox:latest": "busybox"}
PULL_POLICIES = ("missing", "always", "never")
SOURCE_LABEL = "io.hutch.source"
BUSYBOX_RUN = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
               "Cmd": ["sh"], "WorkingDir": "/"}


def normalize(ref: str) -> str:
    from hutch.images.registry.reference import parse_reference
    return str(parse_reference(ref))


def familiar(name: str) -> tuple[str, str]:
    """(repository, tag) as Docker shows them: ("busybox", "latest")."""
    from hutch.images.registry.reference import parse_reference
    try:
        r = parse_reference(name, default_tag=None)
    except InvalidArgument:
        return name, "<none>"
    short = r.familiar() if callable(r.familiar) else r.familiar
    repo = str(short).split("@")[0]
    if r.tag and repo.endswith(":" + r.tag):
        repo = repo[:-len(r.tag) - 1]
    return repo, r.tag or "<none>"


class ImageService:
    def __init__(self, layout: Layout, snapshotter: Callable[[], Any],
                 policy_path: str | None = None) -> None:
        self.layout = layout
        self._snapshotter = snapshotter
        self.policy_path = policy_path or layout.policy
        self._content = None
        self._meta = None

    # -- stores ----------------------------------------------------------------------

    @property
    def content(self):  # type: ignore[no-untyped-def]
        if self._content is None:
            from hutch.images.content import ContentStore
            self._content = ContentStore(self.layout.content)
        return self._content

    @property
    def meta(self):  # type: ignore[no-untyped-def]
        if self._meta is None:
            from hutch.images.metadata import MetadataStore
            self._meta = MetadataStore(self.layout.images_db)
        return self._meta

    @property
    def signatures(self):  # type: ignore[no-untyped-def]
        from hutch.images.signing import SignatureStore
        return SignatureStore(self.layout.signatures)

    def policy(self):  # type: ignore[no-untyped-def]
        from hutch.images.policy import Policy
        return Policy.load(self.policy_path)

    def close(self) -> None:
        if self._meta is not None:
            self._meta.close()
            self._meta = None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """``images.lock``: one unpacker, builder or pruner at a time, across processes."""
        os.makedirs(self.layout.root, exist_ok=True)
        with open(self.layout.images_lock, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    # -- names -----------------------------------------------------------------------

    def name_of(self, ref: str) -> str:
        """The stored name for ``ref`` (normalized), or an image id's one name; NotFound
        with what to do when there is none (built-in images always exist)."""
        try:
            name = normalize(ref)
        except InvalidArgument:
            name = None
        if name is not None:
            if name in BUILTIN:
                return name
            try:
                self.meta.get(name)
                return name
            except NotFound:
                pass
        names = self._names_by_id(ref)
        if len(set(names.values())) == 1:
            return sorted(names)[0]
        if len(set(names.values())) > 1:
            raise NotFound(f"{ref!r} matches several images; give more of the id")
        raise NotFound(f"no such image: {ref} (hutch image ls lists the images; "
                       "hutch image pull or hutch image import adds one)")

    def ensure(self, ref: str, pull: str = "missing") -> str:
        """The stored name for ``ref``, pulled first as ``pull`` (missing, always, never)
        says; NotFound or the pull's error, naming the image and what to do."""
        from hutch.images.registry.reference import names_registry
        if pull not in PULL_POLICIES:
            raise InvalidArgument(f"--pull {pull}: use missing (the default), always or never")
        try:
            name = normalize(ref)
        except InvalidArgument:
            name = None  # an image id, perhaps
        pullable = name is not None and name not in BUILTIN
        if pull == "always" and pullable and (names_registry(ref)
                                              or not self._names_by_id(ref)):
            return self.pull(ref)
        try:
            return self.name_of(ref)
        except NotFound as e:
            if not pullable:
                raise
            if pull == "never":
                raise NotFound(f"no such image: {ref}, and --pull never does not fetch it: "
                               f"pull it first (hutch image pull {name}) or use "
                               "--pull missing") from None
            if not names_registry(ref):
                e.add_note(f"to fetch it, name its registry ({name}) or run "
                           f"hutch image pull {ref}")
                raise
        return self.pull(ref)

    def pull(self, ref: str, progress=None) -> str:  # type: ignore[no-untyped-def]
        """Pull ``ref`` from its registry (auth file and plain-http rules as ``hutch
        image pull``), its signatures along, checked against the trust policy before
        it is named; progress bars only on a terminal. Returns the stored name."""
        from hutch.images.policy import PolicyDenied, verifier
        from hutch.images.registry.auth import AuthConfig, auth_file_path
        from hutch.images.registry.progress import make_progress
        from hutch.images.registry.pull import pull
        from hutch.images.registry.reference import insecure_registries
        verify = verifier(self.policy_path, self.layout.signatures)
        try:
            auth = AuthConfig.load(auth_file_path(self.layout.root))
            with (progress or make_progress()) as bars:
                result = pull(ref, self.content, self.meta, progress=bars,
                              insecure_registries=insecure_registries(), auth=auth,
                              signatures=self.signatures, verify=verify)
        except PolicyDenied:
            raise  # says what the policy wanted and what the registry had
        except HutchError as e:
            e.add_note(f"image {ref} could not be pulled: check its name and that its "
                       f"registry is up (hutch image pull {ref} tries alone; credentials go "
                       "in the auth file, plain-http registries in "
                       "$HUTCH_INSECURE_REGISTRIES)")
            raise
        return result.name

    def _is_name(self, ref: str) -> bool:
        try:
            self.meta.get(normalize(ref))
            return True
        except (NotFound, InvalidArgument):
            return False

    def _names_by_id(self, ref: str) -> dict[str, Digest]:
        """Names whose image id (config digest) or manifest digest starts with ``ref``."""
        hexpart = ref.split(":", 1)[1] if ref.startswith("sha256:") else ref
        if len(hexpart) < 4 or any(c not in "0123456789abcdef" for c in hexpart):
            return {}
        out = {}
        for image in self.meta.list():
            ids = {image.target.digest.hex}
            try:
                ids.add(self.resolve(image.name).manifest.config.digest.hex)
            except Exception:  # noqa: BLE001 - a broken image is matched by digest only
                pass
            if any(i.startswith(hexpart) for i in ids):
                out[image.name] = image.target.digest
        return out

    def get(self, ref: str):  # type: ignore[no-untyped-def]
        """The stored image for ``ref``; a built-in one is built the first time."""
        name = self.name_of(ref)
        try:
            return self.meta.get(name)
        except NotFound:
            if name not in BUILTIN:
                raise
        with self.lock():
            try:
                return self.meta.get(name)
            except NotFound:
                self._build_builtin(name)
            return self.meta.get(name)

    def _build_builtin(self, name: str) -> None:
        from hutch.images.assemble import layer_from_dir, make_image
        from hutch.images.templates import build_busybox_rootfs
        from hutch.images.templates.busybox import DEFAULT_BUSYBOX
        mtime = int(os.stat(DEFAULT_BUSYBOX).st_mtime) if os.path.exists(DEFAULT_BUSYBOX) else 0
        work = tempfile.mkdtemp(prefix=".busybox-", dir=self.layout.root)
        try:
            rootfs = build_busybox_rootfs(os.path.join(work, "rootfs"))
            make_image(self.content, self.meta, name,
                       lambda: [layer_from_dir(self.content, rootfs, mtime=mtime)],
                       BUSYBOX_RUN, created=mtime, labels={SOURCE_LABEL: "local:template:busybox"},
                       history="hutch template busybox")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def resolve(self, ref: str):  # type: ignore[no-untyped-def]
        """The image's manifest for this host's platform, with its config."""
        from hutch.images.walk import resolve
        from hutch.oci.image_spec import Platform
        image = self.get(ref)
        return resolve(self.content, image.target, Platform.host())

    # -- containers ------------------------------------------------------------------

    def container_root(self, ref: str) -> tuple[str | None, dict]:
        """(parent snapshot key, image run config) for a container of image ``ref``:
        checked against the trust policy, its layers unpacked once."""
        from hutch.images.unpack import unpack_image
        image = self.get(ref)
        resolved = self.resolve(image.name)
        self.check_policy(image.name)
        with self.lock():
            unpacked = unpack_image(self.content, self._snapshotter(), resolved)
        config = dict(resolved.config.config)
        if config.get("User") and not _numeric_user(config["User"]):
            config["User"] = self._numeric_user(resolved, config["User"])
        return unpacked.top, config

    def _numeric_user(self, resolved, user: str) -> str:  # type: ignore[no-untyped-def]
        """An image's ``User`` by name (``nobody``, ``app:staff``) as UID:GID, from the
        image's own /etc/passwd and /etc/group (read from its layers, top first)."""
        name, _, group = user.partition(":")
        passwd = _layer_file(self.content, resolved, "etc/passwd")
        uid = gid = None
        for line in passwd.splitlines():
            f = line.split(":")
            if len(f) >= 4 and (f[0] == name or (name.isdigit() and f[2] == name)):
                uid, gid = f[2], f[3]
                break
        if uid is None:
            if not name.isdigit():
                raise InvalidArgument(f"the image's User {user!r}: no user {name!r} in its "
                                      "/etc/passwd")
            uid, gid = name, name
        if group:
            if group.isdigit():
                gid = group
            else:
                gid = next((f[2] for f in (x.split(":") for x in
                                           _layer_file(self.content, resolved,
                                                       "etc/group").splitlines())
                            if len(f) >= 3 and f[0] == group), None)
                if gid is None:
                    raise InvalidArgument(f"the image's User {user!r}: no group {group!r} "
                                          "in its /etc/group")
        return f"{uid}:{gid}"

    def check_policy(self, name: str) -> None:
        """Raise PolicyDenied unless the policy accepts the stored image ``name``."""
        image = self.meta.get(name)
        if image.labels.get(SOURCE_LABEL, "").startswith("local:"):
            return  # built here, from a template or a root file system the user gave
        policy = self.policy()
        if policy.polices(name):
            policy.check(name, image.target.digest, self.signatures.list(image.target.digest))

    def top_chain(self, name: str) -> str | None:
        from hutch.oci.image_spec import chain_ids
        ids = chain_ids(self.resolve(name).config.diff_ids)
        return str(ids[-1]) if ids else None

    # -- listing ---------------------------------------------------------------------

    def summary(self, image) -> dict:  # type: ignore[no-untyped-def]
        repo, tag = familiar(image.name)
        row = {"name": image.name, "repository": repo, "tag": tag,
               "digest": str(image.target.digest), "id": "", "created": "",
               "size": image.target.size, "labels": image.labels}
        try:
            resolved = self.resolve(image.name)
            row["id"] = str(resolved.manifest.config.digest)
            row["created"] = resolved.config.created or ""
            row["size"] = resolved.manifest.config.size + sum(x.size for x in resolved.layers)
        except Exception as e:  # noqa: BLE001 - shown, not fatal for a listing
            row["error"] = str(e)
        return row

    def list(self) -> list[dict]:
        return [self.summary(i) for i in self.meta.list()]

    def inspect(self, ref: str) -> dict:
        import json

        from hutch.oci.image_spec import MAX_MANIFEST_SIZE
        image = self.get(ref)
        resolved = self.resolve(image.name)
        return {
            "Name": image.name, "RepoTags": [i.name for i in
                                             self.meta.by_digest(image.target.digest)],
            "Digest": str(image.target.digest), "Id": str(resolved.manifest.config.digest),
            "Target": image.target.to_dict(),
            "Manifest": json.loads(self.content.read(resolved.manifest_descriptor.digest,
                                                     MAX_MANIFEST_SIZE)),
            "Config": resolved.config.to_dict(),
            "Size": resolved.manifest.config.size + sum(x.size for x in resolved.layers),
            "Layers": [{**x.to_dict(), "diff_id": str(d)} for x, d in
                       zip(resolved.layers, resolved.config.diff_ids)],
            "Labels": image.labels,
            "Signatures": [s.to_dict() for s in self.signatures.list(image.target.digest)],
            "Created": resolved.config.created,
        }

    # -- changing names --------------------------------------------------------------

    def tag(self, source: str, target: str) -> str:
        image = self.get(source)
        dst = normalize(target)
        self.meta.put(dst, image.target, image.labels)
        return dst

    def users(self, name: str, containers: list[Any]) -> list[str]:
        """Names of the containers (engine rows) whose root is made from image ``name``."""
        try:
            top = self.top_chain(name)
        except (NotFound, InvalidArgument):
            top = None
        snaps = self._snapshotter()
        out = []
        for row in containers:
            try:
                parent = snaps.stat(row["snapshot"]).parent
            except NotFound:
                parent = None
            if (top is not None and parent == top) or row["image"] == name:
                out.append(row["name"])
        return out

    def remove(self, ref: str, containers: list[Any], force: bool = False) -> list[str]:
        """Untag ``ref``; when it was the image's last name, delete what only it used.
        Refused (WrongState) while a container uses the image, unless ``force``."""
        by_id = sorted(self._names_by_id(ref)) if not self._is_name(ref) else []
        if len(by_id) > 1:
            if not force:
                raise WrongState(f"image {ref} has {len(by_id)} names ({', '.join(by_id)}): "
                                 "remove them by name, or all at once with -f")
            return [line for n in by_id for line in self.remove(n, containers, force)]
        name = self.name_of(ref)
        image = self.meta.get(name)
        others = [i.name for i in self.meta.by_digest(image.target.digest) if i.name != name]
        out = [f"Untagged: {name}"]
        if not others:
            users = self.users(name, containers)
            if users and not force:
                raise WrongState(f"image {name} is used by container(s) "
                                 f"{', '.join(users)}: remove them first, or use "
                                 "hutch image rm -f (the image's layers stay until "
                                 "those containers are gone and hutch image prune runs)")
            try:
                chain = self._chain(name)
            except (NotFound, InvalidArgument):
                chain = []
            self.meta.delete(name)
            with self.lock():
                self._remove_chain(chain)
            from hutch.images.gc import collect
            result = collect(self.content, self.meta)
            self._forget_signatures()
            out += [f"Deleted: {d}" for d in result.removed]
        else:
            self.meta.delete(name)
        return out

    def _chain(self, name: str) -> list[str]:
        from hutch.oci.image_spec import chain_ids
        return [str(c) for c in chain_ids(self.resolve(name).config.diff_ids)]

    def _remove_chain(self, chain: list[str]) -> int:
        """Remove the snapshots of a chain (top first) that nothing else uses."""
        snaps = self._snapshotter()
        removed = 0
        for key in reversed(chain):
            try:
                snaps.remove(key)
                removed += 1
            except NotFound:
                continue
            except WrongState:
                break  # a container or another image stands on it (and on those below)
        return removed

    def _forget_signatures(self) -> None:
        store = self.signatures
        for d in store.digests():
            if not self.content.exists(d):
                store.remove(d)

    def prune(self) -> dict:
        """gc: unnamed blobs, snapshots of no named image and no container, stale unpacks."""
        from hutch.images.gc import collect
        from hutch.storage.snapshotter import Kind
        snaps = self._snapshotter()
        keep: set[str] = set()
        for image in self.meta.list():
            try:
                keep.update(self._chain(image.name))
            except (NotFound, InvalidArgument):
                continue
        removed_snaps = 0
        with self.lock():
            infos = snaps.walk()
            for info in infos:  # unpacks a crash left half done (none run: we hold the lock)
                if info.kind is Kind.ACTIVE and info.name.startswith("extract-"):
                    snaps.remove(info.name)
                    removed_snaps += 1
            progress = True
            while progress:  # leaves first: a parent goes once its children are gone
                progress = False
                for info in snaps.walk([Kind.COMMITTED]):
                    image_like = info.name.startswith(("sha256:", "image/"))
                    if not image_like or info.name in keep:
                        continue
                    try:
                        snaps.remove(info.name)
                    except (WrongState, NotFound):
                        continue
                    removed_snaps += 1
                    progress = True
        result = collect(self.content, self.meta)
        self._forget_signatures()
        return {"blobs": [str(d) for d in result.removed], "freed": result.freed,
                "snapshots": removed_snaps}

    # -- in and out ------------------------------------------------------------------

    def import_(self, path: str, name: str | None = None, signature: str | None = None,
                run: dict | None = None) -> list[str]:
        """An OCI layout (dir or tar), a Docker archive, or a root file system (tar or
        dir, with ``name``) into the store; checked against the policy before any name
        is written. Returns the names given."""
        from hutch.images import signing
        from hutch.images.gc import store_lock
        if not os.path.exists(path):
            raise NotFound(f"{path} does not exist")
        sigs: list = []
        sig_path = signature or (path.rstrip("/") + ".sig")
        if signature or os.path.isfile(sig_path):
            sigs = signing.read_file(sig_path)
        kind = _archive_kind(path)
        if kind == "rootfs":
            if not name:
                raise InvalidArgument(f"{path} is a root file system, not an image archive: "
                                      "give the image a name with --name")
            return [self._import_rootfs(path, normalize(name), run or {})]
        with store_lock(self.content, exclusive=False), \
                tempfile.TemporaryDirectory(prefix=".import-", dir=self.layout.root) as tmp:
            from hutch.images.layout import import_archive
            from hutch.images.metadata import MetadataStore
            with MetadataStore(os.path.join(tmp, "names.db")) as staging:
                images = import_archive(path, self.content, staging,
                                        name=normalize(name) if name else None)
            if name is None:
                _refuse_bare_tags(path, images)
            named = [(normalize(i.name), i.target) for i in images if i.name]
            if not named:
                raise InvalidArgument(f"{path} names none of its images: give one with "
                                      "--name")
            if sigs:
                self.signatures.add(sigs)
            policy = self.policy()
            for n, target in named:
                policy.check(n, target.digest, self.signatures.list(target.digest))
            for n, target in named:
                self.meta.put(n, target)
        return [n for n, _ in named]

    def _import_rootfs(self, path: str, name: str, run: dict) -> str:
        from hutch.images.assemble import layer_from_dir, layer_from_tar, make_image

        def layers():  # type: ignore[no-untyped-def]
            layer = layer_from_dir(self.content, path) if os.path.isdir(path) \
                else layer_from_tar(self.content, path)
            self._refuse_unsafe(layer, path)
            return [layer]

        make_image(self.content, self.meta, name, layers, run,
                   labels={SOURCE_LABEL: "local:rootfs"}, history=f"hutch image import {path}")
        return name

    def _refuse_unsafe(self, layer, path: str) -> None:  # type: ignore[no-untyped-def]
        from hutch.images.unpack import scan_layer
        with self.content.open(layer.descriptor.digest) as f:
            result = scan_layer(f, layer.diff_id)
        if result.problems:
            raise InvalidArgument(f"{path} cannot be an image layer:\n  "
                                  + "\n  ".join(result.problems))

    def export(self, refs: list[str], out: str, fmt: str = "oci") -> str | None:
        """Write the images as an OCI archive (or layout directory) or a Docker archive;
        their signatures go to ``out.sig`` (OCI only). Returns the .sig path, if any."""
        from hutch.images import signing
        from hutch.images.layout import export_docker, export_oci
        names = [self.get(r).name for r in refs]
        if fmt in ("oci", "oci-archive", "oci-dir"):
            export_oci(out, self.content, self.meta, names, as_dir=fmt == "oci-dir" or None)
        elif fmt in ("docker", "docker-archive"):
            export_docker(out, self.content, self.meta, names)
            return None
        else:
            raise InvalidArgument(f"--format {fmt}: use oci (an OCI archive), oci-dir or "
                                  "docker-archive")
        sigs = [s for n in names for s in self.signatures.list(self.meta.get(n).target.digest)]
        if not sigs:
            return None
        from hutch.common.atomicfile import write_atomic
        sig_path = out.rstrip("/") + ".sig"
        write_atomic(os.path.abspath(sig_path), signing.dumps(sigs))
        return sig_path

    # -- signatures ------------------------------------------------------------------

    def sign(self, ref: str, key: str, output: str | None = None) -> dict:
        from hutch.images import signing
        image = self.get(ref)
        sig = signing.sign(image.target.digest, key)
        self.signatures.add([sig])
        if output:
            from hutch.common.atomicfile import write_atomic
            write_atomic(os.path.abspath(output), signing.dumps([sig]))
        return {"image": image.name, "digest": str(image.target.digest), "key_id": sig.key_id}

    def verify(self, ref: str, keys: list[str]) -> list[dict]:
        """Each stored signature of the image and whether it is valid (by one of
        ``keys``, when given). NotFound when there is none."""
        from hutch.images import signing
        image = self.get(ref)
        sigs = self.signatures.list(image.target.digest)
        if not sigs:
            raise NotFound(f"image {image.name} ({image.target.digest}) has no signatures")
        trusted = [signing.public_key_bytes(k) for k in keys]
        rows = []
        for s in sigs:
            ok = any(signing.verify(s, image.target.digest, k) for k in trusted) if trusted \
                else signing.verify(s, image.target.digest)
            rows.append({"key_id": s.key_id, "valid": ok, "created": s.created})
        return rows


def _refuse_bare_tags(path: str, images: list) -> None:
    """A layout whose index names an image only by ``ref.name`` "v1" gives a tag, not a
    repository (skopeo's ``oci:DIR:TAG``): ask for a name rather than invent one."""
    from hutch.oci.image_spec import ANNOTATION_IMAGE_NAME
    for i in images:
        if i.name and ANNOTATION_IMAGE_NAME not in i.target.annotations \
                and not any(c in i.name for c in "/:@"):
            raise InvalidArgument(f"{path} names an image only by the tag {i.name!r}: give "
                                  "it a name with --name REPOSITORY[:TAG]")


def _archive_kind(path: str) -> str:
    """"layout" (OCI layout or Docker archive) or "rootfs", by what the path holds."""
    import tarfile
    markers = ("oci-layout", "manifest.json")
    if os.path.isdir(path):
        return "layout" if any(os.path.isfile(os.path.join(path, m)) for m in markers) \
            else "rootfs"
    try:
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                if member.name.lstrip("./") in markers:
                    return "layout"
    except (tarfile.TarError, OSError, EOFError) as e:
        raise InvalidArgument(f"cannot read {path} as a tar archive: {e}") from None
    return "rootfs"


def _numeric_user(user: str) -> bool:
    return all(p.isdigit() for p in user.split(":")) and user.count(":") <= 1


def _layer_file(content, resolved, rel: str) -> str:  # type: ignore[no-untyped-def]
    """A small regular file of the image as its layers stack it (top layer first; a
    whiteout of the file or of a parent hides the lower ones); "" when it has none."""
    import tarfile

    from hutch.images.unpack import WHITEOUT_OPAQUE, WHITEOUT_PREFIX, open_layer
    parents = rel.split("/")[:-1]
    hidden = {"/".join(parents[:i] + [WHITEOUT_PREFIX + part])
              for i, part in enumerate(rel.split("/"))}
    opaque = {"/".join(parents[:i] + [WHITEOUT_OPAQUE]) for i in range(len(parents) + 1)}
    for layer in reversed(resolved.layers):
        found, stop = None, False
        with content.open(layer.digest) as blob:
            stream, _ = open_layer(blob)
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                for member in tf:
                    path = "/".join(p for p in member.name.split("/") if p not in ("", "."))
                    if path == rel and member.isfile() and member.size <= (1 << 20):
                        found = tf.extractfile(member).read()  # type: ignore[union-attr]
                    elif path in hidden or path in opaque:
                        stop = True
        if found is not None:
            return found.decode(errors="replace")
        if stop:
            return ""
    return ""


def apply_image_config(spec: dict, image_config: dict, opts: Any, bundle: str,
                       id_base: int | None) -> None:
    """What of the image's config ``spec.build`` does not carry, into a container's spec.

    - Labels: merged into the annotations (the user's ``-l`` win);
    - StopSignal, ExposedPorts: as the image-spec's annotations
      (``org.opencontainers.image.stopSignal``, ``...exposedPorts``); the stop signal
      itself reaches the shim through the engine's options;
    - Volumes: each path the user did not mount (-v, --tmpfs) gets an anonymous
      volume, a directory below the container's bundle (``volumes/<n>``), filled
      with what the image has at that path (Docker's copy-up) and owned as the
      container sees it; it lives as long as the container.

    Runs with the container's root mounted at ``<bundle>/rootfs``.
    """
    annotations = spec.setdefault("annotations", {})
    for key, value in (image_config.get("Labels") or {}).items():
        annotations.setdefault(f"io.hutch.label.{key}", str(value))
    if image_config.get("StopSignal"):
        annotations["org.opencontainers.image.stopSignal"] = image_config["StopSignal"]
    if image_config.get("ExposedPorts"):
        annotations["org.opencontainers.image.exposedPorts"] = \
            ",".join(sorted(image_config["ExposedPorts"]))
    taken = {m.get("destination", "").rstrip("/") or "/" for m in spec.get("mounts", [])}
    for i, dest in enumerate(sorted(image_config.get("Volumes") or {})):
        norm = "/" + "/".join(p for p in dest.split("/") if p not in ("", "."))
        if ".." in norm.split("/"):
            raise InvalidArgument(f"image volume {dest!r}: '..' is not allowed")
        if norm == "/" or norm in taken:
            continue
        source = os.path.join(bundle, "volumes", str(i))
        _fill_volume(os.path.join(bundle, "rootfs"), norm, source, id_base)
        spec.setdefault("mounts", []).append(
            {"destination": norm, "type": "bind", "source": source,
             "options": ["rbind", "rprivate", "rw"]})
        annotations[f"io.hutch.volume.{norm}"] = source


def _fill_volume(rootfs: str, dest: str, source: str, id_base: int | None) -> None:
    """An anonymous volume at ``source`` with what the image has at ``dest`` (owners as
    the mounted root shows them, so the container sees its own ids)."""
    import subprocess

    from hutch.linux.safepath import resolve_in_root
    os.makedirs(os.path.dirname(source), mode=0o711, exist_ok=True)
    inside = resolve_in_root(rootfs, dest)
    if os.path.isdir(inside) and not os.path.islink(inside):
        r = subprocess.run(["cp", "-a", "--no-target-directory", inside, source],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise InvalidArgument(f"image volume {dest}: copying the image's content "
                                  f"failed: {r.stderr.strip()}")
        return
    os.mkdir(source, 0o755)
    if id_base is not None:
        os.chown(source, id_base, id_base)
