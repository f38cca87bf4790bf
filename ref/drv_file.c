/*
 * drv_file: see drv_file.h. Method: one storage call per request; the
 * storage callback completes the request.
 */
#include "drv_file.h"

#include <string.h>

struct file_state {
    struct env_storage st;
};

static struct file_state *file_state(const struct node *n)
{
    return n->state;
}

static int file_open(struct node *n, const void *opts, struct err *e)
{
    const struct drv_file_opts *o = opts;
    if (!o || !o->storage.ops) {
        return err_set(e, 0, 0, "file node '%s' needs a storage device", n->name);
    }
    file_state(n)->st = o->storage;
    n->length = align_down(o->storage.ops->length(o->storage.dev), NODE_SECTOR);
    return 0;
}

static void file_io_done(void *opaque, int ret)
{
    req_complete(opaque, ret);
}

static void file_read(struct node *n, struct req *req)
{
    struct env_storage *st = &file_state(n)->st;
    if (req->desc) {
        st->ops->read_desc(st->dev, req->offset, req->buf, req->len, req->desc, file_io_done,
                           req);
        return;
    }
    st->ops->read(st->dev, req->offset, req->buf, req->len, file_io_done, req);
}

static unsigned file_flags(const struct node *n, const struct req *req)
{
    if (node_mutant(n, NODE_MUTANT_FILE_DROP_FUA)) {
        return 0;
    }
    return (req->flags & NODE_REQ_FUA) ? ENV_IO_FUA : 0;
}

/* The early-ack mutant's own copy of the data, alive until the disk is done. */
struct early_write {
    uint64_t len; /* of data[]: 0 when the write is described */
    struct env_desc desc;
    uint8_t data[];
};

static void file_early_done(void *opaque, int ret)
{
    struct early_write *ew = opaque;
    (void)ret; /* planted bug: nobody waits for this write, its error is lost */
    mem_free(ew, sizeof(*ew) + ew->len);
}

static void file_storage_write(struct env_storage *st, const struct req *req,
                               const uint8_t *buf, const struct env_desc *desc,
                               unsigned flags, env_io_cb *cb, void *opaque)
{
    if (desc) {
        st->ops->write_desc(st->dev, req->offset, desc, req->len, flags, cb, opaque);
    } else {
        st->ops->write(st->dev, req->offset, buf, req->len, flags, cb, opaque);
    }
}

static void file_write(struct node *n, struct req *req)
{
    struct env_storage *st = &file_state(n)->st;
    if (node_mutant(n, NODE_MUTANT_FILE_EARLY_ACK)) {
        /* The data must outlive the write the guest thinks is done. */
        uint64_t len = req->desc ? 0 : req->len;
        struct early_write *ew = mem_alloc(sizeof(*ew) + len);
        ew->len = len;
        if (req->desc) {
            ew->desc = *req->desc;
        } else {
            memcpy(ew->data, req->buf, len);
        }
        file_storage_write(st, req, ew->data, req->desc ? &ew->desc : NULL, file_flags(n, req),
                           file_early_done, ew);
        req_complete(req, 0);
        return;
    }
    file_storage_write(st, req, req->buf, req->desc, file_flags(n, req), file_io_done, req);
}

static void file_flush(struct node *n, struct req *req)
{
    struct env_storage *st = &file_state(n)->st;
    st->ops->flush(st->dev, file_io_done, req);
}

static void file_discard(struct node *n, struct req *req)
{
    struct env_storage *st = &file_state(n)->st;
    st->ops->discard(st->dev, req->offset, req->len, file_io_done, req);
}

static void file_write_zeroes(struct node *n, struct req *req)
{
    struct env_storage *st = &file_state(n)->st;
    st->ops->write_zeroes(st->dev, req->offset, req->len, file_flags(n, req),
                          file_io_done, req);
}

static int file_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    struct env_storage *st = &file_state(n)->st;
    int ret = st->ops->allocated(st->dev, offset, len, pnum);
    if (ret < 0) {
        return ret;
    }
    /* A protocol node owns all its bytes; holes read as zeroes. */
    return NODE_BS_ALLOCATED | (ret ? NODE_BS_DATA : NODE_BS_ZERO);
}

static int file_pread_sync(struct node *n, uint64_t offset, uint8_t *buf, uint64_t len)
{
    struct env_storage *st = &file_state(n)->st;
    return st->ops->read_sync(st->dev, offset, buf, len);
}

static bool file_takes_desc(const struct node *n)
{
    const struct env_storage *st = &file_state(n)->st;
    return st->ops->describes && st->ops->describes(st->dev);
}

static void file_check(const struct node *n)
{
    ASSERT(file_state(n)->st.ops != NULL);
    ASSERT(n->n_children == 0);
}

const struct node_driver drv_file = {
    .name = "file",
    .state_size = sizeof(struct file_state),
    .open = file_open,
    .submit = {
        [NODE_OP_READ] = file_read,
        [NODE_OP_WRITE] = file_write,
        [NODE_OP_FLUSH] = file_flush,
        [NODE_OP_DISCARD] = file_discard,
        [NODE_OP_WRITE_ZEROES] = file_write_zeroes,
    },
    .block_status = file_block_status,
    .pread_sync = file_pread_sync,
    .takes_desc = file_takes_desc,
    .check = file_check,
};

const struct planted_bug drv_file_bugs[] = {
    { "file-drop-fua", NODE_MUTANT_FILE_DROP_FUA,
      "file driver: the FUA flag is not passed down" },
    { "file-early-ack", NODE_MUTANT_FILE_EARLY_ACK,
      "file driver: acknowledges a write before the disk has it" },
};

const size_t drv_file_bugs_count = ARRAY_LEN(drv_file_bugs);
