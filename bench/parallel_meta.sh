#!/usr/bin/env bash
# parallel_meta.sh: what one hot FUSE thread costs when many processes hit
# one mount at once.  P processes each create (512 B), stat and delete N
# files in a directory of their own, on a wsync mount of a fresh loop ext4;
# the wall time of the whole storm is printed per binary.  With
# --wsync-base, the two binaries alternate for --reps rounds (an A/B in one
# run, as fs_bench.sh --wsync-base).
#
# Usage: bench/parallel_meta.sh [--wsync BIN] [--wsync-base BIN]
#            [--procs P] [--files N] [--reps R]
# Needs root (losetup, /dev/fuse).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WSYNC=$HERE/../build/cli/wsync
BASE=""
PROCS=4
FILES=2000
REPS=2

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
    --wsync) WSYNC=${2:?--wsync needs a path}; shift ;;
    --wsync-base) BASE=${2:?--wsync-base needs a path}; shift ;;
    --procs) PROCS=${2:?--procs needs a number}; shift ;;
    --files) FILES=${2:?--files needs a number}; shift ;;
    --reps) REPS=${2:?--reps needs a number}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "parallel_meta.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "parallel_meta.sh: needs root (losetup, /dev/fuse)" >&2; exit 1; }
for b in "$WSYNC" ${BASE:+"$BASE"}; do
    [ -x "$b" ] || { echo "parallel_meta.sh: $b: not executable" >&2; exit 1; }
done

T=$(mktemp -d /var/tmp/parallel_meta.XXXXXX)
PID=""
cleanup() { # undo exactly what this script made, newest first
    if [ -n "$PID" ]; then
        "$CUR" unmount "$T/mnt" 2>/dev/null || kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    mountpoint -q "$T/fs" && umount "$T/fs"
    rm -rf "$T"
}
trap cleanup EXIT

STORM_PY='
import os, sys, time, multiprocessing as mp
root, procs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def work(k):
    d = os.path.join(root, "p%d" % k)
    os.mkdir(d)
    for i in range(files):
        fd = os.open(os.path.join(d, "f%d" % i), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x" * 512)
        os.close(fd)
    for i in range(files):
        os.stat(os.path.join(d, "f%d" % i))
    for i in range(files):
        os.unlink(os.path.join(d, "f%d" % i))
    os.rmdir(d)
t = time.perf_counter()
ps = [mp.Process(target=work, args=(k,)) for k in range(procs)]
for p in ps: p.start()
for p in ps: p.join()
if any(p.exitcode != 0 for p in ps): sys.exit("a worker failed")
print("%.3f" % (time.perf_counter() - t))
'

run_one() { # run_one BIN -> prints seconds
    CUR=$1
    mkdir -p "$T/fs" "$T/mnt"
    truncate -s 2G "$T/fs.img"
    mkfs.ext4 -q -F "$T/fs.img"
    mount -o loop "$T/fs.img" "$T/fs"
    mkdir "$T/fs/src"
    "$CUR" mount -f "$T/fs/src" "$T/mnt" >"$T/daemon.log" 2>&1 &
    PID=$!
    for _ in $(seq 200); do
        mountpoint -q "$T/mnt" && break
        kill -0 "$PID" 2>/dev/null || { cat "$T/daemon.log" >&2; exit 1; }
        sleep 0.05
    done
    python3 -c "$STORM_PY" "$T/mnt" "$PROCS" "$FILES"
    "$CUR" unmount "$T/mnt"
    wait "$PID"
    PID=""
    umount "$T/fs"
    rm -f "$T/fs.img"
}

echo "# $PROCS processes x $FILES files (create 512 B, stat, delete); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$REPS"); do
    echo "round $r: wsync $(run_one "$WSYNC") s${BASE:+, wsync-base $(run_one "$BASE") s}"
done
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
