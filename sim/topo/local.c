/*
 * local: the topologies whose disks all sit on the guest's host.
 *
 * plain: the guest writes through a file node to disk d0.
 * overlay: a copy-on-write overlay (disk top) over a backing disk (base),
 *   the building block of COLO's active and hidden disks; it runs the
 *   operator's commit and make-empty records and keeps a model of the
 *   backing's contents for them.
 * Fault attribution is exact per guest sector: on plain, a wrong value is
 * explained when a fault tainted that very sector of d0. Through an overlay
 * a guest sector's data sits at fixed places (base: the same sector; top:
 * its cluster's slot in the data area) and moves between them only as that
 * same guest sector (copy-up, commit): so a wrong value at guest sector S
 * is explained once a fault tainted S on base or S's slot on top, whatever
 * happened since (attribution follows the data); a fault on top's header
 * or map, which govern where every sector's data is, explains any.
 */
#include <stdio.h>

#include "../../ref/dirty.h"
#include "../../ref/drv_file.h"
#include "../../ref/drv_overlay.h"
#include "../world/world_int.h"
#include "topo.h"

struct overlay_state {
    uint64_t cluster;
    uint64_t data_offset;         /* top's data area, as drv_overlay lays it out */
    struct model_disk base_model; /* the backing's contents */
    struct u64map carried;        /* guest sectors a fault touched (never cleared:
                                   * their data may have moved on) */
    bool meta_touched;            /* a fault touched top's header or map */
};

static struct overlay_state *ost(const struct world *w)
{
    return w->tst;
}

static void plain_setup(struct world *w, const struct trace_cfg *c)
{
    (void)c;
    w->n_disks = 1;
    disk_config_default(&w->dcfg[0], "d0", w->size);
    w->hosts[WORLD_GUEST_HOST].disk[0] = true;
}

static int guest_disk_first(const struct world *w)
{
    (void)w;
    return 0; /* plain: d0; overlay: base, its backing */
}

/* File nodes on the disks; @overlay puts an overlay over the first two. */
static int local_open(struct world *w, struct stack *s, bool overlay, struct err *e)
{
    struct node *file[WORLD_DISKS_MAX] = { NULL };
    for (unsigned i = 0; i < w->n_topo_disks; i++) {
        struct drv_file_opts fo = { disk_storage(s->h[i]) };
        char name[NODE_NAME_MAX];
        snprintf(name, sizeof(name), "%s-file", w->dcfg[i].name);
        TRY(node_new(&s->g, &drv_file, name, &fo, e, &file[i]));
    }
    if (!overlay) {
        s->root = file[0];
        return 0;
    }
    struct drv_overlay_opts oo = { file[1], file[0], w->size, ost(w)->cluster };
    return node_new(&s->g, &drv_overlay, "guest", &oo, e, &s->root);
}

static int plain_open(struct world *w, struct stack *s, struct err *e)
{
    return local_open(w, s, false, e);
}

static bool plain_explained(const struct world *w, uint64_t sector)
{
    return disk_taint_get(w->disks[0], sector) != DISK_TAINT_NONE;
}

const struct topo_ops topo_plain = {
    .name = "plain",
    .setup = plain_setup,
    .guest_disk = guest_disk_first,
    .guest_open = plain_open,
    .explained = plain_explained,
    .jobs = true,
};

/* ---- overlay ---- */

static void overlay_setup(struct world *w, const struct trace_cfg *c)
{
    if (!w->tst) {
        w->tst = mem_alloc(sizeof(struct overlay_state));
        model_disk_init(&ost(w)->base_model);
        u64map_init(&ost(w)->carried);
    }
    struct overlay_state *o = ost(w);
    o->cluster = c && c->has_cluster ? c->cluster : OVERLAY_CLUSTER_DEFAULT;
    o->data_offset = overlay_file_size(w->size, o->cluster) - align_up(w->size, o->cluster);
    w->n_disks = 2;
    disk_config_default(&w->dcfg[0], "base", w->size);
    disk_config_default(&w->dcfg[1], "top", overlay_file_size(w->size, o->cluster));
    w->hosts[WORLD_GUEST_HOST].disk[0] = true;
    w->hosts[WORLD_GUEST_HOST].disk[1] = true;
}

static int overlay_open(struct world *w, struct stack *s, struct err *e)
{
    return local_open(w, s, true, e);
}

#define OVL_BASE 0
#define OVL_TOP 1

/* The guest sectors whose data (or map entry) top's @sector holds; the
 * header's sectors stand for every guest sector. */
static void top_guest_range(const struct world *w, uint64_t sector, uint64_t *first,
                            uint64_t *end)
{
    const struct overlay_state *o = ost(w);
    uint64_t byte = sector * 512;
    uint64_t guest_sectors = w->size / 512;
    *first = 0;
    *end = 0;
    if (byte >= o->data_offset) {
        *first = (byte - o->data_offset) / 512;
        *end = min_u64(*first + 1, guest_sectors);
    } else if (byte >= OVERLAY_MAP_OFFSET) { /* map bytes: one a cluster */
        uint64_t per = o->cluster / 512;
        *first = min_u64((byte - OVERLAY_MAP_OFFSET) * per, guest_sectors);
        *end = min_u64(*first + 512 * per, guest_sectors);
    } else if (byte < 512) {
        *end = guest_sectors; /* the header */
    }
}

/* A fault tainted sectors of base or top: the guest sectors whose data sat
 * there are touched for good (their data may since have moved, or been
 * read into the overlay's memory and written back); a taint of top's
 * header or map touches every guest sector, whose places they govern. */
static void overlay_taint_seen(struct world *w, unsigned disk, uint64_t first, uint64_t n)
{
    struct overlay_state *o = ost(w);
    for (uint64_t sec = first; sec < first + n; sec++) {
        uint64_t lo = sec;
        uint64_t hi = sec + 1;
        if (disk == OVL_TOP && sec * 512 < o->data_offset) {
            o->meta_touched = true;
            continue;
        }
        if (disk == OVL_TOP) {
            top_guest_range(w, sec, &lo, &hi);
        }
        for (uint64_t s = lo; s < hi; s++) {
            *u64map_put(&o->carried, s, NULL) = 1;
        }
    }
}

static bool overlay_explained(const struct world *w, uint64_t sector)
{
    const struct overlay_state *o = ost(w);
    return o->meta_touched || u64map_get(&o->carried, sector) != NULL;
}

static bool overlay_state_touched(const struct world *w)
{
    return ost(w)->meta_touched;
}

static void overlay_done(void *opaque, int ret)
{
    struct control_op *c = opaque;
    if (!world__control_live(c)) {
        return;
    }
    struct world *w = c->w;
    world__observe(w, c->rec->kind, 0, ret, 0, 0);
    if (ret < 0) {
        const char *kind = trace_kind_name(c->rec->kind);
        world__control_fail_ret(w, c->rec, kind, kind, ret);
    } else if (c->rec->kind == TRACE_COMMIT) {
        /* The backing now holds the view; the overlay was emptied. */
        model_disk_assign(&ost(w)->base_model, &w->check.model);
    } else {
        model_disk_assign(&w->check.model, &ost(w)->base_model);
    }
    world__control_end(c);
}

static void overlay_control(struct world *w, const struct trace_rec *rec)
{
    struct control_op *c = world__control_new(w, rec);
    if (rec->kind == TRACE_COMMIT) {
        overlay_commit(w->live->root, overlay_done, c);
    } else {
        overlay_make_empty(w->live->root, overlay_done, c);
    }
}

static uint64_t overlay_granularity(const struct world *w)
{
    return min_u64(max_u64(ost(w)->cluster, 4096), 65536);
}

static void overlay_image(struct world *w, const uint8_t *image, uint64_t len)
{
    world__image_to_model(&ost(w)->base_model, image, len);
}

static void overlay_fini(struct world *w)
{
    model_disk_fini(&ost(w)->base_model);
    u64map_fini(&ost(w)->carried);
    mem_free(w->tst, sizeof(struct overlay_state));
    w->tst = NULL;
}

const struct topo_ops topo_overlay = {
    .name = "overlay",
    .setup = overlay_setup,
    .guest_disk = guest_disk_first,
    .guest_open = overlay_open,
    .explained = overlay_explained,
    .taint_seen = overlay_taint_seen,
    .state_touched = overlay_state_touched,
    .controls = 1u << TRACE_COMMIT | 1u << TRACE_MAKE_EMPTY,
    .control = overlay_control,
    .bitmap_granularity = overlay_granularity,
    .image_format = "blocksim-overlay",
    .image_loaded = overlay_image,
    .fini = overlay_fini,
    .jobs = true,
};
