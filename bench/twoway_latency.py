#!/usr/bin/env python3
"""twoway_latency.py: how long an edit takes to show on the other side of a
live two-way pair (issue 7), in both directions, in one run.

A: `wsync mount SRC MNT` with a `two-way` remote whose DEST is B's tree
(a local path: the far side is a real `wsync serve`, over a pipe, not a
network).  B mounts its own tree too (`wsync mount BTREE BMNT`), as a robot
would.  Each trial starts the clock just before the write (a new 4 KiB file
of unique bytes) and stops it when a poll of the other side's *mount* sees
those bytes:

  a->b        written through A's mount, seen in B's mount
  b->a tree   written directly into B's tree, seen in A's mount
  b->a mount  written through B's mount, seen in A's mount

The directions are interleaved trial by trial, so load hits them alike.  A
trial that does not arrive within --timeout counts as missed and is left
out of the percentiles.

--mode auto adds the remote without --mode (auto, the default: two-way
because B's tree is mounted); the "first file" line, the time from `wsync
mount` returning to the first file in B's mount, then includes the probe
that decides it.

Usage: bench/twoway_latency.py [--trials N] [--dir DIR] [--wsync PATH] [--mode two-way|auto]
Needs root (FUSE).  Prints a Markdown table.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLL_S = 0.0002


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"twoway_latency: {' '.join(args)}: {r.stdout}{r.stderr}")


def seen(path, data):
    try:
        with open(path, "rb") as f:
            return f.read() == data
    except OSError:
        return False


def trial(write_path, read_path, data, timeout):
    t0 = time.perf_counter()
    with open(write_path, "wb") as f:
        f.write(data)
    while time.perf_counter() - t0 < timeout:
        if seen(read_path, data):
            return (time.perf_counter() - t0) * 1000
        time.sleep(POLL_S)
    return None


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--wsync", default=os.path.join(REPO, "build", "cli", "wsync"))
    ap.add_argument("--mode", choices=("two-way", "auto"), default="two-way")
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="twoway-lat-", dir=a.dir)
    src, mnt, btree, bmnt = (os.path.join(base, d) for d in ("src", "mnt", "b", "bmnt"))
    for d in (src, mnt, btree, bmnt):
        os.makedirs(d)
    mounted = []
    try:
        run(a.wsync, "mount", btree, bmnt)
        mounted.append(bmnt)
        run(a.wsync, "remote", "add", "-C", src, *(["--mode", a.mode] if a.mode != "auto" else []),
            "b", btree)
        run(a.wsync, "mount", src, mnt)
        mounted.append(mnt)
        # Settle: the first rounds run at connect.
        warm = b"warm\n"
        first = trial(os.path.join(mnt, "warm"), os.path.join(bmnt, "warm"), warm, a.timeout)
        if first is None:
            sys.exit("twoway_latency: the pair never synced the first file")
        print(f"mode {a.mode}: first file after mount {first:.1f} ms")
        dirs = {
            "a->b": (mnt, bmnt),
            "b->a tree": (btree, mnt),
            "b->a mount": (bmnt, mnt),
        }
        res = {k: [] for k in dirs}
        missed = {k: 0 for k in dirs}
        for i in range(a.trials):
            for k, (w, r) in dirs.items():
                name = f"t{i}-{k.replace(' ', '_').replace('>', '')}.bin"
                data = os.urandom(4096)
                ms = trial(os.path.join(w, name), os.path.join(r, name), data, a.timeout)
                if ms is None:
                    missed[k] += 1
                else:
                    res[k].append(ms)
                time.sleep(0.05)  # let the echo round (nothing to do) pass
        print("| direction | trials | p50 ms | p95 ms | max ms | missed |")
        print("| --- | --- | --- | --- | --- | --- |")
        for k in dirs:
            v = res[k]
            if v:
                print(f"| {k} | {len(v)} | {statistics.median(v):.1f} | {pct(v, 95):.1f} "
                      f"| {max(v):.1f} | {missed[k]} |")
            else:
                print(f"| {k} | 0 | - | - | - | {missed[k]} |")
    finally:
        for m in reversed(mounted):
            subprocess.run([a.wsync, "unmount", m], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
