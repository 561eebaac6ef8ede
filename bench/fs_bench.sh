#!/usr/bin/env bash
# fs_bench.sh: wsync against the native directory and its FUSE peers, side by
# side, in one run on one machine.
#
# Candidates: native dir, bindfs, fuse-overlayfs, libfuse's passthrough_ll
# (compiled here from the Debian example), wsync, wsync --no-passthrough
# (the daemon serves every read and write: the A/B for kernel passthrough),
# wsync --writeback, and
# wsync --mirror (a live mirror to a replica on its own loop fs: what the
# mirror costs the mount; the report then adds a wsync-mirror / wsync
# table).  Before every round of a workload every wsync daemon is let
# finish indexing (and the mirror drain), so that backlog never lands on
# another candidate's or workload's timing; the waits are reported.
#
# All candidates are mounted for the whole run and every repetition of every
# workload visits them in turn (round robin, starting one further on every
# round), so a burst of other users' load, or a disk that slows after the
# first reader, hits them all alike instead of whichever one happened to be
# running or to come first.  Each
# candidate lives on its own small ext4 (a loop device), so wsync's
# filesystem-wide fanotify watcher never sees another candidate's traffic.
#
# Invariant: every loop device, mount and process this script makes is
# recorded the moment it exists, and the EXIT trap (also run on Ctrl-C, TERM
# and errors) undoes exactly those, by path and pid, newest first, before the
# temp dir is removed; rm never crosses into a live mount.
#
# Usage: bench/fs_bench.sh [--quick] [--only LIST] [--out FILE] [--tree DIR]
#            [--dir DIR] [--no-loopfs] [--wsync PATH] [--wsync-base PATH]
#            [--phases LIST] [--reps N] [--nice N]
# Needs root (drop_caches, /dev/fuse, losetup).  See bench/README.md.
set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

ALL_FS="native bindfs fuse-overlayfs passthrough_ll wsync wsync-nopt wsync-wb wsync-mirror wsync-base"
ALL_PHASES="copy find stat readcold readwarm gitadd gitstatus small seq fio"
PHASES=$ALL_PHASES
WSYNC_BASE_SRC=""
QUICK=0
ONLY=""
OUT=""
TREE=""
PARENT=/var/tmp
LOOPFS=1
WSYNC_SRC="$REPO/build/cli/wsync"
REPS=3
NICE=-15
PLL_SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
CMD_TIMEOUT=600 # seconds; a hung filesystem fails its sample instead of the run

usage() {
    cat <<EOF
usage: $0 [OPTIONS]

Benchmark native, bindfs, fuse-overlayfs, passthrough_ll, wsync and
wsync --writeback on the same workloads; print a Markdown table.

Options:
  --quick          smoke run: small tree (/usr/include/linux), 1k files,
                   100 MiB sequential, 2 s fio on 64 MiB
  --only LIST      comma-separated candidates from:
                   $ALL_FS
                   (native is always run: the ratios need it)
  --out FILE       also write the report to FILE (and every sample to FILE.tsv)
  --tree DIR       source tree to copy in (default /usr/include)
  --dir DIR        where to make the temp dir (default /var/tmp; must be disk)
  --no-loopfs      put every candidate in a plain dir under --dir instead of
                   its own loop-mounted ext4 (then wsync's fanotify watcher
                   also sees, and pays for, the other candidates' traffic)
  --wsync PATH     wsync binary (default $REPO/build/cli/wsync; copied first)
  --wsync-base PATH  a second wsync binary (e.g. main before a change), run
                   as the candidate wsync-base next to wsync: an A/B in one
                   run, the same load on both
  --phases LIST    comma-separated workloads to run, from:
                   $ALL_PHASES
                   (default all; small = 10k create + delete)
  --reps N         repetitions of each timed workload, median kept (default 3)
  --nice N         run everything (workloads and daemons) at this niceness
                   (default -15; 0 leaves it): on a shared machine other
                   users' jobs otherwise decide the numbers
  -h, --help       this help
EOF
}

die() { echo "fs_bench: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --out) OUT=${2:?--out needs a file}; shift ;;
    --tree) TREE=${2:?--tree needs a dir}; shift ;;
    --dir) PARENT=${2:?--dir needs a dir}; shift ;;
    --no-loopfs) LOOPFS=0 ;;
    --wsync) WSYNC_SRC=${2:?--wsync needs a path}; shift ;;
    --wsync-base) WSYNC_BASE_SRC=${2:?--wsync-base needs a path}; shift ;;
    --phases) PHASES=$(echo "${2:?--phases needs a list}" | tr , ' '); shift ;;
    --reps) REPS=${2:?--reps needs a number}; shift ;;
    --nice) NICE=${2:?--nice needs a number}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    : "${TREE:=/usr/include/linux}"
    NSMALL=1000; SEQ_MB=100; FIO_SIZE=64M; FIO_TIME=2; LOOP_SIZE=2G
else
    : "${TREE:=/usr/include}"
    NSMALL=10000; SEQ_MB=1024; FIO_SIZE=256M; FIO_TIME=10; LOOP_SIZE=6G
fi
SMALL_BYTES=1024

# ---- candidate selection ---------------------------------------------------
canon_fs() {
    case "$1" in
    native) echo native ;;
    bindfs) echo bindfs ;;
    fuse-overlayfs | overlay | overlayfs) echo fuse-overlayfs ;;
    passthrough_ll | pll | passthrough) echo passthrough_ll ;;
    wsync) echo wsync ;;
    wsync-nopt | wsync-no-passthrough | nopt) echo wsync-nopt ;;
    wsync-wb | wsync-writeback | writeback) echo wsync-wb ;;
    wsync-mirror | mirror) echo wsync-mirror ;;
    wsync-base | base) echo wsync-base ;;
    *) return 1 ;;
    esac
}
if [ -n "$ONLY" ]; then
    want=" native "
    IFS=, read -ra parts <<<"$ONLY"
    for p in "${parts[@]}"; do
        c=$(canon_fs "$p") || die "--only: unknown filesystem '$p' (known: $ALL_FS)"
        want+="$c "
    done
    FSLIST=""
    for f in $ALL_FS; do
        case "$want" in *" $f "*) FSLIST+="$f " ;; esac
    done
else
    FSLIST="${ALL_FS% wsync-base}"
    [ -n "$WSYNC_BASE_SRC" ] && FSLIST+=" wsync-base"
fi
for p in $PHASES; do
    case " $ALL_PHASES " in *" $p "*) ;; *) die "--phases: unknown workload '$p' (known: $ALL_PHASES)" ;; esac
done
want_phase() { case " $PHASES " in *" $1 "*) return 0 ;; esac; return 1; }
read -ra FSARR <<<"$FSLIST"

fs_label() {
    case "$1" in
    wsync-nopt) echo "wsync --no-passthrough" ;;
    wsync-wb) echo "wsync --writeback" ;;
    wsync-mirror) echo "wsync --mirror" ;;
    wsync-base) echo "wsync (base)" ;;
    *) echo "$1" ;;
    esac
}

# ---- preconditions -----------------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (drop_caches, FUSE mounts, loop devices)"
[ -d "$TREE" ] || die "source tree $TREE: not a directory"
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps: not a positive number: $REPS"
[[ "$NICE" =~ ^-?[0-9]+$ ]] || die "--nice: not a number: $NICE"
need=(fio python3 git findmnt fusermount3 timeout)
[ "$LOOPFS" = 1 ] && need+=(losetup mkfs.ext4)
for tool in "${need[@]}"; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
for f in "${FSARR[@]}"; do
    case "$f" in
    bindfs) command -v bindfs >/dev/null || die "bindfs not found (apt-get install bindfs)" ;;
    fuse-overlayfs) command -v fuse-overlayfs >/dev/null || die "fuse-overlayfs not found" ;;
    passthrough_ll)
        [ -r "$PLL_SRC" ] || die "$PLL_SRC missing (apt-get install libfuse3-dev)"
        command -v cc >/dev/null || die "cc not found" ;;
    wsync | wsync-nopt | wsync-wb | wsync-mirror) [ -x "$WSYNC_SRC" ] || die "$WSYNC_SRC: not executable (ninja -C build)" ;;
    wsync-base) [ -x "$WSYNC_BASE_SRC" ] || die "--wsync-base ${WSYNC_BASE_SRC:-PATH}: not executable" ;;
    esac
done
# Children (workloads, FUSE daemons, wsync's daemon) inherit it.
if [ "$NICE" != 0 ]; then renice -n "$NICE" -p $$ >/dev/null || die "renice $NICE failed"; fi

# ---- temp dir, loop devices, mounts, processes, and their cleanup ------------
T=""
MOUNTS=()  # mount points we mounted (or tried to), in order
LOOPDEVS=() # loop devices we attached
PIDS=()    # daemon pids we started
CLEANED=0

unmount_one() {
    local m=$1
    findmnt -n -M "$m" >/dev/null 2>&1 || return 0
    if [ -n "${WSYNC:-}" ] && [ "$(findmnt -n -M "$m" -o FSTYPE)" = fuse.wsync ]; then
        timeout 60 "$WSYNC" unmount -t 30 "$m" >/dev/null 2>&1 || true
    fi
    findmnt -n -M "$m" >/dev/null 2>&1 || return 0
    fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null ||
        fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
}

stop_pid() { # give it 5 s to exit on its own (after unmount), then TERM, then KILL
    local p=$1 _
    for _ in $(seq 50); do
        kill -0 "$p" 2>/dev/null || return 0
        sleep 0.1
    done
    kill "$p" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$p" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$p" 2>/dev/null || true
}

cleanup() {
    [ "$CLEANED" = 1 ] && return
    CLEANED=1
    local i
    # Newest first: FUSE mounts sit inside the loop-device mounts.
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do unmount_one "${MOUNTS[i]}"; done
    for i in "${PIDS[@]}"; do stop_pid "$i"; done
    for i in "${LOOPDEVS[@]}"; do losetup -d "$i" 2>/dev/null || true; done
    if [ -n "$T" ] && [ -d "$T" ]; then
        if findmnt -rn -o TARGET | grep -q "^$T/"; then
            echo "fs_bench: mounts left under $T; not removing it" >&2
        else
            rm -rf --one-file-system "$T"
        fi
    fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

T=$(mktemp -d "$PARENT/fs_bench.XXXXXX") || die "mktemp in $PARENT failed"
mkdir -p "$T/bin"

# A stable copy: other people rebuilding build/ mid-run must not change it.
WSYNC=""
case " $FSLIST " in *" wsync"*)
    cp "$WSYNC_SRC" "$T/bin/wsync" || die "copying $WSYNC_SRC"
    WSYNC="$T/bin/wsync"
    # The binary may lag HEAD (others rebuild build/ at will): give both.
    WSYNC_REV="binary sha256 $(sha256sum "$WSYNC" | cut -c1-12), built $(date -r "$WSYNC_SRC" '+%F %T'), repo HEAD $(git -C "$REPO" log -1 --format=%h 2>/dev/null || echo unknown)" ;;
esac
WSYNC_BASE=""
case " $FSLIST " in *" wsync-base "*)
    cp "$WSYNC_BASE_SRC" "$T/bin/wsync-base" || die "copying $WSYNC_BASE_SRC"
    WSYNC_BASE="$T/bin/wsync-base"
    WSYNC_BASE_REV="binary sha256 $(sha256sum "$WSYNC_BASE" | cut -c1-12), built $(date -r "$WSYNC_BASE_SRC" '+%F %T')"
    [ -n "$WSYNC" ] || WSYNC=$WSYNC_BASE ;;
esac
PLL=""
case " $FSLIST " in *" passthrough_ll "*)
    # shellcheck disable=SC2046
    cc -O2 -Wall -o "$T/bin/passthrough_ll" "$PLL_SRC" $(pkg-config --cflags --libs fuse3) ||
        die "building passthrough_ll from $PLL_SRC"
    PLL="$T/bin/passthrough_ll" ;;
esac

# ---- helpers -------------------------------------------------------------------
# Settle first: an indexer that hashed a file after the drop would bring
# it back into the cache and make the "cold" read a warm one.
drop_caches() { settle; sync; echo 3 >/proc/sys/vm/drop_caches; }

# timed CMD...: run CMD (stdout discarded), print elapsed seconds; fail if CMD fails.
timed() {
    local s e rc
    s=$EPOCHREALTIME
    timeout --foreground -k 10 "$CMD_TIMEOUT" "$@" >/dev/null
    rc=$?
    e=$EPOCHREALTIME
    if [ $rc -ne 0 ]; then
        [ $rc -eq 124 ] && log "timed out after $CMD_TIMEOUT s: $*"
        log "FAILED (exit $rc): $*"
        return 1
    fi
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.6f\n", e - s }'
}

median() { # numbers on stdin -> median
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) printf "%.6f\n", a[(NR + 1) / 2]
        else printf "%.6f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

declare -A S      # S[fs|wl] = samples so far, space separated
declare -A RES    # RES[fs|wl] = median, or "error"
declare -A BAD    # BAD[fs|wl] = 1 once a workload failed on fs: skip its other reps
declare -A DEAD   # DEAD[fs] = phase in which its daemon was found dead
declare -A NOTE   # NOTE[fs] = how it was mounted
declare -A MNT BACK DPID LOGF
add() { S["$1|$2"]+="$3 "; }                  # add FS WL VALUE
fail() { BAD["$1|$2"]=1; RES["$1|$2"]=error; } # fail FS WL
skip() { [ -n "${DEAD[$1]:-}" ] || [ -n "${BAD["$1|$2"]:-}" ]; } # skip FS WL?

alive() { # alive FS PHASE: is its daemon still there? (crash detector)
    local fs=$1 p=${DPID[$1]:-}
    [ -z "$p" ] && return 0
    kill -0 "$p" 2>/dev/null && findmnt -n -M "${MNT[$fs]}" >/dev/null 2>&1 && return 0
    if [ -z "${DEAD[$fs]:-}" ]; then
        DEAD[$fs]=$2
        log "$fs: daemon pid $p or its mount is gone (during $2); log tail:"
        tail -20 "${LOGF[$fs]}" >&2
    fi
    return 1
}

# Small-file create/delete timed inside python (loop only, no interpreter start).
SMALL_PY='
import os, sys, time
d, n, mode, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
data = b"x" * size
t = time.perf_counter()
if mode == "create":
    for i in range(n):
        with open(os.path.join(d, "f%05d" % i), "wb") as f:
            f.write(data)
else:
    for i in range(n):
        os.unlink(os.path.join(d, "f%05d" % i))
print("%.6f" % (time.perf_counter() - t))
'
small_files() { timeout --foreground -k 10 "$CMD_TIMEOUT" python3 -c "$SMALL_PY" "$@"; }

wait_mounted() { # wait_mounted MNT PID|"" -> 0 once MNT is a FUSE mount
    local m=$1 p=$2 _
    for _ in $(seq 200); do
        if findmnt -n -M "$m" -o FSTYPE 2>/dev/null | grep -q '^fuse'; then return 0; fi
        if [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null; then return 1; fi
        sleep 0.05
    done
    return 1
}

# make_area FS: AREA = the directory FS's backing dir and mount point live in
make_area() {
    local fs=$1
    local d="$T/$fs" dev
    AREA=$d
    mkdir -p "$d"
    if [ "$LOOPFS" = 1 ]; then
        truncate -s "$LOOP_SIZE" "$d.img" && mkfs.ext4 -q -F "$d.img" || return 1
        dev=$(losetup -f --show --direct-io=on "$d.img") || return 1
        LOOPDEVS+=("$dev")
        MOUNTS+=("$d")
        mount "$dev" "$d" || return 1
        LOOP_NOTE="each candidate on its own $LOOP_SIZE ext4 in a loop device (losetup --direct-io=on; image files on the store above)"
    fi
}

# mount_fs FS: make its area, backing dir and mount point, mount it.
mount_fs() {
    local fs=$1 a b m pid=""
    make_area "$fs" || return 1
    a=$AREA
    b=$a/data
    m=$a/mnt
    mkdir -p "$b" "$m"
    BACK[$fs]=$b
    LOGF[$fs]=$T/$fs.log
    case "$fs" in
    native)
        MNT[$fs]=$b
        NOTE[$fs]="plain directory"
        return 0 ;;
    bindfs)
        MOUNTS+=("$m")
        bindfs -f "$b" "$m" 2>"${LOGF[$fs]}" &
        pid=$!
        NOTE[$fs]="\`bindfs -f SRC MNT\` (defaults: single-threaded, kernel attr/entry cache defaults)" ;;
    fuse-overlayfs)
        mkdir -p "$a/lower" "$a/work"
        MOUNTS+=("$m")
        fuse-overlayfs -f -o "lowerdir=$a/lower,upperdir=$b,workdir=$a/work" "$m" \
            2>"${LOGF[$fs]}" &
        pid=$!
        NOTE[$fs]="\`fuse-overlayfs -f -o lowerdir=EMPTY,upperdir=SRC,workdir=W MNT\` (all data in upper; defaults otherwise)" ;;
    passthrough_ll)
        MOUNTS+=("$m")
        "$PLL" -f -o "source=$b" "$m" 2>"${LOGF[$fs]}" &
        pid=$!
        NOTE[$fs]="\`passthrough_ll -f -o source=SRC MNT\`: its defaults = cache=auto (entry/attr timeout 1 s, no keep_cache, no cache_readdir), no writeback, multi-threaded, no xattr, no flock" ;;
    wsync | wsync-nopt | wsync-wb | wsync-mirror | wsync-base)
        local extra=() bin=$WSYNC rev=$WSYNC_REV
        [ "$fs" = wsync-base ] && bin=$WSYNC_BASE rev=$WSYNC_BASE_REV
        [ "$fs" = wsync-wb ] && extra=(--writeback)
        [ "$fs" = wsync-nopt ] && extra=(--no-passthrough)
        if [ "$fs" = wsync-mirror ]; then # the replica on a loop fs of its own
            make_area "wsync-mirror-replica" || return 1
            MIRROR_DST=$AREA/replica
            mkdir -p "$MIRROR_DST"
            extra=(--mirror "$MIRROR_DST")
        fi
        MOUNTS+=("$m")
        # In the foreground (-f), a child of this script like every peer:
        # the background daemon's setsid() would put it in a scheduler
        # autogroup of its own, which under other users' load cost it
        # 30-40 % on create (docs/benchmarks.md, "Where the time goes").
        "$bin" mount -f "${extra[@]}" "$b" "$m" 2>"${LOGF[$fs]}" &
        pid=$!
        NOTE[$fs]="\`wsync mount -f ${extra[*]:+${extra[*]} }SRC MNT\` ($rev)" ;;
    esac
    MNT[$fs]=$m
    if [ -n "$pid" ]; then
        PIDS+=("$pid")
        DPID[$fs]=$pid
    fi
    wait_mounted "$m" "$pid"
}

# Other wsync mounts put fanotify marks on whole filesystems and spend CPU on
# every event there: count those (not ours) watching a filesystem we work on.
count_other_wsync() {
    local devs=" " fs src tgt n=0
    for fs in "${FSARR[@]}"; do
        [ -n "${BACK[$fs]:-}" ] && devs+="$(stat -c %d "${BACK[$fs]}") "
    done
    while read -r src tgt; do
        [ -n "$src" ] || continue
        case " ${MNT[*]} " in *" $tgt "*) continue ;; esac
        case "$devs" in *" $(stat -c %d "$src" 2>/dev/null) "*) n=$((n + 1)) ;; esac
    done < <(findmnt -rn -t fuse.wsync -o SOURCE,TARGET 2>/dev/null)
    echo "$n"
}

# settle: before every round, wait (up to 10 min each) until every wsync
# candidate's daemon has indexed all it noted (and wsync-mirror's mirror
# has acknowledged the journal head), so that background work a workload
# left (hashing the 1 GiB file just written, say) lands on no other
# timing.  The waits are summed per candidate and reported: that work is
# wsync's cost too, it just is not any one workload's.
SETTLE_PY='
import json, sys
d = json.load(sys.stdin)
d = d.get("daemon", d)
ok = d["pending"] == 0 and d["indexed_seq"] >= d["seq"]
if sys.argv[1] == "mirror":
    rs = d["mirrors"]
    ok = ok and rs and all(r["lag_seq"] == 0 for r in rs)
sys.exit(0 if ok else 1)
'
declare -A SETTLED_S
settle() {
    local fs i t0
    for fs in "${FSARR[@]}"; do
        case $fs in wsync*) ;; *) continue ;; esac
        [ -n "${MNT[$fs]:-}" ] || continue
        t0=$EPOCHREALTIME
        for i in $(seq 6000); do
            "$WSYNC" status --json "${MNT[$fs]}" 2>/dev/null |
                python3 -c "$SETTLE_PY" "${fs#wsync-}" 2>/dev/null && break
            sleep 0.1
        done
        [ "$i" -eq 6000 ] && log "$fs: daemon still busy after 10 min"
        SETTLED_S[$fs]=$(python3 -c "print(${SETTLED_S[$fs]:-0} + $EPOCHREALTIME - $t0)")
    done
}

# ---- setup ------------------------------------------------------------------
log "staging a copy of $TREE in $T/srctree"
cp -R "$TREE" "$T/srctree" || die "copying $TREE"
(cd "$T/srctree" && find . -type f -print0) >"$T/files.lst"
N_FILES=$(tr -cd '\0' <"$T/files.lst" | wc -c)
N_DIRS=$(find "$T/srctree" -type d | wc -l)
N_LINKS=$(find "$T/srctree" -type l | wc -l)
TREE_MB=$(du -sm --apparent-size "$T/srctree" | cut -f1)

LOOP_NOTE="all candidates in plain directories under $PARENT (--no-loopfs)"
for fs in "${FSARR[@]}"; do
    log "mounting $fs"
    if ! mount_fs "$fs"; then
        [ -n "${LOGF[$fs]:-}" ] && cat "${LOGF[$fs]}" >&2
        die "$fs: mount failed"
    fi
done
OTHER_WSYNC=$(count_other_wsync)
[ "$OTHER_WSYNC" -gt 0 ] &&
    log "warning: $OTHER_WSYNC other wsync mount(s) watch a filesystem this run uses"

# ---- phases: each rep visits every candidate in turn -------------------------
# each WL: EACH = the candidates still fit for workload WL
# The starting candidate moves on by one every round, so that no candidate
# always runs first (after a cache drop, on a disk fresh from idle) or
# last: this VM's disk reads 1 GiB cold at 1.2-1.5 GB/s first and at
# ~300 MB/s when four others have just read theirs.
ROUND=0
each() {
    local fs i n=${#FSARR[@]}
    settle
    EACH=()
    for ((i = 0; i < n; i++)); do
        fs=${FSARR[(ROUND + i) % n]}
        alive "$fs" "$1" || continue
        skip "$fs" "$1" || EACH+=("$fs")
    done
    ROUND=$((ROUND + 1))
}

phase_copy() {
    local r fs v
    (cd "$T/srctree" && xargs -0 cat <"$T/files.lst" >/dev/null)
    for r in $(seq "$REPS"); do
        each copy
        for fs in "${EACH[@]}"; do
            rm -rf "${MNT[$fs]}/tree" && sync
            v=$(timed cp -R "$T/srctree" "${MNT[$fs]}/tree") || { fail "$fs" copy; continue; }
            add "$fs" copy "$v"
        done
    done
    # Wrong results are worse than slow ones: check the copy byte for byte.
    each copy
    for fs in "${EACH[@]}"; do
        if ! diff -r --no-dereference "$T/srctree" "${MNT[$fs]}/tree" >"$T/$fs.diff" 2>&1; then
            log "$fs: copied tree differs from the source:"
            head -5 "$T/$fs.diff" >&2
            fail "$fs" copy
        fi
    done
}

# warm_phase WL CMD-TEMPLATE...: per rep and candidate, one untimed run right
# before the timed one ("warm" means just used, whatever the cache timeouts);
# @M@ in the template stands for the candidate's mount point.
warm_phase() {
    local wl=$1 r fs v a cmd
    shift
    for r in $(seq "$REPS"); do
        each copy
        for fs in "${EACH[@]}"; do
            skip "$fs" "$wl" && continue
            cmd=()
            for a in "$@"; do cmd+=("${a//@M@/${MNT[$fs]}}"); done
            if timed "${cmd[@]}" >/dev/null && v=$(timed "${cmd[@]}"); then
                add "$fs" "$wl" "$v"
            else
                fail "$fs" "$wl"
            fi
        done
    done
}

phase_readcold() {
    local r fs v
    for r in $(seq "$REPS"); do
        drop_caches # one drop, then every candidate reads its own cold tree
        each copy
        for fs in "${EACH[@]}"; do
            skip "$fs" readcold && continue
            v=$(timed sh -c 'cd "$1" && xargs -0 cat <"$2"' sh "${MNT[$fs]}/tree" "$T/files.lst") ||
                { fail "$fs" readcold; continue; }
            add "$fs" readcold "$v"
        done
    done
}

# gitc MNT: GIT = git on MNT/tree (an array: `timeout` cannot run functions)
gitc() { GIT=(git -C "$1/tree" -c safe.directory='*' -c gc.auto=0 -c core.fsmonitor=false); }

phase_gitadd() {
    local r fs v
    for r in $(seq "$REPS"); do
        each copy
        for fs in "${EACH[@]}"; do
            skip "$fs" gitadd && continue
            gitc "${MNT[$fs]}"
            if ! { rm -rf "${MNT[$fs]}/tree/.git" && "${GIT[@]}" init -q && sync; }; then
                fail "$fs" gitadd
                continue
            fi
            v=$(timed "${GIT[@]}" add -A) || { fail "$fs" gitadd; continue; }
            add "$fs" gitadd "$v"
        done
    done
}

check_git() {
    local fs staged
    each copy
    for fs in "${EACH[@]}"; do
        gitc "${MNT[$fs]}"
        staged=$("${GIT[@]}" status --porcelain | grep -c '^A ')
        if [ "$staged" -ne $((N_FILES + N_LINKS)) ]; then
            log "$fs: git status shows $staged staged paths, expected $((N_FILES + N_LINKS))"
            fail "$fs" gitstatus
        fi
    done
}

phase_small() {
    local r fs v d
    for r in $(seq "$REPS"); do
        each create
        for fs in "${EACH[@]}"; do
            d=${MNT[$fs]}/small
            if ! { rm -rf "$d" && mkdir "$d" && sync; }; then fail "$fs" create; continue; fi
            v=$(small_files "$d" "$NSMALL" create "$SMALL_BYTES") || { fail "$fs" create; continue; }
            add "$fs" create "$v"
            v=$(small_files "$d" "$NSMALL" delete "$SMALL_BYTES") || { fail "$fs" delete; continue; }
            add "$fs" delete "$v"
            [ -z "$(ls -A "$d")" ] || { log "$fs: small/ not empty after delete"; fail "$fs" delete; }
        done
    done
}

mbps() { awk -v mb="$SEQ_MB" -v t="$1" 'BEGIN { printf "%.6f\n", mb / t }'; }
readbig() { BIGREAD=(dd if="$1/big" of=/dev/null bs=1M status=none); } # as gitc

phase_seq() {
    local r fs v size
    for r in $(seq "$REPS"); do
        each seqwrite
        for fs in "${EACH[@]}"; do
            rm -f "${MNT[$fs]}/big" && sync
            v=$(timed dd if=/dev/zero of="${MNT[$fs]}/big" bs=1M count="$SEQ_MB" conv=fsync status=none) ||
                { fail "$fs" seqwrite; continue; }
            add "$fs" seqwrite "$(mbps "$v")"
            size=$(stat -c %s "${MNT[$fs]}/big")
            [ "$size" -eq $((SEQ_MB * 1048576)) ] || { log "$fs: big is $size bytes"; fail "$fs" seqwrite; }
        done
    done
    for r in $(seq "$REPS"); do
        drop_caches
        each seqwrite
        for fs in "${EACH[@]}"; do
            readbig "${MNT[$fs]}"
            v=$(timed "${BIGREAD[@]}") || { fail "$fs" seqreadcold; continue; }
            add "$fs" seqreadcold "$(mbps "$v")"
        done
    done
    for r in $(seq "$REPS"); do
        each seqwrite
        for fs in "${EACH[@]}"; do
            skip "$fs" seqreadwarm && continue
            readbig "${MNT[$fs]}"
            if timed "${BIGREAD[@]}" >/dev/null && v=$(timed "${BIGREAD[@]}"); then
                add "$fs" seqreadwarm "$(mbps "$v")"
            else
                fail "$fs" seqreadwarm
            fi
        done
    done
    each seqwrite
    for fs in "${EACH[@]}"; do rm -f "${MNT[$fs]}/big"; done
}

phase_fio() {
    local fs rw v f
    each randread
    for fs in "${EACH[@]}"; do
        f=${MNT[$fs]}/fio.dat
        # Lay the file out, then read it once: random reads measure the warm
        # path (page cache or daemon), not the disk; --invalidate=0 keeps it so.
        if ! { fio --name=layout --filename="$f" --size="$FIO_SIZE" --rw=write --bs=1M \
            --create_only=1 >/dev/null 2>>"$T/$fs.fio.err" && cat "$f" >/dev/null; }; then
            fail "$fs" randread
            continue
        fi
        for rw in randread randwrite; do
            v=$(timeout --foreground -k 10 "$CMD_TIMEOUT" fio --name="$rw" --filename="$f" \
                --size="$FIO_SIZE" --bs=4k --rw="$rw" --direct=0 --ioengine=psync --invalidate=0 \
                --time_based --runtime="$FIO_TIME" --output-format=json 2>>"$T/$fs.fio.err" |
                python3 -c 'import json,sys
j = json.load(sys.stdin)["jobs"][0]
print("%.1f" % (j["read"]["iops"] + j["write"]["iops"]))') || { fail "$fs" "$rw"; continue; }
            add "$fs" "$rw" "$v"
        done
        rm -f "$f"
    done
}

START=$EPOCHREALTIME
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
LOADS=""
phase() { # phase NAME FUNC ARGS...: run it (if --phases wants it), note the load average
    local key=${1// /}
    key=${key/readall/read}; key=${key/copyin/copy}; key=${key/statall/stat}; key=${key/smallfiles/small}; key=${key/sequential/seq}
    want_phase "$key" || return 0
    log "$1 (load average $(cut -d' ' -f1 /proc/loadavg))"
    LOADS+="$1 $(cut -d' ' -f1 /proc/loadavg), "
    "${@:2}"
}
phase "copy in" phase_copy
if ! want_phase copy && [[ " $PHASES " =~ \ (find|stat|readcold|readwarm|gitadd|gitstatus)\  ]]; then
    each copy # the tree the other workloads need, untimed
    for fs in "${EACH[@]}"; do cp -R "$T/srctree" "${MNT[$fs]}/tree" || fail "$fs" copy; done
fi
phase find warm_phase find find @M@/tree
phase "stat all" warm_phase stat find @M@/tree -printf '%s %T@ %m %U %i\n'
phase "read all cold" phase_readcold
phase "read all warm" warm_phase readwarm sh -c 'cd "$1" && xargs -0 cat <"$2"' sh @M@/tree "$T/files.lst"
phase "git add" phase_gitadd
phase "git status" warm_phase gitstatus git -C @M@/tree -c safe.directory='*' -c core.fsmonitor=false status
want_phase gitadd && check_git
each copy
for fs in "${EACH[@]}"; do rm -rf "${MNT[$fs]}/tree"; done
phase "small files" phase_small
phase "sequential" phase_seq
phase "fio" phase_fio
for fs in "${FSARR[@]}"; do alive "$fs" end; done
ELAPSED=$(awk -v s="$START" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.0f", e - s }')
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

for k in "${!S[@]}"; do
    [ "${RES[$k]:-}" = error ] && continue
    # shellcheck disable=SC2086
    RES[$k]=$(printf '%s\n' ${S[$k]} | median)
done

log "unmounting"
cleanup_mounts() {
    local fs
    for fs in "${FSARR[@]}"; do
        [ "$fs" = native ] && continue
        unmount_one "${MNT[$fs]}"
        [ -n "${DPID[$fs]:-}" ] && stop_pid "${DPID[$fs]}"
    done
}
cleanup_mounts

# ---- report -------------------------------------------------------------------
# key|label|unit|kind (t: time, lower is better; r: rate, higher is better)
WORKLOADS="copy|copy in: cp -R of the tree|s|t
find|find over the tree (warm)|s|t
stat|stat all: find -printf %s %T@ %m %U %i, lstat per entry (warm)|s|t
readcold|read all: cat every file (cold, caches dropped)|s|t
readwarm|read all: cat every file (warm)|s|t
gitadd|git add -A (fresh repo)|s|t
gitstatus|git status (warm)|s|t
create|create $NSMALL files of $SMALL_BYTES B|s|t
delete|delete $NSMALL files (unlink)|s|t
seqwrite|sequential write $SEQ_MB MiB (dd bs=1M conv=fsync)|MB/s|r
seqreadcold|sequential read $SEQ_MB MiB (cold)|MB/s|r
seqreadwarm|sequential read $SEQ_MB MiB (warm)|MB/s|r
randread|4k random read, fio psync, ${FIO_TIME} s on $FIO_SIZE|IOPS|r
randwrite|4k random write, fio psync, ${FIO_TIME} s on $FIO_SIZE|IOPS|r"

fmt_val() { # fmt_val VALUE UNIT
    case "$2" in
    s) awk -v v="$1" 'BEGIN { if (v < 1) printf "%.3f s", v; else printf "%.2f s", v }' ;;
    MB/s) awk -v v="$1" 'BEGIN { printf "%.0f MB/s", v }' ;;
    IOPS) awk -v v="$1" 'BEGIN { if (v >= 10000) printf "%.0fk IOPS", v / 1000; else printf "%.0f IOPS", v }' ;;
    esac
}

# The issue-5 target: mount throughput while mirroring >= 0.8x without.
mirror_report() {
    case " $FSLIST " in *" wsync "*) ;; *) return 0 ;; esac
    case " $FSLIST " in *" wsync-mirror "*) ;; *) return 0 ;; esac
    local wl label unit kind a b r
    echo
    echo "Mirroring cost: throughput of \`wsync mount --mirror DST\` (DST on its own loop ext4, reached"
    echo "through a local \`wsync serve\`) relative to plain \`wsync mount\`, same run (target ≥ 0.80×;"
    echo "time rows: wsync time / mirror time; rate rows: mirror rate / wsync rate)."
    echo
    echo "| workload | wsync | wsync --mirror | throughput ratio |"
    echo "| --- | ---: | ---: | ---: |"
    while IFS='|' read -r wl label unit kind; do
        a=${RES["wsync|$wl"]:-} b=${RES["wsync-mirror|$wl"]:-}
        [[ "$a" =~ ^[0-9.]+$ && "$b" =~ ^[0-9.]+$ ]] || continue
        r=$(awk -v a="$a" -v b="$b" -v k="$kind" 'BEGIN { if (k == "t") printf "%.2f", a / b; else printf "%.2f", b / a }')
        echo "| $label | $(fmt_val "$a" "$unit") | $(fmt_val "$b" "$unit") | ${r}× |"
    done <<<"$WORKLOADS"
}

report() {
    local fs wl label unit kind n v cell best bestv r row
    echo "# Filesystem benchmark: wsync vs native and FUSE peers"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); run time ${ELAPSED} s"
    echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
    echo "- backing store: $(df -hT "$PARENT" | awk 'NR == 2 { print $1 " (" $2 ", " $3 ")" }') under $PARENT (rotational flag: $(cat /sys/block/"$(basename "$(df --output=source "$PARENT" | tail -1)")"/queue/rotational 2>/dev/null || echo unknown))"
    echo "- work areas: $LOOP_NOTE"
    echo "- load average (1/5/15 min) at start $LOAD_START, at end $LOAD_END; 1-min at each phase: ${LOADS%, }"
    echo "- niceness of the run and of every daemon: $(ps -o ni= -p $$ | tr -d ' ') (--nice; other users' jobs run at 0)"
    echo "- other wsync mounts watching a filesystem this run used: $OTHER_WSYNC"
    local fs settled=""
    for fs in "${FSARR[@]}"; do
        [ -n "${SETTLED_S[$fs]:-}" ] && settled+="$fs $(printf '%.1f' "${SETTLED_S[$fs]}") s, "
    done
    [ -n "$settled" ] &&
        echo "- waited before rounds for wsync daemons to finish indexing (and mirroring) what earlier rounds left, in total: ${settled%, }"
    echo "- source tree: $TREE: $N_FILES files, $N_LINKS symlinks, $N_DIRS dirs, $TREE_MB MB"
    echo "- each timed workload run $REPS times per candidate, round robin across candidates (the first one moves on by one every round), median shown; warm = right after an untimed run on the same candidate; fio once per pattern (--direct=0 --ioengine=psync --invalidate=0, file laid out and read first)"
    for fs in "${FSARR[@]}"; do
        [ "$fs" = native ] && continue
        echo "- $(fs_label "$fs"): ${NOTE[$fs]:-not mounted}"
    done
    echo
    echo "Cells: value (× native).  Time rows (s): × = fs time / native time, lower is better."
    echo "Rate rows (MB/s, IOPS): × = fs rate / native rate, higher is better."
    echo "**Bold**: best FUSE filesystem on that row."
    echo
    row="| workload |"
    local sep="| --- |"
    for fs in "${FSARR[@]}"; do row+=" $(fs_label "$fs") |"; sep+=" ---: |"; done
    echo "$row"
    echo "$sep"
    while IFS='|' read -r wl label unit kind; do
        best="" bestv=""
        for fs in "${FSARR[@]}"; do
            [ "$fs" = native ] && continue
            v=${RES["$fs|$wl"]:-}
            [[ "$v" =~ ^[0-9.]+$ ]] || continue
            if [ -z "$bestv" ] || awk -v a="$v" -v b="$bestv" -v k="$kind" \
                'BEGIN { exit !((k == "t" && a < b) || (k == "r" && a > b)) }'; then
                best=$fs bestv=$v
            fi
        done
        n=${RES["native|$wl"]:-}
        row="| $label |"
        for fs in "${FSARR[@]}"; do
            v=${RES["$fs|$wl"]:-}
            if [ -z "$v" ]; then cell="–"
            elif [ "$v" = error ]; then cell="**ERROR**"
            else
                cell=$(fmt_val "$v" "$unit")
                if [ "$fs" != native ] && [[ "$n" =~ ^[0-9.]+$ ]]; then
                    r=$(awk -v a="$v" -v b="$n" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }')
                    cell+=" (${r}×)"
                fi
                [ "$fs" = "$best" ] && cell="**$cell**"
            fi
            row+=" $cell |"
        done
        echo "$row"
    done <<<"$WORKLOADS"
    mirror_report
    local problems=""
    for fs in "${FSARR[@]}"; do
        [ -n "${DEAD[$fs]:-}" ] && problems+="- $(fs_label "$fs"): daemon or mount gone during ${DEAD[$fs]}; later cells empty"$'\n'
    done
    for k in "${!BAD[@]}"; do
        problems+="- ${k%%|*}: ${k#*|} failed (see the run's stderr)"$'\n'
    done
    if [ -n "$problems" ]; then
        echo
        echo "Problems:"
        printf '%s' "$problems"
    fi
}

report | tee ${OUT:+"$OUT"}
if [ -n "$OUT" ]; then
    {
        printf 'fs\tworkload\tsamples\n'
        for k in "${!S[@]}"; do printf '%s\t%s\t%s\n' "${k%%|*}" "${k#*|}" "${S[$k]% }"; done | sort
    } >"$OUT.tsv"
    log "report in $OUT, every sample in $OUT.tsv"
fi
