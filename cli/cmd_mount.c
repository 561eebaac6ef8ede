/* cmd_mount.c — `wsync mount [-f] [--allow-other] [--keep-owner] SRC MNT`. */
#include "../fs/mounts.h"
#include "cli.h"
#include "mount_daemon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char help[] =
    "usage: wsync mount [OPTIONS] SRC MNT\n"
    "\n"
    "Show the directory SRC at the empty directory MNT through FUSE.  Every\n"
    "change made under MNT (editor, compiler, container) or directly in SRC is\n"
    "journaled.  SRC/.wsync/ holds this machine's state; it is hidden from MNT.\n"
    "Returns once MNT is ready; the daemon keeps running in the background.\n"
    "\n"
    "Options:\n"
    "  -f, --foreground    stay in the foreground; Ctrl-C unmounts\n"
    "      --allow-other   let other users (the Docker daemon, containers) use\n"
    "                      the mount; the default when run as root\n"
    "      --no-allow-other  only the mounting user may use the mount\n"
    "      --keep-owner    files created through MNT are owned by the creating\n"
    "                      user; by default they belong to SRC's owner, so a\n"
    "                      container's root does not leave root-owned files\n"
    "      --writeback     kernel writeback cache: faster small writes, but edits\n"
    "                      made directly in SRC to files open under MNT may show\n"
    "                      a stale size until they are closed\n"
    "      --no-passthrough  serve all file reads and writes in the daemon; by\n"
    "                      default the kernel passes them straight to SRC's file\n"
    "                      (Linux >= 6.9, as root; not with --writeback)\n"
    "      --io-uring      take requests through FUSE over io_uring, and warn\n"
    "                      if that is not possible.  The default is to use it\n"
    "                      quietly where the kernel has it (Linux >= 6.14); as\n"
    "                      root, wsync turns the kernel's switch on\n"
    "                      (/sys/module/fuse/parameters/enable_uring)\n"
    "      --no-io-uring   take requests through /dev/fuse only\n"
    "      --timeout SECS  kernel entry/attribute cache timeout (default 86400,\n"
    "                      kept exact by watching SRC)\n"
    "      --mirror DEST   keep DEST (a local path, host:/path or ssh://...)\n"
    "                      equal to SRC while mounted; repeatable.  Changes reach\n"
    "                      it within milliseconds; an unreachable DEST is retried\n"
    "                      and caught up.\n"
    "                      The remotes of 'wsync remote add' (SRC/.wsync/config)\n"
    "                      are mirrored too, without this option\n"
    "  -e, --rsh CMD       reach mirrors through CMD instead of ssh (as push)\n"
    "      --wsync-path P  the mirrors' wsync binary (as push)\n"
    "  -d, --debug         trace every FUSE request on stderr (implies -f)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Examples:\n"
    "  wsync mount . /srv\n"
    "  wsync mount --mirror robot1:/home/dev/proj . /srv\n"
    "  docker run -it --rm -v /srv:/srv IMAGE\n"
    "  wsync unmount /srv\n";

/* The checks a user gets a clear sentence for, before anything is mounted. */
static int check_source(const char *src_arg, char **src)
{
    struct stat st;
    if (stat(src_arg, &st) < 0)
        return cli_error("source %s: %s", src_arg, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_error("source %s is not a directory", src_arg);
    *src = realpath(src_arg, NULL);
    if (!*src)
        return cli_error("source %s: %s", src_arg, strerror(errno));
    return 0;
}

static int check_mountpoint(const char *mnt_arg, char **mnt)
{
    struct stat st;
    int dead = mounts_probe(mnt_arg) == -ENOTCONN;
    if (dead || stat(mnt_arg, &st) < 0) {
        if (dead)
            return cli_error("mount point %s is a stale mount whose daemon died; "
                             "run 'wsync unmount %s' first",
                             mnt_arg, mnt_arg);
        if (errno == ENOENT)
            return cli_error("mount point %s does not exist (create it with 'mkdir -p %s')",
                             mnt_arg, mnt_arg);
        return cli_error("mount point %s: %s", mnt_arg, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return cli_error("mount point %s is not a directory", mnt_arg);
    *mnt = realpath(mnt_arg, NULL);
    if (!*mnt)
        return cli_error("mount point %s: %s", mnt_arg, strerror(errno));

    struct mount_info m;
    if (mounts_at(*mnt, &m) == 0) {
        bool ours = strcmp(m.fstype, WSYNC_FSTYPE) == 0;
        int r = ours ? cli_error("%s is already a wsync mount of %s; "
                                 "run 'wsync unmount %s' first",
                                 *mnt, m.source, *mnt)
                     : 0;
        mount_info_release(&m);
        if (r)
            return r;
    }
    DIR *dir = opendir(*mnt);
    if (!dir)
        return cli_error("mount point %s: %s", *mnt, strerror(errno));
    struct dirent *de;
    bool empty = true;
    while ((de = readdir(dir)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = false;
    closedir(dir);
    if (!empty)
        return cli_error("mount point %s is not empty (mounting would hide its files)", *mnt);
    return 0;
}

static bool is_within(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    return strncmp(dir, path, n) == 0 && (path[n] == '/' || path[n] == '\0' || n == 1);
}

static int check_fuse_device(void)
{
    /* WSYNC_FUSE_DEVICE lets tests simulate a missing or forbidden device. */
    const char *dev = getenv("WSYNC_FUSE_DEVICE");
    if (!dev || !*dev)
        dev = "/dev/fuse";
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno == ENOENT)
        return cli_error("%s does not exist: load the fuse module ('modprobe fuse'), or in a "
                         "container pass '--device /dev/fuse --cap-add SYS_ADMIN'",
                         dev);
    if (errno == EACCES || errno == EPERM)
        return cli_error("cannot open %s: %s (wsync mount needs root here)", dev,
                         strerror(errno));
    return cli_error("cannot open %s: %s", dev, strerror(errno));
}

/* Fork the daemon and wait for its one-line report: empty means ready. */
static int run_background(const struct daemon_options *dopt)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return cli_error("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return cli_error("fork: %s", strerror(errno));
    if (pid == 0) {
        close(pipefd[0]);
        setsid();
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        if (chdir("/") != 0) { /* do not pin the caller's cwd */
        }
        _exit(mount_daemon_run(dopt, pipefd[1]));
    }
    close(pipefd[1]);
    char line[1024];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(line) - 1 &&
           ((n = read(pipefd[0], line + len, sizeof(line) - 1 - len)) > 0 ||
            (n < 0 && errno == EINTR)))
        if (n > 0)
            len += (size_t)n;
    close(pipefd[0]);
    line[len] = '\0';
    if (len == 0)
        return cli_error("the mount daemon for %s exited before the mount was ready "
                         "(see %s/.wsync/daemon.log)",
                         dopt->fs.src, dopt->fs.src);
    if (line[0] == '\n')
        return 0;
    line[strcspn(line, "\n")] = '\0';
    return cli_error("%s", line);
}

int cmd_mount(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"foreground", no_argument, NULL, 'f'},
        {"allow-other", no_argument, NULL, 'a'},
        {"no-allow-other", no_argument, NULL, 'A'},
        {"keep-owner", no_argument, NULL, 'k'},
        {"writeback", no_argument, NULL, 'w'},
        {"no-passthrough", no_argument, NULL, 'P'},
        {"io-uring", no_argument, NULL, 'U'},
        {"no-io-uring", no_argument, NULL, 'u'},
        {"timeout", required_argument, NULL, 't'},
        {"debug", no_argument, NULL, 'd'},
        {"mirror", required_argument, NULL, 'm'},
        {"rsh", required_argument, NULL, 'e'},
        {"wsync-path", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct daemon_options dopt = {.fs = {.allow_other = geteuid() == 0, .cache_timeout = -1}};
    bool foreground = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "fdhe:", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': foreground = true; break;
        case 'a': dopt.fs.allow_other = true; break;
        case 'A': dopt.fs.allow_other = false; break;
        case 'k': dopt.fs.keep_owner = true; break;
        case 'w': dopt.fs.writeback = true; break;
        case 'P': dopt.fs.no_passthrough = true; break;
        case 'U': dopt.fs.ring = WFS_RING_ON; break;
        case 'u': dopt.fs.ring = WFS_RING_OFF; break;
        case 'd': dopt.fs.debug = foreground = true; break;
        case 't': {
            char *end;
            dopt.fs.cache_timeout = strtod(optarg, &end);
            if (*end || dopt.fs.cache_timeout < 0)
                return cli_usage_error("mount", "--timeout wants seconds >= 0, not '%s'", optarg);
            break;
        }
        case 'm':
            if (dopt.nmirrors == MOUNT_MAX_MIRRORS)
                return cli_usage_error("mount", "at most %d --mirror", MOUNT_MAX_MIRRORS);
            if (!(dopt.mirrors[dopt.nmirrors++] = cli_dest_arg(optarg)))
                return cli_error("%s: %s", optarg, strerror(errno));
            break;
        case 'e': dopt.rsh = optarg; break;
        case 'W': dopt.wsync_path = optarg; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage_error("mount", "unknown option");
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("mount", "expected SRC and MNT");

    char *src = NULL, *mnt = NULL;
    int r = check_source(argv[optind], &src);
    if (!r)
        r = check_mountpoint(argv[optind + 1], &mnt);
    if (!r && (is_within(src, mnt) || is_within(mnt, src)))
        r = cli_error("mount point %s and source %s overlap: the mount would contain itself",
                      mnt, src);
    if (!r)
        r = check_fuse_device();
    if (!r) {
        dopt.fs.src = src;
        dopt.fs.mountpoint = mnt;
        r = foreground ? mount_daemon_run(&dopt, -1) : run_background(&dopt);
    }
    free(src);
    free(mnt);
    for (size_t i = 0; i < dopt.nmirrors; i++)
        free((char *)dopt.mirrors[i]); /* cli_dest_arg's */
    return r;
}
