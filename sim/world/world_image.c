/*
 * world_image: disks that start from raw image files (`disk NAME
 * image=PATH`), and disks and the guest's view written out after the run
 * (--export), so that blocksim's results can be compared with QEMU's
 * images byte for byte.
 *
 * Method: an image is read whole, poked into its disk as durable contents,
 * and, for the disk the guest sees, told to the checker: each sector's
 * model starts as what the image holds (zeroes, a one-byte pattern, or
 * "the image's data", which only the image's exact bytes match). An export
 * runs after the verdict: a disk's durable media (its volatile cache
 * undone), or the guest's reads through the live stack with every fault
 * rule paused; either goes to a temporary file, sparse where zero, renamed
 * over PATH once complete.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/content.h"
#include "../trace/trace.h"
#include "world_int.h"

#define IMAGE_MAX (64ull << 30)      /* bytes an image may have */
#define EXPORT_CHUNK (1u << 20)      /* bytes read or written at a time */


static void image_full_path(const struct world *w, const char *path, char *buf, size_t size)
{
    if (path[0] == '/' || !w->o.base_dir) {
        snprintf(buf, size, "%s", path);
    } else {
        snprintf(buf, size, "%s/%s", w->o.base_dir, path);
    }
}

static int image_stat(const struct world *w, const struct trace_rec *r, uint64_t *size,
                      struct err *e)
{
    char path[4096];
    struct stat st;
    image_full_path(w, r->cfg->image, path, sizeof(path));
    if (stat(path, &st) != 0) {
        return err_set(e, r->line, 2, "image %s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size % 512 ||
        (uint64_t)st.st_size > IMAGE_MAX) {
        return err_set(e, r->line, 2, "image %s: a raw image is a regular file of a non-zero "
                       "multiple of 512 bytes, at most 64 GiB (it has %lld)", path,
                       (long long)st.st_size);
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

int world__image_size(const struct world *w, const struct trace_rec *r, uint64_t *size,
                      struct err *e)
{
    return image_stat(w, r, size, e);
}

int world__image_guest_size(const struct world *w, uint64_t *size, struct err *e)
{
    *size = 0;
    int g = w->topo_ops->guest_disk(w);
    for (size_t i = 0; i < w->t->n && g >= 0; i++) {
        const struct trace_rec *r = &w->t->recs[i];
        if (r->kind == TRACE_DISK && r->cfg->image &&
            strcmp(r->cfg->name, w->dcfg[g].name) == 0) {
            return image_stat(w, r, size, e);
        }
    }
    return 0;
}

int world__image_disk_rec(struct world *w, unsigned i, const struct trace_rec *r,
                          struct err *e)
{
    const struct trace_cfg *c = r->cfg;
    bool extra = i >= w->n_topo_disks; /* a job's target may start from an image too */
    if ((int)i != w->topo_ops->guest_disk(w) && !extra) {
        return err_set(e, r->line, 2, "image= is for the disk the guest starts from (plain: "
                       "d0, overlay: base) or an extra disk, not %s in the %s topology",
                       c->name, w->topo_ops->name);
    }
    uint64_t size;
    TRY(image_stat(w, r, &size, e));
    if (c->has_size && c->size != size) {
        return err_set(e, r->line, 2, "disk %s: size=%" PRIu64 " but its image has %" PRIu64
                       " bytes (the size comes from the image)", c->name, c->size, size);
    }
    if (!extra && size != w->size) {
        return err_set(e, r->line, 2, "disk %s: its image has %" PRIu64 " bytes but the "
                       "guest disk is %" PRIu64, c->name, size, w->size);
    }
    w->image_path[i] = c->image;
    return 0;
}

/* Every model of the guest's start learns the image, run by run. */
void world__image_to_model(struct model_disk *m, const uint8_t *img, uint64_t len)
{
    model_disk_image(m, img, len);
}

int world__images_load(struct world *w, struct err *e)
{
    for (unsigned i = 0; i < w->n_disks; i++) {
        if (!w->image_path[i]) {
            continue;
        }
        char path[4096];
        image_full_path(w, w->image_path[i], path, sizeof(path));
        struct err fe = { .file = path };
        char *data = NULL;
        size_t len = 0;
        if (trace_file_read(path, IMAGE_MAX, &data, &len, &fe) < 0) {
            return err_set(e, 0, 0, "image %s: %s", path, fe.msg);
        }
        if (len != w->dcfg[i].size) {
            trace_file_free(data, len);
            return err_set(e, 0, 0, "image %s changed size while loading", path);
        }
        w->image[i] = (uint8_t *)data;
        w->image_len[i] = len;
        disk_poke(w->disks[i], 0, w->image[i], len);
        if (i >= w->n_topo_disks) {
            continue; /* an extra disk: not what the guest starts from */
        }
        world__image_to_model(&w->check.model, w->image[i], len);
        check_rw_image(&w->check, w->image[i], len);
        if (w->topo_ops->image_loaded) {
            w->topo_ops->image_loaded(w, w->image[i], len);
        }
    }
    return 0;
}

void world__images_fini(struct world *w)
{
    for (unsigned i = 0; i < WORLD_DISKS_MAX; i++) {
        trace_file_free((char *)w->image[i], w->image_len[i]);
        w->image[i] = NULL;
    }
}

/* ---- exports ---- */

int world__disk_index(const struct world *w, const char *name)
{
    for (unsigned i = 0; i < w->n_disks; i++) {
        if (strcmp(w->dcfg[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Is @name one of the topology's own views (topo_ops.export_names)? */
static bool topo_export(const struct world *w, const char *name)
{
    const char *list = w->topo_ops->export_names;
    size_t n = strlen(name);
    for (const char *p = list; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] != 0)) {
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

int world__exports_check(const struct world *w, struct err *e)
{
    for (unsigned k = 0; k < w->o.n_exports; k++) {
        const char *name = w->o.exports[k].name;
        if (strcmp(name, "guest") == 0 || world__disk_index(w, name) >= 0 ||
            topo_export(w, name)) {
            continue;
        }
        char names[WORLD_DISKS_MAX * 24 + 128] = "guest";
        for (unsigned i = 0; i < w->n_disks; i++) {
            size_t at = strlen(names);
            snprintf(names + at, sizeof(names) - at, ", %s", w->dcfg[i].name);
        }
        for (const char *p = w->topo_ops->export_names; p && *p;) {
            size_t n = strcspn(p, ",");
            size_t at = strlen(names);
            snprintf(names + at, sizeof(names) - at, ", %.*s", (int)n, p);
            p += n + (p[n] != '\0');
        }
        return err_set(e, 0, 0, "--export %s: no such disk in the %s topology (%s)", name,
                       w->topo_ops->name, names);
    }
    return 0;
}

struct guest_read {
    int ret;
    bool done;
};

static void guest_read_done(void *opaque, int ret)
{
    struct guest_read *g = opaque;
    g->ret = ret;
    g->done = true;
}

int world__node_read(struct world *w, struct node *n, uint64_t off, uint8_t *buf, uint64_t len)
{
    struct guest_read g = { 0, false };
    node_submit(n, NODE_OP_READ, off, len, buf, 0, guest_read_done, &g);
    for (uint64_t i = 0; i < WORLD_EVENTS_MAX && !g.done && evq_step(&w->q, UINT64_MAX); i++) {
    }
    return g.done ? g.ret : -EIO;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

/* Write @name's contents to @path: sparse, whole, or not at all. */
static int export_one(struct world *w, const struct world_export *x, char *why, size_t size)
{
    int d = world__disk_index(w, x->name);
    bool view = topo_export(w, x->name);
    bool guest = d < 0 && !view;
    if (guest && !w->live) {
        snprintf(why, size, "--export guest: the host is down at the end of the run");
        return -EHOSTDOWN;
    }
    uint64_t total = d < 0 ? w->size : w->dcfg[d].size;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", x->path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, size, "--export %.40s: %.200s: %s", x->name, tmp, strerror(errno));
        return -errno;
    }
    uint8_t *buf = mem_alloc(EXPORT_CHUNK);
    int ret = 0;
    for (uint64_t off = 0; off < total && ret == 0; off += EXPORT_CHUNK) {
        uint64_t n = min_u64(EXPORT_CHUNK, total - off);
        if (view) {
            ret = w->topo_ops->export_read(w, x->name, off, buf, n);
        } else if (guest) {
            ret = world__node_read(w, w->live->root, off, buf, n);
        } else {
            disk_peek_durable(w->disks[d], off, buf, n);
        }
        if (ret == 0 && !all_zero(buf, n) && pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
            ret = -errno;
        }
    }
    if (ret == 0 && ftruncate(fd, (off_t)total) != 0) {
        ret = -errno;
    }
    ret = close(fd) != 0 && ret == 0 ? -errno : ret;
    mem_free(buf, EXPORT_CHUNK);
    if (ret == 0 && rename(tmp, x->path) != 0) {
        ret = -errno;
    }
    if (ret < 0) {
        unlink(tmp);
        snprintf(why, size, "--export %s=%s: %s", x->name, x->path, blocksim_strerror(ret));
    }
    return ret;
}

void world__exports_write(struct world *w)
{
    w->plan.paused = true; /* the truth, not another injected fault */
    for (unsigned k = 0; k < w->o.n_exports && !w->r->export_error[0]; k++) {
        (void)export_one(w, &w->o.exports[k], w->r->export_error,
                         sizeof(w->r->export_error));
    }
}
