#!/usr/bin/env bash
# push_bench.sh -- `wsync push` against `rsync -a --delete`, side by side,
# through the same byte-counting transport (bench/count_rsh), on the
# scenarios of issue 4:
#
#   (a) initial copy of a ~20k-file source tree plus a 1 GiB file
#   (b) no-change resync
#   (c) 1-byte overwrite in the 1 GiB file
#   --  setup (not scored): add a 100 MiB file, a 100 MiB log, a 500 MiB dir
#   (d) 100 bytes inserted at the start of the 100 MiB file
#   (e) 1 MiB appended to the 100 MiB log
#   (f) rename of the dir holding 500 MiB
#   (g) touch 1000 files (mtime only)
#   (h) delete 5000 files
#
# Usage:
#   ninja -C build
#   bench/push_bench.sh [--quick] [--out FILE] [--dir DIR] [--wsync PATH]
#
#   --quick       every size and count divided by 10 (2k files, 100 MiB big
#                 file, ...): a ~1-2 minute smoke run
#   --out FILE    also write the Markdown report to FILE and the raw numbers
#                 to FILE.tsv
#   --dir DIR     where the temp dir goes (default /var/tmp; a real disk:
#                 the full run needs ~7 GB: SRC + two DEST copies)
#   --wsync PATH  the wsync binary (default build/cli/wsync); copied into the
#                 temp dir first, so a rebuild mid-run does not change it
#   --keep        keep the temp dir (SRC, both DESTs, logs/) for inspection
#   --only-a      run (a), the initial copy, and nothing after it (~1 min
#                 after the tree is made): for A/B runs of two binaries
#
# Each tool has its own DEST; both read the same SRC:
#   wsync push --json --rsh bench/count_rsh --wsync-path WSYNC SRC localhost:DEST_W
#   rsync -a --delete --exclude=/.wsync/ -e bench/count_rsh SRC/ localhost:DEST_R/
# (--exclude=/.wsync/ keeps rsync from shipping wsync's own index in
# SRC/.wsync, which wsync never sends either.)
#
# The source tree is generated with a fixed seed: 20k text files (source-like
# lines of identifiers, 1-30 KiB, uniform) in pkgNN/modMM[/impl]/ dirs, plus
# one symlink per package.  The big files (1 GiB, 100 MiB, the log, the
# 500 MiB dir) are AES-CTR keystream from openssl with a fixed key: random,
# incompressible, so lz4 does not flatter wsync there.  The text files DO
# compress (lz4 ~2x); rsync -a has no -z, so (a) favours wsync on them.
#
# After every run the result is checked: for wsync, `wsync verify` must say
# equal; for both tools, `diff -rq` of SRC and DEST (content, symlink
# targets) and a listing compare (type, size, permission bits, mtime of
# files, symlinks and directories).  A failed check is a FAIL in the report and the script
# exits 1 (a missed target is reported as FAIL but does not change the exit
# status).  Wall time is the push command alone; "cpu" is user+sys of the
# command and every process it waited for (both ends of the transfer, the
# relay included), which a loaded machine disturbs less than wall time.
# Order alternates (wsync first in a, c, e, g; rsync first otherwise).
# Before every timed command, `sync` (not timed) writes back what earlier
# runs left dirty: rsync never syncs, wsync's commit does (syncfs), so
# without it wsync's commit would also pay for the writeback of the run
# before it (e.g. rsync's 500 MiB in (f) landing in wsync's (g)).
# Caches stay warm (no drop_caches: the machine is shared).
#
# Needs: bash, python3 (>= 3.10), rsync, openssl, GNU diff/find/time.
# No extra Debian packages (count_rsh is plain python3).
# Cleanup: an EXIT trap (also INT/TERM) removes the temp dir (unless --keep).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COUNT_RSH=$ROOT/bench/count_rsh
QUICK=0
KEEP=0
ONLY_A=0
OUT=
BASEDIR=/var/tmp
WSYNC_SRC=$ROOT/build/cli/wsync

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --out) OUT=$2; shift ;;
    --dir) BASEDIR=$2; shift ;;
    --wsync) WSYNC_SRC=$2; shift ;;
    --keep) KEEP=1 ;;
    --only-a) ONLY_A=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "push_bench: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for t in rsync openssl python3 diff find /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "push_bench: '$t' not found" >&2; exit 2; }
done
[ -x "$WSYNC_SRC" ] || { echo "push_bench: no wsync binary at $WSYNC_SRC (ninja -C build)" >&2; exit 2; }
[ -x "$COUNT_RSH" ] || { echo "push_bench: $COUNT_RSH missing or not executable" >&2; exit 2; }
case $ROOT in *[[:space:]]*) echo "push_bench: repo path has spaces; rsh commands would split" >&2; exit 2 ;; esac

MiB=$((1024 * 1024))
if [ $QUICK = 1 ]; then
    NFILES=2000 BIG=$((100 * MiB)) MED=$((10 * MiB)) LOGSZ=$((10 * MiB))
    DIRFILES=50 DIRFILE=$((1 * MiB)) APPEND=$((100 * 1024)) NTOUCH=100 NDEL=500
else
    NFILES=20000 BIG=$((1024 * MiB)) MED=$((100 * MiB)) LOGSZ=$((100 * MiB))
    DIRFILES=50 DIRFILE=$((10 * MiB)) APPEND=$MiB NTOUCH=1000 NDEL=5000
fi
INSERT=100

TMP=$(mktemp -d "$BASEDIR/wsync-push-bench.XXXXXX")
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ $KEEP = 1 ]; then echo "push_bench: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$TMP/bin"
cp "$WSYNC_SRC" "$TMP/bin/wsync"
WS=$TMP/bin/wsync
SRC=$TMP/src
DW=$TMP/dest-wsync
DR=$TMP/dest-rsync
RAW=$TMP/raw.tsv
LOG=$TMP/log
: > "$RAW"
mkdir -p "$LOG"

say() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
hb() {  # human bytes
    awk -v b="$1" 'BEGIN { if (b < 1024) printf "%d B", b;
        else if (b < 1048576) printf "%.1f KiB", b / 1024;
        else if (b < 1073741824) printf "%.1f MiB", b / 1048576;
        else printf "%.2f GiB", b / 1073741824 }'
}
# random, incompressible, reproducible: AES-128-CTR keystream, key = seed
prng() {  # prng SEED BYTES
    head -c "$2" /dev/zero |
        openssl enc -aes-128-ctr -K "$(printf '%032x' "$1")" -iv 00000000000000000000000000000000
}

# ---------------------------------------------------------------- the tree
gen_tree() {  # gen_tree DIR NFILES LISTFILE
    python3 - "$1" "$2" "$3" <<'EOF'
import os, random, sys
root, n, listfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = random.Random(20240604)
kw = ("if else for while return static const struct int void char unsigned "
      "def class import from self None True False try except with as yield "
      "switch case break continue typedef enum include define auto").split()
syl = "ba be bi bo bu ka ke ki ko ku ra re ri ro ru ta te ti to tu na ne ni no nu".split()
idents = ["".join(r.choices(syl, k=r.randint(2, 4))) + r.choice(["", "_t", "_id", "Count", "Buf", "2", "_init"]) for _ in range(4000)]
vocab = kw * 20 + idents
punct = ["(", ")", ";", "{", "}", "=", "->", ",", "+", "*", "==", "[i]", "0", "1", "\"x\""]
exts = [".c", ".h", ".py", ".md", ".txt", ".cpp", ".hpp", ".rs"]
npkg = max(1, n // 500)
paths = []
for i in range(n):
    pkg = i % npkg
    mod = (i // npkg) % 10
    sub = "/impl" if (i // (npkg * 10)) % 3 == 2 else ""
    paths.append("pkg%03d/mod%02d%s/f%05d%s" % (pkg, mod, sub, i, r.choice(exts)))
with open(listfile, "w") as lf:
    for p in paths:
        size = r.randint(1024, 30 * 1024)
        out, total = [], 0
        while total < size:
            ind = "    " * r.randint(0, 3)
            toks = r.choices(vocab, k=r.randint(3, 12))
            toks += r.choices(punct, k=r.randint(1, 4))
            r.shuffle(toks)
            line = ind + " ".join(toks) + "\n"
            out.append(line)
            total += len(line)
        data = "".join(out)[:size]
        full = os.path.join(root, p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(data)
        lf.write(p + "\n")
for pkg in range(npkg):
    os.symlink("mod00", os.path.join(root, "pkg%03d" % pkg, "current"))
EOF
}

# ---------------------------------------------------------------- checks
listing() {  # type|size|mode|mtime|path|target for everything but .wsync, sorted
    (cd "$1" && find . -path ./.wsync -prune -o -printf '%y|%s|%m|%T@|%P|%l\n' | LC_ALL=C sort -t'|' -k5,5)
}
# compare two listings by path; prints what differs, e.g. "12 missing, 200
# mtime" (dirs: their size is not compared; file $3 is kept for notes)
cmp_listing() {
    awk -F'|' 'NR == FNR { t[$5] = $1; s[$5] = $2; m[$5] = $3; mt[$5] = $4; l[$5] = $6; next }
        { seen[$5] = 1
          if (!($5 in t)) { c["extra"]++; next }
          if (t[$5] != $1) { c["type"]++; next }
          if (m[$5] != $3) c["mode"]++
          if ($1 == "f" && s[$5] != $2) c["size"]++
          if ($1 == "l" && l[$5] != $6) c["target"]++
          if ($1 == "f" && mt[$5] != $4) c["mtime"]++
          if ($1 == "l" && mt[$5] != $4) c["symlink mtime"]++
          if ($1 == "d" && $5 != "" && mt[$5] != $4) c["dir mtime"]++ }
        END { for (p in t) if (!(p in seen)) c["missing"]++
              for (k in c) printf "%d %s, ", c[k], k }' "$1" "$2" | sed 's/, $//'
}
declare -A NOTE
check_dest() {  # check_dest TOOL DEST TAG -> prints "ok" or the reasons
    local tool=$1 dest=$2 tag=$3 why= d
    if [ "$tool" = wsync ]; then
        "$WS" verify "$SRC" "$dest" > "$LOG/$tag.verify" 2>&1 || why="wsync verify: not equal;"
    fi
    diff -rq --no-dereference -x .wsync "$SRC" "$dest" > "$LOG/$tag.diff" 2>&1 ||
        why="$why diff -r: $(wc -l < "$LOG/$tag.diff") differences;"
    listing "$SRC" > "$LOG/$tag.lsrc"
    listing "$dest" > "$LOG/$tag.ldst"
    d=$(cmp_listing "$LOG/$tag.lsrc" "$LOG/$tag.ldst" "$LOG/$tag.note")
    diff "$LOG/$tag.lsrc" "$LOG/$tag.ldst" > "$LOG/$tag.ldiff" 2>&1 || true
    [ -z "$d" ] || why="$why metadata: $d;"
    echo "${why:-ok}"
}

# ---------------------------------------------------------------- one run
declare -A B_OUT B_IN WALL CPU OK SELF
run_tool() {  # run_tool TOOL SCEN
    local tool=$1 sc=$2 tag="$2-$1" dest cf=$TMP/count.$2.$1 t0 t1 rc=0
    : > "$cf"
    sync  # see the header: no run pays for an earlier run's writeback
    if [ "$tool" = wsync ]; then
        dest=$DW
        t0=$(date +%s.%N)
        COUNT_FILE=$cf timeout 1800 /usr/bin/time -f '%U %S' -o "$LOG/$tag.time" \
            "$WS" push --json -q --rsh "$COUNT_RSH" --wsync-path "$WS" "$SRC" "localhost:$dest" \
            > "$LOG/$tag.out" 2> "$LOG/$tag.err" || rc=$?
        t1=$(date +%s.%N)
        SELF[$sc]=$(python3 -c 'import json,sys
try:
    j = json.load(open(sys.argv[1])); print(j["bytes_out"], j["bytes_in"], j["files"], j["deleted"], j["chunks_sent"], j["data_bytes"])
except Exception: print("- - - - - -")' "$LOG/$tag.out")
    else
        dest=$DR
        t0=$(date +%s.%N)
        COUNT_FILE=$cf timeout 1800 /usr/bin/time -f '%U %S' -o "$LOG/$tag.time" \
            rsync -a --delete --exclude=/.wsync/ -e "$COUNT_RSH" "$SRC/" "localhost:$dest/" \
            > "$LOG/$tag.out" 2> "$LOG/$tag.err" || rc=$?
        t1=$(date +%s.%N)
    fi
    WALL[$tag]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    CPU[$tag]=$(awk 'NF == 2 && $1 ~ /^[0-9.]+$/ { c = $1 + $2 } END { printf "%.2f", c }' "$LOG/$tag.time")
    B_OUT[$tag]=$(awk '{ s += $1 } END { print s + 0 }' "$cf")
    B_IN[$tag]=$(awk '{ s += $2 } END { print s + 0 }' "$cf")
    if [ $rc != 0 ]; then
        OK[$tag]="exit $rc: $(tail -c 300 "$LOG/$tag.err" | tr '\n' ' ')"
    else
        OK[$tag]=$(check_dest "$tool" "$dest" "$tag")
        [ -s "$LOG/$tag.note" ] && NOTE[$tag]="$(cat "$LOG/$tag.note")"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$tool" "${B_OUT[$tag]}" "${B_IN[$tag]}" \
        "${WALL[$tag]}" "${CPU[$tag]}" "${OK[$tag]}" "$([ "$tool" = wsync ] && echo "${SELF[$sc]}" || echo -)" >> "$RAW"
    say "  $tool: $(hb $((B_OUT[$tag] + B_IN[$tag]))) ($(hb "${B_OUT[$tag]}") out, $(hb "${B_IN[$tag]}") in), ${WALL[$tag]} s wall, ${CPU[$tag]} s cpu: ${OK[$tag]}"
    if [ "${OK[$tag]}" != ok ]; then
        say "  $tool FAILED in ($sc); details (all of it in $LOG/$tag.* with --keep):"
        for f in err diff ldiff verify; do
            if [ -s "$LOG/$tag.$f" ]; then echo "--- $tag.$f" >&2; head -20 "$LOG/$tag.$f" >&2; fi
        done
    fi
}
NRUN=0
DONE=  # the scenarios run, in order
ran() { case " $DONE " in *" $1 "*) return 0 ;; esac; return 1; }
scenario() {  # scenario ID  -- runs both tools, alternating who goes first
    say "($1) ${DESC[$1]}"
    DONE="$DONE $1"
    if [ $((NRUN % 2)) = 0 ]; then run_tool wsync "$1"; run_tool rsync "$1"
    else run_tool rsync "$1"; run_tool wsync "$1"; fi
    NRUN=$((NRUN + 1))
}

declare -A DESC
DESC[b]="no-change resync"
DESC[c]="1-byte overwrite in the middle of the $(hb $BIG) file"
DESC[s]="setup (not scored): add a $(hb $MED) file, a $(hb $LOGSZ) log, a dir of $DIRFILES x $(hb $DIRFILE)"
DESC[d]="$INSERT bytes inserted at the start of the $(hb $MED) file"
DESC[e]="$(hb $APPEND) appended to the $(hb $LOGSZ) log"
DESC[f]="rename of the dir holding $(hb $((DIRFILES * DIRFILE)))"
DESC[g]="touch $NTOUCH files (mtime only)"
DESC[h]="delete $NDEL files"

# ---------------------------------------------------------------- go
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
say "temp dir $TMP; generating the source tree ($NFILES files)"
mkdir -p "$SRC/data"
gen_tree "$SRC" "$NFILES" "$TMP/files.txt"
prng 1 "$BIG" > "$SRC/data/big.bin"
TREE_BYTES=$(cd "$SRC" && find pkg* -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
DESC[a]="initial copy: $NFILES text files ($(hb "$TREE_BYTES")) + $(hb $BIG) random file"
say "source: $(find "$SRC" -type f | wc -l) files, $(du -sh "$SRC" | cut -f1)"

scenario a
if [ $ONLY_A = 0 ]; then
scenario b

say "modify: flip one byte at offset $((BIG / 2)) of data/big.bin"
python3 - "$SRC/data/big.bin" $((BIG / 2)) <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR); off = int(sys.argv[2])
b = os.pread(fd, 1, off); os.pwrite(fd, bytes([b[0] ^ 0xFF]), off); os.close(fd)
EOF
scenario c

mkdir -p "$SRC/media" "$SRC/var" "$SRC/assets"
prng 2 "$MED" > "$SRC/media/video.bin"
prng 3 "$LOGSZ" > "$SRC/var/app.log"
for i in $(seq -w 1 "$DIRFILES"); do prng $((100 + 10#$i)) "$DIRFILE" > "$SRC/assets/part$i.bin"; done
scenario s

python3 - "$SRC/media/video.bin" "$INSERT" <<'EOF'
import sys
p, n = sys.argv[1], int(sys.argv[2])
data = open(p, "rb").read()
with open(p, "wb") as f:
    f.write(bytes((i * 37 + 11) & 0xFF for i in range(n)) + data)
EOF
scenario d

prng 4 "$APPEND" >> "$SRC/var/app.log"
scenario e

mv "$SRC/assets" "$SRC/assets-v2"
scenario f

sleep 1  # so the new mtimes differ from the old ones even at 1 s granularity
awk -v n="$NTOUCH" -v N="$NFILES" 'NR % int(N / n) == 1 && c < n { print; c++ }' "$TMP/files.txt" > "$TMP/touch.txt"
(cd "$SRC" && xargs -d '\n' touch < "$TMP/touch.txt")
scenario g

awk -v n="$NDEL" -v N="$NFILES" 'NR % int(N / n) == 0 && c < n { print; c++ }' "$TMP/files.txt" > "$TMP/del.txt"
(cd "$SRC" && xargs -d '\n' rm -f < "$TMP/del.txt")
scenario h
fi

LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( $(date +%s) - START ))

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print (a == 0 ? "1" : "inf"); else if (a / b < 0.01) printf "%.4f", a / b; else printf "%.3f", a / b }'; }
report() {
    local s
    echo "Command: \`bench/push_bench.sh$([ $QUICK = 1 ] && echo ' --quick')$([ $ONLY_A = 1 ] && echo ' --only-a')\` at wsync $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- sync cli fs 2>/dev/null || echo '+local changes'), $(date -u +%F)."
    echo
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r), $(df -T "$BASEDIR" | awk 'NR == 2 { print $2 }') on $(df "$BASEDIR" | awk 'NR == 2 { print $1 }'), $(rsync --version | head -1 | sed 's/  */ /g'), $(python3 --version). Load average $LOAD0 at the start, $LOAD1 at the end (shared machine: other builds and tests were running). Warm page cache. Whole run ${ELAPSED} s."
    echo
    echo "Bytes are what crossed bench/count_rsh, both directions (to the far side / back). Time: wall seconds of the push, and (cpu) user+sys of both ends and the relay."
    echo
    echo "| scenario | wsync bytes (out / in) | rsync bytes (out / in) | bytes w/r | wsync s (cpu) | rsync s (cpu) | time w/r | checks |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for s in $DONE; do
        local w="$s-wsync" r="$s-rsync" wb rb chk
        wb=$((B_OUT[$w] + B_IN[$w])); rb=$((B_OUT[$r] + B_IN[$r]))
        if [ "${OK[$w]}" = ok ] && [ "${OK[$r]}" = ok ]; then chk="both equal"
        else chk="wsync: ${OK[$w]} rsync: ${OK[$r]}"; fi
        [ -z "${NOTE[$w]:-}" ] || chk="$chk (wsync: ${NOTE[$w]})"
        [ -z "${NOTE[$r]:-}" ] || chk="$chk (rsync: ${NOTE[$r]})"
        echo "| ($s) ${DESC[$s]} | $(hb $wb) ($(hb "${B_OUT[$w]}") / $(hb "${B_IN[$w]}")) | $(hb $rb) ($(hb "${B_OUT[$r]}") / $(hb "${B_IN[$r]}")) | $(ratio $wb $rb) | ${WALL[$w]} (${CPU[$w]}) | ${WALL[$r]} (${CPU[$r]}) | $(ratio "${WALL[$w]}" "${WALL[$r]}") | $chk |"
    done
    echo
    echo "Targets (issue 4):"
    echo
    for s in a b c d e f g h; do
        ran $s || continue
        local wb=$((B_OUT[$s-wsync] + B_IN[$s-wsync])) rb=$((B_OUT[$s-rsync] + B_IN[$s-rsync])) v
        if [ $wb -le $rb ]; then v=PASS; else v=FAIL; fi
        echo "- ($s) bytes ≤ rsync: **$v** ($(hb $wb) vs $(hb $rb), $(ratio $wb $rb))"
    done
    for s in d f; do
        ran $s || continue
        local wb=$((B_OUT[$s-wsync] + B_IN[$s-wsync])) rb=$((B_OUT[$s-rsync] + B_IN[$s-rsync])) v
        if [ $((wb * 20)) -le $rb ]; then v=PASS; else v=FAIL; fi
        echo "- ($s) bytes ≤ 1/20 of rsync: **$v** (ratio $(ratio $wb $rb), target 0.05)"
    done
    for s in a b g; do
        ran $s || continue
        local v
        if awk -v a="${WALL[$s-wsync]}" -v b="${WALL[$s-rsync]}" 'BEGIN { exit !(a <= b) }'; then v=PASS; else v=FAIL; fi
        echo "- ($s) wall time ≤ rsync: **$v** (${WALL[$s-wsync]} s vs ${WALL[$s-rsync]} s; cpu ${CPU[$s-wsync]} s vs ${CPU[$s-rsync]} s)"
    done
    local bad=0
    for s in $DONE; do
        [ "${OK[$s-wsync]}" = ok ] || bad=$((bad + 1))
        [ "${OK[$s-rsync]}" = ok ] || bad=$((bad + 1))
    done
    if [ $bad = 0 ]; then echo "- every run verified equal (wsync verify, diff -r, listing): **PASS**"
    else echo "- runs that did not verify: **FAIL** ($bad; see the checks column)"; fi
    echo
    echo "wsync's own --json counters (bytes_out bytes_in files deleted chunks_sent data_bytes) per scenario:"
    for s in $DONE; do printf '%s: %s; ' "$s" "${SELF[$s]}"; done
    echo
}
report > "$TMP/report.md"
cat "$TMP/report.md"
if [ -n "$OUT" ]; then
    cp "$TMP/report.md" "$OUT"
    { printf 'scenario\ttool\tbytes_out\tbytes_in\twall_s\tcpu_s\tcheck\twsync_json(bytes_out bytes_in files deleted chunks_sent data_bytes)\n'; cat "$RAW"; } > "$OUT.tsv"
    say "report in $OUT, raw numbers in $OUT.tsv"
fi
if grep -q 'did not verify' "$TMP/report.md"; then exit 1; fi
exit 0
