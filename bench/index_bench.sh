#!/usr/bin/env bash
# index_bench.sh: `wsync index` on a synthetic 100k-file git checkout.
#
# Measures, on one tree in one run:
#   1. the first index (no index.db yet): time, files and MB hashed, MB/s
#   2. restart over the unchanged tree, warm page cache, side by side with
#      `git status --porcelain` on the same tree (hyperfine, medians)
#      target: wsync <= 1.5x git status; and no file of the tree is read
#      (JSON hashed == 0, and strace shows no regular file under SRC opened)
#   3. incremental run after a content change to 100 files (hashed == 100)
#   4. index size: db_bytes, bytes per file, MB per million files
#
# Usage: bench/index_bench.sh [--files N | --quick] [--out FILE] [--dir DIR]
#                             [--loopfs SIZE] [--wsync PATH] [--runs N]
#                             [--seed S] [--keep]
# Needs: python3, git, hyperfine, strace.  Root only for --loopfs.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

FILES=100000
OUT=""
PARENT=/var/tmp
WSYNC_SRC="$REPO/build/cli/wsync"
RUNS=10
SEED=42
KEEP=0
LOOPFS=""
TOUCH=100
RATIO_TARGET=1.5

usage() {
    cat <<EOF
usage: $0 [OPTIONS]

Build a synthetic git checkout of N files (100 top dirs x 10 subdirs x
N/1000 files, sizes log-normal around 5 KiB, 1 in 1000 files 1 MiB,
text-like content from a seeded generator), then time wsync index cold,
on restart (vs git status), after touching $TOUCH files; report index size.
Prints a Markdown table.

Options:
  --files N      number of files in the tree (default 100000)
  --quick        same as --files 10000
  --out FILE     also write the report to FILE
  --dir DIR      where the temp dir goes (default /var/tmp; use a real disk)
  --loopfs SIZE  build the tree in a private ext4 of SIZE (4G for 100k files)
                 on a loop device (--direct-io=on), image under --dir; needs
                 root.  Use it when wsync mounts are live on the disk: each
                 puts a fanotify mark on the whole filesystem of its SRC and
                 spends CPU on every create/write there, this run's included
  --wsync PATH   wsync binary (default build/cli/wsync; copied first)
  --runs N       hyperfine runs per command (default 10, minimum 5)
  --seed S       generator seed (default 42)
  --keep         keep the temp dir (its path is printed)
  -h, --help     this help
EOF
}

die() { echo "index_bench: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*" >&2; }
# Cache drops by other processes (echo N > drop_caches, e.g. a cold-read
# benchmark) turn a warm run cold; count them per phase and report them.
drops() { awk '/^drop_(pagecache|slab) /{n += $2} END {print n + 0}' /proc/vmstat; }

while [ $# -gt 0 ]; do
    case "$1" in
        --files) FILES=${2:?}; shift 2 ;;
        --quick) FILES=10000; shift ;;
        --out) OUT=${2:?}; shift 2 ;;
        --dir) PARENT=${2:?}; shift 2 ;;
        --wsync) WSYNC_SRC=${2:?}; shift 2 ;;
        --runs) RUNS=${2:?}; shift 2 ;;
        --seed) SEED=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --loopfs) LOOPFS=${2:?}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

[[ "$FILES" =~ ^[0-9]+$ ]] && [ "$FILES" -ge "$TOUCH" ] || die "--files must be an integer >= $TOUCH"
[[ "$RUNS" =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 5 ] || die "--runs must be an integer >= 5"
for t in python3 git hyperfine strace; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install $t)"
done
[ -x "$WSYNC_SRC" ] || die "no wsync binary at $WSYNC_SRC (ninja -C build)"
[ -d "$PARENT" ] || die "--dir $PARENT is not a directory"
if [ -n "$LOOPFS" ]; then
    [ "$(id -u)" = 0 ] || die "--loopfs needs root"
    for t in mkfs.ext4 losetup mount umount; do
        command -v "$t" >/dev/null || die "$t not found"
    done
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d "$PARENT/wsync-index-bench.XXXXXX")
LOOPDEV=""
MNTPT=""
cleanup() {
    local rc=$? busy=0
    if [ -n "$MNTPT" ] && mountpoint -q "$MNTPT"; then
        if [ "$KEEP" = 1 ]; then
            busy=1
        elif ! umount "$MNTPT"; then
            busy=1
            log "could not unmount $MNTPT; leaving $WORK and $LOOPDEV"
        fi
    fi
    if [ -n "$LOOPDEV" ] && [ "$busy" = 0 ]; then
        losetup -d "$LOOPDEV" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then
        log "kept $WORK${LOOPDEV:+ (mounted from $LOOPDEV at $MNTPT)}"
    elif [ "$busy" = 0 ] && [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
        rm -rf -- "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A private copy, so a rebuild by someone else mid-run does not change it.
WSYNC="$WORK/wsync"
cp "$WSYNC_SRC" "$WSYNC"
SRC="$WORK/src"
if [ -n "$LOOPFS" ]; then
    # Inode tables and journal written now, not lazily in the background
    # during the timed runs.
    log "private ext4 of $LOOPFS on a loop device"
    truncate -s "$LOOPFS" "$WORK/fs.img"
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$WORK/fs.img"
    LOOPDEV=$(losetup --direct-io=on -f --show "$WORK/fs.img")
    MNTPT="$WORK/fs"
    mkdir "$MNTPT"
    mount "$LOOPDEV" "$MNTPT"
    SRC="$MNTPT/src"
fi
mkdir "$SRC"
# Live wsync mounts whose SRC is on this filesystem watch it (fanotify).
SRC_DEV=$(stat -c %d "$SRC")
WATCHERS=0
while read -r msrc _ mtype _; do
    case "$mtype" in fuse.wsync*) ;; *) continue ;; esac
    msrc=$(printf '%b' "$msrc")
    [ "$(stat -c %d "$msrc" 2>/dev/null)" = "$SRC_DEV" ] && WATCHERS=$((WATCHERS + 1))
done < /proc/mounts
[ "$WATCHERS" = 0 ] || log "warning: $WATCHERS live wsync mount(s) watch this filesystem (fanotify); consider --loopfs"

# ---------------------------------------------------------------- the tree
# One python process writes every file and, in the same pass, feeds the
# blobs to `git fast-import`, so the repository is one pack (as in a clone)
# instead of N loose objects that wsync would also have to index.
log "generating $FILES files in $SRC (seed $SEED)"
t0=$(date +%s.%N)
GEN_DROPS=$(drops)
git -C "$SRC" init -q -b main
python3 - "$SRC" "$FILES" "$SEED" "$TOUCH" "$WORK/touch.list" <<'PY'
import base64, math, os, random, subprocess, sys
from array import array

root, n, seed, ntouch, touch_list = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = random.Random(seed)

# Text-like content: 65536 "lines" of zipf-weighted tokens (identifiers,
# keywords, punctuation) with indents, strung together at random into a
# 64 MiB pool, sliced at random offsets per file.  Compresses ~3x, as
# source code does.
letters = 'abcdefghijklmnopqrstuvwxyz_'
words = set()
while len(words) < 3000:
    words.add(''.join(rng.choice(letters) for _ in range(rng.randint(2, 12))))
words = sorted(words)
rng.shuffle(words)
vocab = ['if', 'for', 'return', 'int', 'const', 'self', 'def', 'struct', 'void',
         '(', ')', '{', '}', ';', ',', '=', '==', '+', '->', '.', '[', ']', '0', '1',
         '"', '#', '//', '*'] + words
tokens = []
for i, w in enumerate(vocab):
    tokens.extend([w.encode()] * max(1, int(20000 / (i + 1) ** 0.9)))
indents = (b'', b'    ', b'        ', b'            ')
lines = [rng.choice(indents) + b' '.join(rng.choices(tokens, k=rng.randint(1, 12))) + b'\n'
         for _ in range(65536)]
POOL = 64 << 20
avg = sum(map(len, lines)) / len(lines)
idx = array('H')
idx.frombytes(rng.randbytes(2 * int(POOL / avg + 1000)))
pool = b''.join([lines[i] for i in idx])
del idx
plen = len(pool)
print('  content pool: %d MiB' % (plen >> 20), file=sys.stderr, flush=True)

git = subprocess.Popen(['git', '-C', root, '-c', 'pack.compression=1',
                        'fast-import', '--quiet', '--done', '--depth=0'],
                       stdin=subprocess.PIPE, bufsize=1 << 20)
gw = git.stdin.write

TOP, SUB = 100, 10
per = math.ceil(n / (TOP * SUB))
paths = []
made = 0
for t in range(TOP):
    for s in range(SUB):
        if made >= n:
            break
        d = 'pkg%03d/mod%02d' % (t, s)
        os.makedirs(os.path.join(root, d), exist_ok=True)
        for f in range(per):
            if made >= n:
                break
            if rng.random() < 0.001:
                size = 1 << 20
                name = 'asset%04d.bin' % f
            else:
                size = int(min(256 << 10, max(32, rng.lognormvariate(math.log(5 << 10), 0.75))))
                name = 'file%04d.%s' % (f, rng.choice(('c', 'h', 'py', 'cpp', 'txt', 'md')))
            off = rng.randrange(plen - size)
            data = pool[off:off + size]
            rel = d + '/' + name
            with open(os.path.join(root, rel), 'wb') as fh:
                fh.write(data)
            made += 1
            paths.append(rel)
            gw(b'blob\nmark :%d\ndata %d\n' % (made, size))
            gw(data)
            gw(b'\n')

gw(b'commit refs/heads/main\ncommitter bench <bench@example.com> 1700000000 +0000\n'
   b'data 15\nsynthetic tree\n')
for i, rel in enumerate(paths, 1):
    gw(b'M 100644 :%d %s\n' % (i, rel.encode()))
gw(b'\ndone\n')
git.stdin.close()
print('  files written, waiting for git fast-import', file=sys.stderr, flush=True)
if git.wait() != 0:
    sys.exit('git fast-import failed')

step = len(paths) // ntouch
with open(touch_list, 'w') as fh:
    for i in range(ntouch):
        fh.write(os.path.join(root, paths[i * step + step // 2]) + '\n')
PY
echo "/.wsync/" >> "$SRC/.git/info/exclude"
log "git reset (builds .git/index)"
git -C "$SRC" reset -q # index from HEAD; stat data refreshed (every file read once)
t1=$(date +%s.%N)
GEN_S=$(python3 -c "print(f'{$t1-$t0:.1f}')")
NFILES=$(find "$SRC" -path "$SRC/.git" -prune -o -type f -print | wc -l)
TREE_BYTES=$(du -sb --exclude=.git "$SRC" | cut -f1)
GIT_BYTES=$(du -sb "$SRC/.git" | cut -f1)
[ "$NFILES" = "$FILES" ] || die "generated $NFILES files, wanted $FILES"
[ -z "$(git -C "$SRC" status --porcelain)" ] || die "git status not clean after setup"
log "tree ready in ${GEN_S}s: $NFILES files, $((TREE_BYTES >> 20)) MiB (+ .git $((GIT_BYTES >> 20)) MiB)"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, d))" "$1"; }
# Runs before every timed run, for both commands alike: puts the tree's
# inodes and dentries, .git/index and index.db back in cache if something
# dropped them.  Not timed.
cat > "$WORK/warm.sh" <<EOF
#!/bin/sh
du -s "$SRC" >/dev/null
cat "$SRC/.git/index" "$SRC/.wsync/index.db" >/dev/null 2>&1
exit 0
EOF
chmod +x "$WORK/warm.sh"

# ---------------------------------------------------------- 1. first index
# Page cache warm (every file read just before), so this is hashing,
# sqlite and syscalls, not the disk.
log "first index (no index.db, page cache warm)"
# Generation left every file in the page cache; only a drop_caches by
# someone else (the sole thing that evicts with this much free memory)
# makes a re-read necessary.  Parallel, as small random reads are IOPS-bound.
if [ "$(drops)" != "$GEN_DROPS" ]; then
    log "page cache was dropped during generation: reading the tree back in"
    find "$SRC" -type f -print0 | xargs -0 -P 8 -n 500 cat >/dev/null
fi
D0=$(drops)
/usr/bin/time -f "%U %S" -o "$WORK/cold.time" "$WSYNC" index --json "$SRC" > "$WORK/cold.json"
COLD_DROPS=$(( $(drops) - D0 ))
read -r COLD_USER COLD_SYS < "$WORK/cold.time"
COLD_S=$(json seconds < "$WORK/cold.json")
COLD_HASHED=$(json hashed < "$WORK/cold.json")
COLD_BYTES=$(json bytes_hashed < "$WORK/cold.json")
COLD_MBS=$(python3 -c "print(f'{$COLD_BYTES/1e6/max($COLD_S,1e-9):.0f}')")
log "first index: ${COLD_S}s (user $COLD_USER, sys $COLD_SYS), $COLD_HASHED files, $((COLD_BYTES / 1000000)) MB"

# ------------------------------------------------ 2. restart, unchanged tree
# Settle both indexes first: git status may rewrite .git/index (racy
# entries) and wsync indexes .git too, so run git twice, then wsync; from
# here on a clean-tree git status writes nothing wsync would see (checked:
# .git/index must not change during the timed runs).
git -C "$SRC" status --porcelain >/dev/null
git -C "$SRC" status --porcelain >/dev/null
"$WSYNC" index --json "$SRC" >/dev/null
GIT_INDEX_STAMP=$(stat -c '%s %Y %Z %i' "$SRC/.git/index")

# Two rounds A B A B, so a change of load on a shared machine hits both.
HALF=$(( (RUNS + 1) / 2 ))
log "restart: hyperfine wsync index vs git status (2 rounds x $HALF runs each)"
D0=$(drops)
for r in 1 2; do
    hyperfine -N --style basic --warmup 1 --runs "$HALF" --prepare "$WORK/warm.sh" \
        --export-json "$WORK/restart$r.json" \
        -n "wsync index" "$WSYNC index --json $SRC" \
        -n "git status" "git -C $SRC status --porcelain" >&2
done
RESTART_DROPS=$(( $(drops) - D0 ))
GIT_INDEX_CHANGED=0
[ "$(stat -c '%s %Y %Z %i' "$SRC/.git/index")" = "$GIT_INDEX_STAMP" ] || GIT_INDEX_CHANGED=1

# No file read: one more run under strace, with -y so every fd shows its
# path.  Reading a file needs an open of it, so count successful opens that
# resolve to a regular file under SRC outside SRC/.wsync (O_DIRECTORY and
# O_PATH opens are the walk itself and read no data).  /proc/PID/io
# read_bytes would not do: it counts only page-cache misses, 0 on a warm
# cache whatever the process reads; rchar counts index.db reads too.
"$WSYNC" index --json "$SRC" >/dev/null
strace -f -y -qq -e trace=open,openat,openat2 -o "$WORK/open.trace" \
    "$WSYNC" index --json "$SRC" > "$WORK/restart_strace.json"
RESTART_HASHED=$(json hashed < "$WORK/restart_strace.json")
read -r OPENS_TOTAL OPENS_FILES < <(python3 - "$WORK/open.trace" "$SRC" <<'PY'
import os, re, sys
trace, src = sys.argv[1], sys.argv[2]
total = files = 0
for line in open(trace):
    m = re.search(r'open(?:at2?)?\((.*)\)\s+=\s+(\d+)<([^>]*)>', line)
    if not m:
        continue
    total += 1
    args, path = m.group(1), m.group(3)
    if 'O_DIRECTORY' in args or 'O_PATH' in args:
        continue
    if (path.startswith(src + '/') and path != src + '/.wsync'
            and not path.startswith(src + '/.wsync/') and os.path.isfile(path)):
        files += 1
        print('opened: ' + line.rstrip(), file=sys.stderr)
print(total, files)
PY
)
# Where the time goes: syscall counts and time for one restart run.
strace -f -c -o "$WORK/strace_c.txt" "$WSYNC" index "$SRC" >/dev/null

# ----------------------------------------------- 3. incremental, 100 touched
# Each prepare appends a line to the same $TOUCH files (content and size
# change), so every timed run has exactly $TOUCH files to hash.  wsync runs
# first: git status then rewrites .git/index, which wsync would also hash.
cat > "$WORK/touch.sh" <<EOF
#!/bin/sh
n=\$(cat "$WORK/touch.count" 2>/dev/null || echo 0); n=\$((n + 1)); echo \$n > "$WORK/touch.count"
while read -r f; do echo "// edit \$n" >> "\$f"; done < "$WORK/touch.list"
"$WORK/warm.sh"
EOF
chmod +x "$WORK/touch.sh"
"$WORK/touch.sh"
"$WSYNC" index --json "$SRC" > "$WORK/incr_check.json"
INC_HASHED=$(json hashed < "$WORK/incr_check.json")
INC_MOD=$(json modified < "$WORK/incr_check.json")
log "incremental check: hashed $INC_HASHED, modified $INC_MOD"

log "incremental: hyperfine wsync index, then git status, after touching $TOUCH files"
D0=$(drops)
hyperfine -N --style basic --runs "$RUNS" --prepare "$WORK/touch.sh" \
    --export-json "$WORK/incr.json" \
    -n "wsync index ($TOUCH touched)" "$WSYNC index --json $SRC" >&2
hyperfine -N --style basic --runs "$RUNS" --prepare "$WORK/touch.sh" \
    --export-json "$WORK/incr_git.json" \
    -n "git status ($TOUCH touched)" "git -C $SRC status --porcelain" >&2
INC_DROPS=$(( $(drops) - D0 ))

# ---------------------------------------------------------- 4. index size
"$WSYNC" index --json "$SRC" >/dev/null
STATUS_JSON=$("$WSYNC" status --json "$SRC")
echo "$STATUS_JSON" > "$WORK/status.json"
GIT_INDEX_BYTES=$(stat -c %s "$SRC/.git/index")

# ---------------------------------------------------------------- report
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
FSTYPE=$(findmnt -n -o FSTYPE -T "$SRC")
DEV=$(df --output=source "$SRC" | tail -1)
CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
REPORT=$(python3 - "$WORK" <<PY
import json, statistics, sys
w = sys.argv[1]
def hf(*names):
    """Merge hyperfine exports (rounds) per command: all times, mean CPU."""
    out = {}
    for name in names:
        for x in json.load(open(f"{w}/{name}.json"))["results"]:
            o = out.setdefault(x["command"], {"times": [], "user": 0.0, "system": 0.0})
            n = len(x["times"])
            o["times"] += x["times"]; o["user"] += x["user"] * n; o["system"] += x["system"] * n
    for o in out.values():
        n = len(o["times"])
        o["user"] /= n; o["system"] /= n
        o["median"] = statistics.median(o["times"]); o["min"] = min(o["times"])
        o["cpu"] = o["user"] + o["system"]
    return out
rs = hf("restart1", "restart2"); inc = hf("incr"); incg = hf("incr_git")
ws, gs = rs["wsync index"], rs["git status"]
wi = inc["wsync index ($TOUCH touched)"]; gi = incg["git status ($TOUCH touched)"]
ms = lambda s: f"{s * 1000:.0f} ms"
def timing(x):
    return (f"{ms(x['median'])} median, {ms(x['min'])} min, {len(x['times'])} runs; "
            f"CPU {ms(x['cpu'])} (user {ms(x['user'])} + sys {ms(x['system'])})")
ratio = ws["median"] / gs["median"]
st = json.load(open(f"{w}/status.json"))["index"]
db = st["db_bytes"]
bpf = db / st["files"]
ok = lambda b: "**pass**" if b else "**FAIL**"
rows = [
 ("tree", f"$NFILES files in 1000 dirs, {$TREE_BYTES/2**20:.0f} MiB (+ .git {$GIT_BYTES/2**20:.0f} MiB, one pack); made in ${GEN_S} s", "", ""),
 ("index rows", f"{st['files']} files (.git included), {st['dirs']} dirs, {st['chunks']} chunks", "", ""),
 ("first index (no index.db, warm page cache)", f"{$COLD_S:.2f} s (CPU user $COLD_USER s + sys $COLD_SYS s): {$COLD_HASHED} files, {$COLD_BYTES/1e6:.0f} MB hashed, {$COLD_MBS} MB/s", "", ""),
 ("restart, unchanged: \`wsync index\`", timing(ws), "", ""),
 ("restart, unchanged: \`git status --porcelain\`", timing(gs), "", ""),
 ("restart ratio wsync / git status", f"{ratio:.2f}x median ({ws['min']/gs['min']:.2f}x min, {ws['cpu']/gs['cpu']:.2f}x CPU time)", "<= $RATIO_TARGET x (median)", ok(ratio <= $RATIO_TARGET)),
 ("files read on unchanged run", f"hashed {$RESTART_HASHED}; regular files under SRC opened: $OPENS_FILES (of $OPENS_TOTAL opens, strace -y)", "0", ok($RESTART_HASHED == 0 and $OPENS_FILES == 0)),
 ("incremental, $TOUCH files changed: \`wsync index\`", f"hashed $INC_HASHED, modified $INC_MOD; " + timing(wi), "hashed = $TOUCH", ok($INC_HASHED == $TOUCH)),
 ("incremental, $TOUCH files changed: \`git status\`", timing(gi), "", ""),
 ("index size (db_bytes)", f"{db/2**20:.1f} MiB = {bpf:.0f} B/file = {bpf:.0f} MB per million files", "", ""),
 ("for scale: .git/index", f"{$GIT_INDEX_BYTES/2**20:.1f} MiB = {$GIT_INDEX_BYTES/$NFILES:.0f} B/file", "", ""),
]
print("| measure | result | target | |")
print("| --- | --- | --- | --- |")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
)
TOPSYS=$(awk 'NR>2 && $1 ~ /^[0-9.]+$/ && $NF != "total" {printf "%s %s calls (%.0f%%), ", $NF, $4, $1} ' "$WORK/strace_c.txt" | cut -d, -f1-5)

{
    echo "Machine: $(nproc) CPUs ($CPU), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r), $FSTYPE on $DEV."
    echo "Load average (1/5/15 min) at start $LOAD_START, at end $LOAD_END; live wsync mounts watching this filesystem: $WATCHERS${LOOPFS:+ (private ext4 of $LOOPFS on a loop device, --direct-io=on)}."
    echo "wsync $REV, $(git --version), hyperfine $(hyperfine --version | cut -d' ' -f2); restart: 2 rounds A/B of $HALF runs per command; incremental: $RUNS runs."
    echo
    echo "$REPORT"
    echo
    echo "Syscalls of one unchanged restart (strace -c, by time): $TOPSYS."
    echo "Page-cache drops by other processes (/proc/vmstat drop_*): first index $COLD_DROPS, restart runs $RESTART_DROPS, incremental runs $INC_DROPS (each timed run is preceded by an untimed warm-up of inodes, .git/index and index.db)."
    [ "$GIT_INDEX_CHANGED" = 0 ] || echo "**Note:** .git/index changed during the restart runs, so some timed wsync runs re-hashed it."
} > "$WORK/report.md"

cat "$WORK/report.md"
if [ -n "$OUT" ]; then
    cp "$WORK/report.md" "$OUT"
    log "report written to $OUT"
fi
