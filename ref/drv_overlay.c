/*
 * drv_overlay: see drv_overlay.h.
 *
 * Method: a request is cut at cluster boundaries. Reads fan out per run of
 * clusters in the same state (file child, zeroes, or backing node). Writes
 * fan out per cluster: a cluster already DATA is written in place; an
 * unallocated or zero cluster is either written whole, or copied up (the
 * whole cluster read from the backing node or taken as zeroes, the guest's
 * bytes merged in, the whole cluster written) and only then marked DATA in
 * memory. Writes are serialising at cluster alignment, so two writes never
 * copy up the same cluster at once. Flushes run one at a time: take a copy
 * of the map sectors dirtied so far, flush the file child (their data is
 * durable), write those map sectors, flush again; the header of a fresh
 * overlay goes last, after its whole map is durable, with one more flush.
 * Map bytes dirtied after the copy wait for the next flush, because their
 * data was not covered.
 */
#include "drv_overlay.h"

#include <string.h>
#include <zlib.h>

enum { OVL_UNALLOC = 0, OVL_DATA = 1, OVL_ZERO = 2 };

#define OVL_MAGIC "BSOVLY01"
#define OVL_VERSION 1u
#define OVL_HDR_LEN 44u
#define OVL_CLUSTER_MIN 512u
#define OVL_CLUSTER_MAX (2u * 1024 * 1024)

struct ovl_flush;

struct overlay_state {
    struct node *file;
    struct node *backing;
    uint64_t cluster;
    uint64_t n_clusters;
    uint64_t data_offset;
    uint8_t *map;            /* n_clusters bytes */
    uint8_t *dirty;          /* one flag per map sector */
    uint64_t n_map_sectors;
    bool header_dirty;
    struct ovl_flush *flush_head; /* running flush, then queued ones */
    struct ovl_flush *flush_tail;
};

/* One pending flush of the overlay. */
struct ovl_flush {
    struct node *n;
    env_io_cb *cb;
    void *opaque;
    uint8_t *snap;      /* copies of dirty map sectors (and header) */
    uint64_t *sectors;  /* their map sector indexes */
    uint64_t n_snap;
    bool header;
    unsigned pending;
    int ret;
    struct ovl_flush *next;
};

/* Fan-in of one request's sub-requests. */
struct ovl_fan {
    struct req *req;
    unsigned pending;
    int ret;
};

struct ovl_cluster_io {
    struct ovl_fan *fan;
    uint64_t cluster;
    uint8_t *buf;  /* whole-cluster buffer for copy-up, else NULL */
    uint64_t in_off;  /* guest bytes' offset inside the cluster */
    uint64_t in_len;
    const uint8_t *src;
    uint8_t new_state;
};

static struct overlay_state *ovl(const struct node *n)
{
    return n->state;
}

uint64_t overlay_file_size(uint64_t size, uint64_t cluster_size)
{
    uint64_t cluster = cluster_size ? cluster_size : OVERLAY_CLUSTER_DEFAULT;
    uint64_t n_clusters = align_up(size, cluster) / cluster;
    uint64_t data = align_up(OVERLAY_MAP_OFFSET + align_up(n_clusters, NODE_SECTOR), cluster);
    return data + align_up(size, cluster);
}

static void ovl_layout(struct overlay_state *s, uint64_t size)
{
    s->n_clusters = align_up(size, s->cluster) / s->cluster;
    s->n_map_sectors = align_up(s->n_clusters, NODE_SECTOR) / NODE_SECTOR;
    s->data_offset = align_up(OVERLAY_MAP_OFFSET + s->n_map_sectors * NODE_SECTOR, s->cluster);
    s->map = mem_alloc(s->n_map_sectors * NODE_SECTOR);
    s->dirty = mem_alloc(s->n_map_sectors);
}

static void ovl_header_encode(const struct node *n, uint8_t *hdr)
{
    const struct overlay_state *s = ovl(n);
    memset(hdr, 0, NODE_SECTOR);
    memcpy(hdr, OVL_MAGIC, 8);
    put_le32(hdr + 8, OVL_VERSION);
    put_le32(hdr + 12, (uint32_t)s->cluster);
    put_le64(hdr + 16, n->length);
    put_le64(hdr + 24, OVERLAY_MAP_OFFSET);
    put_le64(hdr + 32, s->data_offset);
    put_le32(hdr + 40, (uint32_t)crc32_z(0, hdr, 40));
}

static bool ovl_cluster_ok(uint64_t c)
{
    return is_pow2(c) && c >= OVL_CLUSTER_MIN && c <= OVL_CLUSTER_MAX;
}

static int ovl_open_fresh(struct node *n, const struct drv_overlay_opts *o, struct err *e)
{
    struct overlay_state *s = ovl(n);
    uint64_t size = o->size ? o->size : (o->backing ? o->backing->length : 0);
    s->cluster = o->cluster_size ? o->cluster_size : OVERLAY_CLUSTER_DEFAULT;
    if (!ovl_cluster_ok(s->cluster)) {
        return err_set(e, 0, 0, "overlay '%s': cluster size %llu is not a power of two "
                       "in 512..2M", n->name, (unsigned long long)s->cluster);
    }
    if (size == 0 || size % NODE_SECTOR) {
        return err_set(e, 0, 0, "overlay '%s': size %llu is not a positive multiple "
                       "of 512", n->name, (unsigned long long)size);
    }
    if (s->file->length < overlay_file_size(size, s->cluster)) {
        return err_set(e, 0, 0, "overlay '%s': file child holds %llu bytes, needs %llu",
                       n->name, (unsigned long long)s->file->length,
                       (unsigned long long)overlay_file_size(size, s->cluster));
    }
    n->length = size;
    ovl_layout(s, size);
    /* Whatever the map area holds is not ours: persist the whole (empty) map
     * before the header makes it authoritative. */
    memset(s->dirty, 1, s->n_map_sectors);
    s->header_dirty = true;
    return 0;
}

static int ovl_open_existing(struct node *n, const uint8_t *hdr, struct err *e)
{
    struct overlay_state *s = ovl(n);
    if (memcmp(hdr, OVL_MAGIC, 8) != 0) {
        err_set(e, 0, 0, "overlay '%s': file child has no overlay header", n->name);
        return BS_EFORMAT;
    }
    if (get_le32(hdr + 40) != (uint32_t)crc32_z(0, hdr, 40)) {
        err_set(e, 0, 0, "overlay '%s': header checksum mismatch", n->name);
        return BS_ECORRUPT;
    }
    if (get_le32(hdr + 8) != OVL_VERSION) {
        err_set(e, 0, 0, "overlay '%s': version %u unsupported", n->name, get_le32(hdr + 8));
        return BS_EVERSION;
    }
    s->cluster = get_le32(hdr + 12);
    uint64_t size = get_le64(hdr + 16);
    if (!ovl_cluster_ok(s->cluster) || size == 0 || size % NODE_SECTOR ||
        get_le64(hdr + 24) != OVERLAY_MAP_OFFSET ||
        s->file->length < overlay_file_size(size, s->cluster)) {
        err_set(e, 0, 0, "overlay '%s': header geometry is inconsistent", n->name);
        return BS_ECORRUPT;
    }
    n->length = size;
    ovl_layout(s, size);
    int ret = node_pread_sync(s->file, OVERLAY_MAP_OFFSET, s->map,
                              s->n_map_sectors * NODE_SECTOR);
    if (ret < 0) {
        err_set(e, 0, 0, "overlay '%s': reading the map: %s", n->name, blocksim_strerror(ret));
        return ret;
    }
    for (uint64_t i = 0; i < s->n_clusters; i++) {
        if (s->map[i] > OVL_ZERO) {
            err_set(e, 0, 0, "overlay '%s': map entry %llu is %u", n->name,
                    (unsigned long long)i, s->map[i]);
            return BS_ECORRUPT;
        }
    }
    return 0;
}

static void ovl_close(struct node *n)
{
    struct overlay_state *s = ovl(n);
    ASSERT(s->flush_head == NULL);
    mem_free(s->map, s->n_map_sectors * NODE_SECTOR);
    mem_free(s->dirty, s->n_map_sectors);
}

static int ovl_open(struct node *n, const void *opts, struct err *e)
{
    const struct drv_overlay_opts *o = opts;
    struct overlay_state *s = ovl(n);
    if (!o || !o->file) {
        return err_set(e, 0, 0, "overlay '%s' needs a file child", n->name);
    }
    s->file = o->file;
    s->backing = o->backing;
    uint8_t hdr[NODE_SECTOR];
    int ret = node_pread_sync(s->file, 0, hdr, sizeof(hdr));
    if (ret < 0) {
        return err_set(e, 0, 0, "overlay '%s': reading the header: %s", n->name,
                       blocksim_strerror(ret));
    }
    static const uint8_t zero[OVL_HDR_LEN];
    if (memcmp(hdr, zero, OVL_HDR_LEN) == 0) {
        ret = ovl_open_fresh(n, o, e);
    } else {
        ret = ovl_open_existing(n, hdr, e);
    }
    if (ret < 0) {
        if (s->map) {
            ovl_close(n);
        }
        return ret;
    }
    node_child_attach(n, s->file, NODE_ROLE_FILE);
    if (s->backing) {
        node_child_attach(n, s->backing, NODE_ROLE_BACKING);
    }
    return 0;
}

static void ovl_map_set(struct overlay_state *s, uint64_t cluster, uint8_t state)
{
    ASSERT(cluster < s->n_clusters);
    ASSERT(state <= OVL_ZERO);
    if (s->map[cluster] != state) {
        s->map[cluster] = state;
        s->dirty[cluster / NODE_SECTOR] = 1;
    }
}

/* ---- fan-in ---- */

static struct ovl_fan *fan_new(struct req *req)
{
    struct ovl_fan *fan = mem_alloc(sizeof(*fan));
    fan->req = req;
    fan->pending = 1; /* held by the submitter until every part is issued */
    return fan;
}

static void ovl_fua_done(void *opaque, int ret)
{
    req_complete(opaque, ret);
}

static void ovl_flush_start(struct node *n, env_io_cb *cb, void *opaque);

static void fan_put(struct ovl_fan *fan, int ret)
{
    ASSERT(fan->pending > 0);
    if (ret < 0 && fan->ret == 0) {
        fan->ret = ret;
    }
    if (--fan->pending > 0) {
        return;
    }
    struct req *req = fan->req;
    int final = fan->ret;
    mem_free(fan, sizeof(*fan));
    bool fua = (req->flags & NODE_REQ_FUA) &&
               (req->op == NODE_OP_WRITE || req->op == NODE_OP_WRITE_ZEROES);
    if (final == 0 && fua) {
        ovl_flush_start(req->node, ovl_fua_done, req);
        return;
    }
    req_complete(req, final);
}

static void fan_part_done(void *opaque, int ret)
{
    fan_put(opaque, ret);
}

/* ---- reads ---- */

static uint64_t ovl_run_end(const struct overlay_state *s, uint64_t offset, uint64_t end)
{
    uint64_t c = offset / s->cluster;
    uint8_t state = s->map[c];
    uint64_t run_end = (c + 1) * s->cluster;
    while (run_end < end && s->map[run_end / s->cluster] == state) {
        run_end += s->cluster;
    }
    return min_u64(run_end, end);
}

static void ovl_read_backing(struct overlay_state *s, struct ovl_fan *fan, uint64_t offset,
                             uint64_t len, uint8_t *buf)
{
    uint64_t have = 0;
    if (s->backing && offset < s->backing->length) {
        have = min_u64(len, s->backing->length - offset);
        fan->pending++;
        node_read(s->backing, offset, have, buf, fan_part_done, fan);
    }
    memset(buf + have, 0, len - have);
}

static void ovl_read(struct node *n, struct req *req)
{
    struct overlay_state *s = ovl(n);
    struct ovl_fan *fan = fan_new(req);
    uint64_t end = req->offset + req->len;
    /* BUGGIFY: one sub-request per cluster instead of per run. */
    bool split = env_buggify(&n->graph->timer, "overlay: split reads");
    for (uint64_t off = req->offset; off < end;) {
        uint64_t run_end = ovl_run_end(s, off, end);
        if (split) {
            run_end = min_u64(run_end, align_down(off, s->cluster) + s->cluster);
        }
        uint8_t *buf = req->buf + (off - req->offset);
        switch (s->map[off / s->cluster]) {
        case OVL_DATA:
            fan->pending++;
            node_read(s->file, s->data_offset + off, run_end - off, buf, fan_part_done, fan);
            break;
        case OVL_ZERO:
            memset(buf, 0, run_end - off);
            break;
        case OVL_UNALLOC:
            ovl_read_backing(s, fan, off, run_end - off, buf);
            break;
        default:
            UNREACHABLE();
        }
        off = run_end;
    }
    fan_put(fan, 0);
}

/* ---- writes ---- */

static void cio_free(struct ovl_cluster_io *cio, uint64_t cluster_size)
{
    mem_free(cio->buf, cio->buf ? cluster_size : 0);
    mem_free(cio, sizeof(*cio));
}

static void cio_write_done(void *opaque, int ret)
{
    struct ovl_cluster_io *cio = opaque;
    struct ovl_fan *fan = cio->fan;
    struct overlay_state *s = ovl(fan->req->node);
    if (ret == 0) {
        ovl_map_set(s, cio->cluster, cio->new_state);
    }
    cio_free(cio, s->cluster);
    fan_put(fan, ret);
}

static void cio_copyup_read_done(void *opaque, int ret)
{
    struct ovl_cluster_io *cio = opaque;
    struct ovl_fan *fan = cio->fan;
    struct overlay_state *s = ovl(fan->req->node);
    if (ret < 0) {
        cio_free(cio, s->cluster);
        fan_put(fan, ret);
        return;
    }
    if (cio->src) {
        memcpy(cio->buf + cio->in_off, cio->src, cio->in_len);
    } else {
        memset(cio->buf + cio->in_off, 0, cio->in_len);
    }
    node_write(s->file, s->data_offset + cio->cluster * s->cluster, s->cluster, cio->buf, 0,
               cio_write_done, cio);
}

/* The whole cluster's old contents into cio->buf, then cio_copyup_read_done. */
static void cio_copyup(struct overlay_state *s, struct ovl_cluster_io *cio)
{
    cio->buf = mem_alloc(s->cluster);
    uint64_t base = cio->cluster * s->cluster;
    uint64_t have = 0;
    if (s->map[cio->cluster] == OVL_UNALLOC && s->backing && base < s->backing->length) {
        have = min_u64(s->cluster, s->backing->length - base);
    }
    if (have == 0) {
        /* Zero cluster or nothing behind it: the old contents are the
         * zeroes mem_alloc gave us. This issues a write, not a completion,
         * so going on inline is allowed. */
        cio_copyup_read_done(cio, 0);
        return;
    }
    node_read(s->backing, base, have, cio->buf, cio_copyup_read_done, cio);
}

/* Write guest bytes @src (NULL: zeroes) at [@off, @off + @len) of one cluster. */
static void ovl_write_cluster(struct overlay_state *s, struct ovl_fan *fan, uint64_t off,
                              uint64_t len, const uint8_t *src)
{
    struct node *n = fan->req->node;
    uint64_t c = off / s->cluster;
    ASSERT((off + len - 1) / s->cluster == c);
    struct ovl_cluster_io *cio = mem_alloc(sizeof(*cio));
    cio->fan = fan;
    cio->cluster = c;
    cio->in_off = off - c * s->cluster;
    cio->in_len = len;
    cio->src = src;
    cio->new_state = OVL_DATA;
    fan->pending++;
    /* BUGGIFY: a whole-cluster write may take the copy-up path too. */
    bool whole = len == s->cluster && !env_buggify(&n->graph->timer, "overlay: copy-up whole");
    if (s->map[c] == OVL_DATA || whole || node_mutant(n, NODE_MUTANT_OVERLAY_NO_COPYUP)) {
        if (!src) {
            cio->buf = mem_alloc(s->cluster); /* zeroes */
            src = cio->buf;
        }
        node_write(s->file, s->data_offset + off, len, src, 0, cio_write_done, cio);
        return;
    }
    cio_copyup(s, cio);
}

/* Cut [offset, offset + len) at clusters; whole clusters go to @whole_state
 * when it is not OVL_DATA (zeroing), the rest through ovl_write_cluster. */
static void ovl_write_range(struct node *n, struct req *req, const uint8_t *src,
                            uint8_t whole_state, bool partial_too)
{
    struct overlay_state *s = ovl(n);
    struct ovl_fan *fan = fan_new(req);
    uint64_t end = req->offset + req->len;
    for (uint64_t off = req->offset; off < end;) {
        uint64_t next = min_u64(align_down(off, s->cluster) + s->cluster, end);
        bool whole = next - off == s->cluster;
        const uint8_t *part = src ? src + (off - req->offset) : NULL;
        if (whole && whole_state != OVL_DATA) {
            ovl_map_set(s, off / s->cluster, whole_state);
        } else if (whole || partial_too) {
            ovl_write_cluster(s, fan, off, next - off, part);
        }
        off = next;
    }
    fan_put(fan, 0);
}

static void ovl_write(struct node *n, struct req *req)
{
    ovl_write_range(n, req, req->buf, OVL_DATA, true);
}

static void ovl_write_zeroes(struct node *n, struct req *req)
{
    ovl_write_range(n, req, NULL, OVL_ZERO, true);
}

static void ovl_discard(struct node *n, struct req *req)
{
    /* Advisory: whole clusters read as zeroes afterwards, partial ones keep
     * their data (spec: a discarded range reads as zeroes or old data). */
    ovl_write_range(n, req, NULL, OVL_ZERO, false);
}

static uint64_t ovl_serialise_align(const struct node *n, const struct req *req)
{
    if (node_mutant(n, NODE_MUTANT_OVERLAY_NO_SERIALISE)) {
        return 0;
    }
    bool writes = req->op == NODE_OP_WRITE || req->op == NODE_OP_WRITE_ZEROES ||
                  req->op == NODE_OP_DISCARD;
    return writes ? ovl(n)->cluster : 0;
}

/* ---- flush: see Method ---- */

static void ovl_flush_step(struct ovl_flush *f);

static void ovl_flush_free(struct ovl_flush *f)
{
    mem_free(f->snap, (f->n_snap + 1) * NODE_SECTOR);
    mem_free(f->sectors, f->n_snap * sizeof(*f->sectors));
    mem_free(f, sizeof(*f));
}

static void ovl_flush_finish(struct ovl_flush *f)
{
    struct overlay_state *s = ovl(f->n);
    ASSERT(s->flush_head == f);
    if (f->ret < 0) {
        /* Nothing of this snapshot is known durable: dirty it again. */
        for (uint64_t i = 0; i < f->n_snap; i++) {
            s->dirty[f->sectors[i]] = 1;
        }
        s->header_dirty |= f->header;
    }
    s->flush_head = f->next;
    if (!s->flush_head) {
        s->flush_tail = NULL;
    }
    /* Start the next queued flush before the callback: the callback may
     * start a flush of its own (make-empty from a completion), which then
     * runs itself and must not be started twice. */
    if (s->flush_head) {
        ovl_flush_step(s->flush_head);
    }
    f->cb(f->opaque, f->ret);
    ovl_flush_free(f);
}

static void ovl_flush_final_done(void *opaque, int ret)
{
    struct ovl_flush *f = opaque;
    if (ret < 0 && f->ret == 0) {
        f->ret = ret;
    }
    ovl_flush_finish(f);
}

static void ovl_flush_header_written(void *opaque, int ret)
{
    struct ovl_flush *f = opaque;
    if (ret < 0) {
        f->ret = ret;
        ovl_flush_finish(f);
        return;
    }
    node_flush(ovl(f->n)->file, ovl_flush_final_done, f);
}

/* The map is durable: only now may the header make it authoritative. */
static void ovl_flush_map_durable(void *opaque, int ret)
{
    struct ovl_flush *f = opaque;
    if (ret < 0) {
        f->ret = ret;
        ovl_flush_finish(f);
        return;
    }
    node_write(ovl(f->n)->file, 0, NODE_SECTOR, f->snap + f->n_snap * NODE_SECTOR, 0,
               ovl_flush_header_written, f);
}

static void ovl_flush_meta_done(void *opaque, int ret)
{
    struct ovl_flush *f = opaque;
    if (ret < 0 && f->ret == 0) {
        f->ret = ret;
    }
    if (--f->pending > 0) {
        return;
    }
    if (f->ret < 0) {
        ovl_flush_finish(f);
        return;
    }
    env_io_cb *next = f->header ? ovl_flush_map_durable : ovl_flush_final_done;
    node_flush(ovl(f->n)->file, next, f);
}

static void ovl_flush_data_done(void *opaque, int ret)
{
    struct ovl_flush *f = opaque;
    struct overlay_state *s = ovl(f->n);
    if (ret < 0) {
        f->ret = ret;
        ovl_flush_finish(f);
        return;
    }
    f->pending = 1;
    for (uint64_t i = 0; i < f->n_snap; i++) {
        f->pending++;
        node_write(s->file, OVERLAY_MAP_OFFSET + f->sectors[i] * NODE_SECTOR, NODE_SECTOR,
                   f->snap + i * NODE_SECTOR, 0, ovl_flush_meta_done, f);
    }
    ovl_flush_meta_done(f, 0);
}

static void ovl_flush_snapshot(struct ovl_flush *f)
{
    struct overlay_state *s = ovl(f->n);
    uint64_t count = 0;
    for (uint64_t i = 0; i < s->n_map_sectors; i++) {
        count += s->dirty[i];
    }
    f->header = s->header_dirty;
    s->header_dirty = false;
    f->n_snap = count;
    /* One spare sector after the map copies holds the header. */
    f->snap = mem_alloc((count + 1) * NODE_SECTOR);
    f->sectors = mem_alloc(count * sizeof(*f->sectors));
    uint64_t k = 0;
    for (uint64_t i = 0; i < s->n_map_sectors; i++) {
        if (s->dirty[i]) {
            memcpy(f->snap + k * NODE_SECTOR, s->map + i * NODE_SECTOR, NODE_SECTOR);
            f->sectors[k++] = i;
            s->dirty[i] = 0;
        }
    }
    if (f->header) {
        ovl_header_encode(f->n, f->snap + count * NODE_SECTOR);
    }
}

static void ovl_flush_late_snapshot(void *opaque, int ret)
{
    struct ovl_flush *f = opaque;
    ovl_flush_snapshot(f);
    ovl_flush_data_done(f, ret);
}

static void ovl_flush_step(struct ovl_flush *f)
{
    if (node_mutant(f->n, NODE_MUTANT_OVERLAY_SNAPSHOT_LATE)) {
        /* Planted bug: the map snapshot taken after the data flush, so it
         * can claim clusters whose data completed during that flush and is
         * not yet durable. */
        node_flush(ovl(f->n)->file, ovl_flush_late_snapshot, f);
        return;
    }
    ovl_flush_snapshot(f);
    if (node_mutant(f->n, NODE_MUTANT_OVERLAY_MAP_FIRST)) {
        /* Planted bug: write the map without first making its data durable,
         * so a crash can keep the map and lose the data it points to. */
        ovl_flush_data_done(f, 0);
        return;
    }
    node_flush(ovl(f->n)->file, ovl_flush_data_done, f);
}

static void ovl_flush_start(struct node *n, env_io_cb *cb, void *opaque)
{
    struct overlay_state *s = ovl(n);
    struct ovl_flush *f = mem_alloc(sizeof(*f));
    f->n = n;
    f->cb = cb;
    f->opaque = opaque;
    if (s->flush_tail) {
        s->flush_tail->next = f;
        s->flush_tail = f;
        return;
    }
    s->flush_head = s->flush_tail = f;
    ovl_flush_step(f);
}

static void ovl_flush_req_done(void *opaque, int ret)
{
    req_complete(opaque, ret);
}

static void ovl_flush(struct node *n, struct req *req)
{
    ovl_flush_start(n, ovl_flush_req_done, req);
}

/* ---- make-empty and commit (quiesced operator actions) ---- */

struct ovl_op {
    struct node *n;
    env_io_cb *cb;
    void *opaque;
    uint64_t cluster; /* commit cursor */
    uint8_t *buf;
};

static void ovl_op_finish(struct ovl_op *op, int ret)
{
    struct overlay_state *s = ovl(op->n);
    mem_free(op->buf, op->buf ? s->cluster : 0);
    op->cb(op->opaque, ret);
    mem_free(op, sizeof(*op));
}

static void ovl_op_done(void *opaque, int ret)
{
    ovl_op_finish(opaque, ret);
}

static void ovl_quiesced_assert(const struct node *n)
{
    ASSERT(n->inflight == 0);
    ASSERT(ovl(n)->flush_head == NULL);
}

void overlay_make_empty(struct node *n, env_io_cb *cb, void *opaque)
{
    ASSERT(n->drv == &drv_overlay);
    ovl_quiesced_assert(n);
    struct overlay_state *s = ovl(n);
    for (uint64_t c = 0; c < s->n_clusters; c++) {
        ovl_map_set(s, c, OVL_UNALLOC);
    }
    ovl_flush_start(n, cb, opaque);
}

static void ovl_commit_next(struct ovl_op *op);

static void ovl_commit_no_backing(void *opaque, int ret)
{
    (void)ret; /* the flush only defers the error to a callback */
    ovl_op_finish(opaque, -EINVAL);
}

static void ovl_commit_backing_flushed(void *opaque, int ret)
{
    struct ovl_op *op = opaque;
    if (node_mutant(op->n, NODE_MUTANT_OVERLAY_COMMIT_FAIL)) {
        ret = -EIO; /* planted: a spurious failure of the whole commit */
    }
    if (ret < 0) {
        ovl_op_finish(op, ret);
        return;
    }
    overlay_make_empty(op->n, ovl_op_done, op);
}

static void ovl_commit_written(void *opaque, int ret)
{
    struct ovl_op *op = opaque;
    if (ret < 0) {
        ovl_op_finish(op, ret);
        return;
    }
    op->cluster++;
    ovl_commit_next(op);
}

static void ovl_commit_read_done(void *opaque, int ret)
{
    struct ovl_op *op = opaque;
    struct overlay_state *s = ovl(op->n);
    if (ret < 0) {
        ovl_op_finish(op, ret);
        return;
    }
    uint64_t base = op->cluster * s->cluster;
    uint64_t len = min_u64(s->cluster, op->n->length - base);
    node_write(s->backing, base, len, op->buf, 0, ovl_commit_written, op);
}

static void ovl_commit_next(struct ovl_op *op)
{
    struct overlay_state *s = ovl(op->n);
    while (op->cluster < s->n_clusters && s->map[op->cluster] == OVL_UNALLOC) {
        op->cluster++;
    }
    if (op->cluster == s->n_clusters) {
        node_flush(s->backing, ovl_commit_backing_flushed, op);
        return;
    }
    uint64_t base = op->cluster * s->cluster;
    uint64_t len = min_u64(s->cluster, op->n->length - base);
    if (s->map[op->cluster] == OVL_ZERO) {
        node_submit(s->backing, NODE_OP_WRITE_ZEROES, base, len, NULL, 0,
                    ovl_commit_written, op);
        return;
    }
    node_read(s->file, s->data_offset + base, len, op->buf, ovl_commit_read_done, op);
}

void overlay_commit(struct node *n, env_io_cb *cb, void *opaque)
{
    ASSERT(n->drv == &drv_overlay);
    ovl_quiesced_assert(n);
    struct overlay_state *s = ovl(n);
    struct ovl_op *op = mem_alloc(sizeof(*op));
    op->n = n;
    op->cb = cb;
    op->opaque = opaque;
    op->buf = mem_alloc(s->cluster);
    if (!s->backing || s->backing->length < n->length) {
        /* Nothing to commit into: report it through the callback. */
        node_flush(s->file, ovl_commit_no_backing, op);
        return;
    }
    ovl_commit_next(op);
}

uint64_t overlay_clusters_allocated(const struct node *n)
{
    const struct overlay_state *s = ovl(n);
    uint64_t count = 0;
    for (uint64_t c = 0; c < s->n_clusters; c++) {
        count += s->map[c] != OVL_UNALLOC;
    }
    return count;
}

/* ---- status, sync reads, invariants ---- */

static int ovl_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    struct overlay_state *s = ovl(n);
    uint64_t run_end = ovl_run_end(s, offset, offset + len);
    *pnum = run_end - offset;
    switch (s->map[offset / s->cluster]) {
    case OVL_DATA:
        return NODE_BS_ALLOCATED | NODE_BS_DATA;
    case OVL_ZERO:
        return NODE_BS_ALLOCATED | NODE_BS_ZERO;
    case OVL_UNALLOC:
        return 0;
    default:
        UNREACHABLE();
    }
}

static int ovl_pread_sync(struct node *n, uint64_t offset, uint8_t *buf, uint64_t len)
{
    struct overlay_state *s = ovl(n);
    uint64_t end = offset + len;
    for (uint64_t off = offset; off < end;) {
        uint64_t run_end = ovl_run_end(s, off, end);
        uint8_t *p = buf + (off - offset);
        uint8_t state = s->map[off / s->cluster];
        memset(p, 0, run_end - off);
        if (state == OVL_DATA) {
            TRY(node_pread_sync(s->file, s->data_offset + off, p, run_end - off));
        } else if (state == OVL_UNALLOC && s->backing && off < s->backing->length) {
            uint64_t have = min_u64(run_end - off, s->backing->length - off);
            TRY(node_pread_sync(s->backing, off, p, have));
        }
        off = run_end;
    }
    return 0;
}

static void ovl_check(const struct node *n)
{
    const struct overlay_state *s = ovl(n);
    ASSERT(s->file != NULL);
    ASSERT(ovl_cluster_ok(s->cluster));
    ASSERT(s->n_clusters * s->cluster >= n->length);
    ASSERT(s->data_offset + align_up(n->length, s->cluster) <= s->file->length);
    if (s->flush_head) {
        ASSERT(s->flush_tail != NULL);
    }
}

const struct node_driver drv_overlay = {
    .name = "overlay",
    .state_size = sizeof(struct overlay_state),
    .open = ovl_open,
    .close = ovl_close,
    .submit = {
        [NODE_OP_READ] = ovl_read,
        [NODE_OP_WRITE] = ovl_write,
        [NODE_OP_FLUSH] = ovl_flush,
        [NODE_OP_DISCARD] = ovl_discard,
        [NODE_OP_WRITE_ZEROES] = ovl_write_zeroes,
    },
    .serialise_align = ovl_serialise_align,
    .block_status = ovl_block_status,
    .pread_sync = ovl_pread_sync,
    .check = ovl_check,
};

const struct planted_bug drv_overlay_bugs[] = {
    { "overlay-no-copyup", NODE_MUTANT_OVERLAY_NO_COPYUP,
      "overlay: a partial write skips copying the rest of the cluster up" },
    { "overlay-no-serialise", NODE_MUTANT_OVERLAY_NO_SERIALISE,
      "overlay: copy-up does not serialise against overlapping writes" },
    { "overlay-map-first", NODE_MUTANT_OVERLAY_MAP_FIRST,
      "overlay: persists its map before the data it points to is durable" },
    { "overlay-snapshot-late", NODE_MUTANT_OVERLAY_SNAPSHOT_LATE,
      "overlay: a flush snapshots its map after (not before) flushing the data" },
    { "overlay-commit-fail", NODE_MUTANT_OVERLAY_COMMIT_FAIL,
      "overlay: commit reports EIO though its data reached the backing" },
};

const size_t drv_overlay_bugs_count = ARRAY_LEN(drv_overlay_bugs);
