/*
 * check_rw: see check_rw.h. Method: every sector of a read is identified by
 * its content tag and looked up in the model's current set; the model
 * narrows to what was read, so a later read of the same sector must agree.
 */
#include "check_rw.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "../../ref/base.h"
#include "../base/content.h"
#include "checker.h"

void check_rw_init(struct check_rw *c, uint64_t seed, check_taint_fn *taint, void *opaque)
{
    memset(c, 0, sizeof(*c));
    model_disk_init(&c->model);
    c->seed = seed;
    c->taint = taint;
    c->taint_opaque = opaque;
}

void check_rw_fini(struct check_rw *c)
{
    model_disk_fini(&c->model);
}

void check_rw_image(struct check_rw *c, const uint8_t *image, uint64_t len)
{
    c->image = image;
    c->image_sectors = len / CONTENT_SECTOR;
}

/* Are @data the image's own bytes for sector @s? */
static bool is_image_data(const struct check_rw *c, const uint8_t *data, uint64_t s)
{
    return c->image && s < c->image_sectors &&
           memcmp(data, c->image + s * CONTENT_SECTOR, CONTENT_SECTOR) == 0;
}

void check_rw_write_done(struct check_rw *c, uint64_t sector, uint64_t n, uint64_t tag,
                         bool ok, bool fua)
{
    model_disk_tick(&c->model);
    uint32_t flags = ok ? (fua ? MODEL_DURABLE : 0) : MODEL_MAYBE;
    model_disk_write(&c->model, sector, n, tag, flags);
}

void check_rw_discard_done(struct check_rw *c, uint64_t sector, uint64_t n)
{
    /* Whether it succeeded or not, a discarded range reads as zeroes or as
     * its old data. */
    model_disk_tick(&c->model);
    model_disk_write(&c->model, sector, n, CONTENT_TAG_ZERO, MODEL_MAYBE);
}

uint64_t check_rw_flush_submit(struct check_rw *c)
{
    return model_disk_tick(&c->model);
}

void check_rw_flush_done(struct check_rw *c, uint64_t submit_seq, bool ok)
{
    model_disk_tick(&c->model);
    if (ok) {
        model_disk_flush(&c->model, submit_seq);
    }
}

void check_rw_write_lost(struct check_rw *c, uint64_t sector, uint64_t n, uint64_t tag)
{
    model_disk_tick(&c->model);
    model_disk_write(&c->model, sector, n, tag, MODEL_MAYBE);
}

void check_rw_crash(struct check_rw *c)
{
    model_disk_crash(&c->model);
    c->crashed = true;
}

void check_violation_begin(struct violation *v, const char *property)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->property, sizeof(v->property), "%s", property);
}

json_t *check_violation_json(const struct violation *v)
{
    json_t *o = json_object();
    json_object_set_new(o, "property", json_string(v->property));
    json_object_set_new(o, "message", json_string(v->msg));
    json_object_set_new(o, "op_index", json_integer((json_int_t)v->op_index));
    json_object_set_new(o, "line", json_integer(v->line));
    json_object_set_new(o, "time_ns", json_integer((json_int_t)v->time_ns));
    if (v->n_expected > 0) {
        json_t *exp = json_array();
        char name[48];
        for (unsigned i = 0; i < v->n_expected; i++) {
            check_tag_name(v->expected[i], name, sizeof(name));
            json_array_append_new(exp, json_string(name));
        }
        check_tag_name(v->actual, name, sizeof(name));
        json_object_set_new(o, "sector", json_integer((json_int_t)v->sector));
        json_object_set_new(o, "expected", exp);
        json_object_set_new(o, "actual", json_string(name));
    }
    return o;
}

json_t *check_rw_json(const struct check_rw *c)
{
    json_t *o = json_pack("{s:I, s:I, s:b, s:b}", "sectors_checked",
                          (json_int_t)c->sectors_checked, "explained_by_faults",
                          (json_int_t)c->explained, "crashed", c->crashed, "failed", c->failed);
    if (c->failed) {
        json_object_set_new(o, "first", check_violation_json(&c->first));
    }
    return o;
}

void check_rw_check(const struct check_rw *c)
{
    ASSERT(c->explained <= c->sectors_checked);
    ASSERT(!c->failed || c->first.property[0] != '\0'); /* a verdict names its property */
    ASSERT(c->first.n_expected <= CHECK_EXPECT_MAX);
    ASSERT(c->first.n_expected == 0 || c->failed);
    ASSERT(c->model.durable_seq <= c->model.seq + 1);
    ASSERT(c->image != NULL || c->image_sectors == 0);
}

void check_tag_name(uint64_t tag, char *buf, size_t size)
{
    if (tag == CONTENT_TAG_ZERO) {
        snprintf(buf, size, "zeroes");
    } else if (tag == CONTENT_TAG_GARBAGE) {
        snprintf(buf, size, "garbage");
    } else if (tag == CONTENT_TAG_IMAGE) {
        snprintf(buf, size, "the image's data");
    } else if (content_tag_is_pattern(tag)) {
        snprintf(buf, size, "pattern 0x%02x", (unsigned)(tag - CONTENT_TAG_SPECIAL));
    } else {
        snprintf(buf, size, "write #%" PRIu64, content_tag_op(tag));
    }
}

static void violation_fill(struct check_rw *c, uint64_t sector, uint64_t tag,
                           uint64_t home, const uint64_t *expect, unsigned n_expect)
{
    struct violation *v = &c->first;
    snprintf(v->property, sizeof(v->property), "%s",
             c->crashed ? "crash-consistency" : "read-your-writes");
    v->sector = sector;
    v->actual = tag;
    v->actual_home = home;
    v->n_expected = n_expect < CHECK_EXPECT_MAX ? n_expect : CHECK_EXPECT_MAX;
    memcpy(v->expected, expect, v->n_expected * sizeof(*expect));
    char want[160] = "";
    for (unsigned i = 0; i < v->n_expected; i++) {
        char name[40];
        check_tag_name(expect[i], name, sizeof(name));
        size_t at = strlen(want);
        snprintf(want + at, sizeof(want) - at, "%s%s", i ? " or " : "", name);
    }
    char got[80];
    check_tag_name(tag, got, sizeof(got));
    if (home != UINT64_MAX) {
        size_t at = strlen(got);
        snprintf(got + at, sizeof(got) - at, " (data meant for sector %" PRIu64 ")", home);
    }
    snprintf(v->msg, sizeof(v->msg), "sector %" PRIu64 " (byte %" PRIu64 "): expected %s%s, "
             "read %s", sector, sector * CONTENT_SECTOR, want, n_expect > CHECK_EXPECT_MAX ?
             " or ..." : "", got);
}

/* One sector read at @s whose content tag is @tag; @data its bytes, or NULL
 * when the read was described (then @tag is never garbage). */
static bool read_sector(struct check_rw *c, uint64_t s, uint64_t tag, const uint8_t *data,
                        uint64_t op_index, unsigned line, uint64_t now_ns)
{
    uint64_t expect[CHECK_EXPECT_MAX];
    unsigned n_expect;
    ASSERT(data || tag != CONTENT_TAG_GARBAGE);
    c->sectors_checked++;
    if (c->replicas && c->crashed && model_disk_holds_crashed(&c->model, s, tag)) {
        return true; /* legal now, and another replica's value may be next */
    }
    if (model_disk_read(&c->model, s, tag, expect, CHECK_EXPECT_MAX, &n_expect)) {
        return true;
    }
    uint8_t made[CONTENT_SECTOR];
    if (!data && c->image) {
        content_make(made, c->seed, tag, s);
        data = made;
    }
    /* The image's bytes may look like anything (even another run's
     * writes): judged as the image's data. */
    uint64_t home = UINT64_MAX;
    if (data && is_image_data(c, data, s)) {
        tag = CONTENT_TAG_IMAGE;
        if (model_disk_read(&c->model, s, tag, expect, CHECK_EXPECT_MAX, &n_expect)) {
            return true;
        }
    } else if (tag == CONTENT_TAG_GARBAGE) {
        (void)content_identify(data, c->seed, s, &home); /* whose data it was */
    }
    if (c->taint && c->taint(c->taint_opaque, s)) {
        c->explained++;
        return true;
    }
    if (!c->failed) {
        c->failed = true;
        violation_fill(c, s, tag, home, expect, n_expect);
        c->first.op_index = op_index;
        c->first.line = line;
        c->first.time_ns = now_ns;
    }
    return false;
}

bool check_rw_read_done(struct check_rw *c, const uint8_t *buf, uint64_t sector, uint64_t n,
                        uint64_t op_index, unsigned line, uint64_t now_ns)
{
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *data = buf + i * CONTENT_SECTOR;
        uint64_t tag = content_identify(data, c->seed, sector + i, NULL);
        if (!read_sector(c, sector + i, tag, data, op_index, line, now_ns)) {
            return false;
        }
    }
    return true;
}

bool check_rw_read_tags(struct check_rw *c, const uint64_t *tags, const uint8_t *buf,
                        uint64_t sector, uint64_t n, uint64_t op_index, unsigned line,
                        uint64_t now_ns)
{
    for (uint64_t i = 0; i < n; i++) {
        if (!read_sector(c, sector + i, tags[i], buf ? buf + i * CONTENT_SECTOR : NULL,
                         op_index, line, now_ns)) {
            return false;
        }
    }
    return true;
}

/* ---- as a checker of the guest's requests (checker.h) ---- */

uint64_t check_rw_io_submit(struct check_rw *c, const struct checker_io *io)
{
    return io->op == NODE_OP_FLUSH ? check_rw_flush_submit(c) : 0;
}

void check_rw_io_done(struct check_rw *c, const struct checker_io *io)
{
    bool ok = io->ret == 0;
    switch (io->op) {
    case NODE_OP_READ:
        if (ok) {
            (void)check_rw_read_tags(c, io->tags, io->data, io->sector, io->n, io->index,
                                     io->rec->line, io->now_ns);
        }
        break;
    case NODE_OP_WRITE:
    case NODE_OP_WRITE_ZEROES:
        check_rw_write_done(c, io->sector, io->n, io->tag, ok, io->fua);
        break;
    case NODE_OP_DISCARD:
        check_rw_discard_done(c, io->sector, io->n); /* may or may not have happened */
        break;
    case NODE_OP_FLUSH:
        check_rw_flush_done(c, io->cookie, ok);
        break;
    default:
        UNREACHABLE();
    }
}

void check_rw_io_lost(struct check_rw *c, const struct checker_io *io)
{
    if (io->op == NODE_OP_WRITE || io->op == NODE_OP_WRITE_ZEROES) {
        check_rw_write_lost(c, io->sector, io->n, io->tag);
    } else if (io->op == NODE_OP_DISCARD) {
        check_rw_discard_done(c, io->sector, io->n);
    }
}

static uint64_t rw_io_submit(void *self, const struct checker_io *io)
{
    return check_rw_io_submit(self, io);
}

static void rw_io_done(void *self, const struct checker_io *io)
{
    check_rw_io_done(self, io);
}

static void rw_io_lost(void *self, const struct checker_io *io)
{
    check_rw_io_lost(self, io);
}

static void rw_crash(void *self, unsigned host, bool guest, int mode)
{
    (void)host;
    (void)mode;
    if (guest && !((struct check_rw *)self)->data_elsewhere) {
        check_rw_crash(self);
    }
}

static const struct violation *rw_violation(const void *self)
{
    const struct check_rw *c = self;
    return c->failed ? &c->first : NULL;
}

static void rw_check(const void *self)
{
    check_rw_check(self);
}

static json_t *rw_json(const void *self)
{
    return check_rw_json(self);
}

static void rw_fini(void *self)
{
    check_rw_fini(self);
}

const struct checker_ops check_rw_ops = {
    .name = "rw",
    .io_submit = rw_io_submit,
    .io_done = rw_io_done,
    .io_lost = rw_io_lost,
    .crash = rw_crash,
    .violation = rw_violation,
    .check = rw_check,
    .json = rw_json,
    .fini = rw_fini,
};
