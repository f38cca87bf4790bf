/*
 * files: see files.h.
 *
 * Method: a small array of entries, searched by name (a handful of files).
 * A handle is a disk_handle; closing it finds its entry through the disk.
 */
#include "files.h"

#include <string.h>

#define FILES_ID_BASE 16u /* above the world's disks' stream ids */

void files_init(struct files *f, struct evq *q, struct fault_plan *plan, uint64_t seed,
                unsigned disk_mutants)
{
    memset(f, 0, sizeof(*f));
    f->q = q;
    f->plan = plan;
    f->seed = seed;
    f->disk_mutants = disk_mutants;
}

void files_fini(struct files *f)
{
    for (size_t i = 0; i < f->n; i++) {
        ASSERT(f->ents[i].handles == 0);
        disk_free(f->ents[i].disk);
    }
    mem_free(f->ents, f->cap * sizeof(*f->ents));
    f->ents = NULL;
    f->n = f->cap = 0;
}

static struct files_entry *entry_find(const struct files *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++) {
        if (!f->ents[i].removed && strcmp(f->ents[i].name, name) == 0) {
            return &f->ents[i];
        }
    }
    return NULL;
}

struct disk *files_disk(const struct files *f, const char *name)
{
    struct files_entry *e = entry_find(f, name);
    return e ? e->disk : NULL;
}

static void entry_drop(struct files *f, struct files_entry *e)
{
    ASSERT(e->handles == 0);
    disk_free(e->disk);
    *e = f->ents[--f->n];
}

static struct env_storage handle_open(struct files_entry *e)
{
    e->handles++;
    return disk_storage(disk_handle_new(e->disk));
}

static int fs_open(void *ctx, const char *name, struct env_storage *out)
{
    struct files_entry *e = entry_find(ctx, name);
    if (!e) {
        return -ENOENT;
    }
    *out = handle_open(e);
    return 0;
}

static int fs_remove(void *ctx, const char *name)
{
    struct files *f = ctx;
    struct files_entry *e = entry_find(f, name);
    if (!e) {
        return -ENOENT;
    }
    e->removed = true;
    if (e->handles == 0) {
        entry_drop(f, e);
    }
    return 0;
}

static int fs_create(void *ctx, const char *name, uint64_t size, struct env_storage *out)
{
    struct files *f = ctx;
    if (strlen(name) >= ENV_FILE_NAME_MAX) {
        return -ENAMETOOLONG;
    }
    if (size == 0 || size % DISK_SECTOR != 0) {
        return -EINVAL;
    }
    (void)fs_remove(f, name); /* replacing: absent is fine */
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 8;
        f->ents = mem_realloc(f->ents, f->cap * sizeof(*f->ents), cap * sizeof(*f->ents));
        f->cap = cap;
    }
    struct files_entry *e = &f->ents[f->n++];
    memset(e, 0, sizeof(*e));
    memcpy(e->name, name, strlen(name) + 1);
    struct disk_config cfg;
    disk_config_default(&cfg, FILES_DISK_NAME, size);
    cfg.sync_read_faults = true; /* the loaders read the files synchronously */
    e->disk = disk_new(&cfg, f->q, f->plan, f->seed, FILES_ID_BASE + f->created++,
                       f->disk_mutants);
    *out = handle_open(e);
    return 0;
}

static void fs_close(void *ctx, struct env_storage *st)
{
    struct files *f = ctx;
    struct disk_handle *h = st->dev;
    for (size_t i = 0; i < f->n; i++) {
        struct files_entry *e = &f->ents[i];
        if (e->disk != h->disk) {
            continue;
        }
        ASSERT(e->handles > 0);
        disk_handle_free(h);
        st->dev = NULL;
        if (--e->handles == 0 && e->removed) {
            entry_drop(f, e);
        }
        return;
    }
    UNREACHABLE();
}

static const struct env_files_ops files_ops = {
    .open = fs_open,
    .create = fs_create,
    .close = fs_close,
    .remove = fs_remove,
};

struct env_files files_env(struct files *f)
{
    struct env_files env = { &files_ops, f };
    return env;
}

void files_crash(struct files *f, enum disk_crash_mode mode)
{
    struct disk_crash_report rep;
    for (size_t i = 0; i < f->n; i++) {
        disk_crash(f->ents[i].disk, mode, &rep);
    }
}

size_t files_count(const struct files *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        n += !f->ents[i].removed;
    }
    return n;
}

uint64_t files_faults(const struct files *f, uint64_t counts[FAULT__COUNT])
{
    uint64_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        n += fault_counts_add(counts, f->ents[i].disk->stats.faults);
    }
    return n;
}

bool files_stale(const struct files *f, const char *name)
{
    const struct files_entry *e = entry_find(f, name);
    if (!e) {
        return false;
    }
    const struct u64map *t = &e->disk->taint;
    uint64_t *keys = u64map_keys(t);
    size_t n = t->n;
    bool stale = false;
    for (size_t k = 0; k < n && !stale; k++) {
        stale = disk_taint_get(e->disk, keys[k]) == DISK_TAINT_MISDIRECT_STALE;
    }
    mem_free(keys, n * sizeof(uint64_t));
    return stale;
}

uint64_t files_read_corrupts(const struct files *f, const char *name)
{
    const struct files_entry *e = entry_find(f, name);
    return e ? e->disk->stats.faults[FAULT_READ_CORRUPT] : 0;
}

uint64_t files_corruptions(const struct files *f)
{
    uint64_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        n += f->ents[i].disk->stats.corruptions;
    }
    return n;
}
