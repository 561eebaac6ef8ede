#!/usr/bin/env python3
"""mirror_latency.py: how long from a write to identical content at the replica.

wsync (a write through `wsync mount SRC MNT --mirror DST`) side by side with
lsyncd (a write into its watched SRC; rsync to DST), in one run, on the same
disk.  Both replicas are local directories: what is measured is the
watch -> detect -> transfer -> land pipeline, not a network.

Workloads (each trial starts the clock just before the write and stops it
when a poll of the replica sees the new bytes):
  new      a new 4 KiB file
  inplace  a 4 KiB same-size rewrite at a random offset of a 10 MiB file
  burst    1000 new 1 KiB files in one go (the clock stops when all are there)

Candidates: wsync (default mount), lsyncd delay=0, lsyncd defaults (its
default delay is 15 s, so it gets fewer trials).  A trial that does not
arrive within --timeout is counted as missed and left out of the
percentiles.

Usage: bench/mirror_latency.py [--trials N] [--burst-trials N]
           [--default-trials N] [--only LIST] [--dir DIR] [--wsync PATH]
           [--out FILE]
Needs root (FUSE), lsyncd and rsync.  Prints a Markdown report.
"""
import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLL_S = 0.0002  # 200 us between looks at the replica


def die(msg):
    print(f"mirror_latency: {msg}", file=sys.stderr)
    sys.exit(1)


def read_at(path, off, n):
    try:
        with open(path, "rb") as f:
            f.seek(off)
            return f.read(n)
    except OSError:
        return None


def wait_for(pred, timeout):
    """Poll pred() until true: the perf_counter() time it was seen true, or
    None after timeout seconds."""
    t0 = time.perf_counter()
    while True:
        if pred():
            return time.perf_counter()
        if time.perf_counter() - t0 > timeout:
            return None
        time.sleep(POLL_S)


class Candidate:
    """A writer directory and the replica it should reach."""

    def __init__(self, name, write_dir, replica_dir):
        self.name, self.write_dir, self.replica_dir = name, write_dir, replica_dir

    def stop(self):
        pass


class Wsync(Candidate):
    def __init__(self, base, wsync):
        src, mnt, dst = (os.path.join(base, d) for d in ("src", "mnt", "dst"))
        for d in (src, mnt, dst):
            os.makedirs(d)
        self.wsync, self.mnt = wsync, mnt
        r = subprocess.run([wsync, "mount", "--mirror", dst, src, mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            die(f"wsync mount failed: {r.stderr.strip()}")
        self.mounted = True
        super().__init__("wsync", mnt, dst)

    def stop(self):
        if self.mounted:
            subprocess.run([self.wsync, "unmount", self.mnt], capture_output=True)
            self.mounted = False


class Lsyncd(Candidate):
    def __init__(self, base, name, delay):
        src, dst = os.path.join(base, "src"), os.path.join(base, "dst")
        os.makedirs(src)
        os.makedirs(dst)
        conf = os.path.join(base, "lsyncd.conf")
        delay_line = f"    delay = {delay},\n" if delay is not None else ""
        with open(conf, "w") as f:
            f.write("settings { nodaemon = true, logfile = '%s/log', statusFile = '%s/status' }\n"
                    "sync {\n    default.rsync,\n    source = '%s',\n    target = '%s',\n%s}\n"
                    % (base, base, src, dst, delay_line))
        self.proc = subprocess.Popen(["lsyncd", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        super().__init__(name, src, dst)
        # Trials start once lsyncd's startup rsync is over and its watch is
        # live: a file made now has arrived.
        probe = os.path.join(src, ".probe")
        with open(probe, "w") as f:
            f.write("p")
        if wait_for(lambda: os.path.exists(os.path.join(dst, ".probe")), 60) is None:
            die(f"{name}: lsyncd never synced a probe file (see {base}/log)")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def trial_new(c, i, timeout):
    name = f"new-{i}-{random.getrandbits(32):08x}"
    data = os.urandom(4096)
    dst = os.path.join(c.replica_dir, name)
    t0 = time.perf_counter()
    with open(os.path.join(c.write_dir, name), "wb") as f:
        f.write(data)
    done = wait_for(lambda: read_at(dst, 0, 8192) == data, timeout)
    return None if done is None else done - t0


def prepare_inplace(c, timeout):
    data = os.urandom(10 << 20)
    with open(os.path.join(c.write_dir, "big"), "wb") as f:
        f.write(data)
    dst = os.path.join(c.replica_dir, "big")
    if wait_for(lambda: read_at(dst, 0, len(data) + 1) == data, max(timeout, 60)) is None:
        die(f"{c.name}: the 10 MiB file never arrived")


def trial_inplace(c, i, timeout):
    off = random.randrange(0, (10 << 20) - 4096) & ~4095
    data = os.urandom(4096)
    dst = os.path.join(c.replica_dir, "big")
    t0 = time.perf_counter()
    fd = os.open(os.path.join(c.write_dir, "big"), os.O_WRONLY)
    try:
        os.pwrite(fd, data, off)
    finally:
        os.close(fd)
    done = wait_for(lambda: read_at(dst, off, 4096) == data, timeout)
    return None if done is None else done - t0


def trial_burst(c, i, timeout):
    d = f"burst-{i}"
    os.makedirs(os.path.join(c.write_dir, d))
    files = [(f"{d}/f{k:04d}", os.urandom(1024)) for k in range(1000)]
    t0 = time.perf_counter()
    for rel, data in files:
        with open(os.path.join(c.write_dir, rel), "wb") as f:
            f.write(data)
    pending = list(files)

    def all_there():
        while pending:
            rel, data = pending[-1]
            if read_at(os.path.join(c.replica_dir, rel), 0, 2048) != data:
                return False
            pending.pop()
        return True

    done = wait_for(all_there, timeout)
    return None if done is None else done - t0


def pct(xs, p):
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def fmt_ms(s):
    return f"{s * 1000:.1f} ms" if s < 10 else f"{s:.1f} s"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--burst-trials", type=int, default=5)
    ap.add_argument("--default-trials", type=int, default=3,
                    help="trials per workload for lsyncd with its default 15 s delay "
                    "(0: leave it out)")
    ap.add_argument("--only", default="wsync,lsyncd0,lsyncd")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--wsync", default=os.path.join(REPO, "build/cli/wsync"))
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="seconds before a trial counts as missed (lsyncd defaults: +20)")
    ap.add_argument("--out")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    random.seed(a.seed)
    if os.geteuid() != 0:
        die("needs root (FUSE mount)")
    for tool in ("lsyncd", "rsync"):
        if "lsyncd" in a.only and not shutil.which(tool):
            die(f"{tool} not found: apt-get install -y lsyncd rsync")
    if not os.access(a.wsync, os.X_OK):
        die(f"{a.wsync}: not built (ninja -C build)")

    base = tempfile.mkdtemp(prefix="wsync-mlat-", dir=a.dir)
    cands = []
    old_int = signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = {}
    try:
        wanted = a.only.split(",")
        if "wsync" in wanted:
            cands.append(Wsync(os.path.join(base, "wsync"), a.wsync))
        if "lsyncd0" in wanted:
            cands.append(Lsyncd(os.path.join(base, "lsyncd0"), "lsyncd delay=0", 0))
        if "lsyncd" in wanted and a.default_trials > 0:
            cands.append(Lsyncd(os.path.join(base, "lsyncd"), "lsyncd defaults", None))
        for c in cands:
            slow = c.name == "lsyncd defaults"
            timeout = a.timeout + (20 if slow else 0)
            n = a.default_trials if slow else a.trials
            nb = a.default_trials if slow else a.burst_trials
            prepare_inplace(c, timeout)
            for wl, fn, count in (("new 4 KiB file", trial_new, n),
                                  ("4 KiB in-place write, 10 MiB file", trial_inplace, n),
                                  ("1000-file burst", trial_burst, nb)):
                got, missed = [], 0
                for i in range(count):
                    lat = fn(c, i, timeout)
                    if lat is None:
                        missed += 1
                    else:
                        got.append(lat)
                    time.sleep(0.05 if not slow else 0)
                results[(c.name, wl)] = (got, missed, count)
                print(f"  {c.name:16} {wl:36} " +
                      (f"p50 {fmt_ms(statistics.median(got))}" if got else "no sample") +
                      (f", {missed} missed" if missed else ""), file=sys.stderr)
    finally:
        for c in reversed(cands):
            c.stop()
        signal.signal(signal.SIGTERM, old_int)
        shutil.rmtree(base, ignore_errors=True)

    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- replicas: local directories under {a.dir}; poll every {POLL_S * 1e6:.0f} us; "
        f"timeout {a.timeout:.0f} s (lsyncd defaults {a.timeout + 20:.0f} s)",
        "",
        "| candidate | workload | trials | p50 | p95 | max | missed |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (name, wl), (got, missed, count) in results.items():
        if got:
            lines.append(f"| {name} | {wl} | {count} | {fmt_ms(pct(got, 50))} | "
                         f"{fmt_ms(pct(got, 95))} | {fmt_ms(max(got))} | {missed} |")
        else:
            lines.append(f"| {name} | {wl} | {count} | - | - | - | {missed} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if a.out:
        with open(a.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
