/*
 * message.h — the typed messages of the wsync protocol and their codec:
 * encode a struct msg into complete frames, decode one frame's payload back
 * into a struct msg.  No I/O here: wire.h moves frames over an fd.
 * docs/protocol.md is the specification; this is its only implementation.
 *
 * Invariant: the decoder accepts exactly what the encoder can produce —
 * every field within its limit, every path passing wire_path_check(), every
 * mode without setuid/setgid/sticky bits, every chunk list consistent with
 * its file size, every DATA and inline file matching its id and length,
 * every payload consumed to its last byte — and refuses anything else with
 * -errno and a sentence naming the message and the field.  A decoded message
 * can be handed to the receiver's apply code as it is.
 *
 * Integers are little-endian on the wire; here they are host integers.
 * File types are S_IFREG, S_IFDIR, S_IFLNK here (1, 2, 3 on the wire).
 */
#ifndef WSYNC_MESSAGE_H
#define WSYNC_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk_groups.h"
#include "chunker.h"
#include "content_id.h"
#include "wire.h"

/* Frame type bytes.  MSG_CHUNKS only continues an UPDATE's chunk list: the
 * codec writes and consumes it, callers never see it. */
enum msg_type {
    MSG_HELLO = 1,
    MSG_MANIFEST = 2,
    MSG_MANIFEST_END = 3,
    MSG_UPDATE = 4,
    MSG_CHUNKS = 5,
    MSG_WANT = 6,
    MSG_DATA = 7,
    MSG_DELETE = 8,
    MSG_RENAME = 9,
    MSG_LINK = 10,
    MSG_COMMIT = 11,
    MSG_ACK = 12,
    MSG_ERROR = 13,
    MSG_BYE = 14,
    MSG_LIST = 15,
    MSG_GROUP = 16,
    MSG_PEER = 17, /* two-way sync: who each side is (docs/protocol.md §11) */
    MSG_PULL = 18, /* two-way sync: the receiver asks the far side to send paths */
    MSG_RESCAN = 19,  /* live two-way: a new round, list ROOT afresh (§12) */
    MSG_WATCH = 20,   /* live two-way: idle now; say CHANGED when ROOT changes */
    MSG_CHANGED = 21, /* live two-way: ROOT changed since the last listing */
};

/* Directories one LIST may name (a hard limit of the protocol). */
#define MSG_LIST_MAX 1024u

#define MSG_ROLE_SENDER   1
#define MSG_ROLE_RECEIVER 2

#define MSG_HELLO_DELETE  0x1u /* delete what the sender does not have */
#define MSG_HELLO_DRY_RUN 0x2u /* check and count; the receiver writes nothing */
#define MSG_HELLO_VERIFY  0x4u /* only compare roots: manifest end, then BYE */
#define MSG_HELLO_LIVE    0x8u /* live two-way: RESCAN/WATCH/CHANGED spoken (§12) */
#define MSG_HELLO_FLAGS   0xfu /* every flag this version knows */

#define MSG_MANIFEST_ELIDED  0x1u /* entries left out: digest equals HELLO's */
#define MSG_COMMIT_WANT_ROOT 0x1u /* ACK carries the tree root after the commit */
#define MSG_ERROR_FATAL      0x1u /* the session ends; else one path failed */
#define MSG_PULL_LAST        0x1u /* the last PULL frame of a request */

#define MSG_PEER_HOST_MAX 64u    /* bytes of a host label: [A-Za-z0-9._-] */
#define MSG_PULL_MAX      65536u /* entries per PULL frame (the encoder splits) */

/* Byte encodings of DATA and inline UPDATE bodies. */
#define MSG_ENC_RAW 1
#define MSG_ENC_LZ4 2

struct msg_hello {
    uint16_t version;         /* decoded only: the encoder writes WIRE_PROTOCOL_VERSION */
    const char *tool_version; /* encoder: NULL means this build's WSYNC_VERSION */
    uint8_t role;             /* MSG_ROLE_* */
    uint32_t flags;           /* MSG_HELLO_*; unknown bits are refused */
    /* Sender: the manifest digest it would be content with (see
     * msg_manifest_digest_add); zero for none.  Receiver: zero. */
    struct content_id skip_digest;
};

/* One path the receiver has.  id: the file id (S_IFREG), or the subtree
 * digest of a directory (manifest.h): the manifest digest of every entry
 * below it.  target: S_IFLNK. */
struct msg_entry {
    const char *path;
    uint32_t type;
    uint32_t mode; /* <= 07777 */
    int64_t mtime_ns;
    uint64_t size; /* S_IFREG only */
    struct content_id id;
    const char *target;
};

/* A batch of entries in strictly increasing tree order of path
 * (msg_path_cmp).  The encoder splits a long batch into frames; each
 * decodes as its own batch. */
struct msg_manifest {
    const struct msg_entry *entries;
    size_t n;
};

struct msg_manifest_end {
    uint32_t flags;           /* MSG_MANIFEST_* */
    uint64_t count;           /* entries sent in all MANIFEST batches */
    struct content_id root;   /* tree root (tree_root.h) */
    struct content_id digest; /* msg_manifest_digest of all entries */
};

/* A path's new state.  S_IFREG: size, then either inline data (size <=
 * WIRE_INLINE_MAX), or the chunk list (offsets are filled by the decoder;
 * the encoder ignores them), or (ngroups > 0) the chunk list as group ids
 * (chunk_groups.h), each checked for a count and byte total the file's size
 * allows.  file_id is computed by the decoder from the content, never sent;
 * for a grouped list it stays zero: the receiver computes it once it knows
 * every group's chunks (msg_chunk_list_check).  S_IFDIR: nothing more.
 * S_IFLNK: target. */
struct msg_update {
    const char *path;
    uint32_t type;
    uint32_t mode; /* permission bits only (<= 0777) */
    int64_t mtime_ns;
    uint64_t size;
    bool inline_data;
    const uint8_t *data; /* inline: size bytes */
    const struct chunk *chunks;
    size_t nchunks;
    const struct chunk_group *groups;
    size_t ngroups;
    struct content_id file_id;
    const char *target;
    uint32_t pending_, chunks_cap_; /* codec-private: chunks still due, room for */
};

/* Chunk ids the receiver lacks.  The encoder splits a long list into
 * several WANT frames and writes nothing for n == 0. */
struct msg_want {
    const struct content_id *ids;
    size_t n;
};

/* One chunk.  The encoder checks bytes against id and picks lz4 when it
 * shrinks them; the decoder checks the decompressed bytes against id. */
struct msg_data {
    struct content_id id;
    const uint8_t *bytes;
    uint32_t len;      /* 1..CHUNKER_MAX_SIZE */
    uint8_t encoding;  /* decoded only: MSG_ENC_* as sent */
    uint32_t wire_len; /* decoded only: bytes on the wire */
};

struct msg_path {
    const char *path;
};
/* The chunks of a group a WANT named (their lengths and ids; offsets from
 * the group's start, filled by the decoder).  The decoder checks them
 * against the group id. */
struct msg_group {
    struct content_id id;
    const struct chunk *chunks;
    size_t n; /* 1..CHUNK_GROUP_MAX */
};

/* Ask for the entries directly inside each directory ("" is ROOT). */
struct msg_list {
    const char *const *dirs;
    size_t n; /* 1..MSG_LIST_MAX */
};
struct msg_rename {
    const char *from, *to;
};
/* Make path a hard link to existing (a regular file at commit time). */
struct msg_link {
    const char *path, *existing;
};
struct msg_commit {
    uint64_t seq;
    uint32_t flags; /* MSG_COMMIT_* */
};
struct msg_ack {
    uint64_t seq;           /* durable through this COMMIT */
    struct content_id root; /* when the COMMIT asked for it, else zero */
};
struct msg_error {
    uint32_t code;       /* positive Linux errno value */
    uint32_t flags;      /* MSG_ERROR_* */
    const char *path;    /* "" when about no path; echoed as received, unchecked */
    const char *message; /* non-empty */
};

/* A tree's stable id (random, made on first use) and its host label. */
struct msg_peer {
    struct content_id tree_id; /* never zero */
    const char *host;          /* 1..MSG_PEER_HOST_MAX bytes of [A-Za-z0-9._-] */
};

/* Send your path `from` under the name `as` (the same, or a conflict copy's
 * name): an UPDATE of `as` with from's state, or DELETE of `as` if absent. */
struct msg_pull_entry {
    const char *from, *as;
};
/* The encoder splits n > MSG_PULL_MAX into frames, LAST only on the last;
 * each decodes as its own PULL. */
struct msg_pull {
    uint32_t flags; /* MSG_PULL_* */
    const struct msg_pull_entry *entries;
    size_t n;
};

struct msg_arena;

struct msg {
    enum msg_type type;
    union {
        struct msg_hello hello;
        struct msg_manifest manifest;
        struct msg_manifest_end manifest_end;
        struct msg_update update;
        struct msg_want want;
        struct msg_data data;
        struct msg_path del;
        struct msg_list list;
        struct msg_group group;
        struct msg_rename rename;
        struct msg_link link;
        struct msg_commit commit;
        struct msg_ack ack;
        struct msg_error error;
        struct msg_peer peer;
        struct msg_pull pull;
    };
    struct msg_arena *arena; /* what a decoded message owns */
};

/* A growable output buffer of whole frames. */
struct msg_buf {
    uint8_t *buf;
    size_t len, cap;
};
void msg_buf_release(struct msg_buf *b);

/* Append m to out as one or more complete frames.  Returns the number of
 * frames (0 for an empty WANT or MANIFEST), or -errno with err filled and
 * out unchanged: the same checks as the decoder (-EINVAL, -ENAMETOOLONG,
 * -EMSGSIZE, -EPERM), -ESTALE for DATA bytes that do not hash to their id,
 * -ENOMEM. */
int msg_encode(const struct msg *m, struct msg_buf *out, char *err, size_t errsize);

/* Append one DATA frame for the chunk bytes[0..len): lz4 when that is
 * smaller, else raw.  Returns 1, or -errno as msg_encode. */
int msg_data_encode(const struct content_id *id, const void *bytes, size_t len, struct msg_buf *out,
                    char *err, size_t errsize);

/* Decode one frame (type byte and payload) into *m, which owns what it
 * points to until msg_release.  0: done.  1: an UPDATE whose chunk list
 * continues; feed the following frames to msg_decode_more (wire_recv does).
 * -errno with err filled and *m empty, as listed at wire_recv. */
int msg_decode(uint8_t type, const uint8_t *payload, size_t len, struct msg *m, char *err,
               size_t errsize);
int msg_decode_more(struct msg *m, uint8_t type, const uint8_t *payload, size_t len, char *err,
                    size_t errsize);

/* Check a whole chunk list c[0..n) of a file of size bytes against the
 * chunker's rules, as the decoder does for an UPDATE's list (offsets are
 * not looked at).  0, or -errno with err naming path and the chunk. */
int msg_chunk_list_check(const char *path, uint64_t size, const struct chunk *c, size_t n,
                         char *err, size_t errsize);

/* Free what a decoded message owns and zero it (a no-op on an encoder's
 * message, which owns nothing). */
void msg_release(struct msg *m);

/* "HELLO", "UPDATE", ...; "type 0x2a" for an unknown byte (static buffer). */
const char *msg_type_name(unsigned type);

/* Tree order: strcmp() with '/' below every other byte, so that a
 * directory's subtree follows it directly ("a", "a/b", "a.c"; strcmp puts
 * "a.c" between).  Negative, zero or positive like strcmp. */
int msg_path_cmp(const char *a, const char *b);

/* The manifest digest: XXH3-128 over every entry's canonical encoding
 * (full path, type, mode, mtime_ns, then size and file id, or target; a
 * directory's subtree digest is not part of it), in tree order.  Start with content_hasher_init, add each entry, finish
 * with content_hasher_final.  Two sides whose digests are equal have the
 * same manifest, mtimes included. */
void msg_manifest_digest_add(struct content_hasher *h, const struct msg_entry *e);

#endif
