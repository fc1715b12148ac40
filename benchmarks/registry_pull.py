"""Pull of a multi-layer image of about 100 MB from a local registry: hutch vs skopeo.

The script starts Debian's docker-registry on 127.0.0.1 (its own config and
storage, stopped at the end), makes an image once (random, incompressible data
in a few gzip layers, built with hutch's store and pushed with hutch), then
times, taking turns run by run:

- ``hutch image --root DIR pull -q REF``: the installed ``hutch`` command (the
  venv's script beside this interpreter), into an empty instance root (the
  content store and image names), as a user would run it;
- ``skopeo copy docker://... oci:DIR``: into an empty OCI layout directory.

Each run starts from nothing (the store or the directory is removed after it,
untimed), so every byte is fetched and verified each time. Both keep the gzip
layers as they are (no recompression), both check digests, and both fsync
every blob file (skopeo: 6 fsyncs; check with ``strace -f -c -e
trace=fsync,fdatasync``). Runs take turns, after warm-up runs of each.
Compile the bytecode first (``python -m compileall -q src``): this host does
not write it by itself, and hutch would pay for compiling on every run. Goal
(issue 5): no slower than skopeo.

    .venv/bin/python benchmarks/registry_pull.py [--runs 10] [--size-mb 100]
        [--layers 4] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Peer, print_table, ratio, run_checked, time_interleaved

from hutch.common.digest import Digest
from hutch.images.content import ContentStore
from hutch.images.metadata import MetadataStore
from hutch.images.registry.push import push
from hutch.oci.image_spec import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    canonical_json,
)
from hutch.testing.registry import LocalRegistry



def hutch_command() -> list[str]:
    """The ``hutch`` script of this interpreter's environment (else ``-m``)."""
    script = Path(sys.executable).with_name("hutch")
    if os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "hutch.cli.main"]


def make_layer(size: int, i: int) -> tuple[bytes, Digest]:
    """A gzip tar with ``size`` random bytes in a few files; returns it and its diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        per_file = max(size // 4, 1)
        for j in range(4):
            ti = tarfile.TarInfo(f"layer{i}/blob{j}")
            ti.size = per_file
            ti.mtime = 1_600_000_000
            tf.addfile(ti, io.BytesIO(os.urandom(per_file)))
    data = raw.getvalue()
    return gzip.compress(data, compresslevel=1, mtime=0), Digest.from_bytes(data)


def make_image(content: ContentStore, size_mb: int, layers: int) -> Descriptor:
    descs, diff_ids = [], []
    per_layer = (size_mb << 20) // layers
    for i in range(layers):
        blob, diff_id = make_layer(per_layer, i)
        info = content.ingest_bytes(blob)
        descs.append(Descriptor(OCI_LAYER_GZIP, info.digest, info.size))
        diff_ids.append(str(diff_id))
    config = canonical_json({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": diff_ids},
                             "config": {"Cmd": ["/bin/sh"]}})
    cinfo = content.ingest_bytes(config)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG, "digest": str(cinfo.digest),
                                          "size": cinfo.size},
                               "layers": [d.to_dict() for d in descs]})
    minfo = content.ingest_bytes(manifest)
    return Descriptor(OCI_MANIFEST, minfo.digest, minfo.size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per peer")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size-mb", type=int, default=100, help="image size (MiB of data)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--dir", default="/var/tmp", help="where stores and layouts go")
    args = parser.parse_args()
    skopeo = Peer("skopeo", ["skopeo"])
    if not skopeo.available():
        print("registry_pull: skopeo is not installed (install.sh)", file=sys.stderr)
        return 1
    base = tempfile.mkdtemp(prefix="hutch-bench-pull-", dir=args.dir)
    try:
        with LocalRegistry(os.path.join(base, "registry")) as registry:
            t0 = time.monotonic()
            src = ContentStore(os.path.join(base, "src", "content"))
            with MetadataStore(os.path.join(base, "src", "images.db")) as meta:
                target = make_image(src, args.size_mb, args.layers)
                meta.put("bench:1", target)
                ref = f"{registry.host}/bench/image:1"
                push("bench:1", src, meta, ref)
            size = sum(i.size for i in src.walk())
            print(f"image: {ref}, {args.layers} layers, {size / 1e6:.1f} MB in blobs; made and "
                  f"pushed in {time.monotonic() - t0:.1f}s", file=sys.stderr)
            hutch_root = os.path.join(base, "hutch-root")
            oci_dir = os.path.join(base, "skopeo-oci")
            hutch_argv = [*hutch_command(), "image", "--root", hutch_root, "pull", "-q", ref]
            skopeo_argv = ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                           f"docker://{ref}", f"oci:{oci_dir}:1"]
            print(f"hutch:  {' '.join(hutch_argv)}", file=sys.stderr)
            print(f"skopeo: {' '.join(skopeo_argv)}", file=sys.stderr)
            results = time_interleaved(
                {"hutch image pull": lambda: run_checked(hutch_argv),
                 "skopeo copy": lambda: run_checked(skopeo_argv)},
                runs=args.runs, warmup=args.warmup,
                after={"hutch image pull": lambda: shutil.rmtree(hutch_root),
                       "skopeo copy": lambda: shutil.rmtree(oci_dir)})
            results["skopeo copy"].note = skopeo.version()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    table = list(results.values())
    print_table(table, baseline="skopeo copy")
    r = ratio(table, "hutch image pull", "skopeo copy")
    if r is not None:
        print(f"\nhutch / skopeo (medians): {r:.2f} "
              f"({'goal met' if r <= 1.0 else 'GOAL MISSED'}: no slower than skopeo); "
              f"{size / 1e6 / results['hutch image pull'].median_ms * 1000:.0f} MB/s for hutch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
