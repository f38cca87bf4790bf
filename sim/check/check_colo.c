/*
 * check_colo: see check_colo.h.
 *
 * Method: C and S are maps from sector to tag (C's absent sectors hold
 *   zeroes); a sector a failed or lost secondary write may have changed
 *   is unsure until the next write or checkpoint fixes it.
 */
#include "check_colo.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../../ref/base.h"
#include "../base/content.h"

/* C starts empty: flat over a disk of up to 512 MiB (a lookup a sector of
 * every copy judged). */
static void c_init(struct check_colo *c)
{
    u64map_init(&c->c);
    u64map_dense(&c->c, c->sectors <= U64MAP_DENSE_MAX ? c->sectors : 0);
}

void check_colo_init(struct check_colo *c, uint64_t seed, uint64_t sectors)
{
    memset(c, 0, sizeof(*c));
    c->seed = seed;
    c->sectors = sectors;
    c_init(c);
    u64map_init(&c->s);
    u64map_init(&c->unsure);
    c->synced = true; /* every disk starts zeroed */
}

void check_colo_fini(struct check_colo *c)
{
    u64map_fini(&c->c);
    u64map_fini(&c->s);
    u64map_fini(&c->unsure);
}

static void map_set(struct u64map *m, uint64_t key, uint64_t v, bool keep_zero)
{
    if (v == CONTENT_TAG_ZERO && !keep_zero) {
        if (m->n) {
            u64map_del(m, key);
        }
        return;
    }
    *u64map_put(m, key, NULL) = v;
}

void check_colo_write(struct check_colo *c, uint64_t first, uint64_t n, uint64_t tag, bool ok)
{
    ASSERT(first + n <= c->sectors);
    for (uint64_t s = first; s < first + n; s++) {
        if (ok) {
            map_set(&c->s, s, tag, true);
            if (c->unsure.n) {
                u64map_del(&c->unsure, s);
            }
        } else {
            *u64map_put(&c->unsure, s, NULL) = 1;
        }
    }
}

uint64_t check_colo_c(const struct check_colo *c, uint64_t sector)
{
    const uint64_t *t = u64map_get(&c->c, sector);
    return t ? *t : CONTENT_TAG_ZERO;
}

bool check_colo_view(const struct check_colo *c, uint64_t sector, uint64_t *tag)
{
    if (!c->synced || u64map_get(&c->unsure, sector)) {
        return false;
    }
    const uint64_t *s = u64map_get(&c->s, sector);
    *tag = s ? *s : check_colo_c(c, sector);
    return true;
}

void check_colo_fail(struct check_colo *c, const char *property, uint64_t sector,
                     uint64_t expected, uint64_t actual, uint64_t now_ns, const char *msg)
{
    if (c->failed) {
        return;
    }
    c->failed = true;
    struct violation *v = &c->first;
    check_violation_begin(v, property);
    v->sector = sector;
    v->expected[0] = expected;
    v->n_expected = 1;
    v->actual = actual;
    v->actual_home = UINT64_MAX;
    v->time_ns = now_ns;
    snprintf(v->msg, sizeof(v->msg), "%s", msg);
}

/* A wrong tag at @sector, seen in @what. */
static void wrong(struct check_colo *c, const char *property, const char *what, uint64_t sector,
                  uint64_t expected, uint64_t actual, const char *should, uint64_t now_ns)
{
    char e[48];
    char a[48];
    char msg[320];
    check_tag_name(expected, e, sizeof(e));
    check_tag_name(actual, a, sizeof(a));
    snprintf(msg, sizeof(msg), "%s, sector %" PRIu64 " (byte %" PRIu64 "): expected %s (%s), "
             "got %s", what, sector, sector * 512, e, should, a);
    check_colo_fail(c, property, sector, expected, actual, now_ns, msg);
}

bool check_colo_read(struct check_colo *c, const uint8_t *data, uint64_t first, uint64_t n,
                     uint64_t op_index, unsigned line, uint64_t now_ns)
{
    c->reads_judged++;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t want;
        if (!check_colo_view(c, first + k, &want)) {
            continue;
        }
        c->sectors_judged++;
        uint64_t got = content_identify(data + k * 512, c->seed, first + k, NULL);
        if (got != want) {
            bool s = u64map_get(&c->s, first + k) != NULL;
            wrong(c, "colo-view", "the secondary guest read", first + k, want, got,
                  s ? "its own write since the last checkpoint" :
                      "the contents at the last checkpoint; the primary's writes since must "
                      "stay invisible", now_ns);
            c->first.op_index = op_index;
            c->first.line = line;
            return false;
        }
    }
    return true;
}

bool check_colo_compare(struct check_colo *c, const char *property, const char *what,
                        const uint8_t *data, uint64_t first, uint64_t n, bool view,
                        bool (*explained)(void *opaque, uint64_t sector), void *opaque,
                        uint64_t now_ns)
{
    for (uint64_t k = 0; k < n; k++) {
        uint64_t s = first + k;
        uint64_t want = check_colo_c(c, s);
        if (!c->synced || (view && !check_colo_view(c, s, &want))) {
            continue;
        }
        uint64_t got = content_identify(data + k * 512, c->seed, s, NULL);
        if (got != want && !(explained && explained(opaque, s))) {
            wrong(c, property, what, s, want, got, view ? "the secondary guest's view: the "
                  "last checkpoint plus its own writes" : "the contents at the last checkpoint",
                  now_ns);
            return false;
        }
    }
    return true;
}

void check_colo_checkpoint_begin(struct check_colo *c, bool whole)
{
    if (whole) {
        u64map_fini(&c->c);
        c_init(c);
    }
    u64map_fini(&c->s);
    u64map_init(&c->s);
    u64map_fini(&c->unsure);
    u64map_init(&c->unsure);
    c->synced = true;
    c->checkpoints_checked++;
}

void check_colo_checkpoint_data(struct check_colo *c, const uint8_t *data, uint64_t first,
                                uint64_t n)
{
    for (uint64_t k = 0; k < n; k++) {
        uint64_t tag = content_identify(data + k * 512, c->seed, first + k, NULL);
        map_set(&c->c, first + k, tag, false);
    }
}

void check_colo_failover(struct check_colo *c)
{
    uint64_t *keys = u64map_keys(&c->s);
    size_t n = c->s.n;
    for (size_t i = 0; i < n; i++) {
        map_set(&c->c, keys[i], *u64map_get(&c->s, keys[i]), false);
    }
    mem_free(keys, n * sizeof(*keys));
    u64map_fini(&c->s);
    u64map_init(&c->s);
    c->failovers_checked++;
}

void check_colo_check(const struct check_colo *c)
{
    /* Cheap: it runs at every pump (the maps' own checks are their tests'). */
    ASSERT(c->s.n <= c->sectors && c->c.n <= c->sectors && c->unsure.n <= c->sectors);
    ASSERT(!c->failed || c->first.property[0] != '\0');
}

json_t *check_colo_json(const struct check_colo *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "reads_judged", json_integer((json_int_t)c->reads_judged));
    json_object_set_new(o, "sectors_judged", json_integer((json_int_t)c->sectors_judged));
    json_object_set_new(o, "hidden_clusters_checked",
                        json_integer((json_int_t)c->hidden_checked));
    json_object_set_new(o, "checkpoints_checked",
                        json_integer((json_int_t)c->checkpoints_checked));
    json_object_set_new(o, "failovers_checked", json_integer((json_int_t)c->failovers_checked));
    json_object_set_new(o, "view_known", json_boolean(c->synced));
    if (c->failed) {
        json_object_set_new(o, "violation", check_violation_json(&c->first));
    }
    return o;
}
