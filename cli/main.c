/* main.c — `wsync COMMAND ...`: dispatch to one file per command. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"mount", cmd_mount, "show SRC at MNT through FUSE, journaling every change"},
    {"unmount", cmd_unmount, "flush and unmount a wsync mount"},
    {"status", cmd_status, "what the daemon serving a mount is doing"},
    {"log", cmd_log, "the journal of changes (or the daemon's raw events)"},
    {"index", cmd_index, "bring SRC's index up to date; print the tree root"},
    {"remote", cmd_remote, "add, remove or list the remotes a mount keeps in step"},
    {"push", cmd_push, "make DEST's tree identical to SRC's, sending only what differs"},
    {"sync", cmd_sync, "two-way sync with DEST; conflicts are kept as copies"},
    {"conflicts", cmd_conflicts, "list conflict copies, or resolve them in bulk"},
    {"verify", cmd_verify, "compare the tree roots of SRC and DEST"},
    {"serve", cmd_serve, "the far side of push and verify (started through ssh)"},
    {"doctor", cmd_doctor, "check FUSE, mount points and far sides; say how to fix"},
    {"overlay", cmd_overlay, "list, diff, reset or promote this machine's local paths"},
};

static void usage(FILE *out)
{
    fputs("usage: wsync COMMAND [OPTIONS] [ARGS]\n\n"
          "wsync shows a project directory through a FUSE mount, journals every\n"
          "change as it happens, and keeps replicas on other machines identical.\n\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\nExample:\n"
          "  wsync mount . /srv && docker run -it --rm -v /srv:/srv IMAGE\n\n"
          "'wsync COMMAND --help' describes a command.  'wsync --version' prints the version.\n"
          "Exit status: 0 success, 1 failure (one line on stderr names the path and\n"
          "the cause), 2 usage error.  'wsync doctor' checks a machine.  See wsync(1).\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf("wsync %s\n", WSYNC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "wsync: unknown command '%s'\n\n", name);
    usage(stderr);
    return EXIT_USAGE;
}
