/*
 * test_scan.c — the restart scan's ordered merge: index rows in path byte
 * order (scan_rows.h), directory listings sorted the same way
 * (dir_listing.h), and indexer_scan over trees whose names sort
 * differently under strcmp than under a locale or than in tree order
 * ("a-b" and "a.c" fall between "a" and "a/x"), deep trees, a directory
 * replaced by a file of the same name and back, and ignored directories.
 * Every scan is checked against a from-scratch root and a re-scan.
 */
#include "sync/dir_listing.h"
#include "sync/index.h"
#include "sync/indexer.h"
#include "sync/manifest.h"
#include "sync/scan_rows.h"
#include "sync/tree_root.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- scan_rows on its own ---- */

/* Byte order: ' ' 0x20 < '-' 0x2d < '.' 0x2e < '/' 0x2f < '0' < 'B' < 'a'
 * < 0xc3 ('é' in UTF-8).  A locale would put "B" after "a" and "é" next
 * to "e"; tree order would put "a/x" right after "a". */
static const char *const paths[] = {
    "B",   "a",     "a b",        "a b/c", "a-b", "a.c",      "a/x",        "a/x-1",
    "a/y", "a/y/z", "a/y/z/deep", "a0",    "e",   "\xc3\xa9", "\xc3\xa9/f",
};
#define NPATHS (sizeof(paths) / sizeof(paths[0]))

static void add_all_shuffled(struct scan_rows *s)
{
    /* A fixed permutation: the load order does not matter. */
    for (size_t k = 0; k < NPATHS; k++) {
        size_t i = (k * 7 + 3) % NPATHS;
        struct index_file f = {.path = (char *)paths[i], .type = S_IFREG};
        ck_assert_int_eq(scan_rows_add(s, &f), 0);
    }
    ck_assert_int_eq(scan_rows_sort(s), 0);
}

/* The names of dir's children as the merge sees them, joined by '|'. */
static void children(const struct scan_rows *s, const char *dir, char *out, size_t size)
{
    size_t lo, hi, dirlen = strlen(dir), pre = dirlen ? dirlen + 1 : 0;
    scan_rows_below(s, dir, dirlen, &lo, &hi);
    out[0] = '\0';
    for (size_t i = scan_rows_next_child(s, lo, hi, pre); i < hi;
         i = scan_rows_next_child(s, i + 1, hi, pre)) {
        if (out[0])
            strncat(out, "|", size - strlen(out) - 1);
        strncat(out, s->v[i].f.path + pre, size - strlen(out) - 1);
    }
}

START_TEST(rows_sort_by_bytes_and_skip_subtrees)
{
    setlocale(LC_ALL, "C.UTF-8"); /* strcmp must not care */
    struct scan_rows s = {0};
    add_all_shuffled(&s);
    ck_assert_uint_eq(s.n, NPATHS);
    for (size_t i = 0; i < NPATHS; i++)
        ck_assert_str_eq(s.v[i].f.path, paths[i]);
    char got[256];
    children(&s, "", got, sizeof(got));
    ck_assert_str_eq(got, "B|a|a b|a-b|a.c|a0|e|\xc3\xa9");
    children(&s, "a", got, sizeof(got));
    ck_assert_str_eq(got, "x|x-1|y");
    children(&s, "a/y", got, sizeof(got));
    ck_assert_str_eq(got, "z");
    children(&s, "a/x", got, sizeof(got));
    ck_assert_str_eq(got, "");
    children(&s, "\xc3\xa9", got, sizeof(got));
    ck_assert_str_eq(got, "f");
    /* Below "a" is exactly "a/..." ("a b", "a-b", "a.c" are not). */
    size_t lo, hi;
    scan_rows_below(&s, "a", 1, &lo, &hi);
    ck_assert_str_eq(s.v[lo].f.path, "a/x");
    ck_assert_str_eq(s.v[hi - 1].f.path, "a/y/z/deep");
    ck_assert_uint_eq(hi - lo, 5);
    ck_assert_ptr_nonnull(scan_rows_find(&s, "a.c"));
    ck_assert_ptr_nonnull(scan_rows_find(&s, "a/y/z/deep"));
    ck_assert_ptr_null(scan_rows_find(&s, "a/y/"));
    ck_assert_ptr_null(scan_rows_find(&s, "a/"));
    ck_assert_ptr_null(scan_rows_find(&s, "zz"));
    scan_rows_free(&s);
    /* A duplicate path is refused, not merged twice. */
    struct index_file f = {.path = "x", .type = S_IFREG};
    ck_assert_int_eq(scan_rows_add(&s, &f), 0);
    f.path = "a";
    ck_assert_int_eq(scan_rows_add(&s, &f), 0);
    f.path = "x";
    ck_assert_int_eq(scan_rows_add(&s, &f), 0);
    ck_assert_int_eq(scan_rows_sort(&s), -EEXIST);
    scan_rows_free(&s);
}
END_TEST

/* ---- a real tree ---- */

static char root[PATH_MAX], state[PATH_MAX + 16];
static struct index *ix;

static void setup(void)
{
    snprintf(root, sizeof(root), "/tmp/wsync-scan-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    snprintf(state, sizeof(state), "%s/.wsync", root);
    ck_assert_int_eq(mkdir(state, 0700), 0);
    char err[512];
    ck_assert_msg(index_open(-1, state, false, &ix, err, sizeof(err)) == 0, "%s", err);
}

static void teardown(void)
{
    index_close(ix);
    wm_rm_rf(root);
}

static char *at(const char *rel)
{
    static char p[PATH_MAX + 4200 + 2];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    return p;
}

static void put(const char *rel, const char *data)
{
    wm_write(at(rel), data);
}

static void dir(const char *rel)
{
    ck_assert_msg(mkdir(at(rel), 0755) == 0, "mkdir %s", rel);
}

/* indexer_scan, then: the index's root equals a from-scratch root, and a
 * second scan finds nothing to do. */
static struct indexer_counts scan_and_check(void)
{
    struct indexer *in;
    char err[512];
    ck_assert_msg(indexer_new(root, ix, &in, err, sizeof(err)) == 0, "%s", err);
    struct indexer_counts c = {0}, again = {0};
    ck_assert_int_eq(indexer_scan(in, &c), 0);
    struct content_id a, b;
    ck_assert_int_eq(tree_root_from_index(ix, &a), 0);
    ck_assert_int_eq(tree_root_from_disk(root, indexer_excludes, in, &b), 0);
    ck_assert_msg(content_id_eq(&a, &b), "index root differs from a fresh root");
    ck_assert_int_eq(indexer_scan(in, &again), 0);
    ck_assert_uint_eq(again.hashed, 0);
    ck_assert_uint_eq(again.added + again.modified + again.deleted, 0);
    ck_assert_uint_eq(again.scanned, c.scanned);
    indexer_free(in);
    return c;
}

static bool indexed(const char *path)
{
    struct index_file f;
    if (index_get(ix, path, &f) != 0)
        return false;
    index_file_release(&f);
    return true;
}

static int count_rows(const struct index_file *f, void *arg)
{
    (void)f;
    (*(size_t *)arg)++;
    return 0;
}

static size_t rows_in_index(void)
{
    size_t n = 0;
    ck_assert_int_eq(index_foreach(ix, "", count_rows, &n), 0);
    return n;
}

struct journal_probe {
    const char *kind, *path;
    bool found;
};

static int probe_entry(uint64_t seq, const char *kind, const char *path, void *arg)
{
    (void)seq;
    struct journal_probe *p = arg;
    if (strcmp(kind, p->kind) == 0 && strcmp(path, p->path) == 0)
        p->found = true;
    return 0;
}

static bool journal_has(const char *kind, const char *path)
{
    struct journal_probe p = {kind, path, false};
    ck_assert_int_eq(index_journal_since(ix, 0, probe_entry, &p), 0);
    return p.found;
}

START_TEST(scan_merges_names_that_sort_apart)
{
    put(".wsyncrules", "[ignore]\nign/\n*.tmp\n");
    dir("a");
    put("a/x", "x");
    put("a/x-1", "x-1");
    dir("a/y");
    put("a/y/z", "z");
    put("a b", "space");
    put("a-b", "dash");
    put("a.c", "dot");
    put("a0", "zero");
    put("B", "upper");
    put("e", "e");
    dir("\xc3\xa9");
    put("\xc3\xa9/f", "accent");
    dir("ign");
    put("ign/kept-out", "never indexed");
    put("a/y/t.tmp", "ignored file");
    /* Big enough for the stat helper to split it. */
    dir("many");
    for (int i = 0; i < 300; i++) {
        char rel[32];
        snprintf(rel, sizeof(rel), "many/f%03d", i);
        put(rel, rel);
    }
    /* Deeper than any fixed buffer would like. */
    char deep[4096] = "d";
    dir(deep);
    for (int i = 0; i < 60; i++) {
        strcat(deep, "/dd");
        dir(deep);
    }
    char leaf[4200];
    snprintf(leaf, sizeof(leaf), "%s/leaf", deep);
    put(leaf, "leaf");

    struct indexer_counts c = scan_and_check();
    /* 11 files (rules included), 300 in many/, the leaf; a, a/y, é, many,
     * d and 60 directories below it. */
    ck_assert_uint_eq(c.hashed, 11 + 300 + 1);
    ck_assert_uint_eq(c.added, 11 + 300 + 1 + 5 + 60);
    ck_assert_uint_eq(c.deleted, 0);
    ck_assert_uint_eq(rows_in_index(), c.added);
    ck_assert(!indexed("ign") && !indexed("ign/kept-out") && !indexed("a/y/t.tmp"));
    ck_assert(indexed(leaf));

    /* Offline edits: a directory becomes a file of the same name, a file
     * becomes a directory, one deep file changes, one appears, one goes. */
    wm_rm_rf(at("a"));
    put("a", "now a file");
    ck_assert_int_eq(unlink(at("B")), 0);
    dir("B");
    put("B/inside", "in");
    put(leaf, "leaf, changed");
    snprintf(leaf, sizeof(leaf), "%s/new", deep);
    put(leaf, "new");
    ck_assert_int_eq(unlink(at("many/f150")), 0);
    c = scan_and_check();
    ck_assert_uint_eq(c.hashed, 4);   /* a, B/inside, leaf, new */
    ck_assert_uint_eq(c.modified, 3); /* a, B (types changed), leaf */
    ck_assert_uint_eq(c.added, 2);    /* B/inside, new */
    /* a/x, a/x-1, a/y (with a/y/z), many/f150: the topmost row of each. */
    ck_assert_uint_eq(c.deleted, 4);
    ck_assert(!indexed("a/x") && !indexed("a/y/z") && indexed("a") && indexed("a-b"));
    ck_assert(indexed("a b") && indexed("a.c") && indexed("B/inside"));
    ck_assert(journal_has("delete", "a/y") && !journal_has("delete", "a/y/z"));

    /* And back: the file "a" becomes a directory again; rules now ignore
     * a directory that was indexed. */
    ck_assert_int_eq(unlink(at("a")), 0);
    dir("a");
    put("a/back", "back");
    put(".wsyncrules", "[ignore]\nign/\n*.tmp\nmany/\n");
    c = scan_and_check();
    ck_assert_uint_eq(c.hashed, 2);  /* .wsyncrules, a/back */
    ck_assert_uint_eq(c.deleted, 1); /* many, with everything in it */
    ck_assert(indexed("a/back") && !indexed("many") && !indexed("many/f000"));
    ck_assert(journal_has("delete", "many") && !journal_has("delete", "many/f000"));
}
END_TEST

/* A touch or chmod re-hashes the file but keeps its row's content: the
 * stat fields move, the chunk rows stay, nothing is journalled as a
 * change.  A directory that becomes an empty file is a new file, not a
 * touch of the directory's row. */
START_TEST(touch_moves_the_stat_and_keeps_the_chunks)
{
    put("f", "some content that makes a chunk");
    dir("d");
    scan_and_check();
    struct index_file before, after;
    ck_assert_int_eq(index_get(ix, "f", &before), 0);
    struct timespec t[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1600000000, .tv_nsec = 5}};
    ck_assert_int_eq(utimensat(AT_FDCWD, at("f"), t, 0), 0);
    ck_assert_int_eq(chmod(at("f"), 0600), 0);
    ck_assert_int_eq(rmdir(at("d")), 0);
    put("d", "");
    struct indexer_counts c = scan_and_check();
    ck_assert_uint_eq(c.hashed, 2);
    ck_assert_uint_eq(c.modified, 1); /* d, a directory no more */
    ck_assert_int_eq(index_get(ix, "f", &after), 0);
    ck_assert_int_eq(after.mtime_ns, 1600000000000000005LL);
    ck_assert_uint_eq(after.mode, 0600);
    ck_assert(content_id_eq(&after.id, &before.id));
    ck_assert_uint_eq(after.seq, before.seq);
    struct chunk *chunks = NULL;
    size_t n = 0;
    ck_assert_int_eq(index_get_chunks(ix, "f", &chunks, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(chunks[0].len, strlen("some content that makes a chunk"));
    free(chunks);
    index_file_release(&before);
    index_file_release(&after);
    struct index_file d;
    ck_assert_int_eq(index_get(ix, "d", &d), 0);
    ck_assert_uint_eq(d.type, S_IFREG);
    index_file_release(&d);
}
END_TEST

/* indexer_scan_manifest: the manifest of the index as the scan left it,
 * whether the scan wrote (then the index is read again) or not (then the
 * scan's own rows are used). */
static void assert_scan_manifest(uint64_t want_written)
{
    char err[512];
    struct indexer *in;
    ck_assert_msg(indexer_new(root, ix, &in, err, sizeof(err)) == 0, "%s", err);
    struct indexer_counts c = {0};
    struct manifest *got, *want;
    ck_assert_int_eq(indexer_scan_manifest(in, 0777, &c, &got), 0);
    indexer_free(in);
    ck_assert_uint_eq(c.written, want_written);
    ck_assert_int_eq(manifest_build(ix, 0777, &want), 0);
    ck_assert_uint_eq(manifest_count(got), manifest_count(want));
    ck_assert(content_id_eq(manifest_digest(got), manifest_digest(want)));
    manifest_free(got);
    manifest_free(want);
}

START_TEST(scan_manifest_matches_the_index)
{
    dir("d");
    put("d/a", "a");
    put("b", "b");
    assert_scan_manifest(3); /* d, d/a, b */
    assert_scan_manifest(0); /* nothing changed: from the rows */
    struct timespec t[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1600000000}};
    ck_assert_int_eq(utimensat(AT_FDCWD, at("d/a"), t, 0), 0);
    ck_assert_int_eq(unlink(at("b")), 0);
    assert_scan_manifest(2); /* the touch, the delete */
    assert_scan_manifest(0);
}
END_TEST

START_TEST(listing_is_strcmp_order_and_stats_every_entry)
{
    const char *names[] = {"b", "B", "a-b", "a", "a.c", "\xc3\xa9", "e", "_", "0"};
    size_t n = sizeof(names) / sizeof(names[0]);
    for (size_t i = 0; i < n; i++)
        put(names[i], names[i]);
    for (int i = 0; i < 100; i++) {
        char rel[16];
        snprintf(rel, sizeof(rel), "m%02d", i);
        dir(rel);
    }
    struct stat_helper *h = stat_helper_start();
    for (int pass = 0; pass < 2; pass++) {
        int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        struct dir_listing l;
        ck_assert_int_eq(dir_listing_read(fd, ".wsync", &l), 0);
        ck_assert_uint_eq(l.n, n + 100);
        dir_listing_stat(fd, &l, pass ? h : NULL);
        for (size_t i = 0; i < l.n; i++) {
            ck_assert_int_eq(l.v[i].err, 0);
            ck_assert(i == 0 || strcmp(l.v[i - 1].name, l.v[i].name) < 0);
            bool is_m = l.v[i].name[0] == 'm';
            ck_assert(is_m ? S_ISDIR(l.v[i].st.st_mode) : S_ISREG(l.v[i].st.st_mode));
        }
        ck_assert_str_eq(l.v[0].name, "0");
        ck_assert_str_eq(l.v[l.n - 1].name, "\xc3\xa9");
        dir_listing_free(&l);
        close(fd);
    }
    stat_helper_stop(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scan");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rows_sort_by_bytes_and_skip_subtrees);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, scan_merges_names_that_sort_apart);
    tcase_add_test(tc, touch_moves_the_stat_and_keeps_the_chunks);
    tcase_add_test(tc, scan_manifest_matches_the_index);
    tcase_add_test(tc, listing_is_strcmp_order_and_stats_every_entry);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
