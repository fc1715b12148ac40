"""``hutch image pull`` and ``hutch image push``: the registry verbs of the image command.

``pull_main`` and ``push_main`` take the arguments after the verb and the
instance root (``--root`` / HUTCH_ROOT, None for the default); the image
command (cli/image.py) calls them. httpx and rich are imported only when a
verb runs.
"""

from __future__ import annotations

import os
import sys

from hutch.errors import HutchError, InvalidArgument

PULL_HELP = """\
usage: hutch image pull [flags] REFERENCE

Pull an image from a registry into the image store, by tag or digest:
  busybox                       docker.io/library/busybox:latest
  registry.example:5000/app:1   a registry of your own
  app@sha256:<hex>              exactly that manifest (or index)

flags:
  --platform OS/ARCH[/VARIANT]  the platform to pick from a multi-platform image
                                (default linux/amd64)
  -q, --quiet                   no progress; print only the image's name
  --insecure-registry HOST[:PORT]
                                speak plain http to this registry (repeatable;
                                localhost and 127.0.0.1 always are)
  --auth-file PATH              credentials, Docker's config.json "auths" shape
                                (default $HUTCH_AUTH_FILE or <root>/auth.json)
  --policy FILE                 trust policy (default <root>/policy.json): the image
                                is checked before its name is written, and refused
                                images get no name

The image's signatures, when the registry has them (the tag sha256-<hex>.sig
beside it), are checked and kept with it. More plain-http registries can be
listed in $HUTCH_INSECURE_REGISTRIES (comma separated).
"""

PUSH_HELP = """\
usage: hutch image push [flags] IMAGE [DESTINATION]

Push an image of the store to a registry (to its own name, or DESTINATION):
blobs the registry lacks, then the manifest (and an index's manifests), by tag,
then the image's signatures (hutch image sign) as the tag sha256-<hex>.sig.

flags:
  -q, --quiet                   no progress; print only the pushed digest
  --insecure-registry HOST[:PORT]
                                speak plain http to this registry (repeatable)
  --auth-file PATH              credentials (see `hutch image pull --help`)
"""


class _Args:
    def __init__(self) -> None:
        self.help = False
        self.quiet = False
        self.platform: str | None = None
        self.insecure_registry: list[str] = []
        self.auth_file: str | None = None
        self.policy: str | None = None
        self.positional: list[str] = []


_VALUE_FLAGS = {"--platform": "platform", "--insecure-registry": "insecure_registry",
                "--auth-file": "auth_file", "--policy": "policy"}


def _parse(verb: str, argv: list[str], max_positional: int) -> _Args:
    """The verb's flags (argparse would cost more than a tenth of a pull's start-up)."""
    args = _Args()
    allowed = set(_VALUE_FLAGS) - ({"--platform", "--policy"} if verb != "pull" else set())
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            args.positional.extend(argv[i:])
            break
        if arg in ("-h", "--help"):
            args.help = True
        elif arg in ("-q", "--quiet"):
            args.quiet = True
        elif arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name not in allowed:
                raise InvalidArgument(f"unknown flag {name} (see --help)")
            if not eq:
                if i >= len(argv):
                    raise InvalidArgument(f"flag {name} needs a value")
                value = argv[i]
                i += 1
            dest = _VALUE_FLAGS[name]
            if dest == "insecure_registry":
                args.insecure_registry.append(value)
            else:
                setattr(args, dest, value)
        elif arg.startswith("-") and arg != "-":
            raise InvalidArgument(f"unknown flag {arg} (see --help)")
        else:
            args.positional.append(arg)
    if len(args.positional) > max_positional:
        raise InvalidArgument(f"unexpected argument "
                              f"{args.positional[max_positional]!r} (see --help)")
    return args


# hutch.engine.paths.DEFAULT_ROOT, which is the default's home (a test checks they
# agree): importing it imports the whole engine, a fifth of a pull's start-up.
DEFAULT_ROOT = "/var/lib/hutch"


def instance_root(root: str | None) -> str:
    """The instance directory: ``root``, $HUTCH_ROOT, or the engine's default."""
    return os.path.abspath(root or os.environ.get("HUTCH_ROOT") or DEFAULT_ROOT)


def image_store_paths(root: str | None) -> tuple[str, str]:
    """Where an instance keeps its content store and its image names (SQLite)."""
    base = instance_root(root)
    return os.path.join(base, "content"), os.path.join(base, "images.db")


def _auth(root: str | None, path: str | None):  # type: ignore[no-untyped-def]
    from hutch.images.registry.auth import AuthConfig, auth_file_path
    return AuthConfig.load(path or auth_file_path(instance_root(root)))


def pull_main(argv: list[str], root: str | None) -> int:
    """``hutch image pull``; returns the exit code."""
    try:
        args = _parse("pull", argv, 1)
        if args.help:
            print(PULL_HELP, end="")
            return 0
        if not args.positional:
            print(PULL_HELP, end="", file=sys.stderr)
            return 1
        from hutch.images.content import ContentStore
        from hutch.images.metadata import MetadataStore
        from hutch.images.policy import default_path, verifier
        from hutch.images.registry.progress import make_progress
        from hutch.images.registry.pull import pull
        from hutch.images.registry.reference import insecure_registries
        from hutch.images.signing import SignatureStore

        content_dir, names = image_store_paths(root)
        content = ContentStore(content_dir)
        base = instance_root(root)
        signatures = os.path.join(base, "signatures")
        verify = verifier(args.policy or default_path(base), signatures)
        with MetadataStore(names) as meta, make_progress(args.quiet) as progress:
            result = pull(args.positional[0], content, meta, platform=args.platform,
                          insecure_registries=insecure_registries(args.insecure_registry),
                          auth=_auth(root, args.auth_file), progress=progress,
                          signatures=SignatureStore(signatures), verify=verify)
        if args.quiet:
            print(result.name)
        else:
            fetched = len(result.fetched)
            print(f"{result.name}: pulled {result.image.manifest_descriptor.digest} "
                  f"for {result.image.config.platform} ({fetched} blob"
                  f"{'' if fetched == 1 else 's'} fetched, {_size(result.downloaded)})")
            if result.target.digest != result.image.manifest_descriptor.digest:
                print(f"index: {result.target.digest}")
            sigs = result.signatures
            if sigs is not None and (sigs.valid or sigs.rejected or sigs.error):
                print("\n".join(sigs.notes(result.reference.name)), file=sys.stderr)
        return 0
    except HutchError as e:
        return _report("pull", e)
    except KeyboardInterrupt:
        print("hutch image pull: interrupted; pull again to resume", file=sys.stderr)
        return 130


def push_main(argv: list[str], root: str | None) -> int:
    """``hutch image push``; returns the exit code."""
    try:
        args = _parse("push", argv, 2)
        if args.help:
            print(PUSH_HELP, end="")
            return 0
        if not args.positional:
            print(PUSH_HELP, end="", file=sys.stderr)
            return 1
        from hutch.images.content import ContentStore
        from hutch.images.metadata import MetadataStore
        from hutch.images.registry.progress import make_progress
        from hutch.images.registry.push import find_image, push
        from hutch.images.registry.reference import insecure_registries
        from hutch.images.signing import SignatureStore

        content_dir, names = image_store_paths(root)
        content = ContentStore(content_dir)
        store = SignatureStore(os.path.join(instance_root(root), "signatures"))
        with MetadataStore(names) as meta, make_progress(args.quiet) as progress:
            destination = args.positional[1] if len(args.positional) > 1 else None
            signatures = store.list(find_image(meta, args.positional[0]).target.digest)
            result = push(args.positional[0], content, meta, destination,
                          insecure_registries=insecure_registries(args.insecure_registry),
                          auth=_auth(root, args.auth_file), progress=progress,
                          signatures=signatures)
        if args.quiet:
            print(result.digest)
        else:
            signed = f", {result.signatures} signature(s) beside it" \
                if result.signatures else ""
            print(f"{result.reference}: pushed {result.digest} ({len(result.uploaded)} blobs "
                  f"uploaded, {len(result.existing)} already there{signed})")
        return 0
    except HutchError as e:
        return _report("push", e)


def push_signatures(root: str | None, name: str, target, sigs) -> int:  # type: ignore[no-untyped-def]
    """``hutch image sign --push``: put ``sigs`` of image ``name`` (its ``target``
    descriptor) beside it in its registry, without pushing the image again."""
    from hutch.images.registry import signatures as remote
    from hutch.images.registry.client import client_for
    from hutch.images.registry.reference import insecure_registries, parse_reference
    ref = parse_reference(name)
    with client_for(ref, insecure_registries=insecure_registries(),
                    auth=_auth(root, None)) as client:
        return remote.push(client, ref.repository, target, sigs)


def _report(verb: str, e: HutchError) -> int:
    notes = getattr(e, "__notes__", [])
    print("\n  ".join([f"hutch image {verb}: {e}", *notes]), file=sys.stderr)
    return e.exit_code


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"
