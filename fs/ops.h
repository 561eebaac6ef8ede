/*
 * ops.h — the FUSE low-level ops, one family per file:
 *   ops_entry.c  names and attributes     ops_file.c   open files and data
 *   ops_dir.c    directory listing        ops_xattr.c  extended attributes
 * ops_table.c gathers them into wfs_ops.  Every op replies exactly once.
 */
#ifndef WSYNC_OPS_H
#define WSYNC_OPS_H

#include "wfs_internal.h"

void wfs_init(void *userdata, struct fuse_conn_info *conn);

/* ops_entry.c */
void wfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void wfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void wfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void wfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void wfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
                 struct fuse_file_info *fi);
void wfs_readlink(fuse_req_t req, fuse_ino_t ino);
void wfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void wfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void wfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void wfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void wfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void wfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void wfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                const char *newname, unsigned int flags);
void wfs_statfs(fuse_req_t req, fuse_ino_t ino);

/* ops_file.c */
void wfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                struct fuse_file_info *fi);
void wfs_open_file(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void wfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void wfs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf, off_t off,
                   struct fuse_file_info *fi);
void wfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void wfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void wfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void wfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                   struct fuse_file_info *fi);
void wfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                         struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
                         struct fuse_file_info *fi_out, size_t len, int flags);
void wfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);

/* ops_dir.c */
void wfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void wfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                 struct fuse_file_info *fi);
void wfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi);
void wfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void wfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* ops_xattr.c */
void wfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                  size_t size, int flags);
void wfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void wfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void wfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
