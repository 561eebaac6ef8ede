/* hosts.c — see hosts.h. */
#include "hosts.h"
#include "harness.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SSHD_READY_MS 10000

/* The cleanup, as a shell command: used by the guard and by teardown. */
static char *cleanup_cmd(const struct whosts *h)
{
    char *cmd = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&cmd, &len);
    for (size_t i = 0; i < h->n; i++)
        fprintf(f,
                "if [ -e /run/netns/%s ]; then for p in $(ip netns pids %s); do kill -9 $p; "
                "done; ip netns del %s; fi; ",
                h->ns[i], h->ns[i], h->ns[i]);
    if (h->dir[0])
        fprintf(f, "rm -rf '%s'", h->dir);
    else
        fputs("true", f);
    fclose(f);
    return cmd;
}

/* As the harness does for mounts: a process that waits for the test
 * process to end (check _exits on failure, skipping teardown) and then
 * removes what is left. */
static void start_guard(const struct whosts *h)
{
    if (!wm_fork_guard())
        return;
    char *cmd = cleanup_cmd(h);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
}

static void sh_ok(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sh_ok(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd;
    ck_assert(vasprintf(&cmd, fmt, ap) >= 0);
    va_end(ap);
    int st = wm_sh("%s", cmd);
    ck_assert_msg(st == 0, "%s failed (status %d): %s", what, st, cmd);
    free(cmd);
}

struct ready {
    const struct whosts *h;
    size_t i;
};

static bool sshd_answers(void *arg)
{
    struct ready *r = arg;
    return wm_sh("%s %s true >/dev/null 2>&1", r->h->rsh, r->h->ip[r->i]) == 0;
}

void hosts_setup(struct whosts *h, size_t n)
{
    ck_assert(n >= 2 && n <= HOSTS_MAX);
    memset(h, 0, sizeof(*h));
    h->n = n;
    int id = (int)getpid();
    for (size_t i = 0; i < n; i++)
        snprintf(h->ns[i], sizeof(h->ns[i]), "wsync-h%d-%zu", id, i);
    const char *tmp = getenv("TMPDIR");
    snprintf(h->dir, sizeof(h->dir), "%s/wsync-hosts-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_msg(mkdtemp(h->dir), "mkdtemp: %s", strerror(errno));
    start_guard(h);
    for (size_t i = 0; i < n; i++) {
        sh_ok("netns", "ip netns add %s && ip -n %s link set lo up", h->ns[i], h->ns[i]);
    }
    sh_ok("keys",
          "ssh-keygen -q -t ed25519 -N '' -f '%s/id' && ssh-keygen -q -t ed25519 -N '' -f "
          "'%s/hostkey' && cp '%s/id.pub' '%s/authorized_keys' && mkdir -p /run/sshd",
          h->dir, h->dir, h->dir, h->dir);
    snprintf(h->rsh, sizeof(h->rsh),
             "nsenter --net=/run/netns/%s ssh -i %s/id -o BatchMode=yes "
             "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
             "-o ConnectTimeout=2 -o ServerAliveInterval=1 -o ServerAliveCountMax=3",
             h->ns[0], h->dir);
    for (size_t i = 1; i < n; i++) {
        /* A<->i: 10.77.i.1 on A, 10.77.i.2 on host i. */
        snprintf(h->dev[i], sizeof(h->dev[i]), "to%zu", i);
        snprintf(h->ip[i], sizeof(h->ip[i]), "10.77.%zu.2", i);
        sh_ok("veth",
              "ip link add %s netns %s type veth peer name eth0 netns %s && "
              "ip -n %s addr add 10.77.%zu.1/24 dev %s && ip -n %s link set %s up && "
              "ip -n %s addr add %s/24 dev eth0 && ip -n %s link set eth0 up",
              h->dev[i], h->ns[0], h->ns[i], h->ns[0], i, h->dev[i], h->ns[0], h->dev[i], h->ns[i],
              h->ip[i], h->ns[i]);
        char conf[PATH_MAX + 32];
        snprintf(conf, sizeof(conf), "%s/sshd%zu.conf", h->dir, i);
        FILE *f = fopen(conf, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f,
                "ListenAddress %s\nPort 22\nHostKey %s/hostkey\n"
                "AuthorizedKeysFile %s/authorized_keys\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                "StrictModes no\nUseDNS no\nPidFile none\nLogLevel ERROR\n"
                "ClientAliveInterval 1\nClientAliveCountMax 3\n",
                h->ip[i], h->dir, h->dir);
        fclose(f);
        sh_ok("sshd",
              "nsenter --net=/run/netns/%s /usr/sbin/sshd -f '%s' -E '%s/sshd%zu.log' "
              "</dev/null >/dev/null 2>&1",
              h->ns[i], conf, h->dir, i); /* it daemonizes; the guard kills it by namespace */
        struct ready r = {h, i};
        ck_assert_msg(wm_poll(sshd_answers, &r, SSHD_READY_MS), "sshd on %s never answered",
                      h->ns[i]);
    }
}

void hosts_teardown(struct whosts *h)
{
    if (!h->n)
        return;
    char *cmd = cleanup_cmd(h);
    wm_sh("%s", cmd);
    free(cmd);
    h->n = 0;
}

const char *hosts_dest(const struct whosts *h, size_t i, const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s:%s", h->ip[i], path);
    return out;
}

void hosts_link(const struct whosts *h, size_t i, int up)
{
    sh_ok("link", "ip -n %s link set %s %s", h->ns[0], h->dev[i], up ? "up" : "down");
}

int hosts_kill_matching(const struct whosts *h, size_t i, const char *needle)
{
    char nspath[128];
    struct stat want, got;
    snprintf(nspath, sizeof(nspath), "/run/netns/%s", h->ns[i]);
    ck_assert_int_eq(stat(nspath, &want), 0);
    DIR *d = opendir("/proc");
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int killed = 0;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid())
            continue;
        char path[64], buf[8192];
        snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
        if (stat(path, &got) != 0 || got.st_ino != want.st_ino || got.st_dev != want.st_dev)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        for (ssize_t k = 0; k < n; k++) /* arguments joined by spaces */
            if (!buf[k])
                buf[k] = ' ';
        buf[n] = '\0';
        if (strstr(buf, needle) && kill((pid_t)pid, SIGKILL) == 0)
            killed++;
    }
    closedir(d);
    return killed;
}
