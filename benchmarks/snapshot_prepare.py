"""Preparing a container's root from a small and from a large image, per driver.

Two images are made as chains of committed snapshots (what unpacking an image
leaves): a small one (~1 MB in 100 files, 1 layer) and a large one (~1 GB in
4 layers: 1,000 small files and a few big ones of real, incompressible data;
``--sparse`` makes the big files holes, quick to make but no test of a copy).
Then ``prepare(key, top)`` is timed, alone and followed by mounting the
returned records on a directory (what the engine does), with the snapshot
removed after each run (untimed). Goal: on overlay, the large image costs the
same as the small one, under 50 ms. The copy driver's cost is shown beside it.

    sudo .venv/bin/python benchmarks/snapshot_prepare.py [--runs 20] [--copy-runs 3]
        [--size-mb 1024] [--drivers overlay,copy] [--dir /var/tmp] [--sparse]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Result, print_table, time_runs

from hutch.storage import drivers
from hutch.storage.mount import mount_all, unmount_all
from hutch.storage.snapshotter import Snapshotter

BLOCK = os.urandom(1 << 20)


def fill_big(path: Path, size: int, sparse: bool) -> None:
    with open(path, "wb") as f:
        if sparse:
            f.truncate(size)
            return
        left = size
        while left > 0:
            n = min(left, len(BLOCK))
            f.write(BLOCK[:n])
            left -= n


def layer_dir(s: Snapshotter, key: str, parent: str | None) -> Path:
    [m] = s.prepare(key, parent)
    return Path(m.option("upperdir") or m.source)


def make_image(s: Snapshotter, prefix: str, layers: list[Callable[[Path], None]]) -> str:
    parent = None
    for i, fill in enumerate(layers):
        key = f"{prefix}-extract-{i}"
        fill(layer_dir(s, key, parent))
        s.commit(f"{prefix}-layer{i}", key)
        parent = f"{prefix}-layer{i}"
    assert parent is not None
    return parent


def small_layer(root: Path) -> None:
    for d in range(10):
        (root / f"dir{d}").mkdir()
        for f in range(10):
            (root / f"dir{d}" / f"file{f}").write_bytes(BLOCK[:10 << 10])


def large_layers(size_mb: int, sparse: bool) -> list[Callable[[Path], None]]:
    per_layer = (size_mb << 20) // 4

    def small_files(root: Path) -> None:
        for d in range(100):
            (root / f"usr{d}").mkdir()
            for f in range(10):
                (root / f"usr{d}" / f"lib{f}.so").write_bytes(BLOCK[:4 << 10])
        fill_big(root / "big0", per_layer - (4 << 20), sparse)

    def big(i: int) -> Callable[[Path], None]:
        def fill(root: Path) -> None:
            (root / f"layer{i}").mkdir()
            for j in range(4):
                fill_big(root / f"layer{i}" / f"blob{j}", per_layer // 4, sparse)
        return fill

    return [small_files, big(1), big(2), big(3)]


def bench_driver(name: str, base: str, args: argparse.Namespace) -> list[Result]:
    s = drivers.load(name, os.path.join(base, name))
    results = []
    try:
        t0 = time.monotonic()
        small = make_image(s, "small", [small_layer])
        large = make_image(s, "large", large_layers(args.size_mb, args.sparse))
        made = time.monotonic() - t0
        usage = sum(s.usage(f"large-layer{i}").size for i in range(4)) >> 20
        print(f"{name}: images made in {made:.1f}s; the large one uses {usage} MiB on disk",
              file=sys.stderr)
        runs = args.runs if s.info().copy_on_write else args.copy_runs
        mnt = tempfile.mkdtemp(prefix="mnt-", dir=base)
        counter = iter(range(1_000_000))
        keys: list[str] = []
        for image, top in (("1 MB image", small), (f"{args.size_mb} MB image", large)):

            def prepare(top: str = top) -> None:
                key = f"c{next(counter)}"
                keys.append(key)
                s.prepare(key, top)

            def prepare_and_mount(top: str = top) -> None:
                key = f"c{next(counter)}"
                keys.append(key)
                mount_all(s.prepare(key, top), mnt)

            def remove() -> None:
                unmount_all(mnt)
                s.remove(keys.pop())

            for label, fn in (("prepare", prepare), ("prepare+mount", prepare_and_mount)):
                samples = time_runs(fn, runs, warmup=1 if runs < 5 else 3, after=remove)
                results.append(Result(f"{name} {label}, {image}", samples))
        os.rmdir(mnt)
    finally:
        for info in reversed(s.walk()):
            s.remove(info.name)
        s.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per case (CoW drivers)")
    parser.add_argument("--copy-runs", type=int, default=3, help="timed runs for the copy driver")
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the large image")
    parser.add_argument("--drivers", default="overlay,copy")
    parser.add_argument("--dir", default="/var/tmp", help="where the snapshots are made")
    parser.add_argument("--sparse", action="store_true", help="big files as holes")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("snapshot_prepare: run me as root (mounts)", file=sys.stderr)
        return 1
    base = tempfile.mkdtemp(prefix="hutch-bench-snap-", dir=args.dir)
    results: list[Result] = []
    try:
        for name in args.drivers.split(","):
            results += bench_driver(name, base, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_table(results, baseline=results[0].name if results else None)
    by = {r.name: r for r in results}
    small = by.get("overlay prepare+mount, 1 MB image")
    large = by.get(f"overlay prepare+mount, {args.size_mb} MB image")
    if small and large:
        ok = large.median_ms < 50 and large.median_ms < small.median_ms * 1.5 + 2
        print(f"\noverlay, {args.size_mb} MB vs 1 MB image: {large.median_ms:.2f} ms vs "
              f"{small.median_ms:.2f} ms (prepare+mount, medians): "
              f"{'goal met' if ok else 'GOAL MISSED'} (same cost, under 50 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
