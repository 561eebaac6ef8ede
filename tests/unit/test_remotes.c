/* test_remotes.c — SRC/.wsync/config: syntax, errors naming file and line, atomic save. */
#include "sync/remotes.h"

#include "tests/lib/harness.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse(const char *text, struct remotes *out, char *err, size_t errsize)
{
    return remotes_parse(text, strlen(text), "cfg", out, err, errsize);
}

START_TEST(parses_every_key_comments_and_spaces)
{
    struct remotes rs;
    char err[1024] = "";
    const char *text = "# top comment\n"
                       "\n"
                       "[remote robot1]\n"
                       "dest = robot1:/home/dev/proj\n"
                       "  rsh   =   ssh -p 2222  \n"
                       "\t# indented comment\n"
                       "wsync-path=/opt/wsync\n"
                       "mode = two-way\n"
                       "[ remote  b ]\r\n"
                       "dest = /abs/b\r\n";
    ck_assert_msg(parse(text, &rs, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(rs.n, 2);
    ck_assert_str_eq(rs.v[0].name, "robot1");
    ck_assert_str_eq(rs.v[0].dest, "robot1:/home/dev/proj");
    ck_assert_str_eq(rs.v[0].rsh, "ssh -p 2222");
    ck_assert_str_eq(rs.v[0].wsync_path, "/opt/wsync");
    ck_assert_int_eq(rs.v[0].mode, REMOTE_MODE_TWO_WAY);
    ck_assert_str_eq(rs.v[1].name, "b");
    ck_assert_str_eq(rs.v[1].dest, "/abs/b");
    ck_assert_ptr_null(rs.v[1].rsh);
    ck_assert_int_eq(rs.v[1].mode, REMOTE_MODE_AUTO); /* no mode line: the default */
    ck_assert_ptr_nonnull(remotes_find(&rs, "b"));
    ck_assert_ptr_null(remotes_find(&rs, "c"));
    remotes_release(&rs);
    ck_assert_int_eq(parse("", &rs, err, sizeof(err)), 0);
    ck_assert_uint_eq(rs.n, 0);
}
END_TEST

struct bad {
    const char *text;
    const char *want; /* the error must contain this */
};

static const struct bad bad[] = {
    {"[remote a]\ndest = /x\nfoo = 1\n", "cfg:3: unknown key 'foo'"},
    {"dest = /x\n", "cfg:1: 'dest' outside a [remote NAME] section"},
    {"[remote a]\n", "cfg:1: remote 'a' has no 'dest"},
    {"\n[remote a]\nrsh = ssh\n[remote b]\ndest = /y\n", "cfg:2: remote 'a' has no 'dest"},
    {"[remote a]\ndest = /x\ndest = /y\n", "cfg:3: 'dest' given twice"},
    {"[remote a]\ndest = /x\n[remote a]\ndest = /y\n", "cfg:3: remote 'a' defined twice"},
    {"[remote a]\ndest = /x\nmode = mirror\n", "cfg:3: unknown mode 'mirror'"},
    {"[remote a]\ndest = /x\nmode = replica\nmode = safe\n", "cfg:4: 'mode' given twice"},
    {"[remote a]\ndest =\n", "cfg:2: empty value for 'dest'"},
    {"[remote a b]\ndest = /x\n", "cfg:1: bad remote name 'a b'"},
    {"[remote -a]\ndest = /x\n", "cfg:1: bad remote name '-a'"},
    {"[remote]\ndest = /x\n", "cfg:1: unknown section '[remote]'"},
    {"[mirror a]\n", "cfg:1: unknown section '[mirror a]'"},
    {"[remote a\n", "cfg:1: section header '[remote a' lacks its ']'"},
    {"[remote a]\ndest /x\n", "cfg:2: expected 'key = value'"},
    {"# ok\n\n\n[remote a]\n\ndest = /x\nbad line", "cfg:7: expected 'key = value'"},
};

START_TEST(bad_syntax_names_file_and_line)
{
    const struct bad *b = &bad[_i];
    struct remotes rs;
    char err[1024] = "";
    ck_assert_int_eq(parse(b->text, &rs, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, b->want), "for %s\nwant: %s\ngot:  %s", b->text, b->want, err);
    ck_assert_uint_eq(rs.n, 0);
}
END_TEST

START_TEST(nul_byte_is_refused)
{
    struct remotes rs;
    char err[256];
    const char text[] = "[remote a]\ndest = /x\0\n";
    ck_assert_int_eq(remotes_parse(text, sizeof(text) - 1, "cfg", &rs, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "cfg:2: a NUL byte"), "%s", err);
}
END_TEST

START_TEST(add_checks_what_the_parser_checks)
{
    struct remotes rs = {0};
    char err[1024];
    struct remote_def d = {.name = "ok", .dest = "/x"};
    ck_assert_int_eq(remotes_add(&rs, &d, err, sizeof(err)), 0);
    ck_assert_int_eq(remotes_add(&rs, &d, err, sizeof(err)), -EEXIST);
    d = (struct remote_def){.name = "bad name", .dest = "/x"};
    ck_assert_int_eq(remotes_add(&rs, &d, err, sizeof(err)), -EINVAL);
    d = (struct remote_def){.name = "nl", .dest = "/x\n[remote evil]"};
    ck_assert_int_eq(remotes_add(&rs, &d, err, sizeof(err)), -EINVAL);
    d = (struct remote_def){.name = "sp", .dest = "/x", .rsh = " ssh"};
    ck_assert_int_eq(remotes_add(&rs, &d, err, sizeof(err)), -EINVAL);
    char name[REMOTE_NAME_MAX + 2];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    d = (struct remote_def){.name = name, .dest = "/x"};
    ck_assert_int_eq(remotes_add(&rs, &d, err, sizeof(err)), -EINVAL);
    name[REMOTE_NAME_MAX] = '\0';
    ck_assert_int_eq(remotes_add(&rs, &d, err, sizeof(err)), 0);
    ck_assert_int_eq(remotes_remove(&rs, "ok"), 0);
    ck_assert_int_eq(remotes_remove(&rs, "ok"), -ENOENT);
    ck_assert_uint_eq(rs.n, 1);
    remotes_release(&rs);
}
END_TEST

START_TEST(save_then_load_round_trips_and_leaves_no_temp)
{
    char dir[] = "/tmp/wsync-remotes-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct remotes rs = {0}, back;
    char err[1024];
    ck_assert_int_eq(remotes_load(dir, &back, err, sizeof(err)), 0); /* no file: empty */
    ck_assert_uint_eq(back.n, 0);
    struct remote_def a = {.name = "a",
                           .dest = "host:/p",
                           .rsh = "nsenter --net=/run/netns/x",
                           .wsync_path = "/bin/wsync",
                           .mode = REMOTE_MODE_SAFE};
    struct remote_def b = {.name = "b.2_x-y", .dest = "/abs"};
    ck_assert_int_eq(remotes_add(&rs, &a, err, sizeof(err)), 0);
    ck_assert_int_eq(remotes_add(&rs, &b, err, sizeof(err)), 0);
    ck_assert_msg(remotes_save(dir, &rs, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(remotes_load(dir, &back, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(back.n, 2);
    ck_assert(remote_def_equal(&back.v[0], &a));
    ck_assert(remote_def_equal(&back.v[1], &b));
    ck_assert(!remote_def_equal(&back.v[0], &b));
    remotes_release(&back);
    remotes_release(&rs);
    ck_assert_int_eq(wm_sh("test $(ls -A '%s' | wc -l) -eq 1", dir), 0); /* config only */
    /* A broken file names its full path. */
    ck_assert_int_eq(wm_sh("printf '[remote a]\\nzap\\n' > '%s/config'", dir), 0);
    ck_assert_int_eq(remotes_load(dir, &back, err, sizeof(err)), -EINVAL);
    char want[128];
    snprintf(want, sizeof(want), "%s/config:2: ", dir);
    ck_assert_msg(strstr(err, want), "%s", err);
    int fd = remotes_lock(dir, err, sizeof(err));
    ck_assert_int_ge(fd, 0);
    remotes_unlock(fd);
    wm_rm_rf(dir);
}
END_TEST

/* auto is the default of a section without `mode =`; a file that says
 * replica (every file `remote add` wrote before auto existed) keeps it;
 * and every mode, auto included, survives a save and a load. */
START_TEST(auto_is_the_default_and_replica_stays_replica)
{
    struct remotes rs, back;
    char err[1024] = "";
    const char *text = "[remote old]\ndest = /o\nmode = replica\n"
                       "[remote new]\ndest = /n\n"
                       "[remote said]\ndest = /s\nmode = auto\n";
    ck_assert_msg(parse(text, &rs, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(rs.n, 3);
    ck_assert_int_eq(rs.v[0].mode, REMOTE_MODE_REPLICA);
    ck_assert_int_eq(rs.v[1].mode, REMOTE_MODE_AUTO);
    ck_assert_int_eq(rs.v[2].mode, REMOTE_MODE_AUTO);
    struct remote_def tw = {.name = "tw", .dest = "/t", .mode = REMOTE_MODE_TWO_WAY};
    ck_assert_int_eq(remotes_add(&rs, &tw, err, sizeof(err)), 0);
    struct remote_def odd = {.name = "odd", .dest = "/b", .mode = (enum remote_mode)99};
    ck_assert_int_eq(remotes_add(&rs, &odd, err, sizeof(err)), -EINVAL);
    char dir[] = "/tmp/wsync-remotes-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_msg(remotes_save(dir, &rs, err, sizeof(err)) == 0, "%s", err);
    /* Saved explicitly: the file does not depend on the default. */
    ck_assert_int_eq(wm_sh("grep -c '^mode = auto$' '%s/config' | grep -qx 2", dir), 0);
    ck_assert_int_eq(wm_sh("grep -qx 'mode = replica' '%s/config'", dir), 0);
    ck_assert_msg(remotes_load(dir, &back, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(back.n, 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(remote_def_equal(&back.v[i], &rs.v[i]), "remote %zu changed", i);
    ck_assert(!remote_def_equal(&back.v[0], &back.v[1])); /* mode is compared */
    remotes_release(&back);
    remotes_release(&rs);
    wm_rm_rf(dir);
    /* An unknown mode names the choices, auto among them. */
    ck_assert_int_eq(parse("[remote a]\ndest = /x\nmode = automatic\n", &rs, err, sizeof(err)),
                     -EINVAL);
    ck_assert_msg(strstr(err, "cfg:3: unknown mode 'automatic' (auto, replica"), "%s", err);
}
END_TEST

START_TEST(modes_parse_and_name)
{
    enum remote_mode m;
    ck_assert_int_eq(remote_mode_parse("replica", &m), 0);
    ck_assert_int_eq(m, REMOTE_MODE_REPLICA);
    ck_assert_int_eq(remote_mode_parse("safe", &m), 0);
    ck_assert_int_eq(remote_mode_parse("two-way", &m), 0);
    ck_assert_str_eq(remote_mode_name(m), "two-way");
    ck_assert_int_eq(remote_mode_parse("auto", &m), 0);
    ck_assert_int_eq(m, REMOTE_MODE_AUTO);
    ck_assert_str_eq(remote_mode_name(m), "auto");
    ck_assert_int_eq(REMOTE_MODE_DEFAULT, REMOTE_MODE_AUTO);
    ck_assert_int_eq(remote_mode_parse("Replica", &m), -EINVAL);
    ck_assert_int_eq(remote_mode_parse("", &m), -EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("remotes");
    TCase *tc = tcase_create("remotes");
    tcase_add_test(tc, parses_every_key_comments_and_spaces);
    tcase_add_loop_test(tc, bad_syntax_names_file_and_line, 0, sizeof(bad) / sizeof(bad[0]));
    tcase_add_test(tc, nul_byte_is_refused);
    tcase_add_test(tc, add_checks_what_the_parser_checks);
    tcase_add_test(tc, save_then_load_round_trips_and_leaves_no_temp);
    tcase_add_test(tc, modes_parse_and_name);
    tcase_add_test(tc, auto_is_the_default_and_replica_stays_replica);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
