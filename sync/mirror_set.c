/*
 * mirror_set.c — see mirror_set.h.
 *
 * Invariant: `slots` changes only with both `ctl` and `lock` held, so the
 * indexer's kick (under `lock` alone, never waiting) and the control
 * requests (under `ctl`, which may wait on a flush) each see a stable
 * array without blocking each other for long.
 */
#include "mirror_set.h"
#include "mirror_auto.h"
#include "index.h"
#include "mirror.h"
#include "mirror_twoway.h"
#include "remotes.h"
#include "strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SLOTS 32

struct slot {
    struct remote_def def;    /* name NULL for a --mirror DEST */
    struct mirror *m;         /* replica worker, or */
    struct mirror_twoway *tw; /* two-way or safe worker, or */
    struct mirror_auto *au;   /* auto controller; all NULL: not started (see note) */
    char note[512];
};

struct mirror_set {
    char *src, *state;
    int log_fd;
    void (*on_applied)(const char *path, void *arg);
    void *on_applied_arg;
    struct index *ix; /* ours, for journal figures; used under ctl */
    pthread_mutex_t ctl, lock;
    struct slot slots[MAX_SLOTS];
    size_t n;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Fill a slot for def and start its worker when its mode allows. */
static int slot_start(struct mirror_set *ms, struct slot *sl, const struct remote_def *def,
                      char *err, size_t errsize)
{
    memset(sl, 0, sizeof(*sl));
    if (remote_def_copy(&sl->def, def) != 0)
        return snprintf(err, errsize, "out of memory"), -ENOMEM;
    int r;
    struct mirror_twoway_options o = {.src = ms->src,
                                      .dest = def->dest,
                                      .rsh = def->rsh,
                                      .wsync_path = def->wsync_path,
                                      .safe = def->mode == REMOTE_MODE_SAFE,
                                      .log_fd = ms->log_fd,
                                      .on_applied = ms->on_applied,
                                      .on_applied_arg = ms->on_applied_arg};
    if (def->mode == REMOTE_MODE_REPLICA)
        r = mirror_start(ms->src, def->dest, def->rsh, def->wsync_path, ms->log_fd, &sl->m, err,
                         errsize);
    else if (def->mode == REMOTE_MODE_AUTO)
        r = mirror_auto_start(&o, &sl->au, err, errsize);
    else
        r = mirror_twoway_start(&o, &sl->tw, err, errsize);
    if (r) {
        if (def->name) /* a configured remote: listed with its cause */
            snprintf(sl->note, sizeof(sl->note), "not started: %s", err);
        else
            remote_def_release(&sl->def);
        return def->name ? 0 : r;
    }
    return 0;
}

static bool slot_running(const struct slot *sl)
{
    return sl->m || sl->tw || sl->au;
}

static void slot_kick(struct slot *sl)
{
    if (sl->m)
        mirror_kick(sl->m);
    if (sl->tw)
        mirror_twoway_kick(sl->tw);
    if (sl->au)
        mirror_auto_kick(sl->au);
}

/* What kind of worker runs: two_way (ex means something: a two-way or
 * safe worker, or an auto one running two-way) and an auto slot's choice. */
struct kind {
    bool two_way;
    struct mirror_auto_view view;
};

static void slot_status(const struct slot *sl, struct mirror_status *st,
                        struct mirror_twoway_stats *ex, struct kind *k)
{
    memset(ex, 0, sizeof(*ex));
    memset(k, 0, sizeof(*k));
    if (sl->m)
        mirror_get_status(sl->m, st);
    if (sl->tw)
        mirror_twoway_get_status(sl->tw, st, ex);
    if (sl->au)
        mirror_auto_get_status(sl->au, st, ex, &k->view);
    k->two_way = sl->tw || (sl->au && k->view.decided && k->view.two_way);
}

/* "two-way", or for auto "auto: two-way, far tree is mounted". */
static void add_mode(struct strbuf *out, const struct slot *sl, const struct kind *k)
{
    strbuf_adds(out, remote_mode_name(sl->def.mode));
    if (!sl->au)
        return;
    if (k->view.decided)
        strbuf_addf(out, ": %s, %s", k->view.two_way ? "two-way" : "replica", k->view.why);
    else
        strbuf_adds(out, ": undecided, the far side has not answered yet");
}

static void slot_stop(struct slot *sl)
{
    mirror_stop(sl->m);
    mirror_twoway_stop(sl->tw);
    mirror_auto_stop(sl->au);
    remote_def_release(&sl->def);
    sl->m = NULL;
    sl->tw = NULL;
    sl->au = NULL;
}

static void add_slot(struct mirror_set *ms, const struct slot *sl)
{
    pthread_mutex_lock(&ms->lock);
    ms->slots[ms->n++] = *sl;
    pthread_mutex_unlock(&ms->lock);
}

static void remove_slot(struct mirror_set *ms, size_t i)
{
    struct slot gone = ms->slots[i];
    pthread_mutex_lock(&ms->lock);
    memmove(&ms->slots[i], &ms->slots[i + 1], (ms->n - i - 1) * sizeof(ms->slots[0]));
    ms->n--;
    pthread_mutex_unlock(&ms->lock);
    slot_stop(&gone); /* outside `lock`: it may take a moment */
}

/* A configured remote whose DEST a --mirror already serves is skipped: two
 * senders into one replica would only fight. */
static bool dest_taken(const struct mirror_set *ms, const struct remote_def *def)
{
    for (size_t i = 0; i < ms->n; i++)
        if (!ms->slots[i].def.name && strcmp(ms->slots[i].def.dest, def->dest) == 0)
            return true;
    return false;
}

int mirror_set_start(const struct mirror_set_options *opt, struct mirror_set **out, char *err,
                     size_t errsize)
{
    struct mirror_set *ms = calloc(1, sizeof(*ms));
    if (!ms)
        return -ENOMEM;
    ms->log_fd = opt->log_fd;
    ms->on_applied = opt->on_applied;
    ms->on_applied_arg = opt->on_applied_arg;
    pthread_mutex_init(&ms->ctl, NULL);
    pthread_mutex_init(&ms->lock, NULL);
    ms->src = strdup(opt->src);
    if (!ms->src || asprintf(&ms->state, "%s/.wsync", opt->src) < 0) {
        free(ms->src);
        free(ms);
        return -ENOMEM;
    }
    struct remotes cfg = {0};
    int r = remotes_load(ms->state, &cfg, err, errsize);
    if (!r)
        r = index_open(-1, ms->state, false, &ms->ix, err, errsize);
    pthread_mutex_lock(&ms->ctl);
    for (size_t i = 0; !r && i < opt->ndests; i++) {
        struct remote_def def = {.dest = (char *)opt->dests[i],
                                 .rsh = (char *)opt->rsh,
                                 .wsync_path = (char *)opt->wsync_path};
        struct slot sl;
        if (!(r = slot_start(ms, &sl, &def, err, errsize)))
            add_slot(ms, &sl);
    }
    for (size_t i = 0; !r && i < cfg.n; i++) {
        struct slot sl;
        if (dest_taken(ms, &cfg.v[i]))
            continue;
        if (!(r = slot_start(ms, &sl, &cfg.v[i], err, errsize)))
            add_slot(ms, &sl);
    }
    pthread_mutex_unlock(&ms->ctl);
    remotes_release(&cfg);
    if (r) {
        mirror_set_stop(ms);
        return r;
    }
    *out = ms;
    return 0;
}

void mirror_set_kick(struct mirror_set *ms)
{
    if (!ms)
        return;
    pthread_mutex_lock(&ms->lock);
    for (size_t i = 0; i < ms->n; i++)
        slot_kick(&ms->slots[i]);
    pthread_mutex_unlock(&ms->lock);
}

void mirror_set_reload(struct mirror_set *ms, struct strbuf *reply)
{
    struct remotes cfg;
    char err[1024];
    if (!ms) {
        strbuf_adds(reply, "error: the daemon is still starting; try again\n");
        return;
    }
    if (remotes_load(ms->state, &cfg, err, sizeof(err)) != 0) {
        strbuf_addf(reply, "error: %s (the running remotes are unchanged)\n", err);
        return;
    }
    pthread_mutex_lock(&ms->ctl);
    size_t before = reply->len;
    /* Stop the removed and the changed... */
    for (size_t i = 0; i < ms->n;) {
        const struct remote_def *d = &ms->slots[i].def;
        const struct remote_def *now = d->name ? remotes_find(&cfg, d->name) : NULL;
        if (!d->name || (now && remote_def_equal(now, d))) {
            i++;
            continue;
        }
        strbuf_addf(reply, "stopped %s\n", d->name);
        remove_slot(ms, i);
    }
    /* ...then start the new and the changed. */
    for (size_t i = 0; i < cfg.n; i++) {
        bool running = false;
        for (size_t j = 0; j < ms->n; j++)
            running |= ms->slots[j].def.name && strcmp(ms->slots[j].def.name, cfg.v[i].name) == 0;
        if (running)
            continue;
        if (dest_taken(ms, &cfg.v[i])) {
            strbuf_addf(reply, "skipped %s: %s is already mirrored by --mirror\n", cfg.v[i].name,
                        cfg.v[i].dest);
            continue;
        }
        if (ms->n == MAX_SLOTS) {
            strbuf_addf(reply, "skipped %s: too many mirrors\n", cfg.v[i].name);
            continue;
        }
        struct slot sl;
        if (slot_start(ms, &sl, &cfg.v[i], err, sizeof(err)) != 0) {
            strbuf_addf(reply, "skipped %s: %s\n", cfg.v[i].name, err);
            continue;
        }
        add_slot(ms, &sl);
        strbuf_addf(reply, "%s %s %s%s%s\n", slot_running(&sl) ? "started" : "listed", sl.def.name,
                    sl.def.dest, sl.note[0] ? ": " : "", sl.note);
    }
    if (reply->len == before)
        strbuf_adds(reply, "unchanged\n");
    pthread_mutex_unlock(&ms->ctl);
    remotes_release(&cfg);
}

static void add_bytes(struct strbuf *sb, uint64_t n)
{
    if (n < 1024)
        strbuf_addf(sb, "%" PRIu64 " B", n);
    else if (n < (1 << 20))
        strbuf_addf(sb, "%.1f KiB", (double)n / 1024);
    else
        strbuf_addf(sb, "%.1f MiB", (double)n / (1 << 20));
}

/* The figures of one worker that come from the journal, not the worker. */
struct lag {
    bool known; /* a catch-up finished: acked_seq means something */
    uint64_t seq, head;
    int64_t ms;
    struct index_pending pending;
};

static void slot_lag(struct mirror_set *ms, const struct mirror_status *st, uint64_t head,
                     struct lag *lag)
{
    memset(lag, 0, sizeof(*lag));
    lag->head = head;
    lag->known = st->caught_up;
    if (!lag->known || st->acked_seq >= head)
        return;
    lag->seq = head - st->acked_seq;
    if (index_journal_pending(ms->ix, st->acked_seq, &lag->pending) == 0 && lag->pending.oldest_ns)
        lag->ms = (now_ns() - lag->pending.oldest_ns) / 1000000;
}

static void status_text(struct strbuf *out, const struct slot *sl, const struct mirror_status *st,
                        const struct mirror_twoway_stats *ex, const struct kind *k,
                        const struct lag *lag)
{
    strbuf_addf(out, "remote:   %s -> %s (", sl->def.name ? sl->def.name : "(--mirror)",
                sl->def.dest);
    add_mode(out, sl, k);
    strbuf_adds(out, ")\n");
    if (!slot_running(sl)) {
        strbuf_addf(out, "          %s\n", sl->note);
        return;
    }
    strbuf_addf(out, "          %s", st->connected ? "connected" : "disconnected");
    if (!st->connected && st->retry_ms)
        strbuf_addf(out, " (retrying every %.1f s)", st->retry_ms / 1000.0);
    if (lag->known) {
        strbuf_addf(
            out, ", lag %" PRIu64 " journal entries / %" PRId64 " ms, pending %" PRIu64 " paths / ",
            lag->seq, lag->ms, lag->pending.paths);
        add_bytes(out, lag->pending.bytes);
    } else {
        strbuf_adds(out, ", not caught up yet");
    }
    strbuf_adds(out, ", sent ");
    add_bytes(out, st->bytes_out);
    strbuf_addf(out, " in %" PRIu64 " %s\n", st->batches, k->two_way ? "rounds" : "batches");
    if (k->two_way)
        strbuf_addf(
            out, "          pulled %" PRIu64 ", pushed %" PRIu64 " paths, conflicts %" PRIu64 "%s",
            ex->pulled, ex->pushed, ex->conflicts, ex->conflicts ? " (see wsync conflicts)" : "");
    if (k->two_way && ex->held)
        strbuf_addf(out, ", %" PRIu64 " held back by them", ex->held);
    if (k->two_way)
        strbuf_adds(out, "\n");
    if (st->last_error[0])
        strbuf_addf(out, "          last error: %s\n", st->last_error);
}

static void status_json(struct strbuf *out, const struct slot *sl, const struct mirror_status *st,
                        const struct mirror_twoway_stats *ex, const struct kind *k,
                        const struct lag *lag)
{
    strbuf_adds(out, "{\"name\":");
    if (sl->def.name)
        strbuf_add_json_string(out, sl->def.name);
    else
        strbuf_adds(out, "null");
    strbuf_adds(out, ",\"dest\":");
    strbuf_add_json_string(out, sl->def.dest);
    strbuf_addf(out, ",\"origin\":\"%s\",\"mode\":\"%s\",\"running\":%s",
                sl->def.name ? "config" : "option", remote_mode_name(sl->def.mode),
                slot_running(sl) ? "true" : "false");
    if (sl->au) /* what auto runs now: "two-way", "replica", or null before the first answer */
        strbuf_addf(out, ",\"auto\":%s,\"auto_why\":\"%s\",\"auto_switches\":%" PRIu64,
                    !k->view.decided  ? "null"
                    : k->view.two_way ? "\"two-way\""
                                      : "\"replica\"",
                    k->view.why, k->view.switches);
    if (k->two_way)
        strbuf_addf(out,
                    ",\"rounds\":%" PRIu64 ",\"pulled\":%" PRIu64 ",\"pushed\":%" PRIu64
                    ",\"conflicts\":%" PRIu64 ",\"held\":%" PRIu64,
                    ex->rounds, ex->pulled, ex->pushed, ex->conflicts, ex->held);
    strbuf_addf(out,
                ",\"connected\":%s,\"caught_up\":%s,\"acked_seq\":%" PRIu64
                ",\"journal_seq\":%" PRIu64,
                st->connected ? "true" : "false", st->caught_up ? "true" : "false", st->acked_seq,
                lag->head);
    if (lag->known)
        strbuf_addf(out,
                    ",\"lag_seq\":%" PRIu64 ",\"lag_ms\":%" PRId64 ",\"pending_files\":%" PRIu64
                    ",\"pending_bytes\":%" PRIu64,
                    lag->seq, lag->ms, lag->pending.paths, lag->pending.bytes);
    else
        strbuf_adds(out, ",\"lag_seq\":null,\"lag_ms\":null,\"pending_files\":null,"
                         "\"pending_bytes\":null");
    strbuf_addf(out,
                ",\"bytes_out\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"sessions\":%" PRIu64
                ",\"retry_ms\":%d,\"last_ack_ns\":%" PRId64 ",\"last_error\":",
                st->bytes_out, st->batches, st->sessions, st->retry_ms, st->last_ack_ns);
    strbuf_add_json_string(out, slot_running(sl) ? st->last_error : sl->note);
    strbuf_adds(out, "}");
}

void mirror_set_status(struct mirror_set *ms, struct strbuf *out, bool json)
{
    if (!ms) {
        strbuf_adds(out, json ? "[]" : "");
        return;
    }
    pthread_mutex_lock(&ms->ctl);
    uint64_t head = 0;
    index_journal_head(ms->ix, &head);
    if (json)
        strbuf_adds(out, "[");
    for (size_t i = 0; i < ms->n; i++) {
        const struct slot *sl = &ms->slots[i];
        struct mirror_status st = {0};
        struct mirror_twoway_stats ex = {0};
        struct kind k = {0};
        struct lag lag = {.head = head};
        if (slot_running(sl)) {
            slot_status(sl, &st, &ex, &k);
            slot_lag(ms, &st, head, &lag);
        }
        if (json) {
            if (i)
                strbuf_adds(out, ",");
            status_json(out, sl, &st, &ex, &k, &lag);
        } else {
            status_text(out, sl, &st, &ex, &k, &lag);
        }
    }
    if (json)
        strbuf_adds(out, "]");
    pthread_mutex_unlock(&ms->ctl);
}

bool mirror_set_flush(struct mirror_set *ms, int timeout_ms, struct strbuf *report)
{
    if (!ms)
        return true;
    pthread_mutex_lock(&ms->ctl);
    uint64_t head = 0;
    index_journal_head(ms->ix, &head);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < ms->n; i++)
        slot_kick(&ms->slots[i]);
    bool all = true;
    for (size_t i = 0; i < ms->n; i++) {
        const struct slot *sl = &ms->slots[i];
        if (!slot_running(sl))
            continue;
        /* One deadline for all: the workers flush in parallel. */
        clock_gettime(CLOCK_MONOTONIC, &t);
        long spent = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        int left = spent >= timeout_ms ? 0 : timeout_ms - (int)spent;
        if (sl->m    ? mirror_flush(sl->m, head, left)
            : sl->tw ? mirror_twoway_flush(sl->tw, head, left)
                     : mirror_auto_flush(sl->au, head, left))
            continue;
        all = false;
        struct mirror_status st;
        struct mirror_twoway_stats ex;
        struct kind k;
        slot_status(sl, &st, &ex, &k);
        strbuf_addf(report, "unflushed %s %s: %s\n", sl->def.name ? sl->def.name : "(--mirror)",
                    sl->def.dest, st.last_error[0] ? st.last_error : "not acknowledged in time");
    }
    pthread_mutex_unlock(&ms->ctl);
    return all;
}

void mirror_set_stop(struct mirror_set *ms)
{
    if (!ms)
        return;
    pthread_mutex_lock(&ms->ctl);
    for (size_t i = 0; i < ms->n; i++) {
        if (ms->slots[i].m)
            mirror_ask_stop(ms->slots[i].m);
        if (ms->slots[i].tw)
            mirror_twoway_ask_stop(ms->slots[i].tw);
        if (ms->slots[i].au)
            mirror_auto_ask_stop(ms->slots[i].au);
    }
    while (ms->n)
        remove_slot(ms, ms->n - 1);
    pthread_mutex_unlock(&ms->ctl);
    index_close(ms->ix);
    pthread_mutex_destroy(&ms->ctl);
    pthread_mutex_destroy(&ms->lock);
    free(ms->src);
    free(ms->state);
    free(ms);
}
