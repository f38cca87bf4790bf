/*
 * nbd_proto: see nbd_proto.h. Method: one function a message and direction;
 * decoders check every length before they read.
 */
#include "nbd_proto.h"

#include <inttypes.h>
#include <string.h>

struct name_entry {
    uint32_t value;
    const char *name;
};

static const struct name_entry opt_names[] = {
    { NBD_OPT_EXPORT_NAME, "EXPORT_NAME" },
    { NBD_OPT_ABORT, "ABORT" },
    { NBD_OPT_LIST, "LIST" },
    { NBD_OPT_STARTTLS, "STARTTLS" },
    { NBD_OPT_INFO, "INFO" },
    { NBD_OPT_GO, "GO" },
    { NBD_OPT_STRUCTURED_REPLY, "STRUCTURED_REPLY" },
    { NBD_OPT_LIST_META_CONTEXT, "LIST_META_CONTEXT" },
    { NBD_OPT_SET_META_CONTEXT, "SET_META_CONTEXT" },
    { NBD_OPT_EXTENDED_HEADERS, "EXTENDED_HEADERS" },
};

static const struct name_entry rep_names[] = {
    { NBD_REP_ACK, "ACK" },
    { NBD_REP_SERVER, "SERVER" },
    { NBD_REP_INFO, "INFO" },
    { NBD_REP_META_CONTEXT, "META_CONTEXT" },
    { NBD_REP_ERR_UNSUP, "ERR_UNSUP" },
    { NBD_REP_ERR_POLICY, "ERR_POLICY" },
    { NBD_REP_ERR_INVALID, "ERR_INVALID" },
    { NBD_REP_ERR_PLATFORM, "ERR_PLATFORM" },
    { NBD_REP_ERR_TLS_REQD, "ERR_TLS_REQD" },
    { NBD_REP_ERR_UNKNOWN, "ERR_UNKNOWN" },
    { NBD_REP_ERR_SHUTDOWN, "ERR_SHUTDOWN" },
    { NBD_REP_ERR_BLOCK_SIZE_REQD, "ERR_BLOCK_SIZE_REQD" },
    { NBD_REP_ERR_TOO_BIG, "ERR_TOO_BIG" },
};

static const struct name_entry cmd_names[] = {
    { NBD_CMD_READ, "READ" },
    { NBD_CMD_WRITE, "WRITE" },
    { NBD_CMD_DISC, "DISC" },
    { NBD_CMD_FLUSH, "FLUSH" },
    { NBD_CMD_TRIM, "TRIM" },
    { NBD_CMD_CACHE, "CACHE" },
    { NBD_CMD_WRITE_ZEROES, "WRITE_ZEROES" },
    { NBD_CMD_BLOCK_STATUS, "BLOCK_STATUS" },
};

static const char *lookup(const struct name_entry *t, size_t n, uint32_t value)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].value == value) {
            return t[i].name;
        }
    }
    return "?";
}

const char *nbd_opt_name(uint32_t opt)
{
    return lookup(opt_names, ARRAY_LEN(opt_names), opt);
}

const char *nbd_rep_name(uint32_t type)
{
    return lookup(rep_names, ARRAY_LEN(rep_names), type);
}

const char *nbd_cmd_name(uint32_t type)
{
    return lookup(cmd_names, ARRAY_LEN(cmd_names), type);
}

static const int wire_errnos[][2] = {
    { NBD_EPERM, EPERM },       { NBD_EIO, EIO },         { NBD_ENOMEM, ENOMEM },
    { NBD_EINVAL, EINVAL },     { NBD_ENOSPC, ENOSPC },   { NBD_EOVERFLOW, EOVERFLOW },
    { NBD_ENOTSUP, ENOTSUP },   { NBD_ESHUTDOWN, ESHUTDOWN },
};

uint32_t nbd_errno_to_wire(int err)
{
    for (size_t i = 0; i < ARRAY_LEN(wire_errnos); i++) {
        if (wire_errnos[i][1] == -err) {
            return (uint32_t)wire_errnos[i][0];
        }
    }
    return err == -EROFS ? NBD_EPERM : NBD_EIO;
}

int nbd_errno_from_wire(uint32_t error)
{
    for (size_t i = 0; i < ARRAY_LEN(wire_errnos); i++) {
        if ((uint32_t)wire_errnos[i][0] == error) {
            return -wire_errnos[i][1];
        }
    }
    return -EINVAL;
}

static int proto_err(struct err *e, const char *what, uint64_t got)
{
    err_set(e, 0, 0, "%s (got 0x%" PRIx64 ")", what, got);
    return BS_EPROTO;
}

/* ---- handshake ---- */

void nbd_enc_greeting(uint8_t buf[NBD_GREETING_LEN], uint16_t hs_flags)
{
    put_be64(buf, NBD_MAGIC);
    put_be64(buf + 8, NBD_IHAVEOPT);
    put_be16(buf + 16, hs_flags);
}

int nbd_dec_greeting(const uint8_t buf[NBD_GREETING_LEN], uint16_t *hs_flags, struct err *e)
{
    if (get_be64(buf) != NBD_MAGIC) {
        return proto_err(e, "greeting: not an NBD server (bad NBDMAGIC)", get_be64(buf));
    }
    if (get_be64(buf + 8) != NBD_IHAVEOPT) {
        return proto_err(e, "greeting: not a newstyle server (oldstyle is not supported)",
                         get_be64(buf + 8));
    }
    *hs_flags = get_be16(buf + 16);
    if (!(*hs_flags & NBD_FLAG_FIXED_NEWSTYLE)) {
        return proto_err(e, "greeting: server does not offer fixed newstyle", *hs_flags);
    }
    return 0;
}

void nbd_enc_client_flags(uint8_t buf[NBD_CLIENT_FLAGS_LEN], uint32_t flags)
{
    put_be32(buf, flags);
}

int nbd_dec_client_flags(const uint8_t buf[NBD_CLIENT_FLAGS_LEN], uint16_t offered,
                         uint32_t *flags, struct err *e)
{
    *flags = get_be32(buf);
    if (*flags & ~(uint32_t)offered) {
        return proto_err(e, "client flags: bits the server did not offer", *flags);
    }
    if (!(*flags & NBD_FLAG_C_FIXED_NEWSTYLE)) {
        return proto_err(e, "client flags: client is not fixed newstyle", *flags);
    }
    return 0;
}

void nbd_enc_opt_hdr(uint8_t buf[NBD_OPT_HDR_LEN], const struct nbd_opt_hdr *h)
{
    put_be64(buf, NBD_IHAVEOPT);
    put_be32(buf + 8, h->opt);
    put_be32(buf + 12, h->len);
}

int nbd_dec_opt_hdr(const uint8_t buf[NBD_OPT_HDR_LEN], struct nbd_opt_hdr *h, struct err *e)
{
    if (get_be64(buf) != NBD_IHAVEOPT) {
        return proto_err(e, "option: bad IHAVEOPT magic", get_be64(buf));
    }
    h->opt = get_be32(buf + 8);
    h->len = get_be32(buf + 12);
    if (h->len > NBD_OPT_DATA_MAX) {
        return proto_err(e, "option: data longer than 64 KiB", h->len);
    }
    return 0;
}

void nbd_enc_opt_reply(uint8_t buf[NBD_OPT_REPLY_HDR_LEN], const struct nbd_opt_reply *r)
{
    put_be64(buf, NBD_REP_MAGIC);
    put_be32(buf + 8, r->opt);
    put_be32(buf + 12, r->type);
    put_be32(buf + 16, r->len);
}

int nbd_dec_opt_reply(const uint8_t buf[NBD_OPT_REPLY_HDR_LEN], struct nbd_opt_reply *r,
                      struct err *e)
{
    if (get_be64(buf) != NBD_REP_MAGIC) {
        return proto_err(e, "option reply: bad magic", get_be64(buf));
    }
    r->opt = get_be32(buf + 8);
    r->type = get_be32(buf + 12);
    r->len = get_be32(buf + 16);
    if (r->len > NBD_OPT_DATA_MAX) {
        return proto_err(e, "option reply: payload longer than 64 KiB", r->len);
    }
    if (r->type == NBD_REP_ACK && r->len != 0) {
        return proto_err(e, "option reply: ACK with a payload", r->len);
    }
    return 0;
}

/* A u32-length-prefixed string at @data[*pos]; advances *pos. */
static int dec_str32(const uint8_t *data, size_t len, size_t *pos, struct nbd_str *s,
                     const char *what, struct err *e)
{
    ASSERT(*pos <= len);
    if (len - *pos < 4) {
        return proto_err(e, what, len);
    }
    uint32_t n = get_be32(data + *pos);
    if (n > NBD_STRING_MAX || n > len - *pos - 4) {
        return proto_err(e, what, n);
    }
    s->p = data + *pos + 4;
    s->len = n;
    *pos += 4 + (size_t)n;
    return 0;
}

static size_t enc_str32(uint8_t *buf, size_t cap, size_t pos, struct nbd_str s)
{
    ASSERT(s.len == 0 || s.p != NULL);
    if (cap < pos || cap - pos < 4 + (size_t)s.len) {
        return 0;
    }
    put_be32(buf + pos, s.len);
    if (s.len) {
        memcpy(buf + pos + 4, s.p, s.len);
    }
    return pos + 4 + s.len;
}

size_t nbd_enc_opt_go(uint8_t *buf, size_t cap, const struct nbd_opt_go *g)
{
    size_t pos = enc_str32(buf, cap, 0, g->name);
    if (pos == 0 || cap - pos < 2 + 2 * (size_t)g->n_info) {
        return 0;
    }
    put_be16(buf + pos, g->n_info);
    for (unsigned i = 0; i < g->n_info; i++) {
        put_be16(buf + pos + 2 + 2 * i, g->info[i]);
    }
    return pos + 2 + 2 * (size_t)g->n_info;
}

int nbd_dec_opt_go(const uint8_t *data, size_t len, struct nbd_opt_go *g, struct err *e)
{
    size_t pos = 0;
    TRY(dec_str32(data, len, &pos, &g->name, "INFO/GO: bad export name length", e));
    if (len - pos < 2) {
        return proto_err(e, "INFO/GO: no count of info requests", len);
    }
    unsigned n = get_be16(data + pos);
    if (len - pos - 2 != 2 * (size_t)n) {
        return proto_err(e, "INFO/GO: length does not match the info requests", len);
    }
    /* Requests past the table are ignored, as unknown requests may be. */
    g->n_info = (uint16_t)(n < NBD_INFO_REQ_MAX ? n : NBD_INFO_REQ_MAX);
    for (unsigned i = 0; i < g->n_info; i++) {
        g->info[i] = get_be16(data + pos + 2 + 2 * i);
    }
    return 0;
}

size_t nbd_enc_opt_meta(uint8_t *buf, size_t cap, const struct nbd_opt_meta *m)
{
    size_t pos = enc_str32(buf, cap, 0, m->name);
    if (pos == 0 || cap - pos < 4) {
        return 0;
    }
    put_be32(buf + pos, m->n_queries);
    pos += 4;
    for (uint32_t i = 0; i < m->n_queries && pos; i++) {
        pos = enc_str32(buf, cap, pos, m->queries[i]);
    }
    return pos;
}

int nbd_dec_opt_meta(const uint8_t *data, size_t len, struct nbd_opt_meta *m, struct err *e)
{
    size_t pos = 0;
    TRY(dec_str32(data, len, &pos, &m->name, "META_CONTEXT: bad export name length", e));
    if (len - pos < 4) {
        return proto_err(e, "META_CONTEXT: no count of queries", len);
    }
    uint32_t n = get_be32(data + pos);
    pos += 4;
    if (n > NBD_META_QUERIES_MAX) {
        err_set(e, 0, 0, "META_CONTEXT: %" PRIu32 " queries (at most %u)", n,
                NBD_META_QUERIES_MAX);
        return -E2BIG;
    }
    m->n_queries = n;
    for (uint32_t i = 0; i < n; i++) {
        TRY(dec_str32(data, len, &pos, &m->queries[i], "META_CONTEXT: bad query length", e));
    }
    if (pos != len) {
        return proto_err(e, "META_CONTEXT: bytes after the last query", len - pos);
    }
    return 0;
}

size_t nbd_enc_export_name_reply(uint8_t *buf, uint64_t size, uint16_t tflags, bool zeroes)
{
    put_be64(buf, size);
    put_be16(buf + 8, tflags);
    if (!zeroes) {
        return NBD_EXPORT_NAME_REPLY_LEN;
    }
    memset(buf + NBD_EXPORT_NAME_REPLY_LEN, 0, NBD_EXPORT_NAME_PAD);
    return NBD_EXPORT_NAME_REPLY_LEN + NBD_EXPORT_NAME_PAD;
}

void nbd_dec_export_name_reply(const uint8_t buf[NBD_EXPORT_NAME_REPLY_LEN],
                               struct nbd_export_info *ei)
{
    memset(ei, 0, sizeof(*ei));
    ei->size = get_be64(buf);
    ei->tflags = get_be16(buf + 8);
}

size_t nbd_enc_info_export(uint8_t *buf, size_t cap, uint64_t size, uint16_t tflags)
{
    if (cap < 12) {
        return 0;
    }
    put_be16(buf, NBD_INFO_EXPORT);
    put_be64(buf + 2, size);
    put_be16(buf + 10, tflags);
    return 12;
}

size_t nbd_enc_info_block_size(uint8_t *buf, size_t cap, uint32_t min, uint32_t pref,
                               uint32_t max)
{
    if (cap < 14) {
        return 0;
    }
    put_be16(buf, NBD_INFO_BLOCK_SIZE);
    put_be32(buf + 2, min);
    put_be32(buf + 6, pref);
    put_be32(buf + 10, max);
    return 14;
}

size_t nbd_enc_info_string(uint8_t *buf, size_t cap, uint16_t type, struct nbd_str s)
{
    ASSERT(s.len == 0 || s.p != NULL);
    if (cap < 2 + (size_t)s.len) {
        return 0;
    }
    put_be16(buf, type);
    if (s.len) {
        memcpy(buf + 2, s.p, s.len);
    }
    return 2 + (size_t)s.len;
}

static int dec_block_size(const uint8_t *data, struct nbd_export_info *ei, struct err *e)
{
    uint32_t min = get_be32(data + 2), pref = get_be32(data + 6), max = get_be32(data + 10);
    if (!is_pow2(min) || min > 64 * 1024 || !is_pow2(pref) || pref < min || pref > 32u << 20 ||
        max < min || max < pref) {
        err_set(e, 0, 0, "INFO BLOCK_SIZE: inconsistent sizes %" PRIu32 "/%" PRIu32
                "/%" PRIu32, min, pref, max);
        return BS_EPROTO;
    }
    ei->has_block_size = true;
    ei->min_block = min;
    ei->pref_block = pref;
    ei->max_block = max;
    return 0;
}

int nbd_dec_info(const uint8_t *data, size_t len, uint16_t *type, struct nbd_export_info *ei,
                 struct err *e)
{
    if (len < 2) {
        return proto_err(e, "INFO reply: no info type", len);
    }
    *type = get_be16(data);
    switch (*type) {
    case NBD_INFO_EXPORT:
        if (len != 12) {
            return proto_err(e, "INFO EXPORT: length is not 12", len);
        }
        ei->size = get_be64(data + 2);
        ei->tflags = get_be16(data + 10);
        return 0;
    case NBD_INFO_BLOCK_SIZE:
        if (len != 14) {
            return proto_err(e, "INFO BLOCK_SIZE: length is not 14", len);
        }
        return dec_block_size(data, ei, e);
    case NBD_INFO_NAME:
    case NBD_INFO_DESCRIPTION:
        if (len - 2 > NBD_STRING_MAX) {
            return proto_err(e, "INFO NAME/DESCRIPTION: string too long", len);
        }
        return 0;
    default:
        return 0; /* unknown info: ignored, as the protocol asks */
    }
}

size_t nbd_enc_meta_context(uint8_t *buf, size_t cap, uint32_t id, struct nbd_str name)
{
    ASSERT(name.len == 0 || name.p != NULL);
    if (cap < 4 + (size_t)name.len) {
        return 0;
    }
    put_be32(buf, id);
    if (name.len) {
        memcpy(buf + 4, name.p, name.len);
    }
    return 4 + (size_t)name.len;
}

int nbd_dec_meta_context(const uint8_t *data, size_t len, uint32_t *id, struct nbd_str *name,
                         struct err *e)
{
    if (len < 4 || len - 4 > NBD_STRING_MAX) {
        return proto_err(e, "META_CONTEXT reply: bad length", len);
    }
    *id = get_be32(data);
    name->p = data + 4;
    name->len = (uint32_t)(len - 4);
    return 0;
}

size_t nbd_enc_rep_server(uint8_t *buf, size_t cap, struct nbd_str name)
{
    return enc_str32(buf, cap, 0, name);
}

int nbd_dec_rep_server(const uint8_t *data, size_t len, struct nbd_str *name, struct err *e)
{
    size_t pos = 0;
    return dec_str32(data, len, &pos, name, "SERVER reply: bad name length", e);
}

/* ---- transmission ---- */

void nbd_enc_request(uint8_t buf[NBD_REQUEST_LEN], const struct nbd_request *r)
{
    put_be32(buf, NBD_REQUEST_MAGIC);
    put_be16(buf + 4, r->flags);
    put_be16(buf + 6, r->type);
    put_be64(buf + 8, r->cookie);
    put_be64(buf + 16, r->offset);
    put_be32(buf + 24, r->len);
}

int nbd_dec_request(const uint8_t buf[NBD_REQUEST_LEN], struct nbd_request *r, struct err *e)
{
    if (get_be32(buf) != NBD_REQUEST_MAGIC) {
        return proto_err(e, "request: bad magic", get_be32(buf));
    }
    r->flags = get_be16(buf + 4);
    r->type = get_be16(buf + 6);
    r->cookie = get_be64(buf + 8);
    r->offset = get_be64(buf + 16);
    r->len = get_be32(buf + 24);
    return 0;
}

struct cmd_rule {
    uint16_t flags;   /* command flags it accepts */
    uint16_t tflag;   /* the transmission flag it needs, 0 if none */
    bool writes;
    bool ranged;
};

static const struct cmd_rule cmd_rules[] = {
    [NBD_CMD_READ] = { NBD_CMD_FLAG_DF, 0, false, true },
    [NBD_CMD_WRITE] = { NBD_CMD_FLAG_FUA, 0, true, true },
    [NBD_CMD_DISC] = { 0, 0, false, false },
    [NBD_CMD_FLUSH] = { 0, NBD_TFLAG_SEND_FLUSH, false, false },
    [NBD_CMD_TRIM] = { NBD_CMD_FLAG_FUA, NBD_TFLAG_SEND_TRIM, true, true },
    [NBD_CMD_CACHE] = { 0, NBD_TFLAG_SEND_CACHE, false, true },
    [NBD_CMD_WRITE_ZEROES] = { NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
                               NBD_CMD_FLAG_FAST_ZERO, NBD_TFLAG_SEND_WRITE_ZEROES, true, true },
    [NBD_CMD_BLOCK_STATUS] = { NBD_CMD_FLAG_REQ_ONE, 0, false, true },
};

static uint32_t request_reject(struct err *e, uint32_t wire, const char *what,
                               const struct nbd_request *r)
{
    err_set(e, 0, 0, "%s %s at %" PRIu64 "+%" PRIu32, what, nbd_cmd_name(r->type), r->offset,
            r->len);
    return wire;
}

uint32_t nbd_request_check(const struct nbd_request *r, uint64_t size, uint16_t tflags,
                           uint32_t align, bool structured, bool have_contexts,
                           struct err *e)
{
    ASSERT(align >= 1 && is_pow2(align));
    if (r->type >= ARRAY_LEN(cmd_rules)) {
        return request_reject(e, NBD_EINVAL, "unknown command", r);
    }
    const struct cmd_rule *rule = &cmd_rules[r->type];
    /* FUA is valid on every command once SEND_FUA was advertised: a server
     * must accept it (even by ignoring it) on reads, flushes, block status. */
    if ((r->flags & ~(rule->flags | NBD_CMD_FLAG_FUA)) ||
        ((r->flags & NBD_CMD_FLAG_FUA) && !(tflags & NBD_TFLAG_SEND_FUA))) {
        return request_reject(e, NBD_EINVAL, "unsupported flags on", r);
    }
    if ((r->flags & NBD_CMD_FLAG_FAST_ZERO) && !(tflags & NBD_TFLAG_SEND_FAST_ZERO)) {
        return request_reject(e, NBD_EINVAL, "FAST_ZERO not advertised, on", r);
    }
    if ((r->flags & NBD_CMD_FLAG_DF) && !structured) {
        return request_reject(e, NBD_EINVAL, "DF without structured replies on", r);
    }
    if (rule->tflag && !(tflags & rule->tflag)) {
        return request_reject(e, NBD_EINVAL, "command not advertised:", r);
    }
    if (r->type == NBD_CMD_BLOCK_STATUS && !have_contexts) {
        return request_reject(e, NBD_EINVAL, "no meta context selected for", r);
    }
    if (rule->writes && (tflags & NBD_TFLAG_READ_ONLY)) {
        return request_reject(e, NBD_EPERM, "read-only export refuses", r);
    }
    if (!rule->ranged) {
        return 0;
    }
    if (r->offset > size || r->len > size - r->offset) {
        bool w = r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES;
        return request_reject(e, w ? NBD_ENOSPC : NBD_EINVAL, "past the end:", r);
    }
    if (r->len == 0 || r->offset % align || r->len % align) {
        return request_reject(e, NBD_EINVAL, "empty or misaligned", r);
    }
    if (r->len > NBD_PAYLOAD_MAX && r->type != NBD_CMD_BLOCK_STATUS &&
        r->type != NBD_CMD_TRIM && r->type != NBD_CMD_WRITE_ZEROES) {
        return request_reject(e, (r->flags & NBD_CMD_FLAG_DF) ? NBD_EOVERFLOW : NBD_EINVAL,
                              "too long:", r);
    }
    ASSERT(r->offset + r->len <= size && r->len > 0); /* a valid request fits */
    return 0;
}

int nbd_dec_reply_magic(const uint8_t buf[4], uint32_t *magic, struct err *e)
{
    *magic = get_be32(buf);
    if (*magic != NBD_SIMPLE_REPLY_MAGIC && *magic != NBD_CHUNK_MAGIC) {
        return proto_err(e, "reply: bad magic", *magic);
    }
    return 0;
}

void nbd_enc_simple_reply(uint8_t buf[NBD_SIMPLE_REPLY_LEN], const struct nbd_simple_reply *r)
{
    put_be32(buf, NBD_SIMPLE_REPLY_MAGIC);
    put_be32(buf + 4, r->error);
    put_be64(buf + 8, r->cookie);
}

int nbd_dec_simple_reply(const uint8_t buf[NBD_SIMPLE_REPLY_LEN], struct nbd_simple_reply *r,
                         struct err *e)
{
    if (get_be32(buf) != NBD_SIMPLE_REPLY_MAGIC) {
        return proto_err(e, "simple reply: bad magic", get_be32(buf));
    }
    r->error = get_be32(buf + 4);
    r->cookie = get_be64(buf + 8);
    return 0;
}

void nbd_enc_chunk(uint8_t buf[NBD_CHUNK_HDR_LEN], const struct nbd_chunk *c)
{
    put_be32(buf, NBD_CHUNK_MAGIC);
    put_be16(buf + 4, c->flags);
    put_be16(buf + 6, c->type);
    put_be64(buf + 8, c->cookie);
    put_be32(buf + 16, c->len);
}

int nbd_dec_chunk(const uint8_t buf[NBD_CHUNK_HDR_LEN], struct nbd_chunk *c, struct err *e)
{
    if (get_be32(buf) != NBD_CHUNK_MAGIC) {
        return proto_err(e, "structured reply: bad magic", get_be32(buf));
    }
    c->flags = get_be16(buf + 4);
    c->type = get_be16(buf + 6);
    c->cookie = get_be64(buf + 8);
    c->len = get_be32(buf + 16);
    if (c->flags & ~NBD_CHUNK_FLAG_DONE) {
        return proto_err(e, "structured reply: unknown chunk flags", c->flags);
    }
    if (c->len > NBD_PAYLOAD_MAX + 8) {
        return proto_err(e, "structured reply: chunk longer than 32 MiB", c->len);
    }
    switch (c->type) {
    case NBD_CHUNK_NONE:
        if (c->len != 0 || !(c->flags & NBD_CHUNK_FLAG_DONE)) {
            return proto_err(e, "structured reply: NONE chunk with payload or without DONE",
                             c->len);
        }
        return 0;
    case NBD_CHUNK_OFFSET_DATA:
        return c->len < 9 ? proto_err(e, "OFFSET_DATA chunk shorter than 9 bytes", c->len) : 0;
    case NBD_CHUNK_OFFSET_HOLE:
        return c->len != 12 ? proto_err(e, "OFFSET_HOLE chunk is not 12 bytes", c->len) : 0;
    case NBD_CHUNK_BLOCK_STATUS:
        return c->len < 12 || (c->len - 4) % 8 ? proto_err(e, "BLOCK_STATUS chunk has a bad "
                                                           "length", c->len) : 0;
    case NBD_CHUNK_ERROR:
    case NBD_CHUNK_ERROR_OFFSET:
        return c->len < 6 ? proto_err(e, "ERROR chunk shorter than 6 bytes", c->len) : 0;
    default:
        return 0; /* unknown types: the caller decides (error bit or not) */
    }
}

void nbd_enc_chunk_offset(uint8_t buf[8], uint64_t offset)
{
    put_be64(buf, offset);
}

uint64_t nbd_dec_chunk_offset(const uint8_t buf[8])
{
    return get_be64(buf);
}

void nbd_enc_chunk_hole(uint8_t buf[12], uint64_t offset, uint32_t size)
{
    put_be64(buf, offset);
    put_be32(buf + 8, size);
}

int nbd_dec_chunk_hole(const uint8_t buf[12], uint64_t *offset, uint32_t *size, struct err *e)
{
    *offset = get_be64(buf);
    *size = get_be32(buf + 8);
    return *size == 0 ? proto_err(e, "OFFSET_HOLE chunk of size 0", 0) : 0;
}

size_t nbd_enc_chunk_error(uint8_t *buf, size_t cap, const struct nbd_chunk_error *ce)
{
    size_t need = 6 + (size_t)ce->msg.len + (ce->has_offset ? 8 : 0);
    if (cap < need || ce->msg.len > UINT16_MAX) {
        return 0;
    }
    put_be32(buf, ce->error);
    put_be16(buf + 4, (uint16_t)ce->msg.len);
    if (ce->msg.len) {
        memcpy(buf + 6, ce->msg.p, ce->msg.len);
    }
    if (ce->has_offset) {
        put_be64(buf + 6 + ce->msg.len, ce->offset);
    }
    return need;
}

int nbd_dec_chunk_error(const uint8_t *data, size_t len, uint16_t type,
                        struct nbd_chunk_error *ce, struct err *e)
{
    memset(ce, 0, sizeof(*ce));
    if (len < 6) {
        return proto_err(e, "ERROR chunk shorter than 6 bytes", len);
    }
    ce->error = get_be32(data);
    ce->msg.len = get_be16(data + 4);
    ce->msg.p = data + 6;
    ce->has_offset = type == NBD_CHUNK_ERROR_OFFSET;
    size_t need = 6 + (size_t)ce->msg.len + (ce->has_offset ? 8 : 0);
    if (ce->error == 0) {
        return proto_err(e, "ERROR chunk with error 0", 0);
    }
    if (len != need) {
        return proto_err(e, "ERROR chunk length does not match its message", len);
    }
    if (ce->has_offset) {
        ce->offset = get_be64(data + 6 + ce->msg.len);
    }
    return 0;
}

size_t nbd_enc_block_status(uint8_t *buf, size_t cap, uint32_t ctx_id,
                            const struct nbd_extent *ext, size_t n)
{
    if (n == 0 || cap < 4 || (cap - 4) / 8 < n) {
        return 0;
    }
    put_be32(buf, ctx_id);
    for (size_t i = 0; i < n; i++) {
        put_be32(buf + 4 + 8 * i, ext[i].len);
        put_be32(buf + 8 + 8 * i, ext[i].flags);
    }
    return 4 + 8 * n;
}

int nbd_dec_block_status(const uint8_t *data, size_t len, uint32_t *ctx_id, size_t *n,
                         struct err *e)
{
    if (len < 12 || (len - 4) % 8) {
        return proto_err(e, "BLOCK_STATUS chunk has a bad length", len);
    }
    *ctx_id = get_be32(data);
    *n = (len - 4) / 8;
    for (size_t i = 0; i < *n; i++) {
        if (get_be32(data + 4 + 8 * i) == 0) {
            return proto_err(e, "BLOCK_STATUS extent of length 0", i);
        }
    }
    return 0;
}

struct nbd_extent nbd_block_status_extent(const uint8_t *data, size_t i)
{
    struct nbd_extent x = { get_be32(data + 4 + 8 * i), get_be32(data + 8 + 8 * i) };
    return x;
}
