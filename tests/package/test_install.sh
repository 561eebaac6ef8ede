#!/bin/sh
# test_install.sh — `meson install` into a temporary DESTDIR, then use what
# it installed: the binary (--version, every command's --help), the man page
# (renders with `man -l` without warnings, names every command and every
# long option of every --help), the bash completion (parses with `bash -n`,
# completes commands and options, knows every long option), and the systemd
# user unit (systemd-analyze verify).  Parts whose tool is missing are
# skipped with a note; the test skips (77) only without meson.
#
# Env (set by meson): WSYNC_BIN, WSYNC_BUILD_ROOT.
set -eu
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
command -v meson >/dev/null 2>&1 || skip "meson is not installed"
: "${WSYNC_BIN:?}" "${WSYNC_BUILD_ROOT:?}"

dest=$(mktemp -d "${TMPDIR:-/tmp}/wsync-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT INT TERM
meson install -C "$WSYNC_BUILD_ROOT" --destdir "$dest" --no-rebuild --quiet >"$dest.log" 2>&1 ||
    { cat "$dest.log"; rm -f "$dest.log"; fail "meson install failed"; }
rm -f "$dest.log"

bin=$(find "$dest" -path '*/bin/wsync' -type f)
[ -x "$bin" ] || fail "no bin/wsync under $dest"
prefix=${bin%/bin/wsync}
prefix=${prefix#"$dest"}
man=$dest$prefix/share/man/man1/wsync.1
completion=$dest$prefix/share/bash-completion/completions/wsync
unit=$(find "$dest" -name 'wsync-mount@.service' -type f)
for f in "$man" "$completion" "$unit"; do
    [ -f "$f" ] || fail "meson install did not install $f"
done
echo "installed under $dest$prefix"

# The installed binary.
want=$("$WSYNC_BIN" --version)
got=$("$bin" --version)
[ "$got" = "$want" ] || fail "installed --version says '$got', the build says '$want'"
case $got in "wsync "[0-9]*) ;; *) fail "--version printed '$got'" ;; esac
commands=$("$bin" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p')
[ -n "$commands" ] || fail "wsync --help lists no commands"
for c in $commands; do
    out=$("$bin" "$c" --help) || fail "wsync $c --help exited $?"
    echo "$out" | grep -q "^usage: wsync $c" || fail "wsync $c --help has no usage line"
    echo "$out" | grep -q "^Examples\{0,1\}" || fail "wsync $c --help has no example"
done
echo "ok: --version and --help of: $(echo $commands)"

# Usage errors: exit 2, one line naming the cause, and where to look.
usage_error() { # expected-text args...
    want=$1
    shift
    st=0
    err=$("$bin" "$@" 2>&1 >/dev/null) || st=$?
    [ "$st" = 2 ] || fail "wsync $*: exit $st, want 2 ($err)"
    echo "$err" | grep -q -- "$want" || fail "wsync $*: '$err' lacks '$want'"
}
for c in $commands; do
    usage_error "Try 'wsync $c --help'" "$c" --no-such-option
done
usage_error "unknown command" frobnicate
usage_error "is an option of push, not verify" verify --dry-run /a /b
usage_error "timeout wants seconds" unmount --timeout soon /mnt
echo "ok: usage errors exit 2 and say why"

# Every command and every long option of its --help, in the man page and
# the completion (the man page's own text is checked against the help by
# reading; this catches what is missing).  (Roff writes --opt as \-\-opt.)
for c in $commands; do
    grep -q "^\.SS \"wsync $c" "$man" || fail "the man page has no section for '$c'"
    # The option lines of --help: "  -x, --opt ..." or "      --opt ...".
    for o in $("$bin" "$c" --help | sed -n 's/^ *\(-[a-zA-Z], \)\{0,1\}\(--[a-z][a-z-]*\).*/\2/p'); do
        roff=$(echo "$o" | sed 's/-/\\\\-/g')
        grep -q -- "$roff" "$man" || fail "the man page lacks $o (of wsync $c)"
        case $o in --fuse-device | --fuse-conf) ;; # test-only options: not offered
        *) grep -q -- "$o" "$completion" || fail "the completion lacks $o (of wsync $c)" ;;
        esac
    done
done
grep -q '@VERSION@' "$man" && fail "the installed man page still says @VERSION@"
echo "ok: the man page and the completion cover every command and long option"

if command -v man >/dev/null 2>&1; then
    err=$(MANWIDTH=80 man --warnings -l "$man" 2>&1 >/dev/null) || fail "man -l failed: $err"
    [ -z "$err" ] || fail "man -l warns: $err"
    MANWIDTH=80 man -l "$man" 2>/dev/null | grep -q "EXIT STATUS" || fail "man -l renders no EXIT STATUS"
    echo "ok: man -l renders it without warnings"
else
    echo "note: man is not installed; rendering not checked"
fi

# The completion: valid bash, and it completes.
bash -n "$completion" || fail "bash -n $completion"
complete_words() { # words... (the last one is being completed)
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _wsync; echo "${COMPREPLY[*]}"' \
        _ "$completion" "$@"
}
[ "$(complete_words wsync pu)" = "push" ] || fail "'wsync pu<TAB>' gave '$(complete_words wsync pu)'"
[ "$(complete_words wsync doctor --ws)" = "--wsync-path" ] || fail "'wsync doctor --ws<TAB>'"
case " $(complete_words wsync mount --mi) " in *" --mirror "*) ;; *) fail "'wsync mount --mi<TAB>'" ;; esac
[ "$(complete_words wsync remote a)" = "add" ] || fail "'wsync remote a<TAB>'"
echo "ok: the completion parses and completes"

# The unit: systemd's own checker, with the binary where DESTDIR put it.
grep -q "^ExecStart=$prefix/bin/wsync mount -f " "$unit" || fail "the unit's ExecStart is not '$prefix/bin/wsync mount -f'"
if command -v systemd-analyze >/dev/null 2>&1; then
    check=$dest/unit-check
    mkdir -m 700 "$check"
    sed "s|$prefix/bin/wsync|$bin|g" "$unit" >"$check/wsync-mount@test.service"
    out=$(XDG_RUNTIME_DIR=$check systemd-analyze verify --man=no --user \
        "$check/wsync-mount@test.service" 2>&1) || fail "systemd-analyze verify: $out"
    echo "ok: systemd-analyze verify accepts the unit"
else
    echo "note: systemd-analyze is not installed; the unit is not verified"
fi
echo "PASS"
