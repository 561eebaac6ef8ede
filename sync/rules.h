/*
 * rules.h — path rules: which paths are mirrored, ignored or machine-local.
 *
 * The rules live in ROOT/.wsyncrules, committed with the project (and
 * mirrored like any file).  Syntax is gitignore's, in two sections:
 *
 *     [ignore]    never mirrored; visible and writable as usual
 *     *.swp
 *     [local]     per-machine overlay: never mirrored, persisted per machine
 *     /build/
 *
 * If the file is absent these defaults apply (rules_default_text):
 *
 *     [local]  /build/ /install/ /log/ .venv/ venv/ node_modules/ __pycache__/
 *     [ignore] *.swp *~ .#*
 *
 * A present file replaces the defaults entirely.  docs/rules.md has the
 * full syntax, the precedence and examples.
 *
 * Invariant: a loaded `struct rules` is immutable; classify does no I/O and
 * no allocation, so any number of threads may call it at once.  Patterns
 * git would never match (unterminated `[`, trailing `\`) are rejected at
 * load instead of being silently dead.  Paths are relative to ROOT, with no
 * leading or trailing slash; the root itself is "".
 */
#ifndef WSYNC_RULES_H
#define WSYNC_RULES_H

#include <stdbool.h>
#include <stddef.h>

#define RULES_FILE ".wsyncrules"

enum rule_class {
    RULE_MIRROR = 0, /* synced to every machine */
    RULE_IGNORE,     /* never mirrored; lives in SRC like any file */
    RULE_LOCAL,      /* never mirrored; lives in this machine's overlay */
};

struct rules;

/* The rules in force when ROOT has no .wsyncrules, as file text. */
extern const char rules_default_text[];

/* Read ROOT/.wsyncrules (ROOT open as root_dirfd), or take the defaults if
 * it does not exist.  `root_name` (may be NULL) only names the file in
 * messages.  0 and *out set, or -errno with err = "FILE[:LINE]: cause";
 * -EINVAL for a syntax error, -EFBIG over 1 MiB. */
int rules_load(int root_dirfd, const char *root_name, struct rules **out, char *err,
               size_t errsize);

/* Parse rules from text[0..len) (no NUL bytes).  `filename` names the text
 * in messages.  0 and *out set, or -EINVAL (err = "FILE:LINE: cause") or
 * -ENOMEM. */
int rules_parse(const char *text, size_t len, const char *filename, struct rules **out, char *err,
                size_t errsize);

void rules_free(struct rules *r);

/* True if r came from rules_default_text rather than a file. */
bool rules_are_default(const struct rules *r);

/* Class of relpath (is_dir: it is a directory), walking its ancestors as git
 * does: a path under an excluded directory is excluded too.  `.wsync` at
 * the root and everything in it is RULE_LOCAL; `.wsyncrules` is RULE_MIRROR. */
enum rule_class rules_classify(const struct rules *r, const char *relpath, bool is_dir);

/* Same result in O(patterns) for tree walks: `parent` must be the class of
 * relpath's parent directory (RULE_MIRROR for top-level entries). */
enum rule_class rules_classify_child(const struct rules *r, enum rule_class parent,
                                     const char *relpath, bool is_dir);

/* True if any [local] pattern exists. */
bool rules_has_local(const struct rules *r);

/* True if telling whether a child of a non-local directory below the root is
 * local needs that directory's path: some [local] pattern is anchored with an
 * inner '/' or a '**' (e.g. `doc/out/`).  When false, rules_local_name()
 * decides from the name alone. */
bool rules_local_needs_path(const struct rules *r);

/* Is `name`, directly inside a non-local directory that is not the root,
 * local?  Only valid when rules_local_needs_path(r) is false; no I/O, no
 * allocation (the overlay calls it on every lookup). */
bool rules_local_name(const struct rules *r, const char *name, bool is_dir);

/* "mirror", "ignore" or "local". */
const char *rule_class_name(enum rule_class c);

#endif
