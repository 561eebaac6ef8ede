/*
 * test_doctor.c — `wsync doctor` against real and fake far sides: a missing
 * FUSE device (the --fuse-device test option), a far side that speaks
 * another protocol version (a script given as --wsync-path that answers
 * with a hand-made HELLO), one too old to know --probe, a skewed clock, a
 * stale mount, a non-root user without user_allow_other; and push naming
 * both versions against the same wrong far side.
 */
#include "sync/message.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct wmount m;
static char version[64]; /* of the binary under test */

static void setup(void)
{
    wm_prepare(&m);
    char *out = wm_sh_out(NULL, "'%s' --version", wm_bin());
    ck_assert_msg(out && sscanf(out, "wsync %63s", version) == 1, "--version: %s", out);
    free(out);
}

static void teardown(void)
{
    wm_teardown(&m);
}

#define ASSERT_HAS(text, needle)                                                                   \
    ck_assert_msg(strstr((text), (needle)), "output lacks '%s':\n%s", (needle), (text))

/* A far side that answers any HELLO with `hello` (a file of frames) and
 * writes `stderr_text` to its stderr; it waits for the end of its stdin. */
static void fake_far_side(char *script, size_t size, const struct msg_buf *hello,
                          const char *stderr_text)
{
    char frames[PATH_MAX + 16];
    snprintf(frames, sizeof(frames), "%s/hello.bin", m.root);
    FILE *f = fopen(frames, "w");
    ck_assert_ptr_nonnull(f);
    if (hello)
        ck_assert_uint_eq(fwrite(hello->buf, 1, hello->len, f), hello->len);
    fclose(f);
    snprintf(script, size, "%s/fake-wsync", m.root);
    f = fopen(script, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "#!/bin/sh\nprintf '%%s\\n' '%s' >&2\ncat '%s'\nexec cat >/dev/null\n", stderr_text,
            frames);
    fclose(f);
    chmod(script, 0755);
}

/* A receiver's HELLO from tool version `tool`, speaking protocol `proto`. */
static void receiver_hello(struct msg_buf *b, const char *tool, unsigned proto)
{
    char err[256];
    struct msg h = {.type = MSG_HELLO, .hello = {.role = MSG_ROLE_RECEIVER, .tool_version = tool}};
    ck_assert_msg(msg_encode(&h, b, err, sizeof(err)) > 0, "encode: %s", err);
    unsigned char *v = memmem(b->buf, b->len, "WSYNC", 5); /* u16 version follows */
    ck_assert_ptr_nonnull(v);
    v[5] = (unsigned char)(proto & 0xff);
    v[6] = (unsigned char)(proto >> 8);
}

START_TEST(missing_fuse_device_is_a_failure_with_a_fix)
{
    char *out;
    int st = wm_wsync(&out, "doctor --fuse-device %s/no-fuse", m.root);
    ck_assert_msg(st == 1, "exit %d:\n%s", st, out);
    ASSERT_HAS(out, "FAIL  ");
    ASSERT_HAS(out, "/no-fuse does not exist");
    ASSERT_HAS(out, "fix: modprobe fuse");
    free(out);
    /* The same through the environment variable mount also reads. */
    out = wm_sh_out(&st, "WSYNC_FUSE_DEVICE=%s/no-fuse '%s' doctor --json", m.root, wm_bin());
    ck_assert_msg(st == 1, "exit %d:\n%s", st, out);
    ASSERT_HAS(out, "\"ok\":false");
    ASSERT_HAS(out, "{\"check\":\"fuse-device\",\"status\":\"fail\"");
    free(out);
}
END_TEST

START_TEST(healthy_local_far_side)
{
    char dest[PATH_MAX + 16], *out;
    snprintf(dest, sizeof(dest), "%s/replica", m.root);
    int st = wm_wsync(&out, "doctor --json --src %s --mnt %s %s", m.src, m.mnt, dest);
    ck_assert_msg(strstr(out, "{\"check\":\"fuse-device\",\"status\":\"ok\""),
                  "this test needs a usable /dev/fuse:\n%s", out);
    ck_assert_msg(st == 0, "exit %d:\n%s", st, out);
    char want[256];
    snprintf(want, sizeof(want), "wsync %s (protocol %u)", version, WIRE_PROTOCOL_VERSION);
    ASSERT_HAS(out, "{\"check\":\"far-version\",\"status\":\"ok\"");
    ASSERT_HAS(out, want);
    ASSERT_HAS(out, "does not exist yet; push creates it");
    ASSERT_HAS(out, "{\"check\":\"clock-skew\",\"status\":\"ok\"");
    ASSERT_HAS(out, "{\"check\":\"mount-point\",\"status\":\"ok\"");
    /* The transport: ok where the kernel has FUSE over io_uring (as root,
     * mount turns its switch on), a warning naming the kernel otherwise. */
    if (access("/sys/module/fuse/parameters/enable_uring", F_OK) == 0)
        ASSERT_HAS(out, "{\"check\":\"io-uring\",\"status\":\"ok\"");
    else
        ASSERT_HAS(out, "a Linux 6.14 or later kernel");
    ck_assert_msg(access(dest, F_OK) != 0, "doctor created the far side's ROOT");
    free(out);
}
END_TEST

START_TEST(wrong_far_side_version_names_both)
{
    struct msg_buf b = {0};
    receiver_hello(&b, "9.9.9", 99);
    char script[PATH_MAX + 16], dest[PATH_MAX + 16], *out;
    fake_far_side(script, sizeof(script), &b, "");
    msg_buf_release(&b);
    snprintf(dest, sizeof(dest), "%s/replica", m.root);
    int st = wm_wsync(&out, "doctor --wsync-path %s %s", script, dest);
    ck_assert_msg(st == 1, "exit %d:\n%s", st, out);
    char ours[128];
    snprintf(ours, sizeof(ours), "version %u (wsync %s)", WIRE_PROTOCOL_VERSION, version);
    ASSERT_HAS(out, "FAIL  ");
    ASSERT_HAS(out, "protocol version mismatch");
    ASSERT_HAS(out, "version 99 (wsync 9.9.9)");
    ASSERT_HAS(out, ours);
    ASSERT_HAS(out, "fix: install wsync");
    free(out);

    /* push meets the same far side with the same sentence. */
    out = wm_sh_out(&st, "'%s' push --wsync-path %s %s %s 2>&1", wm_bin(), script, m.src, dest);
    ck_assert_msg(st == 1, "push exit %d:\n%s", st, out);
    ASSERT_HAS(out, "version 99 (wsync 9.9.9)");
    ASSERT_HAS(out, ours);
    free(out);
}
END_TEST

START_TEST(same_protocol_other_release_is_a_warning)
{
    struct msg_buf b = {0};
    receiver_hello(&b, "0.0.1-old", WIRE_PROTOCOL_VERSION);
    char script[PATH_MAX + 16], *out;
    /* A clock an hour behind, and a full disk. */
    fake_far_side(script, sizeof(script), &b,
                  "wsync-probe: version=0.0.1-old protocol=1 time_ns=1 root=dir avail=1024 "
                  "writable=1");
    msg_buf_release(&b);
    int st = wm_wsync(&out, "doctor --wsync-path %s /srv/proj", script);
    ck_assert_msg(st == 1, "exit %d:\n%s", st, out); /* the full disk fails */
    ASSERT_HAS(out, "warn  /srv/proj: wsync 0.0.1-old there");
    ASSERT_HAS(out, "clock is");
    ASSERT_HAS(out, "behind ours");
    ASSERT_HAS(out, "timedatectl set-ntp true");
    ASSERT_HAS(out, "FAIL  0.0 MiB free at /srv/proj");
    free(out);
}
END_TEST

START_TEST(far_side_without_probe_or_wsync)
{
    char script[PATH_MAX + 16], dest[PATH_MAX + 16], *out;
    /* What an older wsync says, and exits 2 without reading anything. */
    snprintf(script, sizeof(script), "%s/old-wsync", m.root);
    FILE *f = fopen(script, "w");
    ck_assert_ptr_nonnull(f);
    fputs("#!/bin/sh\necho \"wsync: unrecognized option '--probe'\" >&2\nexit 2\n", f);
    fclose(f);
    chmod(script, 0755);
    snprintf(dest, sizeof(dest), "%s/replica", m.root);
    int st = wm_wsync(&out, "doctor --wsync-path %s %s", script, dest);
    ck_assert_msg(st == 1, "exit %d:\n%s", st, out);
    ASSERT_HAS(out, "unrecognized option '--probe'");
    ASSERT_HAS(out, "older than this one (it lacks 'serve --probe')");
    ASSERT_HAS(out, "fix: install this wsync");
    free(out);

    st = wm_wsync(&out, "doctor --wsync-path %s/missing-wsync %s", m.root, dest);
    ck_assert_msg(st == 1, "exit %d:\n%s", st, out);
    ASSERT_HAS(out, "cannot run");
    ASSERT_HAS(out, "or give --wsync-path");
    free(out);
}
END_TEST

START_TEST(stale_mount_is_named_with_its_fix)
{
    wm_setup(&m, "");
    char *out = wm_sh_out(NULL, "'%s' status --json '%s'", wm_bin(), m.mnt);
    char *p = strstr(out, "\"pid\":");
    pid_t pid = p ? (pid_t)atoi(p + 6) : 0;
    free(out);
    ck_assert_int_gt(pid, 1);
    ck_assert_int_eq(kill(pid, SIGKILL), 0); /* the daemon this test started */
    for (int i = 0; i < 5000 && kill(pid, 0) == 0; i++)
        usleep(1000);
    int st = wm_wsync(&out, "doctor --mnt %s", m.mnt);
    ck_assert_msg(st == 1, "exit %d:\n%s", st, out);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "fix: wsync unmount %s", m.mnt);
    ASSERT_HAS(out, "is a stale mount");
    ASSERT_HAS(out, want);
    free(out);
    /* wm_teardown's unmount removes the stale mount. */
}
END_TEST

START_TEST(non_root_without_user_allow_other_is_warned)
{
    char conf[PATH_MAX + 16], *out;
    snprintf(conf, sizeof(conf), "%s/fuse.conf", m.root);
    wm_write(conf, "# comment\n#user_allow_other\nmount_max = 1000\n");
    chmod(m.root, 0755);
    chmod(conf, 0644);
    int st;
    out = wm_sh_out(&st,
                    "cd / && setpriv --reuid=65534 --regid=65534 --clear-groups '%s' doctor "
                    "--fuse-conf %s 2>&1",
                    wm_bin(), conf);
    ASSERT_HAS(out, "lacks user_allow_other");
    ASSERT_HAS(out, "fix: echo user_allow_other | sudo tee -a");
    free(out);
    wm_write(conf, "user_allow_other\n");
    out = wm_sh_out(&st,
                    "cd / && setpriv --reuid=65534 --regid=65534 --clear-groups '%s' doctor "
                    "--fuse-conf %s 2>&1",
                    wm_bin(), conf);
    ASSERT_HAS(out, "has user_allow_other");
    free(out);
}
END_TEST

START_TEST(usage_errors_exit_2)
{
    char *out;
    int st = wm_wsync(&out, "doctor --bogus");
    ck_assert_int_eq(st, 2);
    free(out);
    st = wm_wsync(&out, "doctor --timeout nope");
    ck_assert_int_eq(st, 2);
    ASSERT_HAS(out, "--timeout wants seconds");
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("doctor");
    TCase *tc = tcase_create("doctor");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, missing_fuse_device_is_a_failure_with_a_fix);
    tcase_add_test(tc, healthy_local_far_side);
    tcase_add_test(tc, wrong_far_side_version_names_both);
    tcase_add_test(tc, same_protocol_other_release_is_a_warning);
    tcase_add_test(tc, far_side_without_probe_or_wsync);
    tcase_add_test(tc, stale_mount_is_named_with_its_fix);
    tcase_add_test(tc, non_root_without_user_allow_other_is_warned);
    tcase_add_test(tc, usage_errors_exit_2);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
