#!/usr/bin/env python3
"""Generate a deterministic benchmark tree: many small files and a few large ones.

The same --seed and --size-mb always give the same bytes, names, modes and mtimes, so runs on
different machines compress the same input. Content mixes text-like data (compressible, like
source, configs and docs) with incompressible runs (like binaries and already-compressed
assets), roughly the mix of a distribution root filesystem.

With --files N it generates a tree of N small files instead (32–512 bytes each, 100 per
directory under a three-level fan-out): the shape that measures memory per tree entry rather
than throughput.

usage: gen_tree.py OUT_DIR [--size-mb 1024] [--seed 7]
       gen_tree.py OUT_DIR --files N [--seed 7]
"""

import argparse
import os
import random

WORDS = (
    "the of and to in is for on that with as by this be are from or at an it not which "
    "int char void return struct static const if else while for case break default "
    "usr lib share bin etc var include python3 dist-packages license copyright "
    "error warning failed open read write file directory path config layer image"
).split()


def text_pool(rng, size):
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14)))
        if rng.random() < 0.1:
            line = "    " + line + ";"
        out.append(line)
        n += len(line) + 1
    return ("\n".join(out) + "\n").encode()[:size]


def content(rng, pool, size):
    """Text slices with incompressible runs: ~70% text, ~30% random bytes."""
    parts = []
    left = size
    while left > 0:
        chunk = min(left, rng.randint(4096, 262144))
        if rng.random() < 0.3:
            parts.append(rng.randbytes(chunk))
        else:
            start = rng.randrange(0, len(pool) - chunk) if len(pool) > chunk else 0
            parts.append(pool[start:start + chunk])
        left -= chunk
    return b"".join(parts)[:size]


def many_small(out, count, rng, pool):
    mtime = 1_600_000_000
    written = 0
    for j in range(count):
        d = os.path.join(out, f"d{j // 100000:02d}", f"e{(j // 1000) % 100:02d}", f"f{(j // 100) % 10}")
        if j % 100 == 0:
            os.makedirs(d, exist_ok=True)
        size = rng.randint(32, 512)
        start = rng.randrange(0, len(pool) - size)
        with open(os.path.join(d, f"n{j:07d}.txt"), "wb") as f:
            f.write(pool[start:start + size])
        written += size
    for root, dirs, files in os.walk(out, topdown=False):
        for name in files + dirs:
            os.utime(os.path.join(root, name), (mtime, mtime))
    print(f"generated {count} files, {written} bytes in {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--files", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pool = text_pool(rng, 4 << 20)
    if args.files:
        many_small(args.out, args.files, rng, pool)
        return
    total = args.size_mb << 20
    large_budget = total * 6 // 10  # 60% in large files, 40% in small ones
    written = 0
    files = 0
    mtime = 1_600_000_000

    # Large files: 16–128 MiB each.
    big_dir = os.path.join(args.out, "opt", "big")
    os.makedirs(big_dir, exist_ok=True)
    i = 0
    while written < large_budget:
        size = min(rng.randint(16 << 20, 128 << 20), large_budget - written)
        path = os.path.join(big_dir, f"blob-{i:03d}.bin")
        with open(path, "wb") as f:
            left = size
            while left > 0:
                n = min(left, 8 << 20)
                f.write(content(rng, pool, n))
                left -= n
        os.utime(path, (mtime, mtime))
        written += size
        files += 1
        i += 1

    # Small files: 100 B – 64 KiB, in a two-level directory fan-out.
    j = 0
    while written < total:
        d = os.path.join(args.out, "usr", "share", f"pkg{j // 400:04d}", f"sub{(j // 40) % 10}")
        os.makedirs(d, exist_ok=True)
        size = min(int(rng.lognormvariate(8.0, 1.3)) + 100, 65536, total - written)
        path = os.path.join(d, f"file-{j:06d}.txt")
        with open(path, "wb") as f:
            f.write(content(rng, pool, size))
        os.chmod(path, 0o755 if rng.random() < 0.05 else 0o644)
        os.utime(path, (mtime, mtime))
        written += size
        files += 1
        j += 1

    for root, dirs, _ in os.walk(args.out, topdown=False):
        for d in dirs:
            os.utime(os.path.join(root, d), (mtime, mtime))
    print(f"generated {files} files, {written} bytes in {args.out}")


if __name__ == "__main__":
    main()
