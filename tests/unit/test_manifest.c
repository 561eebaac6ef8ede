/*
 * test_manifest.c — the in-memory manifest with subtree digests: tree
 * order, subtree ranges, digests equal to the protocol's definition, and a
 * change moving exactly the digests of its ancestors.
 */
#include "sync/index.h"
#include "sync/manifest.h"
#include "sync/message.h"
#include "sync/scan_rows.h"
#include "sync/tree_root.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[PATH_MAX];
static struct index *ix;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/wsync-manifest-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char err[512];
    ck_assert_msg(index_open(-1, dir, false, &ix, err, sizeof(err)) == 0, "%s", err);
}

static void teardown(void)
{
    index_close(ix);
    wm_rm_rf(dir);
}

static void put(const char *path, uint32_t type, uint32_t mode, int64_t mtime, uint8_t id)
{
    struct index_file f = {.path = (char *)path, .type = type, .mode = mode, .mtime_ns = mtime};
    if (type == S_IFREG) {
        f.size = 100;
        memset(f.id.b, id, CONTENT_ID_SIZE);
    }
    if (type == S_IFLNK)
        f.target = "t";
    ck_assert_int_eq(index_put(ix, &f, NULL, 0), 0);
}

static void fill(void)
{
    put("b", S_IFREG, 0644, 1, 1);
    put("a", S_IFDIR, 0755, 2, 0);
    put("a/b", S_IFDIR, 0755, 3, 0);
    put("a/b/c", S_IFREG, 04755, 4, 2);
    put("a.c", S_IFLNK, 0777, 5, 0);
    put("a/z", S_IFREG, 0600, 6, 3);
    put("e", S_IFDIR, 0700, 7, 0);
}

/* The protocol's digest over entries [lo, hi). */
static struct content_id digest_of(const struct manifest *m, size_t lo, size_t hi)
{
    struct content_hasher h;
    struct content_id id;
    content_hasher_init(&h);
    for (size_t i = lo; i < hi; i++)
        msg_manifest_digest_add(&h, manifest_entry(m, i));
    content_hasher_final(&h, &id);
    return id;
}

static size_t pos(const struct manifest *m, const char *path)
{
    for (size_t i = 0; i < manifest_count(m); i++)
        if (strcmp(manifest_entry(m, i)->path, path) == 0)
            return i;
    ck_abort_msg("%s not in the manifest", path);
    return 0;
}

START_TEST(tree_order_ranges_and_digests)
{
    fill();
    struct manifest *m;
    ck_assert_int_eq(manifest_build(ix, 0777, &m), 0);
    const char *order[] = {"a", "a/b", "a/b/c", "a/z", "a.c", "b", "e"};
    ck_assert_uint_eq(manifest_count(m), 7);
    for (size_t i = 0; i < 7; i++)
        ck_assert_str_eq(manifest_entry(m, i)->path, order[i]);
    ck_assert_uint_eq(manifest_entry(m, 2)->mode, 0755); /* the mask */
    ck_assert_uint_eq(manifest_end(m, 0), 4);            /* a: a/b, a/b/c, a/z */
    ck_assert_uint_eq(manifest_end(m, 1), 3);
    ck_assert_uint_eq(manifest_end(m, 6), 7); /* empty dir */
    size_t lo, hi;
    ck_assert(manifest_subtree(m, "a", &lo, &hi));
    ck_assert(lo == 1 && hi == 4);
    ck_assert(!manifest_subtree(m, "b", &lo, &hi)); /* a file */
    ck_assert(!manifest_subtree(m, "nope", &lo, &hi));
    /* Children of ROOT: a, a.c, b, e. */
    ck_assert(manifest_subtree(m, "", &lo, &hi));
    const char *kids[] = {"a", "a.c", "b", "e"};
    size_t k = 0;
    for (size_t i = lo; i < hi; i = manifest_end(m, i))
        ck_assert_str_eq(manifest_entry(m, i)->path, kids[k++]);
    ck_assert_uint_eq(k, 4);
    /* Digests are the protocol's, over each subtree. */
    struct content_id all = digest_of(m, 0, 7), a = digest_of(m, 1, 4), ab = digest_of(m, 2, 3),
                      empty = digest_of(m, 0, 0);
    ck_assert(content_id_eq(manifest_digest(m), &all));
    ck_assert(content_id_eq(&manifest_entry(m, 0)->id, &a));
    ck_assert(content_id_eq(&manifest_entry(m, 1)->id, &ab));
    ck_assert(content_id_eq(&manifest_entry(m, 6)->id, &empty));

    /* A change below a/b moves a/b's, a's and the whole digest; not e's. */
    put("a/b/c", S_IFREG, 04755, 40, 2);
    struct manifest *m2;
    ck_assert_int_eq(manifest_build(ix, 0777, &m2), 0);
    ck_assert(!content_id_eq(manifest_digest(m), manifest_digest(m2)));
    ck_assert(
        !content_id_eq(&manifest_entry(m, pos(m, "a"))->id, &manifest_entry(m2, pos(m2, "a"))->id));
    ck_assert(!content_id_eq(&manifest_entry(m, pos(m, "a/b"))->id,
                             &manifest_entry(m2, pos(m2, "a/b"))->id));
    ck_assert(
        content_id_eq(&manifest_entry(m, pos(m, "e"))->id, &manifest_entry(m2, pos(m2, "e"))->id));
    /* The tree root from a manifest is the index's (either mask). */
    struct content_id from_index, from_manifest;
    ck_assert_int_eq(tree_root_from_index(ix, &from_index), 0);
    ck_assert_int_eq(tree_root_from_manifest(m2, &from_manifest), 0);
    ck_assert(content_id_eq(&from_index, &from_manifest));
    /* The receiver's mask keeps the setuid bit: another digest. */
    struct manifest *m3;
    ck_assert_int_eq(manifest_build(ix, 07777, &m3), 0);
    ck_assert_uint_eq(manifest_entry(m3, pos(m3, "a/b/c"))->mode, 04755);
    ck_assert(!content_id_eq(manifest_digest(m2), manifest_digest(m3)));
    ck_assert_int_eq(tree_root_from_manifest(m3, &from_manifest), 0);
    ck_assert(content_id_eq(&from_index, &from_manifest));
    manifest_free(m);
    manifest_free(m2);
    manifest_free(m3);
}
END_TEST

/* A manifest made from a scan's rows is the one made from the index. */
START_TEST(rows_give_the_index_manifest)
{
    fill();
    struct scan_rows rows = {0};
    ck_assert_int_eq(scan_rows_load(&rows, ix, ""), 0);
    uint32_t masks[] = {0777, 07777};
    for (int k = 0; k < 2; k++) {
        struct manifest *a, *b;
        ck_assert_int_eq(manifest_build(ix, masks[k], &a), 0);
        ck_assert_int_eq(manifest_from_rows(&rows, masks[k], &b), 0);
        ck_assert_uint_eq(manifest_count(a), 7);
        ck_assert_uint_eq(manifest_count(b), manifest_count(a));
        ck_assert(content_id_eq(manifest_digest(a), manifest_digest(b)));
        for (size_t i = 0; i < manifest_count(a); i++) {
            ck_assert_str_eq(manifest_entry(a, i)->path, manifest_entry(b, i)->path);
            ck_assert_uint_eq(manifest_entry(a, i)->mode, manifest_entry(b, i)->mode);
            ck_assert(content_id_eq(&manifest_entry(a, i)->id, &manifest_entry(b, i)->id));
            ck_assert_uint_eq(manifest_end(a, i), manifest_end(b, i));
        }
        manifest_free(a);
        manifest_free(b);
    }
    scan_rows_free(&rows);
}
END_TEST

START_TEST(deep_trees_and_empty_ones)
{
    struct manifest *m;
    ck_assert_int_eq(manifest_build(ix, 0777, &m), 0);
    ck_assert_uint_eq(manifest_count(m), 0);
    struct content_hasher h;
    struct content_id none;
    content_hasher_init(&h);
    content_hasher_final(&h, &none);
    ck_assert(content_id_eq(manifest_digest(m), &none));
    manifest_free(m);
    /* 100 levels: the hasher stack grows past its first size. */
    char path[1024] = "d";
    for (int i = 0; i < 100; i++) {
        put(path, S_IFDIR, 0755, i, 0);
        strcat(path, "/d");
    }
    put(path, S_IFREG, 0644, 0, 9);
    ck_assert_int_eq(manifest_build(ix, 0777, &m), 0);
    ck_assert_uint_eq(manifest_count(m), 101);
    for (size_t i = 0; i < 100; i++) {
        ck_assert_uint_eq(manifest_end(m, i), 101);
        struct content_id d = digest_of(m, i + 1, 101);
        ck_assert(content_id_eq(&manifest_entry(m, i)->id, &d));
    }
    manifest_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("manifest");
    TCase *tc = tcase_create("manifest");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, tree_order_ranges_and_digests);
    tcase_add_test(tc, deep_trees_and_empty_ones);
    tcase_add_test(tc, rows_give_the_index_manifest);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
