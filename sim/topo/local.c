/*
 * local: the topologies whose disks all sit on the guest's host.
 *
 * plain: the guest writes through a file node to disk d0.
 * overlay: a copy-on-write overlay (disk top) over a backing disk (base),
 *   the building block of COLO's active and hidden disks; it runs the
 *   operator's commit and make-empty records and keeps a model of the
 *   backing's contents for them.
 * Fault attribution: on plain, a wrong value is explained when a fault
 * tainted that very sector; through an overlay, data moves between disks
 * (copy-up, commit), so any corruption injected anywhere explains it
 * (coarse: exact attribution is still to come).
 */
#include <stdio.h>

#include "../../ref/dirty.h"
#include "../../ref/drv_file.h"
#include "../../ref/drv_overlay.h"
#include "../world/world_int.h"
#include "topo.h"

struct overlay_state {
    uint64_t cluster;
    struct model_disk base_model; /* the backing's contents */
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
    for (unsigned i = 0; i < w->n_disks; i++) {
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

static uint64_t plain_granularity(const struct world *w)
{
    (void)w;
    return DIRTY_GRAN_DEFAULT;
}

const struct topo_ops topo_plain = {
    .name = "plain",
    .setup = plain_setup,
    .guest_disk = guest_disk_first,
    .guest_open = plain_open,
    .explained = plain_explained,
    .bitmap_granularity = plain_granularity,
    .image_format = "raw",
};

/* ---- overlay ---- */

static void overlay_setup(struct world *w, const struct trace_cfg *c)
{
    if (!w->tst) {
        w->tst = mem_alloc(sizeof(struct overlay_state));
        model_disk_init(&ost(w)->base_model);
    }
    struct overlay_state *o = ost(w);
    o->cluster = c && c->has_cluster ? c->cluster : OVERLAY_CLUSTER_DEFAULT;
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

static bool overlay_explained(const struct world *w, uint64_t sector)
{
    (void)sector;
    for (unsigned i = 0; i < w->n_disks; i++) {
        if (w->disks[i]->stats.corruptions > 0) {
            return true;
        }
    }
    return false;
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
    mem_free(w->tst, sizeof(struct overlay_state));
    w->tst = NULL;
}

const struct topo_ops topo_overlay = {
    .name = "overlay",
    .setup = overlay_setup,
    .guest_disk = guest_disk_first,
    .guest_open = overlay_open,
    .explained = overlay_explained,
    .controls = 1u << TRACE_COMMIT | 1u << TRACE_MAKE_EMPTY,
    .control = overlay_control,
    .bitmap_granularity = overlay_granularity,
    .image_format = "blocksim-overlay",
    .image_loaded = overlay_image,
    .fini = overlay_fini,
};
