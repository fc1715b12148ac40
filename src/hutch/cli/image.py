"""``hutch image ...`` (and ``hutch images``, ``hutch rmi``, ``hutch template ls``).

ls, inspect, rm, tag, import, export, validate, sign, verify, keygen, prune here;
pull and push are the registry client's (cli/image_registry.py). Exit codes: 0,
or 1 when hutch fails or a validation finds problems.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from typing import TYPE_CHECKING

from hutch.errors import HutchError, InvalidArgument

if TYPE_CHECKING:
    import argparse

VERBS = ("ls", "list", "inspect", "rm", "tag", "import", "export", "validate", "sign",
         "verify", "keygen", "prune", "pull", "push")


def _parser() -> argparse.ArgumentParser:
    import argparse  # here: pull and push do without it (a start-up they pay for)

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            self.print_usage(sys.stderr)
            raise SystemExit(f"{self.prog}: {message}")

    p = _Parser(prog="hutch image", description="images in the store")
    p.add_argument("--root", default=None, help="state directory (HUTCH_ROOT)")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    ls = sub.add_parser("ls", aliases=["list"], help="list images")
    ls.add_argument("-q", "--quiet", action="store_true", help="image ids only")
    ls.add_argument("--format", help="json: one JSON list")
    ins = sub.add_parser("inspect", help="an image as JSON (manifest, config, layers...)")
    ins.add_argument("images", nargs="+")
    rm = sub.add_parser("rm", help="remove image names (and what only they used)")
    rm.add_argument("-f", "--force", action="store_true",
                    help="even while a container uses the image")
    rm.add_argument("images", nargs="+")
    tag = sub.add_parser("tag", help="give an image another name")
    tag.add_argument("source")
    tag.add_argument("target")
    imp = sub.add_parser("import", help="an OCI layout/archive, a Docker archive, or a "
                                        "root file system (tar or directory) with --name")
    imp.add_argument("path")
    imp.add_argument("--name", help="the image's name (required for a root file system)")
    imp.add_argument("--signature", help="a detached .sig file (default: PATH.sig if there)")
    imp.add_argument("--policy", help="trust policy file (default <root>/policy.json)")
    imp.add_argument("--entrypoint", help="root file system: Entrypoint (JSON list or words)")
    imp.add_argument("--cmd", help="root file system: Cmd (JSON list or words)")
    imp.add_argument("--env", action="append", default=[], help="root file system: NAME=VALUE")
    imp.add_argument("--workdir", help="root file system: WorkingDir")
    imp.add_argument("--user", help="root file system: User")
    exp = sub.add_parser("export", help="images as an OCI archive or a Docker archive")
    exp.add_argument("-o", "--output", required=True)
    exp.add_argument("--format", default="oci", help="oci (default), oci-dir, docker-archive")
    exp.add_argument("images", nargs="+")
    val = sub.add_parser("validate", help="check an image (stored, or a layout/archive path) "
                                          "against the image spec; list every problem")
    val.add_argument("--format", help="json")
    val.add_argument("image")
    sg = sub.add_parser("sign", help="sign an image's manifest digest with an ed25519 key")
    sg.add_argument("--key", required=True, help="private key (PEM)")
    sg.add_argument("-o", "--output", help="also write the signature to this .sig file")
    sg.add_argument("--push", action="store_true",
                    help="also put the signature beside the image in its registry")
    sg.add_argument("image")
    vf = sub.add_parser("verify", help="check an image's signatures")
    vf.add_argument("--key", action="append", default=[],
                    help="trusted public key (PEM); repeatable; default: the policy's")
    vf.add_argument("--policy", help="trust policy file (default <root>/policy.json)")
    vf.add_argument("image")
    kg = sub.add_parser("keygen", help="make an ed25519 key pair: KEY and KEY.pub")
    kg.add_argument("--out", required=True)
    sub.add_parser("prune", help="remove unnamed images, unused layers and snapshots")
    for verb in ("pull", "push"):
        r = sub.add_parser(verb, help=f"{verb} an image (the registry client)", add_help=False)
        r.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str]) -> int:
    """``argv``: what follows ``image`` (a global --root may come first)."""
    root, rest = _split_root(argv)
    if rest[:1] in (["pull"], ["push"]):
        return _registry(rest[0], rest[1:], root)
    args = _parser().parse_args((["--root", root] if root else []) + rest)
    from hutch.engine import Engine
    engine = None
    try:
        engine = Engine(args.root)
        if getattr(args, "policy", None):
            engine.images.policy_path = args.policy
        verb = "ls" if args.verb == "list" else args.verb
        return int(globals()["cmd_" + verb](engine, args) or 0)
    except HutchError as e:
        print("hutch: " + "\n  ".join([str(e), *getattr(e, "__notes__", [])]),
              file=sys.stderr)
        return 1
    except OSError as e:
        print(f"hutch: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    finally:
        if engine is not None:
            engine.close()


def _split_root(argv: list[str]) -> tuple[str | None, list[str]]:
    root, rest, i = None, [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--root" and i + 1 < len(argv) and not rest:
            root = argv[i + 1]
            i += 2
            continue
        if a.startswith("--root=") and not rest:
            root = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return root, rest


def _registry(verb: str, argv: list[str], root: str | None) -> int:
    import gc
    gc.disable()  # a process that ends with the verb: no collections in its imports
    try:
        from hutch.cli import image_registry
    except ImportError:
        print(f"hutch: image {verb}: the registry client is not installed in this hutch",
              file=sys.stderr)
        return 1
    code = int((image_registry.pull_main if verb == "pull" else image_registry.push_main)(
        argv, root))
    # The process ends now: spare it the interpreter's last full garbage collection
    # over every module imported (httpx's among them), 10-20 ms of a pull.
    gc.freeze()
    return code


# -- verbs ---------------------------------------------------------------------------------

def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return str(n)


def _ago(stamp: str) -> str:
    try:
        t = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except (ValueError, OverflowError):
        return stamp or "-"
    s = int(time.time() - t)
    for unit, size in (("years", 365 * 86400), ("months", 30 * 86400), ("weeks", 7 * 86400),
                       ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= 2 * size:
            return f"{s // size} {unit} ago"
    return "About a minute ago" if s >= 60 else f"{max(s, 0)} seconds ago"


def _table(rows: list[tuple[str, ...]]) -> None:
    from hutch.cli.table import print_table
    print_table(rows)


def cmd_ls(engine, args) -> int:  # type: ignore[no-untyped-def]
    rows = engine.images.list()
    if args.quiet:
        seen: list[str] = []
        for r in rows:
            short = (r["id"] or r["digest"]).split(":")[-1][:12]
            if short not in seen:
                seen.append(short)
        if seen:
            print("\n".join(seen))
        return 0
    if args.format == "json":
        print(json.dumps(rows))
        return 0
    table = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
    for r in rows:
        table.append((r["repository"], r["tag"], (r["id"] or "?").split(":")[-1][:12],
                      _ago(r["created"]), _human(r["size"])))
    _table(table)
    return 0


def cmd_inspect(engine, args) -> int:  # type: ignore[no-untyped-def]
    print(json.dumps([engine.images.inspect(ref) for ref in args.images], indent=2))
    return 0


def cmd_rm(engine, args) -> int:  # type: ignore[no-untyped-def]
    containers = engine.db.all()
    failed = 0
    for ref in args.images:
        try:
            for line in engine.images.remove(ref, containers, force=args.force):
                print(line)
        except HutchError as e:
            print(f"hutch: {e}", file=sys.stderr)
            failed = 1
    return failed


def cmd_tag(engine, args) -> int:  # type: ignore[no-untyped-def]
    engine.images.tag(args.source, args.target)
    return 0


def _words(text: str | None) -> list[str] | None:
    if text is None:
        return None
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except ValueError as e:
            raise InvalidArgument(f"{text!r} is not a JSON list: {e}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"{text!r}: expected a JSON list of strings")
        return value
    return shlex.split(text)


def cmd_import(engine, args) -> int:  # type: ignore[no-untyped-def]
    from hutch.images.assemble import run_config_from_args
    run = run_config_from_args(_words(args.entrypoint), _words(args.cmd), args.env or None,
                               args.workdir, args.user)
    for name in engine.images.import_(args.path, name=args.name, signature=args.signature,
                                      run=run):
        print(name)
    return 0


def cmd_export(engine, args) -> int:  # type: ignore[no-untyped-def]
    sig = engine.images.export(args.images, args.output, args.format)
    if sig:
        print(f"signatures written to {sig}", file=sys.stderr)
    return 0


def cmd_validate(engine, args) -> int:  # type: ignore[no-untyped-def]
    import os

    from hutch.images import validate
    if os.path.exists(args.image):
        report = validate.validate_source(args.image)
    else:
        name = engine.images.get(args.image).name
        report = validate.validate_stored(engine.images.content, engine.images.meta, name)
    if args.format == "json":
        print(json.dumps(report.to_dict()))
    elif report.ok:
        print(f"{report.source}: OK ({report.images} image(s), {report.layers} layer(s), "
              f"{report.blobs} blob(s) checked)")
    else:
        print(f"{report.source}: {len(report.problems)} problem(s):")
        for p in report.problems:
            print(f"  {p}")
    return 0 if report.ok else 1


def cmd_sign(engine, args) -> int:  # type: ignore[no-untyped-def]
    made = engine.images.sign(args.image, args.key, args.output)
    print(f"signed {made['image']} ({made['digest']}) with key {made['key_id']}")
    if args.push:
        from hutch.cli.image_registry import push_signatures
        image = engine.images.get(made["image"])
        held = push_signatures(args.root, image.name, image.target,
                               engine.images.signatures.list(image.target.digest))
        print(f"{image.name}: the registry holds {held} signature(s) for it")
    return 0


def cmd_verify(engine, args) -> int:  # type: ignore[no-untyped-def]
    if args.key:
        rows = engine.images.verify(args.image, args.key)
        for r in rows:
            print(f"{r['key_id']}  {'valid' if r['valid'] else 'INVALID'}  {r['created']}")
        return 0 if any(r["valid"] for r in rows) else 1
    image = engine.images.get(args.image)
    policy = engine.images.policy()
    req = policy.check(image.name, image.target.digest,
                       engine.images.signatures.list(image.target.digest))
    print(f"{image.name}: accepted by the policy ({req.kind}, rule {req.scope!r})")
    return 0


def cmd_keygen(engine, args) -> int:  # type: ignore[no-untyped-def]
    from hutch.images.signing import generate_key
    private, public = generate_key(args.out)
    print(f"private key: {private}\npublic key:  {public}")
    return 0


def cmd_prune(engine, args) -> int:  # type: ignore[no-untyped-def]
    result = engine.images.prune()
    for d in result["blobs"]:
        print(f"deleted: {d}")
    print(f"Total reclaimed space: {_human(result['freed'])} "
          f"({len(result['blobs'])} blob(s), {result['snapshots']} snapshot(s))")
    return 0


# -- templates -----------------------------------------------------------------------------

def template_main(argv: list[str]) -> int:
    """``hutch template ls``: the templates this hutch has."""
    root, rest = _split_root(argv)
    if rest[:1] == ["build"]:  # cli/template_build.py: make a template's image now
        from hutch.cli import template_build
        return template_build.main(root, rest)
    if rest[:1] not in (["ls"], ["list"]) or len(rest) > 2 or \
            (len(rest) == 2 and rest[1] not in ("--format=json", "-q")):
        print("usage: hutch template ls [-q|--format=json]", file=sys.stderr)
        return 1
    from hutch.engine import templates
    from hutch.engine.images import BUILTIN
    rows = [{"name": short, "kind": "image", "image": name,
             "description": "the built-in image, made from the host's static busybox "
                            "(no registry needed)"} for name, short in BUILTIN.items()]
    for name, t in templates.TEMPLATES.items():
        rows.append({"name": name, "kind": "os", "image": t.get("image") or "(its options)",
                     "description": t.get("summary") or f"an OS container (hutch create -t "
                                                        f"{name} -n NAME)"})
    if rest[1:] == ["--format=json"]:
        print(json.dumps(rows))
    elif rest[1:] == ["-q"]:
        print("\n".join(sorted({r["name"] for r in rows})))
    else:
        _table([("NAME", "KIND", "IMAGE", "DESCRIPTION")] +
               [(r["name"], r["kind"], r["image"], r["description"]) for r in rows])
    return 0
