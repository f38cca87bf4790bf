/*
 * env: the only five interfaces through which ref/ reaches the world.
 *
 * Role: storage ops (a block device), files ops (named metadata files, each
 *   a block device once open), transport ops (a byte stream), dialer ops
 *   (opening a stream to a peer) and timer ops (virtual time and deferred
 *   calls). sim/ implements all five, with
 *   faults; oracle adapters may implement them over real files and sockets.
 * Model: QEMU's BlockDriver protocol layer (bdrv_co_preadv on a file) and its
 *   AioContext bottom halves; libuv's rule that completion is deferred.
 * Invariants: an implementation never calls a completion callback from inside
 *   the call that submitted it; it posts the completion to the timer instead.
 * Ownership: buffers are borrowed until the completion callback runs.
 * Async contract: read, write, flush, discard, write_zeroes, send and recv
 *   complete through their callback with 0 or a negative errno. now_ns, post,
 *   length, allocated and read_sync are synchronous.
 * Depends on: nothing.
 */
#ifndef BLOCKSIM_ENV_H
#define BLOCKSIM_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void env_cb(void *opaque);
typedef void env_io_cb(void *opaque, int ret);

/* Virtual time. post() runs @cb after @delay_ns, after every event already
 * posted for the same instant (FIFO at equal times). buggify() (optional)
 * says whether the named fault point fires now: FoundationDB's BUGGIFY, a
 * place where ref/ may take a legal but unusual path (a late completion, an
 * extra flush) so tests reach it; the environment decides from its own
 * seeded streams. */
struct env_timer_ops {
    uint64_t (*now_ns)(void *ctx);
    void (*post)(void *ctx, uint64_t delay_ns, env_cb *cb, void *opaque);
    bool (*buggify)(void *ctx, const char *site);
};

struct env_timer {
    const struct env_timer_ops *ops;
    void *ctx;
};

static inline uint64_t env_now(const struct env_timer *t)
{
    return t->ops->now_ns(t->ctx);
}

static inline void env_post(const struct env_timer *t, uint64_t delay_ns, env_cb *cb,
                            void *opaque)
{
    t->ops->post(t->ctx, delay_ns, cb, opaque);
}

static inline bool env_buggify(const struct env_timer *t, const char *site)
{
    return t->ops->buggify && t->ops->buggify(t->ctx, site);
}

enum {
    ENV_IO_FUA = 1u << 0, /* the write is durable when it completes */
};

/* Described data: a shortcut a simulated environment may offer so that data
 * it made itself need not exist as bytes on the way through the stack. A
 * described sector holds the environment's own content for a tag at that
 * sector; the stack never interprets tags: it forwards a description from a
 * request to storage that takes one (node_takes_desc), compares two answers'
 * tags (equal tags, equal bytes), and asks for the bytes (env_desc_bytes)
 * where it needs them. */
struct env_desc {
    uint64_t tag;     /* write: the tag of every sector of the request */
    uint64_t *tags;   /* read: room for one tag per sector */
    bool described;   /* read: set when storage answered with tags[], not bytes */
    /* read, described: makes the bytes of sectors [first, first + n) of the
     * answer, tags[0] being the request's first sector @sector0 */
    void (*make)(const void *ctx, const uint64_t *tags, uint64_t sector0, uint64_t first,
                 uint64_t n, uint8_t *buf);
    const void *make_ctx;
};

/* The bytes of described answer @d to a read at @offset: @len bytes. */
static inline void env_desc_bytes(const struct env_desc *d, uint64_t offset, uint64_t len,
                                  uint8_t *buf)
{
    d->make(d->make_ctx, d->tags, offset / 512, 0, len / 512, buf);
}

/* A block device. Offsets and lengths are bytes, multiples of 512. */
struct env_storage_ops {
    void (*read)(void *dev, uint64_t offset, uint8_t *buf, uint64_t len, env_io_cb *cb,
                 void *opaque);
    void (*write)(void *dev, uint64_t offset, const uint8_t *buf, uint64_t len,
                  unsigned flags, env_io_cb *cb, void *opaque);
    void (*flush)(void *dev, env_io_cb *cb, void *opaque);
    /* Advisory: afterwards a range reads as zeroes or as its old data. */
    void (*discard)(void *dev, uint64_t offset, uint64_t len, env_io_cb *cb, void *opaque);
    void (*write_zeroes)(void *dev, uint64_t offset, uint64_t len, unsigned flags,
                         env_io_cb *cb, void *opaque);
    uint64_t (*length)(void *dev);
    /* 1 if [offset, offset + *run) is allocated, 0 if it is a hole; *run is the
     * length of the run with that status, at most @len. Negative errno. */
    int (*allocated)(void *dev, uint64_t offset, uint64_t len, uint64_t *run);
    /* Synchronous read for open-time metadata only (QEMU opens images with
     * blocking I/O too). Returns 0 or a negative errno. */
    int (*read_sync)(void *dev, uint64_t offset, uint8_t *buf, uint64_t len);
    /* Optional: whether @dev takes I/O with a description (struct env_desc)
     * through read_desc, which fills @buf whole or the tags and
     * desc->described, and write_desc, which writes the described sectors. */
    bool (*describes)(void *dev);
    void (*read_desc)(void *dev, uint64_t offset, uint8_t *buf, uint64_t len,
                      struct env_desc *desc, env_io_cb *cb, void *opaque);
    void (*write_desc)(void *dev, uint64_t offset, const struct env_desc *desc, uint64_t len,
                       unsigned flags, env_io_cb *cb, void *opaque);
};

struct env_storage {
    const struct env_storage_ops *ops;
    void *dev;
};

/* Named files for image metadata (QBM descriptors and bitmap files). An
 * open file is a block device of fixed size. The namespace operations are
 * synchronous and durable when they return (a simplification: a crash may
 * lose or tear a file's unflushed contents, never its existence). Names are
 * at most ENV_FILE_NAME_MAX - 1 bytes. */
#define ENV_FILE_NAME_MAX 128

struct env_files_ops {
    /* Open @name: 0 and *out, or -ENOENT. */
    int (*open)(void *ctx, const char *name, struct env_storage *out);
    /* Create @name as @size zero bytes (a multiple of 512), replacing any
     * file of that name: 0 and *out, or a negative errno. */
    int (*create)(void *ctx, const char *name, uint64_t size, struct env_storage *out);
    /* Release a handle from open or create; its requests must be done. */
    void (*close)(void *ctx, struct env_storage *st);
    /* Delete @name: 0 or -ENOENT. No handle to it may be open. */
    int (*remove)(void *ctx, const char *name);
};

struct env_files {
    const struct env_files_ops *ops;
    void *ctx;
};

/* A reliable, ordered byte stream (what NBD runs on). send takes a copy of
 * @buf before it returns and completes once the bytes left; sends are
 * delivered in call order, each one's bytes contiguous. recv completes when
 * exactly @len bytes arrived, or with -ECONNRESET (reset, or the peer
 * closed) / -ETIMEDOUT; at most one recv is outstanding. close releases the
 * end at once: no callback of it runs afterwards. sim/net implements it
 * over simulated links, cli/sock over real file descriptors. */
struct env_transport_ops {
    void (*send)(void *conn, const uint8_t *buf, size_t len, env_io_cb *cb, void *opaque);
    void (*recv)(void *conn, uint8_t *buf, size_t len, env_io_cb *cb, void *opaque);
    void (*close)(void *conn);
};

struct env_transport {
    const struct env_transport_ops *ops;
    void *conn;
};

/* Opens connections to one fixed peer (an NBD server): @cb gets 0 and a
 * transport, or a negative errno (-ECONNREFUSED, -ETIMEDOUT, ...) and a
 * transport with NULL ops. Completes through the timer, never inline. */
typedef void env_connect_cb(void *opaque, int ret, struct env_transport t);

struct env_dialer_ops {
    void (*connect)(void *ctx, env_connect_cb *cb, void *opaque);
};

struct env_dialer {
    const struct env_dialer_ops *ops;
    void *ctx;
};

#endif
