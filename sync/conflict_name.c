/* conflict_name.c — see conflict_name.h. */
#include "conflict_name.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NAME_MAX_BYTES 255

/* Where the extension of a file name starts (its last '.'), or its end. */
static size_t ext_at(const char *base)
{
    const char *dot = strrchr(base, '.');
    return dot && dot != base ? (size_t)(dot - base) : strlen(base);
}

int conflict_name(const char *path, const char *host, time_t when, unsigned n, char *out,
                  size_t size)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dir_len = (size_t)(base - path);
    size_t stem = ext_at(base);
    struct tm tm;
    gmtime_r(&when, &tm);
    char mark[160];
    int m = snprintf(mark, sizeof(mark), CONFLICT_MARK "%s-%04d%02d%02d-%02d%02d%02d", host,
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec);
    if (n > 1)
        m += snprintf(mark + m, sizeof(mark) - (size_t)m, "-%u", n);
    size_t ext_len = strlen(base + stem);
    if (ext_len + (size_t)m >= NAME_MAX_BYTES)
        ext_len = 0; /* an absurd extension is dropped rather than the mark */
    if (stem + (size_t)m + ext_len > NAME_MAX_BYTES)
        stem = NAME_MAX_BYTES - (size_t)m - ext_len;
    int w = snprintf(out, size, "%.*s%.*s%s%.*s", (int)dir_len, path, (int)stem, base, mark,
                     (int)ext_len, base + ext_at(base));
    return w < 0 || (size_t)w >= size ? -ENAMETOOLONG : 0;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* At s: "-YYYYmmdd-HHMMSS" then "", "." or "-N" then "" or "."; returns
 * the length of the time stamp with its suffix, or 0. */
static size_t stamp_at(const char *s)
{
    if (s[0] != '-' || !digits(s + 1, 8) || s[9] != '-' || !digits(s + 10, 6))
        return 0;
    size_t k = 16;
    if (s[k] == '-' && isdigit((unsigned char)s[k + 1])) {
        k++;
        while (isdigit((unsigned char)s[k]))
            k++;
    }
    return s[k] == '\0' || (s[k] == '.' && !strchr(s + k + 1, '/')) ? k : 0;
}

bool conflict_name_parse(const char *path, char *orig, size_t orig_size, char *host,
                         size_t host_size, char *when, size_t when_size)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *mark = strstr(base, CONFLICT_MARK);
    while (mark) {
        const char *h = mark + strlen(CONFLICT_MARK);
        for (const char *p = h + 1; *p; p++) {
            size_t k = *p == '-' ? stamp_at(p) : 0;
            if (!k)
                continue;
            const char *ext = p + k; /* "" or ".ext" */
            if (orig)
                snprintf(orig, orig_size, "%.*s%s", (int)(mark - path), path, ext);
            if (host)
                snprintf(host, host_size, "%.*s", (int)(p - h), h);
            if (when)
                snprintf(when, when_size, "%.15s", p + 1);
            return true;
        }
        mark = strstr(mark + 1, CONFLICT_MARK);
    }
    return false;
}
