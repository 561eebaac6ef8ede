/* progress.c — see progress.h. */
#include "progress.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#define REDRAW_EVERY 0.1 /* seconds */

void progress_line_init(struct progress_line *pl, FILE *out)
{
    *pl = (struct progress_line){.out = out, .last_draw = -1, .data_start = -1};
}

bool progress_wanted(FILE *out)
{
    return isatty(fileno(out)) == 1;
}

static void format_bytes(double n, char *buf, size_t size)
{
    if (n >= 1024.0 * 1024 * 1024)
        snprintf(buf, size, "%.2f GiB", n / (1024.0 * 1024 * 1024));
    else if (n >= 1024.0 * 1024)
        snprintf(buf, size, "%.1f MiB", n / (1024.0 * 1024));
    else
        snprintf(buf, size, "%.0f KiB", n / 1024);
}

static void format_duration(double s, char *buf, size_t size)
{
    uint64_t t = s < 0 ? 0 : (uint64_t)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%" PRIu64 ":%02u:%02u", t / 3600, (unsigned)(t / 60 % 60),
                 (unsigned)(t % 60));
    else
        snprintf(buf, size, "%u:%02u", (unsigned)(t / 60), (unsigned)(t % 60));
}

void progress_format(const struct push_progress *pp, double data_start, char *buf, size_t size)
{
    char sent[32], rate[32], eta[32], took[32];
    format_bytes((double)pp->data_bytes, sent, sizeof(sent));
    format_duration(pp->seconds, took, sizeof(took));
    double span = data_start >= 0 ? pp->seconds - data_start : pp->seconds;
    double bps = span > 0 ? (double)pp->data_bytes / span : 0;
    format_bytes(bps, rate, sizeof(rate));
    if (pp->done || data_start < 0 || pp->chunks_wanted == 0) {
        snprintf(buf, size, "%-9s %" PRIu64 " files, %s sent, %s/s, %s", pp->phase, pp->files, sent,
                 rate, took);
        return;
    }
    /* Chunks the far side still wants, at the mean size of those sent. */
    uint64_t left = pp->chunks_wanted > pp->chunks_sent ? pp->chunks_wanted - pp->chunks_sent : 0;
    double mean = pp->chunks_sent ? (double)pp->data_bytes / (double)pp->chunks_sent : 0;
    double left_bytes = mean * (double)left;
    char total[32];
    format_bytes((double)pp->data_bytes + left_bytes, total, sizeof(total));
    if (bps > 0 && pp->chunks_sent)
        format_duration(left_bytes / bps, eta, sizeof(eta));
    else
        snprintf(eta, sizeof(eta), "?");
    snprintf(buf, size,
             "%-9s %" PRIu64 " files, %s of %s (%" PRIu64 "/%" PRIu64 " chunks), %s/s, ETA %s",
             pp->phase, pp->files, sent, total, pp->chunks_sent, pp->chunks_wanted, rate, eta);
}

void progress_push_hook(const struct push_progress *pp, void *arg)
{
    struct progress_line *pl = arg;
    if (pl->data_start < 0 && strcmp(pp->phase, "data") == 0)
        pl->data_start = pp->seconds;
    if (!pp->done && pl->last_draw >= 0 && pp->seconds - pl->last_draw < REDRAW_EVERY)
        return;
    pl->last_draw = pp->seconds;
    char line[256];
    progress_format(pp, pl->data_start, line, sizeof(line));
    size_t len = strlen(line);
    /* \r and blanks over the rest of the last line: no terminal escapes. */
    fprintf(pl->out, "\r%s%*s%s", line, pl->last_len > len ? (int)(pl->last_len - len) : 0, "",
            pp->done ? "\n" : "");
    fflush(pl->out);
    pl->last_len = len;
}
