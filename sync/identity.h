/*
 * identity.h — who a tree is: a random 128-bit tree id kept in
 * ROOT/.wsync/tree_id (made once, on first use, never changed), and the
 * host label that names this machine in conflict copies.
 * Invariant: a tree's id never changes once written; two trees with
 * separately made .wsync dirs never share one.
 */
#ifndef WSYNC_IDENTITY_H
#define WSYNC_IDENTITY_H

#include <stddef.h>

#include "content_id.h"

#define IDENTITY_FILE "tree_id"

/* The tree id of ROOT (its .wsync must exist), made with getrandom on
 * first use (two racing first uses agree: link(2) picks one).  0, or -errno
 * with err naming the file and the cause (a corrupt file is -EINVAL). */
int identity_tree_id(const char *root, struct content_id *id, char *err, size_t errsize);

/* This machine's host label: $WSYNC_HOST if set, else the host name; every
 * byte outside [A-Za-z0-9._-] becomes '_', cut to 64 bytes, never empty. */
void identity_host_label(char *buf, size_t size);

#endif
