/* pair.c — see pair.h. */
#include "pair.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void wpair_setup(struct wpair *p)
{
    memset(p, 0, sizeof(*p));
    wm_prepare(&p->a);
    hosts_setup(&p->h, 2);
    snprintf(p->btree, sizeof(p->btree), "%s/b", p->a.root);
    snprintf(p->bmnt, sizeof(p->bmnt), "%s/bmnt", p->a.root);
    ck_assert_int_eq(mkdir(p->btree, 0755), 0);
    ck_assert_int_eq(mkdir(p->bmnt, 0755), 0);
    hosts_dest(&p->h, 1, p->btree, p->dest, sizeof(p->dest));
    snprintf(p->bwsync, sizeof(p->bwsync), "env WSYNC_HOST=hostb %s", wm_bin());
    setenv("WSYNC_HOST", "hosta", 1); /* A's daemon inherits it */
}

void wpair_teardown(struct wpair *p)
{
    if (p->bmounted)
        wm_sh("'%s' unmount '%s' >/dev/null 2>&1", wm_bin(), p->bmnt);
    wm_teardown(&p->a);
    hosts_teardown(&p->h);
}

void wpair_mount_b(struct wpair *p)
{
    wm_wsync_ok("mount '%s' '%s'", p->btree, p->bmnt);
    p->bmounted = true;
}

char *wpair_status_b(const struct wpair *p)
{
    char *all = wm_sh_out(NULL, "'%s' status --json '%s'", wm_bin(), p->a.mnt);
    char *at = strstr(all, "{\"name\":\"b\"");
    char *out = at ? strndup(at, strcspn(at, "}") + 1) : NULL;
    free(all);
    return out;
}
