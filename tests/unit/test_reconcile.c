/*
 * test_reconcile.c — two-way sync's decision logic (sync/reconcile.h),
 * conflict copy names and the ancestor store.
 *
 * The property test builds many random (ancestor, local, remote) tree
 * triples over a small path universe, runs reconcile(), applies its
 * actions to both trees the way `wsync sync` does, and checks: both trees
 * end equal, every parent is a directory, and every content (file id or
 * symlink target) that differed from the ancestor on either side still
 * exists somewhere.  The seed is printed on failure.
 */
#include "sync/ancestors.h"
#include "sync/conflict_name.h"
#include "sync/reconcile.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- named cases ---- */

static struct content_id cid(int n)
{
    struct content_id id = {0};
    id.b[0] = (uint8_t)n;
    id.b[15] = 0xee;
    return id;
}

static struct path_state file(int content, int64_t mtime)
{
    return (struct path_state){.type = S_IFREG, .mode = 0644, .id = cid(content),
                               .mtime_ns = mtime};
}
static struct path_state dir(void)
{
    return (struct path_state){.type = S_IFDIR, .mode = 0755};
}
static const struct path_state none;

static struct content_id tree_a, tree_b;

static void setup(void)
{
    tree_a = cid(1);
    tree_b = cid(2); /* tree_a < tree_b: local wins ties */
}

static void one(struct path_state a, struct path_state l, struct path_state r,
                enum rc_action want, enum rc_side winner)
{
    struct rc_item it = {.path = "f", .anc = a, .local = l, .remote = r};
    reconcile(&it, 1, &tree_a, &tree_b);
    ck_assert_msg(it.action == want, "got %s, want %s", reconcile_action_name(it.action),
                  reconcile_action_name(want));
    ck_assert_int_eq(it.winner, winner);
}

START_TEST(single_path_rules)
{
    one(file(1, 1), file(1, 1), file(1, 1), RC_NONE, 0);
    one(file(1, 1), file(1, 1), file(2, 5), RC_PULL, 0);         /* edit there */
    one(file(1, 1), file(2, 5), file(1, 1), RC_PUSH, 0);         /* edit here */
    one(file(1, 1), none, file(1, 1), RC_DELETE_REMOTE, 0);      /* delete here */
    one(file(1, 1), file(1, 1), none, RC_DELETE_LOCAL, 0);       /* delete there */
    one(file(1, 1), none, file(2, 5), RC_PULL, 0);               /* delete vs edit */
    one(file(1, 1), file(2, 5), none, RC_PUSH, 0);               /* edit vs delete */
    one(file(1, 1), file(2, 5), file(2, 7), RC_NONE, 0);         /* same edit */
    one(file(1, 1), file(2, 9), file(3, 7), RC_CONFLICT, RC_LOCAL);  /* newer wins */
    one(file(1, 1), file(2, 7), file(3, 9), RC_CONFLICT, RC_REMOTE);
    one(file(1, 1), file(2, 7), file(3, 7), RC_CONFLICT, RC_LOCAL);  /* tie: smaller tree */
    one(none, file(2, 7), file(3, 1), RC_CONFLICT, RC_LOCAL);     /* both new */
    one(none, file(2, 1), dir(), RC_CONFLICT, RC_REMOTE);         /* the directory wins */
    one(none, dir(), file(2, 9), RC_CONFLICT, RC_LOCAL);
    struct path_state m = file(1, 9);
    m.mode = 0600;
    one(file(1, 1), m, file(1, 3), RC_PUSH, 0); /* mode only: no copy */
    one(none, none, none, RC_NONE, 0);
}
END_TEST

START_TEST(rename_vs_edit_keeps_both_and_dirs_stay_for_kept_children)
{
    /* Here: d/a renamed to d/b.  There: d/a edited.  Both stay. */
    struct rc_item v[] = {
        {.path = "d", .anc = dir(), .local = dir(), .remote = dir()},
        {.path = "d/a", .anc = file(1, 1), .local = none, .remote = file(2, 5)},
        {.path = "d/b", .anc = none, .local = file(1, 1), .remote = none},
    };
    reconcile(v, 3, &tree_a, &tree_b);
    ck_assert_int_eq(v[1].action, RC_PULL);
    ck_assert_int_eq(v[2].action, RC_PUSH);
    /* Here: rm -r d.  There: d/x edited.  d comes back with d/x. */
    struct rc_item w[] = {
        {.path = "d", .anc = dir(), .local = none, .remote = dir()},
        {.path = "d/x", .anc = file(1, 1), .local = none, .remote = file(2, 5)},
        {.path = "d/y", .anc = file(3, 1), .local = none, .remote = file(3, 1)},
    };
    reconcile(w, 3, &tree_a, &tree_b);
    ck_assert_int_eq(w[0].action, RC_PULL);
    ck_assert_int_eq(w[1].action, RC_PULL);
    ck_assert_int_eq(w[2].action, RC_DELETE_REMOTE);
    /* There: d replaced by a file.  Here: d/x edited.  d stays a dir, the file is a copy. */
    struct rc_item x[] = {
        {.path = "d", .anc = dir(), .local = dir(), .remote = file(4, 5)},
        {.path = "d/x", .anc = file(1, 1), .local = file(2, 5), .remote = none},
    };
    reconcile(x, 2, &tree_a, &tree_b);
    ck_assert_int_eq(x[0].action, RC_CONFLICT);
    ck_assert_int_eq(x[0].winner, RC_LOCAL);
    ck_assert_int_eq(x[1].action, RC_PUSH);
}
END_TEST

START_TEST(conflict_names)
{
    char out[4096], orig[4096], host[80], when[32];
    time_t t = 1700000000; /* 2023-11-14 22:13:20 UTC */
    ck_assert_int_eq(conflict_name("src/a.c", "robot1", t, 0, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "src/a.conflict-robot1-20231114-221320.c");
    ck_assert(conflict_name_parse(out, orig, sizeof(orig), host, sizeof(host), when, sizeof(when)));
    ck_assert_str_eq(orig, "src/a.c");
    ck_assert_str_eq(host, "robot1");
    ck_assert_str_eq(when, "20231114-221320");
    ck_assert_int_eq(conflict_name(".bashrc", "my-host.lan", t, 3, out, sizeof(out)), 0);
    ck_assert_str_eq(out, ".bashrc.conflict-my-host.lan-20231114-221320-3");
    ck_assert(conflict_name_parse(out, orig, sizeof(orig), host, sizeof(host), NULL, 0));
    ck_assert_str_eq(orig, ".bashrc");
    ck_assert_str_eq(host, "my-host.lan");
    ck_assert_int_eq(conflict_name("Makefile", "h", t, 0, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "Makefile.conflict-h-20231114-221320");
    ck_assert(!conflict_name_parse("a.conflict-x.c", NULL, 0, NULL, 0, NULL, 0));
    ck_assert(!conflict_name_parse("a.c", NULL, 0, NULL, 0, NULL, 0));
    ck_assert(!conflict_name_parse("x.conflict-h-20231114-221320.c/inner", NULL, 0, NULL, 0,
                                   NULL, 0));
    /* a 255-byte name keeps the mark and fits */
    char longname[256];
    memset(longname, 'n', 251);
    strcpy(longname + 251, ".txt");
    ck_assert_int_eq(conflict_name(longname, "h", t, 0, out, sizeof(out)), 0);
    ck_assert_uint_le(strlen(out), 255);
    ck_assert(conflict_name_parse(out, NULL, 0, NULL, 0, NULL, 0));
}
END_TEST

/* ---- the property test ---- */

#define NPATHS 7
static const char *universe[NPATHS] = {"a", "a/x", "a/y", "a/y/z", "b", "b/w", "c"};
static const int parent_ix[NPATHS] = {-1, 0, 0, 2, -1, 4, -1};
static const char *targets[] = {"t1", "t2"};

static uint64_t rng;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static struct path_state random_state(void)
{
    struct path_state s = {0};
    switch (rnd(4)) {
    case 0: return s;
    case 1: s = dir(); s.mode = rnd(2) ? 0755 : 0700; break;
    case 2: s = file(1 + (int)rnd(4), 0); s.mode = rnd(4) ? 0644 : 0600; break;
    default: s.type = S_IFLNK; s.mode = 0777; s.target = targets[rnd(2)]; break;
    }
    s.mtime_ns = rnd(3);
    return s;
}

/* A valid tree: children only under directories.  base: derive from it. */
static void random_tree(struct path_state *t, const struct path_state *base)
{
    for (int i = 0; i < NPATHS; i++) {
        t[i] = base && rnd(10) < 6 ? base[i] : random_state();
        if (base && t[i].type == S_IFREG && rnd(3) == 0)
            t[i].id = cid(10 + (int)rnd(100)); /* a fresh edit: unique content */
        int p = parent_ix[i];
        if (p >= 0 && t[p].type != S_IFDIR)
            t[i] = none;
    }
}

/* A tree being changed: the universe's paths plus conflict copies. */
struct tree {
    struct path_state s[NPATHS * 2]; /* [NPATHS + i]: the copy of universe[i] */
};

static bool is_below(int i, int p)
{
    for (int q = parent_ix[i]; q >= 0; q = parent_ix[q])
        if (q == p)
            return true;
    return false;
}

/* Set path i as the applier would: a directory replaced by anything else
 * loses what is below it, and a delete takes the subtree. */
static void put(struct tree *t, int i, const struct path_state *s)
{
    if (t->s[i].type == S_IFDIR && s->type != S_IFDIR)
        for (int k = 0; k < NPATHS; k++)
            if (is_below(k, i)) {
                t->s[k] = none;
                t->s[NPATHS + k] = none;
            }
    t->s[i] = *s;
}

static bool content_in(const struct tree *t, const struct path_state *s)
{
    for (int i = 0; i < NPATHS * 2; i++) {
        const struct path_state *x = &t->s[i];
        if (x->type == s->type &&
            ((s->type == S_IFREG && content_id_eq(&x->id, &s->id)) ||
             (s->type == S_IFLNK && strcmp(x->target, s->target) == 0)))
            return true;
    }
    return false;
}

/* ck_assert marks every passing check (a write to a pipe): too slow for
 * a million checks, so only a failure goes through check. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static void check_one(uint64_t seed)
{
    rng = seed * 2654435761u + 1;
    struct path_state A[NPATHS], L[NPATHS], R[NPATHS];
    random_tree(A, NULL);
    random_tree(L, A);
    random_tree(R, A);
    struct rc_item it[NPATHS];
    for (int i = 0; i < NPATHS; i++)
        it[i] = (struct rc_item){.path = universe[i], .anc = A[i], .local = L[i], .remote = R[i]};
    reconcile(it, NPATHS, &tree_a, &tree_b);

    struct tree lt = {0}, rt = {0};
    memcpy(lt.s, L, sizeof(L));
    memcpy(rt.s, R, sizeof(R));
    /* As wsync sync does: conflict copies first, then the paths in
     * order (parents first), deletes last. */
    for (int i = 0; i < NPATHS; i++)
        if (it[i].action == RC_CONFLICT) {
            const struct path_state *loser = reconcile_loser(&it[i]);
            REQUIRE(loser->type != S_IFDIR, "seed %llu: a directory lost",
                          (unsigned long long)seed);
            lt.s[NPATHS + i] = rt.s[NPATHS + i] = *loser;
        }
    for (int i = 0; i < NPATHS; i++) {
        const struct path_state *res = reconcile_result(&it[i]);
        if (path_state_present(res)) {
            put(&lt, i, res);
            put(&rt, i, res);
        }
    }
    for (int i = 0; i < NPATHS; i++)
        if (it[i].action == RC_DELETE_LOCAL || it[i].action == RC_DELETE_REMOTE) {
            put(&lt, i, &none);
            put(&rt, i, &none);
        }

    char desc[2048];
    int n = 0;
    for (int i = 0; i < NPATHS; i++)
        n += snprintf(desc + n, sizeof(desc) - (size_t)n, " %s:%o/%o/%o->%s", universe[i],
                      A[i].type >> 12, L[i].type >> 12, R[i].type >> 12,
                      reconcile_action_name(it[i].action));
    for (int i = 0; i < NPATHS * 2; i++) {
        REQUIRE(path_state_same(&lt.s[i], &rt.s[i]), "seed %llu: trees differ at %d;%s",
                      (unsigned long long)seed, i, desc);
        int p = parent_ix[i % NPATHS];
        REQUIRE(!path_state_present(&lt.s[i]) || p < 0 || lt.s[p].type == S_IFDIR,
                      "seed %llu: %s has no parent dir;%s", (unsigned long long)seed,
                      universe[i % NPATHS], desc);
    }
    for (int i = 0; i < NPATHS; i++) {
        const struct path_state *in[2] = {&L[i], &R[i]};
        for (int k = 0; k < 2; k++) {
            const struct path_state *s = in[k];
            if ((s->type == S_IFREG || s->type == S_IFLNK) && !path_state_same(s, &A[i]))
                REQUIRE(content_in(&lt, s), "seed %llu: %s's %s content lost;%s",
                              (unsigned long long)seed, k ? "remote" : "local", universe[i],
                              desc);
        }
    }
}

START_TEST(random_triples_lose_nothing_and_converge)
{
    uint64_t base = getenv("WSYNC_SEED") ? strtoull(getenv("WSYNC_SEED"), NULL, 0) : 1;
    printf("reconcile property test: seeds %llu..%llu\n", (unsigned long long)base,
           (unsigned long long)base + 199999);
    for (uint64_t s = base; s < base + 200000; s++)
        check_one(s);
}
END_TEST

/* ---- the ancestor store ---- */

static int collect(const char *path, const struct path_state *s, void *arg)
{
    char *out = arg;
    char hex[CONTENT_ID_HEX_LEN + 1];
    content_id_to_hex(&s->id, hex);
    sprintf(out + strlen(out), "%s %o %o %.4s %s|", path, s->type >> 12, s->mode,
            s->type == S_IFREG ? hex : "-", s->target ? s->target : "-");
    return 0;
}

START_TEST(ancestors_store_per_peer)
{
    char dirname[] = "/tmp/wsync-anc-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dirname));
    struct ancestors *a;
    char err[512];
    ck_assert_msg(ancestors_open(dirname, &a, err, sizeof(err)) == 0, "%s", err);
    int64_t p1, p2, p1again;
    ck_assert_int_eq(ancestors_peer(a, &tree_a, "hostA", &p1), 0);
    ck_assert_int_eq(ancestors_peer(a, &tree_b, "hostB", &p2), 0);
    ck_assert_int_eq(ancestors_peer(a, &tree_a, "hostA2", &p1again), 0);
    ck_assert_int_eq(p1, p1again);
    ck_assert_int_ne(p1, p2);
    struct path_state f = file(0xab, 5), l = {.type = S_IFLNK, .mode = 0777, .target = "t"};
    ck_assert_int_eq(ancestors_begin(a), 0);
    ck_assert_int_eq(ancestors_put(a, p1, "z", &f), 0);
    ck_assert_int_eq(ancestors_put(a, p1, "d", &(struct path_state){.type = S_IFDIR, .mode = 0700}), 0);
    ck_assert_int_eq(ancestors_put(a, p1, "d/l", &l), 0);
    ck_assert_int_eq(ancestors_put(a, p2, "other", &f), 0);
    ck_assert_int_eq(ancestors_commit(a), 0);
    char got[1024] = "";
    ck_assert_int_eq(ancestors_foreach(a, p1, collect, got), 0);
    ck_assert_str_eq(got, "d 4 700 - -|d/l 12 777 - t|z 10 644 ab00 -|");
    ck_assert_int_eq(ancestors_put(a, p1, "z", &none), 0); /* absent: removed */
    got[0] = 0;
    ck_assert_int_eq(ancestors_foreach(a, p1, collect, got), 0);
    ck_assert_str_eq(got, "d 4 700 - -|d/l 12 777 - t|");
    ck_assert_int_eq(ancestors_synced(a, p1), 0);
    ancestors_close(a);
    wm_rm_rf(dirname);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reconcile");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, single_path_rules);
    tcase_add_test(tc, rename_vs_edit_keeps_both_and_dirs_stay_for_kept_children);
    tcase_add_test(tc, conflict_names);
    tcase_add_test(tc, random_triples_lose_nothing_and_converge);
    tcase_add_test(tc, ancestors_store_per_peer);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
