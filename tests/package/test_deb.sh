#!/bin/sh
# test_deb.sh — build the .deb with packaging/build-deb, install it with a
# real `dpkg -i` into a throwaway root, and use it there.
#
# The throwaway root: in a private mount namespace (unshare -m), an overlay
# whose lower layer is this machine's own / (read-only to it) and whose
# upper layer is a tmpfs.  dpkg inside it (chroot) sees the host's real
# package database, so Depends are checked against real installed packages
# exactly as on a robot, maintainer state is written, and /usr/bin/wsync
# is a file dpkg put there; all of it vanishes with the namespace, and the
# host's / is never written.  In that root:
#   - dpkg -i succeeds, `wsync --version` is this tree's version, the man
#     page, completion and user unit are where Debian looks for them;
#   - a push from the build's wsync lands through the installed
#     `/usr/bin/wsync serve` (--rsh "chroot ROOT"), and verify agrees;
#   - with libxxhash0 removed (--force-depends), dpkg -i of the package
#     refuses to configure it, naming libxxhash0: the Depends are real.
# Skips (77) without root, unshare, overlayfs or the dpkg tools.
#
# Env (set by meson): WSYNC_BIN, WSYNC_SOURCE_ROOT, WSYNC_BUILD_ROOT.
set -eu
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
: "${WSYNC_BIN:?}" "${WSYNC_SOURCE_ROOT:?}" "${WSYNC_BUILD_ROOT:?}"

if [ "${1:-}" != --in-namespace ]; then
    [ "$(id -u)" = 0 ] || skip "needs root (a private mount namespace and dpkg -i)"
    for tool in unshare chroot dpkg dpkg-deb dpkg-shlibdeps meson ninja strip; do
        command -v "$tool" >/dev/null 2>&1 ||
            skip "$tool is not installed (apt-get install util-linux dpkg-dev meson ninja-build binutils)"
    done
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
        skip "no overlay filesystem in this kernel"
    work=$(mktemp -d "${TMPDIR:-/tmp}/wsync-deb-test.XXXXXX")
    trap 'rm -rf "$work"' EXIT INT TERM
    # The package, built from this tree (its build dir is kept beside this
    # build's, so a second run only recompiles what changed).
    deb=$("$WSYNC_SOURCE_ROOT/packaging/build-deb" -b "$WSYNC_BUILD_ROOT/deb-build" -o "$work" | tail -n 1)
    [ -f "$deb" ] || fail "build-deb made no package"
    echo "built $(basename "$deb")"
    deps=$(dpkg-deb -f "$deb" Depends)
    for p in fuse3 libfuse3-3 libxxhash0 liblz4-1 libsqlite3-0 libc6; do
        echo "$deps" | grep -Eq "(^|, )$p( |,|$)" || fail "Depends lacks $p: $deps"
    done
    echo "ok: Depends: $deps"
    status=0
    unshare --mount --propagation private "$0" --in-namespace "$deb" "$work" || status=$?
    exit $status
fi

# ---- inside the private mount namespace ----
deb=$2
work=$3
version=$("$WSYNC_BIN" --version | sed -n 's/^wsync //p')

mkroot() { # a fresh throwaway root at $work/$1/root
    d=$work/$1
    mkdir -p "$d"
    mount -t tmpfs tmpfs "$d"
    mkdir "$d/upper" "$d/work" "$d/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" "$d/root"
    mount --bind /proc "$d/root/proc"
    mount --rbind /dev "$d/root/dev"
    mount -t tmpfs tmpfs "$d/root/tmp"
    cp "$deb" "$d/root/tmp/"
    root=$d/root
}

mkroot a
if chroot "$root" dpkg -s wsync >/dev/null 2>&1; then
    # This machine has wsync installed: make the copy clean (the host keeps it).
    chroot "$root" dpkg --purge wsync >/dev/null 2>&1 || fail "cannot purge wsync in the throwaway root"
    echo "note: this machine has a wsync package; purged in the throwaway root"
fi
[ ! -e "$root/usr/bin/wsync" ] || fail "$root/usr/bin/wsync exists before the install"
out=$(chroot "$root" dpkg -i "/tmp/$(basename "$deb")" 2>&1) || fail "dpkg -i: $out"
chroot "$root" dpkg -s wsync | grep -q '^Status: install ok installed' || fail "dpkg -s: not installed"
got=$(chroot "$root" wsync --version)
[ "$got" = "wsync $version" ] || fail "the installed wsync says '$got', want 'wsync $version'"
[ "$(chroot "$root" sh -c 'command -v wsync')" = /usr/bin/wsync ] || fail "wsync is not /usr/bin/wsync"
for f in /usr/share/man/man1/wsync.1.gz /usr/share/bash-completion/completions/wsync \
    /usr/lib/systemd/user/wsync-mount@.service; do
    [ -f "$root$f" ] || fail "the package did not install $f"
done
grep -q '^ExecStart=/usr/bin/wsync mount -f ' "$root/usr/lib/systemd/user/wsync-mount@.service" ||
    fail "the installed unit does not run /usr/bin/wsync mount -f"
echo "ok: dpkg -i installed $got at /usr/bin/wsync with man page, completion and unit"

# A push into the throwaway root, served by the installed binary.
src=$work/src
mkdir -p "$src/sub"
echo "hello from the build" >"$src/sub/file"
head -c 300000 /dev/urandom >"$src/big"
out=$("$WSYNC_BIN" push --rsh "chroot $root" --wsync-path /usr/bin/wsync "$src" /srv/proj 2>&1) ||
    fail "push into the installed serve: $out"
cmp "$src/sub/file" "$root/srv/proj/sub/file" || fail "sub/file did not arrive"
cmp "$src/big" "$root/srv/proj/big" || fail "big did not arrive"
out=$("$WSYNC_BIN" verify --rsh "chroot $root" --wsync-path /usr/bin/wsync "$src" /srv/proj 2>&1) ||
    fail "verify: $out"
echo "$out" | grep -q identical || fail "verify: $out"
out=$("$WSYNC_BIN" doctor --rsh "chroot $root" --wsync-path /usr/bin/wsync /srv/proj 2>&1) || true
echo "$out" | grep -q "ok    /srv/proj: wsync $version (protocol" ||
    fail "doctor did not see the installed wsync: $out"
echo "ok: push, verify and doctor through the installed wsync serve"

# Declared dependencies are enforced: without libxxhash0 the package does
# not configure.  (A second throwaway root: the first stays as it was.)
mkroot b
chroot "$root" dpkg --remove --force-depends libxxhash0 >/dev/null 2>&1 ||
    fail "could not remove libxxhash0 in the throwaway root"
if out=$(chroot "$root" dpkg -i "/tmp/$(basename "$deb")" 2>&1); then
    fail "dpkg -i succeeded without libxxhash0: $out"
fi
echo "$out" | grep -q "libxxhash0" || fail "dpkg -i failed without naming libxxhash0: $out"
echo "ok: without libxxhash0, dpkg -i refuses: $(echo "$out" | grep -m1 'depends on')"
echo "PASS"
