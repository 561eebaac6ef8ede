/* tree_root.c — see tree_root.h. */
#include "tree_root.h"
#include "index.h"
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int add_row(const struct index_file *f, void *arg)
{
    struct tree_builder *b = arg;
    switch (f->type) {
    case S_IFREG: return tree_builder_add_file(b, f->path, f->mode, &f->id);
    case S_IFDIR: return tree_builder_add_dir(b, f->path, f->mode);
    case S_IFLNK: return tree_builder_add_symlink(b, f->path, f->target ? f->target : "");
    default: return 0;
    }
}

int tree_root_from_index(struct index *ix, struct content_id *root)
{
    struct tree_builder *b = tree_builder_new();
    if (!b)
        return -ENOMEM;
    int r = index_foreach_unordered(ix, add_row, b); /* the builder sorts */
    if (!r)
        r = tree_builder_finish(b, root, NULL);
    tree_builder_free(b);
    return r;
}

int tree_root_from_manifest(const struct manifest *m, struct content_id *root)
{
    struct tree_builder *b = tree_builder_new();
    if (!b)
        return -ENOMEM;
    int r = 0;
    for (size_t i = 0; !r && i < manifest_count(m); i++) {
        const struct msg_entry *e = manifest_entry(m, i);
        switch (e->type) {
        case S_IFREG: r = tree_builder_add_file(b, e->path, e->mode, &e->id); break;
        case S_IFDIR: r = tree_builder_add_dir(b, e->path, e->mode); break;
        case S_IFLNK: r = tree_builder_add_symlink(b, e->path, e->target); break;
        }
    }
    if (!r)
        r = tree_builder_finish(b, root, NULL);
    tree_builder_free(b);
    return r;
}

int tree_root_from_disk(const char *src, tree_skip_fn skip, void *arg, struct content_id *root)
{
    int fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = tree_hash_dir(fd, skip, arg, root, NULL);
    close(fd);
    return r;
}
