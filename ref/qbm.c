/*
 * qbm: see qbm.h.
 *
 * Method. Load: read both descriptor slots, keep those that parse, check
 * their CRC and carry a generation, pick the newest, validate it fully into
 * an array of entries, then read each consistent bitmap's file (size, zero
 * padding, CRC, no bits past the end) into a scratch set; only when all of
 * that worked do the bitmaps move into the caller's set. Sync and store are
 * one chain of callbacks: for a store, each bitmap file is written and
 * flushed in turn; then the descriptor goes to the other slot and is
 * flushed; then files the old descriptor named and the new one does not are
 * deleted. The in-memory generation and file list change only once the new
 * descriptor is durable.
 */
#include "qbm.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "node.h"

/* Room for "FILE: slot N: bitmap 'NAME'" in messages. */
#define WHERE_MAX (ENV_FILE_NAME_MAX + DIRTY_NAME_MAX + 64)

#define KEY_GEN "ext-hard-blocksim-generation"
#define KEY_CRC "ext-soft-blocksim-crc32"
#define KEY_SIZE "ext-hard-blocksim-size"
#define KEY_IN_USE "ext-hard-blocksim-in-use"
#define KEY_AUTO "ext-soft-blocksim-auto"

struct qbm_op {
    struct qbm *q;
    bool clean;                 /* store: bitmaps, then a clean descriptor */
    struct dirty_bitmap *cur;   /* store: the bitmap being written */
    uint32_t crcs[QBM_BITMAPS_MAX]; /* store: per persistent bitmap, set order */
    unsigned n_crcs;
    uint8_t *buf;
    uint64_t buf_len;
    struct env_storage st;      /* store: the open bitmap file */
    bool st_open;
    char (*names)[ENV_FILE_NAME_MAX]; /* files the new descriptor names */
    size_t n_names;
    int ret;
    env_io_cb *cb;
    void *opaque;
};

/* One bitmap entry of a validated descriptor. */
struct entry {
    char name[DIRTY_NAME_MAX];
    char file[ENV_FILE_NAME_MAX];
    uint64_t gran;
    bool in_use;
    bool enabled;
    bool has_crc;
    uint32_t crc;
};

static int PRINTF_LIKE(3, 4) fail(struct err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        e->line = e->field = 0;
    }
    return code;
}

void qbm_bitmap_file(const char *image, const char *name, char *buf, size_t size)
{
    /* Bounded by qbm_open's image check and DIRTY_NAME_MAX: never truncated. */
    STATIC_ASSERT(QBM_IMAGE_NAME_MAX + DIRTY_NAME_MAX + sizeof(".bitmap") <= ENV_FILE_NAME_MAX);
    ASSERT(strlen(image) < QBM_IMAGE_NAME_MAX && strlen(name) < DIRTY_NAME_MAX);
    snprintf(buf, size, "%.55s.%.63s.bitmap", image, name);
}

static uint32_t crc_of(const uint8_t *p, uint64_t len)
{
    return (uint32_t)crc32_z(0, p, len);
}

/* CRC of DESC's compact, key-sorted dump without the CRC key. */
static uint32_t desc_crc(json_t *desc)
{
    json_t *copy = json_copy(desc);
    ASSERT(copy != NULL);
    json_object_del(copy, KEY_CRC);
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT(text != NULL);
    uint32_t crc = crc_of((const uint8_t *)text, strlen(text));
    free(text);
    json_decref(copy);
    return crc;
}

/* ---- validation ---- */

/* Every key of @obj is in @known, or an ext-soft- key; @where names @obj. */
static int keys_check(json_t *obj, const char *const *known, size_t n, const char *where,
                      struct err *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = strncmp(key, "ext-soft-", 9) == 0;
        for (size_t i = 0; i < n && !ok; i++) {
            ok = strcmp(key, known[i]) == 0;
        }
        if (!ok && strncmp(key, "ext-hard-", 9) == 0) {
            return fail(e, BS_EFORMAT, "%s: mandatory extension '%s' is not supported", where,
                        key);
        }
        if (!ok) {
            return fail(e, BS_EFORMAT, "%s: unknown key '%s'", where, key);
        }
    }
    return 0;
}

/* An integer member in [lo, hi]; absent is an error when @need. */
static int int_get(json_t *obj, const char *key, bool need, uint64_t lo, uint64_t hi,
                   const char *where, struct err *e, uint64_t *out, bool *present)
{
    json_t *v = json_object_get(obj, key);
    *present = v != NULL;
    if (!v) {
        return need ? fail(e, BS_EFORMAT, "%s: '%s' is missing", where, key) : 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) < lo || (uint64_t)json_integer_value(v) > hi) {
        return fail(e, BS_EFORMAT, "%s: '%s' must be an integer in [%" PRIu64 ", %" PRIu64
                    "]", where, key, lo, hi);
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int str_get(json_t *obj, const char *key, size_t max, const char *where,
                   struct err *e, const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        return fail(e, BS_EFORMAT, "%s: '%s' must be a non-empty string of at most %zu bytes",
                    where, key, max - 1);
    }
    *out = json_string_value(v);
    return 0;
}

static int bool_get(json_t *obj, const char *key, bool dflt, const char *where,
                    struct err *e, bool *out)
{
    json_t *v = json_object_get(obj, key);
    if (v && !json_is_boolean(v)) {
        return fail(e, BS_EFORMAT, "%s: '%s' must be true or false", where, key);
    }
    *out = v ? json_is_true(v) : dflt;
    return 0;
}

static int image_check(const struct qbm *q, json_t *img, const char *where, struct err *e)
{
    static const char *const keys[] = { "file", "format", KEY_SIZE };
    char at[WHERE_MAX];
    snprintf(at, sizeof(at), "%.200s: image", where);
    if (!json_is_object(img)) {
        return fail(e, BS_EFORMAT, "%s: 'image' must be an object", where);
    }
    TRY(keys_check(img, keys, ARRAY_LEN(keys), at, e));
    const char *file;
    const char *format;
    TRY(str_get(img, "file", ENV_FILE_NAME_MAX, at, e, &file));
    TRY(str_get(img, "format", sizeof(q->format), at, e, &format));
    if (strcmp(file, q->image) != 0) {
        return fail(e, BS_EFORMAT, "%s: the descriptor is for image '%s', not '%s'", at, file,
                    q->image);
    }
    uint64_t size = 0;
    bool present;
    TRY(int_get(img, KEY_SIZE, false, 1, UINT64_MAX, at, e, &size, &present));
    if (present && size != q->o.size) {
        return fail(e, BS_EFORMAT, "%s: the descriptor is for a %" PRIu64 "-byte image, this "
                    "one has %" PRIu64 " bytes", at, size, q->o.size);
    }
    return 0;
}

static int entry_parse(const char *name, json_t *v, const char *where, struct err *e,
                       struct entry *out)
{
    static const char *const keys[] = { "file", "granularity-bytes", "type", KEY_IN_USE };
    char at[WHERE_MAX + DIRTY_NAME_MAX];
    snprintf(at, sizeof(at), "%.200s: bitmap '%.*s'", where, DIRTY_NAME_MAX, name);
    if (name[0] == '\0' || strlen(name) >= DIRTY_NAME_MAX) {
        return fail(e, BS_EFORMAT, "%s: a bitmap name must be 1 to %d bytes", where,
                    DIRTY_NAME_MAX - 1);
    }
    if (!json_is_object(v)) {
        return fail(e, BS_EFORMAT, "%s: must be an object", at);
    }
    TRY(keys_check(v, keys, ARRAY_LEN(keys), at, e));
    const char *file;
    const char *type;
    TRY(str_get(v, "file", ENV_FILE_NAME_MAX, at, e, &file));
    TRY(str_get(v, "type", 16, at, e, &type));
    if (strcmp(type, "dirty") != 0) {
        return fail(e, BS_EFORMAT, "%s: type '%s' is not supported (only \"dirty\")", at, type);
    }
    bool present;
    TRY(int_get(v, "granularity-bytes", true, BITMAP_GRAN_MIN, 1ull << BITMAP_GRAN_SHIFT_MAX,
                at, e, &out->gran, &present));
    if (!is_pow2(out->gran)) {
        return fail(e, BS_EFORMAT, "%s: granularity-bytes %" PRIu64 " is not a power of two",
                    at, out->gran);
    }
    uint64_t crc = 0;
    TRY(int_get(v, KEY_CRC, false, 0, UINT32_MAX, at, e, &crc, &out->has_crc));
    out->crc = (uint32_t)crc;
    TRY(bool_get(v, KEY_IN_USE, false, at, e, &out->in_use));
    TRY(bool_get(v, KEY_AUTO, true, at, e, &out->enabled));
    snprintf(out->name, sizeof(out->name), "%s", name);
    snprintf(out->file, sizeof(out->file), "%s", file);
    return 0;
}

/* Validate the DESC object of a slot into @ents. */
static int desc_parse(const struct qbm *q, json_t *desc, const char *where, struct err *e,
                      struct entry *ents, size_t *n)
{
    static const char *const keys[] = { "version", "image", "bitmaps", KEY_GEN };
    if (!json_is_object(desc)) {
        return fail(e, BS_EFORMAT, "%s: \"QBM\" must be an object", where);
    }
    TRY(keys_check(desc, keys, ARRAY_LEN(keys), where, e));
    json_t *ver = json_object_get(desc, "version");
    if (!json_is_integer(ver)) {
        return fail(e, BS_EFORMAT, "%s: 'version' must be an integer", where);
    }
    if (json_integer_value(ver) != QBM_VERSION) {
        return fail(e, BS_EVERSION, "%s: QBM version %" JSON_INTEGER_FORMAT " is not supported "
                    "(this blocksim reads version %d)", where, json_integer_value(ver),
                    QBM_VERSION);
    }
    TRY(image_check(q, json_object_get(desc, "image"), where, e));
    json_t *bms = json_object_get(desc, "bitmaps");
    if (!json_is_object(bms)) {
        return fail(e, BS_EFORMAT, "%s: 'bitmaps' must be an object", where);
    }
    if (json_object_size(bms) > QBM_BITMAPS_MAX) {
        return fail(e, BS_EFORMAT, "%s: %zu bitmaps, at most %d are supported", where,
                    json_object_size(bms), QBM_BITMAPS_MAX);
    }
    const char *name;
    json_t *v;
    *n = 0;
    json_object_foreach(bms, name, v) {
        TRY(entry_parse(name, v, where, e, &ents[*n]));
        (*n)++;
    }
    return 0;
}

/* Parse one slot: 0 with *gen (and a JSON root in *root) when valid, 1 when
 * the slot was never written, else a negative code with @e filled. */
static int slot_parse(const struct qbm *q, const uint8_t *slot, unsigned idx, struct err *e,
                      json_t **root, uint64_t *gen)
{
    char where[WHERE_MAX];
    snprintf(where, sizeof(where), "%s: slot %u", q->desc_name, idx);
    if (slot[0] == '\0') {
        return 1;
    }
    const uint8_t *nul = memchr(slot, '\0', QBM_SLOT_SIZE);
    size_t len = nul ? (size_t)(nul - slot) : QBM_SLOT_SIZE;
    json_error_t je;
    json_t *doc = json_loadb((const char *)slot, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        return fail(e, BS_EFORMAT, "%s: line %d column %d: %s", where, je.line, je.column,
                    je.text);
    }
    json_t *desc = json_object_get(doc, "QBM");
    int ret = 0;
    if (!json_is_object(doc) || !desc || json_object_size(doc) != 1) {
        ret = fail(e, BS_EFORMAT, "%s: the top level must be {\"QBM\": {...}}", where);
    } else if (json_object_get(desc, KEY_CRC)) {
        json_t *c = json_object_get(desc, KEY_CRC);
        if (!json_is_integer(c) || json_integer_value(c) != (json_int_t)desc_crc(desc)) {
            ret = fail(e, BS_ECORRUPT, "%s: checksum mismatch (a torn or corrupted write)",
                       where);
        }
    }
    bool present = false;
    *gen = 0;
    if (ret == 0 && json_is_object(desc)) {
        ret = int_get(desc, KEY_GEN, false, 0, INT64_MAX, where, e, gen, &present);
    }
    if (ret < 0) {
        json_decref(doc);
        return ret;
    }
    *root = doc;
    return 0;
}

/* ---- load ---- */

static int bitmap_load(struct qbm *q, const struct entry *en, struct dirty_set *tmp,
                       struct err *e)
{
    struct dirty_bitmap *b;
    unsigned flags = DIRTY_ADD_PERSISTENT | (en->in_use ? DIRTY_ADD_INCONSISTENT : 0) |
                     (en->enabled ? 0 : DIRTY_ADD_DISABLED);
    struct err de = { .file = NULL };
    if (dirty_add(tmp, en->name, en->gran, flags, &de, &b) < 0) {
        return fail(e, BS_EFORMAT, "%s: bitmap '%s': %s", q->desc_name, en->name, de.msg);
    }
    if (en->in_use) {
        return 0; /* qcow2's rule: no data, never trusted */
    }
    struct env_storage st;
    int ret = q->o.files.ops->open(q->o.files.ctx, en->file, &st);
    if (ret < 0) {
        return fail(e, BS_EFORMAT, "%s: bitmap '%s': its file '%s' cannot be opened: %s",
                    q->desc_name, en->name, en->file, blocksim_strerror(ret));
    }
    uint64_t serial = bitmap_serial_size(b->bits, 0, q->o.size);
    uint64_t want = align_up(serial, NODE_SECTOR);
    uint64_t have = st.ops->length(st.dev);
    uint8_t *buf = NULL;
    if (have != want) {
        ret = fail(e, BS_EFORMAT, "%s: %" PRIu64 " bytes, expected %" PRIu64 " for a %" PRIu64
                   "-byte image at granularity %" PRIu64, en->file, have, want, q->o.size,
                   en->gran);
    } else {
        buf = mem_alloc(want);
        ret = st.ops->read_sync(st.dev, 0, buf, want);
        if (ret < 0) {
            ret = fail(e, ret, "%s: read failed: %s", en->file, blocksim_strerror(ret));
        }
    }
    for (uint64_t i = serial; ret == 0 && i < want; i++) {
        if (buf[i]) {
            ret = fail(e, BS_ECORRUPT, "%s: non-zero padding at byte %" PRIu64, en->file, i);
        }
    }
    bool check_crc = en->has_crc && !(q->o.mutants & NODE_MUTANT_QBM_SKIP_CHECKSUM);
    if (ret == 0 && check_crc && crc_of(buf, serial) != en->crc) {
        ret = fail(e, BS_ECORRUPT, "%s: checksum mismatch (torn or corrupted bitmap file)",
                   en->file);
    }
    if (ret == 0 && bitmap_deserialize(b->bits, 0, q->o.size, buf) < 0) {
        ret = fail(e, BS_ECORRUPT, "%s: bits set past the end of the image", en->file);
    }
    mem_free(buf, buf ? want : 0);
    q->o.files.ops->close(q->o.files.ctx, &st);
    return ret;
}

/* Take @names (QBM_BITMAPS_MAX entries, @n used) as the known files. */
static void known_set(struct qbm *q, char (*names)[ENV_FILE_NAME_MAX], size_t n)
{
    mem_free(q->known, QBM_BITMAPS_MAX * sizeof(*q->known));
    q->known = names;
    q->n_known = n;
}

/* Read both slots; *best gets the newest valid one's root, or NULL. */
static int slots_read(struct qbm *q, struct err *e, json_t **best)
{
    *best = NULL;
    uint64_t len = q->desc.ops->length(q->desc.dev);
    if (len != QBM_DESC_SIZE) {
        return fail(e, BS_EFORMAT, "%s: %" PRIu64 " bytes, expected %u (two %u-byte slots)",
                    q->desc_name, len, QBM_DESC_SIZE, QBM_SLOT_SIZE);
    }
    uint8_t *buf = mem_alloc(QBM_DESC_SIZE);
    int ret = q->desc.ops->read_sync(q->desc.dev, 0, buf, QBM_DESC_SIZE);
    if (ret < 0) {
        mem_free(buf, QBM_DESC_SIZE);
        return fail(e, ret, "%s: read failed: %s", q->desc_name, blocksim_strerror(ret));
    }
    int first_err = 0;
    unsigned written = 0;
    for (unsigned i = 0; i < 2; i++) {
        json_t *root = NULL;
        uint64_t gen = 0;
        struct err se = { .file = NULL };
        int r = slot_parse(q, buf + i * QBM_SLOT_SIZE, i, &se, &root, &gen);
        written += r != 1;
        if (r < 0 && first_err == 0) {
            first_err = r;
            if (e) {
                *e = se;
            }
        }
        if (r == 0 && (!*best || gen > q->generation)) {
            json_decref(*best);
            *best = root;
            q->generation = gen;
        } else if (r == 0) {
            json_decref(root);
        }
    }
    mem_free(buf, QBM_DESC_SIZE);
    return *best || written == 0 ? 0 : first_err;
}

static int load(struct qbm *q, struct dirty_set *tmp, struct err *e)
{
    json_t *root;
    TRY(slots_read(q, e, &root));
    if (!root) {
        return 0; /* created, never written: no bitmaps */
    }
    struct entry *ents = mem_alloc(QBM_BITMAPS_MAX * sizeof(*ents));
    size_t n = 0;
    int ret = desc_parse(q, json_object_get(root, "QBM"), q->desc_name, e, ents, &n);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        ret = bitmap_load(q, &ents[i], tmp, e);
    }
    if (ret == 0) {
        char (*names)[ENV_FILE_NAME_MAX] = mem_alloc(QBM_BITMAPS_MAX * sizeof(*names));
        for (size_t i = 0; i < n; i++) {
            memcpy(names[i], ents[i].file, sizeof(names[i]));
        }
        known_set(q, names, n);
    }
    mem_free(ents, QBM_BITMAPS_MAX * sizeof(*ents));
    json_decref(root);
    return ret;
}

int qbm_open(const struct qbm_opts *o, struct dirty_set *set, struct err *e,
             struct qbm **out)
{
    ASSERT(set->n == 0 && set->size == o->size);
    ASSERT(strlen(o->image) < QBM_IMAGE_NAME_MAX); /* the caller names the image */
    struct qbm *q = mem_alloc(sizeof(*q));
    q->o = *o;
    snprintf(q->image, sizeof(q->image), "%s", o->image);
    snprintf(q->format, sizeof(q->format), "%s", o->format);
    q->o.image = q->image;
    q->o.format = q->format;
    snprintf(q->desc_name, sizeof(q->desc_name), "%s%s", o->image, QBM_DESC_SUFFIX);
    q->set = set;
    int ret = o->files.ops->open(o->files.ctx, q->desc_name, &q->desc);
    q->desc_open = ret == 0;
    ret = ret == -ENOENT ? 0 : ret;
    struct dirty_set *tmp = dirty_set_new(o->size);
    if (ret < 0) {
        fail(e, ret, "%s: cannot open: %s", q->desc_name, blocksim_strerror(ret));
    } else if (q->desc_open) {
        ret = load(q, tmp, e);
    }
    if (ret < 0) {
        dirty_set_free(tmp);
        qbm_close(q);
        return ret;
    }
    TAILQ_CONCAT(&set->list, &tmp->list, link);
    set->n = tmp->n;
    tmp->n = 0;
    dirty_set_free(tmp);
    *out = q;
    return 0;
}

void qbm_close(struct qbm *q)
{
    if (!q) {
        return;
    }
    ASSERT(!q->op);
    if (q->desc_open) {
        q->o.files.ops->close(q->o.files.ctx, &q->desc);
    }
    known_set(q, NULL, 0);
    mem_free(q, sizeof(*q));
}

/* ---- sync and store ---- */

static void op_finish(struct qbm_op *op, int ret)
{
    struct qbm *q = op->q;
    if (op->st_open) {
        q->o.files.ops->close(q->o.files.ctx, &op->st);
    }
    mem_free(op->buf, op->buf_len);
    mem_free(op->names, QBM_BITMAPS_MAX * sizeof(*op->names));
    q->op = NULL;
    env_io_cb *cb = op->cb;
    void *opaque = op->opaque;
    mem_free(op, sizeof(*op));
    cb(opaque, ret);
}

static void op_finish_ev(void *opaque)
{
    struct qbm_op *op = opaque;
    op_finish(op, op->ret);
}

/* Fail before any I/O: the callback must still come from the timer. */
static void op_fail_deferred(struct qbm_op *op, int ret)
{
    op->ret = ret;
    env_post(&op->q->o.timer, 0, op_finish_ev, op);
}

static json_t *entry_json(const struct qbm_op *op, const struct dirty_bitmap *b,
                          unsigned idx, char *file)
{
    const struct qbm *q = op->q;
    bool in_use = !op->clean || b->inconsistent;
    if (!op->clean && !b->inconsistent && (q->o.mutants & NODE_MUTANT_QBM_NO_IN_USE)) {
        in_use = false; /* planted bug: the open never marks bitmaps in use */
    }
    json_t *v = json_pack("{s:s, s:I, s:s, s:b, s:b}", "file", file, "granularity-bytes",
                          (json_int_t)bitmap_granularity(b->bits), "type", "dirty", KEY_IN_USE,
                          in_use, KEY_AUTO, b->enabled);
    ASSERT(v != NULL);
    if (!in_use && idx < op->n_crcs) {
        json_object_set_new(v, KEY_CRC, json_integer(op->crcs[idx]));
    }
    return v;
}

/* The descriptor text for generation @gen; NULL if it does not fit a slot. */
static char *desc_build(struct qbm_op *op, uint64_t gen)
{
    struct qbm *q = op->q;
    json_t *bms = json_object();
    unsigned idx = 0;
    const struct dirty_bitmap *b;
    op->names = mem_alloc(QBM_BITMAPS_MAX * sizeof(*op->names));
    TAILQ_FOREACH(b, &q->set->list, link) {
        if (!b->persistent || idx == QBM_BITMAPS_MAX) {
            continue;
        }
        qbm_bitmap_file(q->image, b->name, op->names[idx], sizeof(op->names[idx]));
        json_object_set_new(bms, b->name, entry_json(op, b, idx, op->names[idx]));
        idx++;
    }
    op->n_names = idx;
    json_t *desc = json_pack("{s:i, s:{s:s, s:s, s:I}, s:o, s:I}", "version", QBM_VERSION,
                             "image", "file", q->image, "format", q->format, KEY_SIZE,
                             (json_int_t)q->o.size, "bitmaps", bms, KEY_GEN, (json_int_t)gen);
    ASSERT(desc != NULL);
    json_object_set_new(desc, KEY_CRC, json_integer(desc_crc(desc)));
    json_t *root = json_pack("{s:o}", "QBM", desc);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    ASSERT(text != NULL);
    if (strlen(text) + 1 > QBM_SLOT_SIZE) {
        free(text);
        return NULL;
    }
    return text;
}

static void stale_remove(struct qbm_op *op)
{
    struct qbm *q = op->q;
    for (size_t i = 0; i < q->n_known; i++) {
        bool kept = false;
        for (size_t j = 0; j < op->n_names && !kept; j++) {
            kept = strcmp(q->known[i], op->names[j]) == 0;
        }
        if (!kept) {
            (void)q->o.files.ops->remove(q->o.files.ctx, q->known[i]);
        }
    }
    known_set(q, op->names, op->n_names);
    op->names = NULL;
}

static void desc_flushed(void *opaque, int ret)
{
    struct qbm_op *op = opaque;
    if (ret == 0) {
        op->q->generation++;
        stale_remove(op);
    }
    op_finish(op, ret);
}

static void desc_written(void *opaque, int ret)
{
    struct qbm_op *op = opaque;
    if (ret < 0) {
        op_finish(op, ret);
        return;
    }
    op->q->desc.ops->flush(op->q->desc.dev, desc_flushed, op);
}

static void desc_write(struct qbm_op *op)
{
    struct qbm *q = op->q;
    uint64_t gen = q->generation + 1;
    char *text = desc_build(op, gen);
    if (!text) {
        op_fail_deferred(op, -ENOSPC);
        return;
    }
    if (!q->desc_open) {
        int ret = q->o.files.ops->create(q->o.files.ctx, q->desc_name, QBM_DESC_SIZE,
                                         &q->desc);
        if (ret < 0) {
            free(text);
            op_fail_deferred(op, ret);
            return;
        }
        q->desc_open = true;
    }
    mem_free(op->buf, op->buf_len);
    op->buf_len = QBM_SLOT_SIZE;
    op->buf = mem_alloc(QBM_SLOT_SIZE);
    memcpy(op->buf, text, strlen(text));
    free(text);
    q->desc.ops->write(q->desc.dev, (gen % 2) * QBM_SLOT_SIZE, op->buf, QBM_SLOT_SIZE, 0,
                       desc_written, op);
}

static void store_next(struct qbm_op *op);

static void store_flushed(void *opaque, int ret)
{
    struct qbm_op *op = opaque;
    op->q->o.files.ops->close(op->q->o.files.ctx, &op->st);
    op->st_open = false;
    if (ret < 0) {
        op_finish(op, ret);
        return;
    }
    op->cur = TAILQ_NEXT(op->cur, link);
    store_next(op);
}

static void store_written(void *opaque, int ret)
{
    struct qbm_op *op = opaque;
    if (ret < 0) {
        store_flushed(op, ret);
        return;
    }
    op->st.ops->flush(op->st.dev, store_flushed, op);
}

/* Serialise the current bitmap into op->buf (padded to a sector). */
static void store_serialise(struct qbm_op *op)
{
    const struct qbm *q = op->q;
    const struct bitmap *bits = op->cur->bits;
    uint64_t serial = bitmap_serial_size(bits, 0, q->o.size);
    mem_free(op->buf, op->buf_len);
    op->buf_len = align_up(serial, NODE_SECTOR);
    op->buf = mem_alloc(op->buf_len);
    bitmap_serialize(bits, 0, q->o.size, op->buf);
    if (q->o.mutants & NODE_MUTANT_QBM_SHORT_STORE) {
        memset(op->buf + serial - 8, 0, 8); /* planted bug: the last word is lost */
    }
    op->crcs[op->n_crcs++] = crc_of(op->buf, serial);
}

static void store_next(struct qbm_op *op)
{
    struct qbm *q = op->q;
    while (op->cur && !op->cur->persistent) {
        op->cur = TAILQ_NEXT(op->cur, link);
    }
    if (!op->cur || op->n_crcs == QBM_BITMAPS_MAX) {
        desc_write(op);
        return;
    }
    ASSERT(!op->cur->successor);
    if (op->cur->inconsistent) {
        op->crcs[op->n_crcs++] = 0; /* left as it is: in use, never read */
        op->cur = TAILQ_NEXT(op->cur, link);
        store_next(op);
        return;
    }
    store_serialise(op);
    char file[ENV_FILE_NAME_MAX];
    qbm_bitmap_file(q->image, op->cur->name, file, sizeof(file));
    int ret = q->o.files.ops->open(q->o.files.ctx, file, &op->st);
    if (ret == 0 && op->st.ops->length(op->st.dev) != op->buf_len) {
        q->o.files.ops->close(q->o.files.ctx, &op->st);
        ret = -ENOENT;
    }
    if (ret == -ENOENT) {
        ret = q->o.files.ops->create(q->o.files.ctx, file, op->buf_len, &op->st);
    }
    if (ret < 0) {
        op_fail_deferred(op, ret);
        return;
    }
    op->st_open = true;
    op->st.ops->write(op->st.dev, 0, op->buf, op->buf_len, 0, store_written, op);
}

static struct qbm_op *op_new(struct qbm *q, bool clean, env_io_cb *cb, void *opaque)
{
    ASSERT(!q->op);
    struct qbm_op *op = mem_alloc(sizeof(*op));
    op->q = q;
    op->clean = clean;
    op->cb = cb;
    op->opaque = opaque;
    q->op = op;
    return op;
}

void qbm_sync(struct qbm *q, env_io_cb *cb, void *opaque)
{
    desc_write(op_new(q, false, cb, opaque));
}

void qbm_store(struct qbm *q, env_io_cb *cb, void *opaque)
{
    struct qbm_op *op = op_new(q, true, cb, opaque);
    op->cur = TAILQ_FIRST(&q->set->list);
    store_next(op);
}

const struct planted_bug qbm_bugs[] = {
    { "qbm-no-in-use", NODE_MUTANT_QBM_NO_IN_USE,
      "QBM: opening does not mark bitmaps in use (a crash leaves stale bits trusted)" },
    { "qbm-short-store", NODE_MUTANT_QBM_SHORT_STORE,
      "QBM: a clean store loses each bitmap's last word (and checksums the loss)" },
    { "qbm-skip-checksum", NODE_MUTANT_QBM_SKIP_CHECKSUM,
      "QBM: the loader does not check a bitmap file's checksum (a flipped read is trusted)" },
};

const size_t qbm_bugs_count = ARRAY_LEN(qbm_bugs);
