/*
 * cmd_doctor.c — `wsync doctor [--json] [--src SRC] [--mnt MNT] [DEST...]`:
 * check what wsync needs on this machine and on each far side, one finding
 * per line, each failure with the command that fixes it.  Exit 1 if any
 * check failed (warnings do not count), 2 on a usage error.
 */
#include "../fs/fuse_ring.h"
#include "../fs/mounts.h"
#include "../sync/probe.h"
#include "../sync/strbuf.h"
#include "../sync/transport.h"
#include "../sync/wire.h"
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

static const char help[] =
    "usage: wsync doctor [OPTIONS] [DEST...]\n"
    "\n"
    "Check what wsync needs, here and on each far side DEST, and print one\n"
    "line per finding: ok, warn or FAIL, and for a problem the command that\n"
    "fixes it.  Here: /dev/fuse, fusermount3, user_allow_other in\n"
    "/etc/fuse.conf (a non-root mount that Docker must see), stale wsync\n"
    "mounts, kernel FUSE passthrough, FUSE over io_uring, the mount point and\n"
    "source if given, free space.  At each DEST\n"
    "(reached as push reaches it, running 'wsync serve --stdio --probe'): that\n"
    "wsync runs there and speaks our protocol, its version, whether ROOT can\n"
    "be written, its free space and its clock against ours.  Nothing is\n"
    "changed on either side.\n"
    "\n"
    "Options:\n"
    "      --src SRC         also check the project directory SRC\n"
    "      --mnt MNT         also check that MNT can be mounted on\n"
    "  -e, --rsh CMD         reach DEST through CMD instead of ssh (as push;\n"
    "                        the default is ssh in batch mode: no password prompt)\n"
    "      --wsync-path PATH the far side's wsync binary (as push)\n"
    "      --timeout SECS    how long to wait for each far side (default 20)\n"
    "      --json            one JSON object: {\"ok\": bool, \"findings\": [...]}\n"
    "  -h, --help            show this help\n"
    "\n"
    "For tests:\n"
    "      --fuse-device PATH  check PATH instead of /dev/fuse (also the\n"
    "                          WSYNC_FUSE_DEVICE environment variable)\n"
    "      --fuse-conf PATH    read PATH instead of /etc/fuse.conf\n"
    "\n"
    "Exit status: 0 nothing failed (warnings allowed), 1 a check failed,\n"
    "2 usage error.\n"
    "\n"
    "Examples:\n"
    "  wsync doctor\n"
    "  wsync doctor --mnt /srv robot1:/home/dev/proj gpu-server:/srv/proj\n"
    "  wsync doctor --rsh \"ip netns exec robot1\" /home/dev/proj\n";

/* Below these, free space is a warning, then a failure. */
#define SPACE_WARN (1ll << 30)
#define SPACE_FAIL (100ll << 20)
/* A far clock off by more than this (beyond the round trip) is a warning:
 * mtimes travel as they are, so "newer" and build tools disagree. */
#define SKEW_WARN_NS (2ll * 1000000000)

enum level { LEVEL_OK, LEVEL_WARN, LEVEL_FAIL };

struct report {
    bool json;
    int failed, warned;
    struct strbuf out; /* JSON findings */
};

/* One finding: a line of text (or a JSON object), and the fix if any. */
static void finding(struct report *rp, enum level lv, const char *check, const char *fix,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void finding(struct report *rp, enum level lv, const char *check, const char *fix,
                    const char *fmt, ...)
{
    static const char *const names[] = {"ok", "warn", "fail"};
    static const char *const tags[] = {"ok  ", "warn", "FAIL"};
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rp->failed += lv == LEVEL_FAIL;
    rp->warned += lv == LEVEL_WARN;
    if (!rp->json) {
        printf("%s  %s%s%s\n", tags[lv], msg, fix ? "; fix: " : "", fix ? fix : "");
        fflush(stdout);
        return;
    }
    strbuf_adds(&rp->out, rp->out.len ? ",{\"check\":" : "{\"check\":");
    strbuf_add_json_string(&rp->out, check);
    strbuf_addf(&rp->out, ",\"status\":\"%s\",\"message\":", names[lv]);
    strbuf_add_json_string(&rp->out, msg);
    strbuf_adds(&rp->out, ",\"fix\":");
    if (fix)
        strbuf_add_json_string(&rp->out, fix);
    else
        strbuf_adds(&rp->out, "null");
    strbuf_adds(&rp->out, "}");
}

static const char *human_bytes(int64_t n, char *buf, size_t size)
{
    if (n >= (1ll << 30))
        snprintf(buf, size, "%.1f GiB", (double)n / (1 << 30));
    else
        snprintf(buf, size, "%.1f MiB", (double)n / (1 << 20));
    return buf;
}

/* ---- this machine ---- */

static void check_fuse_device(struct report *rp, const char *dev)
{
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        finding(rp, LEVEL_OK, "fuse-device", NULL, "%s opens read-write", dev);
        return;
    }
    int e = errno;
    if (e == ENOENT)
        finding(rp, LEVEL_FAIL, "fuse-device",
                "modprobe fuse (in a container: docker run --device /dev/fuse "
                "--cap-add SYS_ADMIN ...)",
                "%s does not exist: no FUSE here, wsync mount cannot work", dev);
    else if (e == EACCES || e == EPERM)
        finding(rp, LEVEL_FAIL, "fuse-device",
                "run wsync mount as root, or make the device usable (chmod 0666 /dev/fuse)",
                "cannot open %s: %s", dev, strerror(e));
    else
        finding(rp, LEVEL_FAIL, "fuse-device", NULL, "cannot open %s: %s", dev, strerror(e));
}

/* Kernel FUSE passthrough (fs/passthrough.h): Linux >= 6.9 and root.  A
 * mount says for sure (`wsync status`: file I/O); this is what can be told
 * without one. */
static void check_passthrough(struct report *rp, bool root)
{
    struct utsname u;
    unsigned major = 0, minor = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2) {
        finding(rp, LEVEL_WARN, "passthrough", NULL, "cannot tell the kernel's version");
        return;
    }
    if (major < 6 || (major == 6 && minor < 9))
        finding(rp, LEVEL_WARN, "passthrough", "a Linux 6.9 or later kernel",
                "Linux %s has no FUSE passthrough: file reads and writes go through the "
                "daemon (slower large writes)",
                u.release);
    else if (!root)
        finding(rp, LEVEL_WARN, "passthrough", "run wsync mount as root",
                "not root: FUSE passthrough needs CAP_SYS_ADMIN, file reads and writes will go "
                "through the daemon");
    else
        finding(rp, LEVEL_OK, "passthrough", NULL,
                "Linux %s: file reads and writes can bypass the daemon (FUSE passthrough; "
                "wsync status shows it per mount)",
                u.release);
}

/* FUSE over io_uring (fs/fuse_ring.h): the transport a mount uses when the
 * kernel has it; `wsync status` says which one a mount got. */
static void check_io_uring(struct report *rp, bool root)
{
    int on = fuse_ring_kernel_enabled();
    char disabled[8] = "0";
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    if (f) {
        if (!fgets(disabled, sizeof(disabled), f))
            disabled[0] = '0';
        fclose(f);
    }
    if (on == -ENOENT)
        finding(rp, LEVEL_WARN, "io-uring", "a Linux 6.14 or later kernel (CONFIG_FUSE_IO_URING)",
                "this kernel has no FUSE over io_uring: requests go through /dev/fuse (about half "
                "the speed for creates, deletes and git)");
    else if (disabled[0] != '0')
        finding(rp, LEVEL_WARN, "io-uring", "sysctl kernel.io_uring_disabled=0",
                "io_uring is disabled on this machine (kernel.io_uring_disabled=%c): requests go "
                "through /dev/fuse",
                disabled[0]);
    else if (on == 0 && !root)
        finding(rp, LEVEL_WARN, "io-uring",
                "echo Y > /sys/module/fuse/parameters/enable_uring (as root)",
                "FUSE over io_uring is off in the kernel: requests go through /dev/fuse");
    else
        finding(rp, LEVEL_OK, "io-uring", NULL, "requests can come through FUSE over io_uring%s",
                on == 0 ? " (wsync mount turns the kernel's switch on)" : "");
}

/* The first executable `name` in $PATH (or the usual dirs); 0 or -ENOENT. */
static int find_program(const char *name, char *out, size_t size)
{
    const char *path = getenv("PATH");
    char *dirs = strdup(path && *path ? path : "/usr/bin:/bin");
    int r = -ENOENT;
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d && r;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(out, size, "%s/%s", d, name);
        if (access(out, X_OK) == 0)
            r = 0;
    }
    free(dirs);
    return r;
}

static void check_fusermount(struct report *rp, bool root)
{
    char path[PATH_MAX];
    struct stat st;
    if (find_program("fusermount3", path, sizeof(path)) != 0) {
        finding(rp, root ? LEVEL_OK : LEVEL_FAIL, "fusermount3",
                root ? NULL : "apt-get install fuse3", "fusermount3 is not in PATH%s",
                root ? " (not needed as root)"
                     : ": a non-root "
                       "mount needs it");
        return;
    }
    if (stat(path, &st) == 0 && (st.st_uid != 0 || !(st.st_mode & S_ISUID)) && !root) {
        finding(rp, LEVEL_FAIL, "fusermount3", "apt-get install --reinstall fuse3",
                "%s is not setuid root: non-root mounts will fail", path);
        return;
    }
    finding(rp, LEVEL_OK, "fusermount3", NULL, "%s is there", path);
}

/* Is user_allow_other on a line of its own (not commented) in conf? */
static int conf_allows_other(const char *conf)
{
    FILE *f = fopen(conf, "re");
    if (!f)
        return -errno;
    char line[512];
    int yes = 0;
    while (fgets(line, sizeof(line), f)) {
        char *s = line + strspn(line, " \t");
        s[strcspn(s, " \t\r\n#")] = '\0';
        if (strcmp(s, "user_allow_other") == 0)
            yes = 1;
    }
    fclose(f);
    return yes;
}

static void check_allow_other(struct report *rp, const char *conf, bool root)
{
    if (root) {
        finding(rp, LEVEL_OK, "allow-other", NULL,
                "running as root: mounts allow other users (Docker) without %s", conf);
        return;
    }
    int r = conf_allows_other(conf);
    if (r == 1) {
        finding(rp, LEVEL_OK, "allow-other", NULL, "%s has user_allow_other", conf);
        return;
    }
    char fix[PATH_MAX + 64];
    snprintf(fix, sizeof(fix), "echo user_allow_other | sudo tee -a %s", conf);
    finding(rp, LEVEL_WARN, "allow-other", fix,
            "%s %s user_allow_other: Docker (root) cannot use a mount you make, and "
            "'wsync mount --allow-other' fails",
            conf, r < 0 ? "is unreadable, so no" : "lacks");
}

static void stale_mount(const struct mount_info *m, void *arg)
{
    struct report *rp = arg;
    if (mounts_probe(m->mountpoint) != -ENOTCONN)
        return;
    char fix[PATH_MAX + 32];
    snprintf(fix, sizeof(fix), "wsync unmount %s", m->mountpoint);
    finding(rp, LEVEL_WARN, "stale-mount", fix,
            "%s (of %s) is a wsync mount whose daemon died (Transport endpoint is not "
            "connected)",
            m->mountpoint, m->source);
}

static void check_mount_point(struct report *rp, const char *mnt)
{
    struct stat st;
    char fix[2 * PATH_MAX];
    int e = -mounts_probe(mnt);
    if (e || stat(mnt, &st) < 0) {
        e = e ? e : errno;
        if (e == ENOTCONN) {
            snprintf(fix, sizeof(fix), "wsync unmount %s", mnt);
            finding(rp, LEVEL_FAIL, "mount-point", fix, "mount point %s is a stale mount", mnt);
        } else if (e == ENOENT) {
            snprintf(fix, sizeof(fix), "mkdir -p %s", mnt);
            finding(rp, LEVEL_FAIL, "mount-point", fix, "mount point %s does not exist", mnt);
        } else {
            finding(rp, LEVEL_FAIL, "mount-point", NULL, "mount point %s: %s", mnt, strerror(e));
        }
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        finding(rp, LEVEL_FAIL, "mount-point", "choose a directory",
                "mount point %s is not a directory", mnt);
        return;
    }
    char *abs = realpath(mnt, NULL);
    struct mount_info m;
    if (abs && mounts_at(abs, &m) == 0) {
        bool ours = strcmp(m.fstype, WSYNC_FSTYPE) == 0;
        if (ours)
            finding(rp, LEVEL_OK, "mount-point", NULL, "%s is a live wsync mount of %s", abs,
                    m.source);
        else
            finding(rp, LEVEL_WARN, "mount-point", NULL,
                    "%s is already a %s mount: wsync would hide it", abs, m.fstype);
        mount_info_release(&m);
        free(abs);
        return;
    }
    free(abs);
    DIR *dir = opendir(mnt);
    if (!dir) {
        finding(rp, LEVEL_FAIL, "mount-point", NULL, "mount point %s: %s", mnt, strerror(errno));
        return;
    }
    bool empty = true;
    struct dirent *de;
    while ((de = readdir(dir)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = false;
    closedir(dir);
    if (!empty) {
        finding(rp, LEVEL_FAIL, "mount-point", "empty it, or mount somewhere else",
                "mount point %s is not empty (mounting would hide its files)", mnt);
        return;
    }
    if (geteuid() != 0 && access(mnt, W_OK) != 0) {
        snprintf(fix, sizeof(fix), "sudo chown %d %s", (int)geteuid(), mnt);
        finding(rp, LEVEL_FAIL, "mount-point", fix,
                "mount point %s is not yours to mount on (not writable)", mnt);
        return;
    }
    finding(rp, LEVEL_OK, "mount-point", NULL, "%s is an empty directory, ready to mount on", mnt);
}

static void check_source(struct report *rp, const char *src)
{
    struct stat st;
    if (stat(src, &st) < 0) {
        finding(rp, LEVEL_FAIL, "source", NULL, "source %s: %s", src, strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        finding(rp, LEVEL_FAIL, "source", NULL, "source %s is not a directory", src);
        return;
    }
    if (access(src, W_OK) != 0) {
        finding(rp, LEVEL_FAIL, "source", NULL,
                "source %s is not writable: its state (.wsync/) cannot be kept there", src);
        return;
    }
    finding(rp, LEVEL_OK, "source", NULL, "source %s is a writable directory", src);
}

static void space_finding(struct report *rp, const char *check, const char *where, const char *path,
                          int64_t avail)
{
    char h[32];
    if (avail < 0) {
        finding(rp, LEVEL_WARN, check, NULL, "free space at %s%s: unknown", where, path);
        return;
    }
    enum level lv = avail < SPACE_FAIL ? LEVEL_FAIL : avail < SPACE_WARN ? LEVEL_WARN : LEVEL_OK;
    finding(rp, lv, check, lv == LEVEL_OK ? NULL : "free some space (index and staging need it)",
            "%s free at %s%s", human_bytes(avail, h, sizeof(h)), where, path);
}

static void check_local_space(struct report *rp, const char *path)
{
    struct statvfs vfs;
    int64_t avail = -1;
    if (statvfs(path, &vfs) == 0)
        avail = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
    space_finding(rp, "space", "", path, avail);
}

/* ---- a far side ---- */

static void check_far_side(struct report *rp, const char *text, const char *rsh,
                           const char *wsync_path, int timeout_ms)
{
    char err[2048];
    struct dest d;
    char *abs = cli_dest_arg(text);
    int parsed = -errno;
    if (abs)
        parsed = dest_parse(abs, &d, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "%s: %s", text, strerror(-parsed));
    free(abs);
    if (parsed != 0) {
        finding(rp, LEVEL_FAIL, "far-side", "see 'wsync push --help' for DEST forms", "%s", err);
        return;
    }
    /* Doctor must not hang on a password prompt: ssh in batch mode unless
     * the user chose the rsh. */
    const char *how = rsh ? rsh : d.host ? "ssh -o BatchMode=yes -o ConnectTimeout=10" : NULL;
    struct probe_result pr;
    int r = probe_far_side(&d, how, wsync_path, timeout_ms, &pr, err, sizeof(err));
    char fix[1024];
    const char *where = d.host ? d.host : "this machine";
    if (r) {
        const char *f = NULL;
        if (strstr(pr.far_stderr, "--probe") &&
            (strstr(pr.far_stderr, "unrecognized") || strstr(pr.far_stderr, "unknown option"))) {
            /* A wsync from before doctor: it cannot say its version. */
            snprintf(err, sizeof(err),
                     "the far side's wsync is older than this one (it lacks 'serve --probe'): %s",
                     pr.far_stderr);
            snprintf(fix, sizeof(fix), "install this wsync (%s) on %s", WSYNC_VERSION, where);
            f = fix;
        } else if (strstr(err, "protocol version mismatch")) {
            snprintf(fix, sizeof(fix), "install wsync %s on %s (apt install ./wsync_%s_amd64.deb)",
                     WSYNC_VERSION, where, WSYNC_VERSION);
            f = fix;
        } else if (pr.exit_status == 127 || strstr(err, "cannot run") ||
                   strstr(err, "command not found")) {
            snprintf(fix, sizeof(fix),
                     "install wsync on %s (apt install ./wsync_%s_amd64.deb), or give "
                     "--wsync-path",
                     where, WSYNC_VERSION);
            f = fix;
        } else if (d.host && !rsh) {
            snprintf(fix, sizeof(fix), "make 'ssh %s%s%s true' work without a password",
                     d.user ? d.user : "", d.user ? "@" : "", d.host);
            f = fix;
        } else if (rsh) {
            snprintf(fix, sizeof(fix), "make '%s%s%s true' work", rsh, d.host ? " " : "",
                     d.host ? d.host : "");
            f = fix;
        }
        finding(rp, LEVEL_FAIL, "far-version", f, "%s: %s", text, err);
        dest_release(&d);
        return;
    }
    if (strcmp(pr.tool_version, WSYNC_VERSION) == 0)
        finding(rp, LEVEL_OK, "far-version", NULL,
                "%s: wsync %s (protocol %u), answered in %.0f ms", text, pr.tool_version,
                pr.protocol, (double)pr.rtt_ns / 1e6);
    else {
        snprintf(fix, sizeof(fix), "install wsync %s on %s", WSYNC_VERSION, where);
        finding(rp, LEVEL_WARN, "far-version", fix,
                "%s: wsync %s there, %s here; both speak protocol %u", text, pr.tool_version,
                WSYNC_VERSION, pr.protocol);
    }
    if (!pr.have_facts) {
        finding(rp, LEVEL_WARN, "far-facts", NULL,
                "%s: the far side reported no root, space or clock facts", text);
        dest_release(&d);
        return;
    }
    if (strcmp(pr.root_state, "notdir") == 0)
        finding(rp, LEVEL_FAIL, "far-root", "choose a directory path", "%s: %s is not a directory",
                text, d.path);
    else if (!pr.writable) {
        snprintf(fix, sizeof(fix), "on %s: sudo chown $USER %s (or its parent)", where, d.path);
        finding(rp, LEVEL_FAIL, "far-root", fix, "%s: %s is not writable there", text, d.path);
    } else
        finding(rp, LEVEL_OK, "far-root", NULL, "%s: %s %s", text, d.path,
                strcmp(pr.root_state, "dir") == 0 ? "is a writable directory"
                                                  : "does not exist yet; push creates it");
    space_finding(rp, "far-space", text, "", pr.avail_bytes);
    int64_t skew = pr.far_time_ns - pr.local_time_ns;
    int64_t mag = skew < 0 ? -skew : skew;
    if (mag > SKEW_WARN_NS + pr.rtt_ns / 2)
        finding(rp, LEVEL_WARN, "clock-skew",
                "turn on NTP on both machines (timedatectl set-ntp true)",
                "%s: its clock is %.1f s %s ours; mtimes will look wrong", text, (double)mag / 1e9,
                skew > 0 ? "ahead of" : "behind");
    else
        finding(rp, LEVEL_OK, "clock-skew", NULL, "%s: clocks agree within %.1f s", text,
                (double)(SKEW_WARN_NS + pr.rtt_ns / 2) / 1e9);
    dest_release(&d);
}

int cmd_doctor(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"src", required_argument, NULL, 's'},
        {"mnt", required_argument, NULL, 'm'},
        {"rsh", required_argument, NULL, 'e'},
        {"wsync-path", required_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 't'},
        {"fuse-device", required_argument, NULL, 'F'},
        {"fuse-conf", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct report rp = {.out = STRBUF_INIT};
    const char *src = NULL, *mnt = NULL, *rsh = NULL, *wsync_path = NULL;
    const char *dev = getenv("WSYNC_FUSE_DEVICE");
    const char *conf = "/etc/fuse.conf";
    double timeout = 20;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "e:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            rp.json = true;
            break;
        case 's':
            src = optarg;
            break;
        case 'm':
            mnt = optarg;
            break;
        case 'e':
            rsh = optarg;
            break;
        case 'w':
            wsync_path = optarg;
            break;
        case 'F':
            dev = optarg;
            break;
        case 'C':
            conf = optarg;
            break;
        case 't': {
            char *end;
            timeout = strtod(optarg, &end);
            if (*end || !(timeout > 0))
                return cli_usage_error("doctor", "--timeout wants seconds > 0, not '%s'", optarg);
            break;
        }
        case 'h':
            fputs(help, stdout);
            return 0;
        default:
            return cli_usage_error("doctor", "unknown option");
        }
    }
    if (!dev || !*dev)
        dev = "/dev/fuse";
    bool root = geteuid() == 0;

    finding(&rp, LEVEL_OK, "version", NULL, "wsync %s (protocol %u)%s", WSYNC_VERSION,
            (unsigned)WIRE_PROTOCOL_VERSION, root ? ", running as root" : "");
    check_fuse_device(&rp, dev);
    check_fusermount(&rp, root);
    check_allow_other(&rp, conf, root);
    check_passthrough(&rp, root);
    check_io_uring(&rp, root);
    if (mounts_foreach_wsync(stale_mount, &rp) != 0)
        finding(&rp, LEVEL_WARN, "stale-mount", NULL, "cannot read /proc/self/mountinfo: %s",
                strerror(errno));
    if (src)
        check_source(&rp, src);
    if (mnt)
        check_mount_point(&rp, mnt);
    char cwd[PATH_MAX];
    check_local_space(&rp, src ? src : getcwd(cwd, sizeof(cwd)) ? cwd : ".");
    for (int i = optind; i < argc; i++)
        check_far_side(&rp, argv[i], rsh, wsync_path, (int)(timeout * 1000));

    if (rp.json)
        printf("{\"ok\":%s,\"failed\":%d,\"warnings\":%d,\"findings\":[%s]}\n",
               rp.failed ? "false" : "true", rp.failed, rp.warned, rp.out.buf);
    else
        printf("%s: %d failed, %d warning%s\n", rp.failed ? "FAILED" : "ok", rp.failed, rp.warned,
               rp.warned == 1 ? "" : "s");
    strbuf_release(&rp.out);
    return rp.failed ? 1 : 0;
}
