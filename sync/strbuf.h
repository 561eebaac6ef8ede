/*
 * strbuf.h — a growable, always NUL-terminated byte string (after git's).
 * Allocation failure aborts: every caller builds small texts (replies,
 * messages), and a half-built one would be worse than a clean exit.
 */
#ifndef WSYNC_STRBUF_H
#define WSYNC_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
    char *buf; /* never NULL after init */
    size_t len;
    size_t cap;
};

#define STRBUF_INIT {.buf = strbuf_empty, .len = 0, .cap = 0}
extern char strbuf_empty[];

void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included. */
void strbuf_add_json_string(struct strbuf *sb, const char *s);
void strbuf_reset(struct strbuf *sb);
/* Hand the buffer to the caller (free() it); sb is left empty. */
char *strbuf_detach(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);

#endif
