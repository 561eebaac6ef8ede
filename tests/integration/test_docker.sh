#!/bin/sh
# test_docker.sh — wsync under a real Docker engine, as docs/docker.md tells
# a newcomer to use it.
#
# The engine: Debian's docker.io, a private daemon this test starts itself
# (/usr/sbin/dockerd, no iptables, no bridge, its own unix socket, data-root,
# exec-root, pidfile and cgroup parent under a temp dir; it runs its own
# containerd under the exec-root) and talks to with the client of the same
# package, /usr/bin/docker.  /usr/local/bin/docker, if present, is another
# CLI (a newer release, maybe first in PATH) and is not used.  The image is
# imported offline from Debian's busybox-static (/bin/busybox and one
# symlink per applet), so no registry or network is needed.
#
# Checks, with SRC owned by uid 1000 and `wsync mount SRC MNT`:
#   - a container (`docker run --rm --network none -v MNT:/srv`) reads a
#     project file; what it writes as root lands in SRC owned by 1000:1000;
#   - build/out written under a local path lives in SRC/.wsync/overlay, not
#     in SRC, and is seen by the next container run and, after an unmount
#     and remount, by a third one;
#   - it is never mirrored: `wsync push SRC DEST` brings the project files,
#     no build/out, and leaves DEST's own build/ untouched; verify agrees;
#     the index counts only the project files; `wsync overlay ls` lists it;
#   - mount propagation (docs/docker.md, "Mounting after the container
#     started"): with P an rshared bind mount of itself, a wsync mount made
#     at P/proj after two containers started is seen in the one given
#     `-v P:/srv:rslave` and not in the one given a plain `-v P:/srv`; its
#     unmount reaches the rslave one too; without the bind mount (/ is
#     private) Docker refuses `:rslave`.
# Skips (77) without root, /dev/fuse, docker.io or busybox-static, or when
# the engine does not start (the end of its log says why).  Every pid,
# container and mount it makes is removed on exit.
#
# Env (set by meson): WSYNC_BIN.
set -eu
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
: "${WSYNC_BIN:?}"
W=$WSYNC_BIN
DOCKERD=/usr/sbin/dockerd
DOCKER=/usr/bin/docker
IMG=wsync-test-busybox
OWNER=1000:1000

[ "$(id -u)" = 0 ] || skip "needs root (dockerd, FUSE allow_other, bind mounts)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
for b in "$DOCKERD" "$DOCKER"; do
    [ -x "$b" ] || skip "needs Debian's docker.io ($b): apt-get install docker.io"
done
case $(ldd /bin/busybox 2>&1) in
*"not a dynamic"* | *"statically linked"*) ;;
*) skip "needs a static /bin/busybox for the image: apt-get install busybox-static" ;;
esac
for tool in mountpoint findmnt; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (util-linux)"
done

# Short paths: the daemon's and containerd's unix sockets live under $T
# (a unix socket path is at most 108 bytes).
T=$(mktemp -d /tmp/wsync-dk.XXXXXX)
CG=wsync-test-${T##*.}          # the containers' cgroup parent, removed on exit
export DOCKER_CONFIG="$T/cli"   # the client writes nothing to ~/.docker
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
D() { "$DOCKER" -H "unix://$T/docker.sock" "$@"; }

dockerd_pid=""
containerd_pid=""
containers=""
wsync_mounts=""     # mount points we made with wsync mount
wsync_pids=""       # their daemons
bind_mounts=""      # our own bind mounts

cleanup() {
    set +e
    if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
        for c in $containers; do D rm -f "$c" >/dev/null 2>&1; done
    fi
    for m in $wsync_mounts; do
        if mountpoint -q "$m"; then
            "$W" unmount "$m" >/dev/null 2>&1 || umount -l "$m"
        fi
    done
    for p in $wsync_pids; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p"
    done
    for m in $bind_mounts; do mountpoint -q "$m" && umount "$m"; done
    if [ -n "$dockerd_pid" ]; then
        kill -TERM "$dockerd_pid" 2>/dev/null
        i=0
        while kill -0 "$dockerd_pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
        if kill -0 "$dockerd_pid" 2>/dev/null; then
            echo "note: dockerd $dockerd_pid ignored TERM for 30 s; killing it"
            kill -KILL "$dockerd_pid"
        fi
        # Its containerd normally goes with it; not if dockerd was killed.
        [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null && kill -KILL "$containerd_pid"
    fi
    # Whatever the engine left mounted under $T (its data-root bind, overlays).
    awk -v t="$T" '$5 == t || index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m"; done
    for d in /sys/fs/cgroup/*/"$CG"; do [ -d "$d" ] && rmdir "$d"; done
    rm -rf --one-file-system "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# poll N CMD...: run CMD every 0.1 s until it succeeds, at most N times.
poll() {
    n=$1; shift
    i=0
    while [ $i -lt "$n" ]; do
        "$@" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# expect WHAT WANT GOT
expect() { [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"; }

t0=$(date +%s)

# ---- the engine ----
"$DOCKERD" --iptables=false --ip-masq=false --bridge=none \
    -H "unix://$T/docker.sock" --data-root "$T/data" --exec-root "$T/exec" \
    --pidfile "$T/docker.pid" --cgroup-parent "/$CG" >"$T/dockerd.log" 2>&1 &
dockerd_pid=$!
engine_up() { kill -0 "$dockerd_pid" 2>/dev/null || return 0; D info >/dev/null 2>&1; }
poll 300 engine_up || true
if ! kill -0 "$dockerd_pid" 2>/dev/null || ! D info >/dev/null 2>&1; then
    kill -0 "$dockerd_pid" 2>/dev/null && state="did not answer within 30 s" || state="exited"
    echo "dockerd $state; the end of its log:"
    tail -n 15 "$T/dockerd.log" | sed 's/^/  /'
    skip "the Docker engine did not start ($state; see above)"
fi
containerd_pid=$(pgrep -P "$dockerd_pid" containerd || true)
echo "ok: dockerd $("$DOCKERD" --version | sed 's/^Docker version //') up (pid $dockerd_pid, containerd ${containerd_pid:-none}), client $DOCKER"

rootfs=$T/rootfs
mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/srv"
cp /bin/busybox "$rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
    [ -e "$rootfs/bin/$a" ] || ln -s busybox "$rootfs/bin/$a"
done
tar -C "$rootfs" -c . | D import - "$IMG" >/dev/null || fail "docker import of the busybox rootfs"
echo "ok: image $IMG imported from /bin/busybox"

run() { D run --rm --network none "$@"; }
owner() { stat -c %u:%g "$1"; }

# ---- the project, owned by a non-root user ----
SRC=$T/src
MNT=$T/mnt
DEST=$T/dest
mkdir -p "$SRC" "$MNT" "$DEST"
echo "hello from the project" >"$SRC/hello.txt"
chown -R "$OWNER" "$SRC"

mount_wsync() { # SRC MNT
    "$W" mount "$1" "$2" || fail "wsync mount $1 $2"
    wsync_mounts="$2 $wsync_mounts"
    p=$("$W" status --json "$2" | sed -n 's/.*"daemon":{[^}]*"pid":\([0-9]*\).*/\1/p')
    [ -n "$p" ] || fail "wsync status --json $2 names no daemon pid"
    wsync_pids="$wsync_pids $p"
}
mount_wsync "$SRC" "$MNT"

# 1. The container reads the project and writes into it as root.
out=$(run -v "$MNT:/srv" "$IMG" sh -c '
    id -u
    cat /srv/hello.txt
    echo "made in the container" >/srv/made.txt
    mkdir /srv/sub && echo deep >/srv/sub/deep.txt
    mkdir /srv/build && echo build-1 >/srv/build/out') || fail "first container run: $out"
expect "the container's uid" 0 "$(echo "$out" | sed -n 1p)"
expect "hello.txt read in the container" "hello from the project" "$(echo "$out" | sed -n 2p)"
echo "ok: the container (uid 0) reads the project through -v $MNT:/srv"
for f in made.txt sub sub/deep.txt; do
    [ -e "$SRC/$f" ] || fail "$f written in the container is not in SRC"
    expect "owner of SRC/$f (written by root in the container)" "$OWNER" "$(owner "$SRC/$f")"
done
expect "SRC/made.txt" "made in the container" "$(cat "$SRC/made.txt")"
echo "ok: the container's writes are in SRC, owned by $OWNER (SRC's owner), not root"

# 2. A local path persists across containers and remounts, outside SRC.
[ ! -e "$SRC/build" ] || fail "build/ (a local path) was written into SRC: $(ls -la "$SRC/build")"
up=$SRC/.wsync/overlay/build/out
[ -f "$up" ] || fail "build/out is not in the overlay ($up): $(find "$SRC/.wsync/overlay" 2>&1)"
expect "overlay build/out" build-1 "$(cat "$up")"
expect "owner of the overlay's build/out" "$OWNER" "$(owner "$up")"
echo "ok: build/out is in SRC/.wsync/overlay, owned by $OWNER, not in SRC"

out=$(run -v "$MNT:/srv" "$IMG" sh -c 'cat /srv/build/out && echo build-2 >/srv/build/out2') ||
    fail "second container run: $out"
expect "build/out in the second container" build-1 "$out"
echo "ok: the next container run sees build/out"

"$W" unmount "$MNT" || fail "wsync unmount $MNT"
! mountpoint -q "$MNT" || fail "$MNT is still a mount point after wsync unmount"
expect "the unmounted $MNT's contents" "" "$(ls -A "$MNT")"
[ ! -e "$SRC/build" ] || fail "build/ appeared in SRC at unmount"
mount_wsync "$SRC" "$MNT"
out=$(run -v "$MNT:/srv" "$IMG" sh -c 'cat /srv/build/out /srv/build/out2; ls /srv') ||
    fail "container run after the remount: $out"
expect "build/out, build/out2 and the listing after a remount" \
    "$(printf 'build-1\nbuild-2\nbuild\nhello.txt\nmade.txt\nsub')" "$out"
echo "ok: after unmount and remount a third container sees build/out and build/out2"

# 3. Never mirrored.  DEST has its own build/, which must stay as it is.
mkdir "$DEST/build"
echo "the remote's own build" >"$DEST/build/out"
out=$("$W" push "$SRC" "$DEST" 2>&1) || fail "wsync push: $out"
for f in hello.txt made.txt sub/deep.txt; do
    cmp -s "$SRC/$f" "$DEST/$f" || fail "push did not bring $f"
done
expect "DEST/build after the push" out "$(ls -A "$DEST/build")"
expect "DEST/build/out after the push" "the remote's own build" "$(cat "$DEST/build/out")"
out=$("$W" verify "$SRC" "$DEST" 2>&1) || fail "wsync verify: $out"
echo "$out" | grep -q identical || fail "verify after the push: expected 'identical', got: $out"
echo "ok: wsync push SRC DEST sent no build/ and left DEST's own build/out alone; verify: identical"
files=$("$W" status --json "$MNT" | sed -n 's/.*"index":{"files":\([0-9]*\).*/\1/p')
expect "files in the index (hello.txt made.txt sub/deep.txt; build/ is local)" 3 "$files"
out=$(cd "$MNT" && "$W" overlay ls) || fail "wsync overlay ls: $out"
echo "$out" | grep -Eq '[[:space:]]build$' || fail "wsync overlay ls does not list build: $out"
echo "ok: the index counts 3 files; wsync overlay ls lists build"

"$W" unmount "$MNT" || fail "wsync unmount $MNT"

# 4. Mount propagation: a mount made after the containers started.
# Without the bind mount (/ is private here) Docker refuses :rslave at start.
c=$(D create --network none -v "$T/rootfs:/srv:rslave" "$IMG" true) || fail "docker create: $c"
containers="$containers $c"
err=$(D start "$c" 2>&1) &&
    fail "docker started a container with :rslave on a path of a private mount (/ is private here)"
echo "$err" | grep -q "not a shared or slave mount" ||
    fail "docker start with -v P:/srv:rslave and no bind mount: expected 'not a shared or slave mount', got: $err"
echo "ok: without the rshared bind mount Docker refuses :rslave: $(echo "$err" | grep -o 'path .*')"

P=$T/p
SRC2=$T/src2
mkdir -p "$P/proj" "$SRC2"
echo "mounted after the start" >"$SRC2/late.txt"
chown -R "$OWNER" "$SRC2"
mount --bind "$P" "$P" || fail "mount --bind $P $P"
bind_mounts="$P"
mount --make-rshared "$P" || fail "mount --make-rshared $P"
expect "propagation of $P" shared "$(findmnt -n -o PROPAGATION "$P")"
plain=$(D run -d --rm --network none -v "$P:/srv" "$IMG" sleep 600) || fail "docker run (plain -v): $plain"
containers="$containers $plain"
slave=$(D run -d --rm --network none -v "$P:/srv:rslave" "$IMG" sleep 600) || fail "docker run (:rslave): $slave"
containers="$containers $slave"
expect "/srv/proj in the rslave container before the mount" "" "$(D exec "$slave" ls -A /srv/proj)"

mount_wsync "$SRC2" "$P/proj"
sees_late() { [ "$(D exec "$1" cat /srv/proj/late.txt 2>/dev/null)" = "mounted after the start" ]; }
poll 100 sees_late "$slave" ||
    fail "the :rslave container does not see the late mount within 10 s: /srv/proj holds '$(D exec "$slave" ls -A /srv/proj 2>&1)'"
echo "ok: a wsync mount made after the start shows in the container given -v P:/srv:rslave"
out=$(D exec "$slave" sh -c 'echo from-the-container >/srv/proj/back.txt') || fail "write through the late mount: $out"
expect "SRC2/back.txt (written in the rslave container)" from-the-container "$(cat "$SRC2/back.txt" 2>&1)"
expect "owner of SRC2/back.txt" "$OWNER" "$(owner "$SRC2/back.txt")"
# The rslave container has seen it, so propagation is done: the plain one
# would have it by now if it ever got it.
expect "/srv/proj in the plain -v container (the documented limit)" "" "$(D exec "$plain" ls -A /srv/proj)"
expect "wsync mounts in the plain container's mount table" 0 \
    "$(D exec "$plain" grep -c fuse.wsync /proc/self/mountinfo || true)"
echo "ok: the plain -v P:/srv container does not see it (documented limit)"

"$W" unmount "$P/proj" || fail "wsync unmount $P/proj while a container sees it"
gone() { [ -z "$(D exec "$1" ls -A /srv/proj)" ]; }
poll 100 gone "$slave" || fail "the unmount did not reach the :rslave container: $(D exec "$slave" ls -A /srv/proj)"
echo "ok: the unmount reaches the rslave container too"

echo "PASS ($(($(date +%s) - t0)) s)"
