/*
 * nbd_proto: the NBD wire format as a pure codec: no I/O, no state.
 *
 * Role: encode and decode every message of the fixed newstyle handshake,
 *   its options and their replies, transmission requests, simple replies and
 *   structured reply chunks. nbd_server and drv_nbd drive it over a
 *   transport; the codec fuzzer drives it over arbitrary bytes.
 * Model: the NBD protocol (NetworkBlockDevice/nbd doc/proto.md) as QEMU 7.2,
 *   libnbd and nbdkit speak it (spec §7): big-endian, LIST/SET_META_CONTEXT
 *   are options 9/10, no extended headers.
 * Invariants: a decoder reads exactly the bytes it is given and never more;
 *   every malformed input is BS_EPROTO with @e naming the field, never a
 *   crash; decode(encode(x)) == x for every message the encoders make.
 * Ownership: decoded strings (struct nbd_str) borrow the caller's buffer.
 * Async contract: none; everything is synchronous.
 * Depends on: base.
 */
#ifndef BLOCKSIM_NBD_PROTO_H
#define BLOCKSIM_NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define NBD_MAGIC 0x4e42444d41474943ull     /* "NBDMAGIC" */
#define NBD_IHAVEOPT 0x49484156454f5054ull  /* "IHAVEOPT" */
#define NBD_REP_MAGIC 0x0003e889045565a9ull /* option replies */
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_CHUNK_MAGIC 0x668e33efu         /* structured reply chunk */

/* Fixed sizes of the wire messages. */
#define NBD_GREETING_LEN 18     /* magic, IHAVEOPT, handshake flags */
#define NBD_CLIENT_FLAGS_LEN 4
#define NBD_OPT_HDR_LEN 16      /* IHAVEOPT, option, length */
#define NBD_OPT_REPLY_HDR_LEN 20
#define NBD_EXPORT_NAME_REPLY_LEN 10 /* size, flags; 124 zeroes may follow */
#define NBD_EXPORT_NAME_PAD 124
#define NBD_REQUEST_LEN 28
#define NBD_SIMPLE_REPLY_LEN 16
#define NBD_CHUNK_HDR_LEN 20

/* Limits this implementation sets (QEMU's: strings of 4096 bytes, 32 MiB
 * payloads). */
#define NBD_STRING_MAX 4096u
#define NBD_OPT_DATA_MAX (64u * 1024u)
#define NBD_PAYLOAD_MAX (32u * 1024u * 1024u)
#define NBD_INFO_REQ_MAX 16u
#define NBD_META_QUERIES_MAX 16u

enum { /* handshake flags (server) */
    NBD_FLAG_FIXED_NEWSTYLE = 1u << 0,
    NBD_FLAG_NO_ZEROES = 1u << 1,
};

enum { /* client flags */
    NBD_FLAG_C_FIXED_NEWSTYLE = 1u << 0,
    NBD_FLAG_C_NO_ZEROES = 1u << 1,
};

enum nbd_opt {
    NBD_OPT_EXPORT_NAME = 1,
    NBD_OPT_ABORT = 2,
    NBD_OPT_LIST = 3,
    NBD_OPT_STARTTLS = 5,
    NBD_OPT_INFO = 6,
    NBD_OPT_GO = 7,
    NBD_OPT_STRUCTURED_REPLY = 8,
    NBD_OPT_LIST_META_CONTEXT = 9,
    NBD_OPT_SET_META_CONTEXT = 10,
    NBD_OPT_EXTENDED_HEADERS = 11,
};

#define NBD_REP_ERR_BIT (1u << 31)

enum nbd_rep {
    NBD_REP_ACK = 1,
    NBD_REP_SERVER = 2,
    NBD_REP_INFO = 3,
    NBD_REP_META_CONTEXT = 4,
    NBD_REP_ERR_UNSUP = NBD_REP_ERR_BIT + 1,
    NBD_REP_ERR_POLICY = NBD_REP_ERR_BIT + 2,
    NBD_REP_ERR_INVALID = NBD_REP_ERR_BIT + 3,
    NBD_REP_ERR_PLATFORM = NBD_REP_ERR_BIT + 4,
    NBD_REP_ERR_TLS_REQD = NBD_REP_ERR_BIT + 5,
    NBD_REP_ERR_UNKNOWN = NBD_REP_ERR_BIT + 6,
    NBD_REP_ERR_SHUTDOWN = NBD_REP_ERR_BIT + 7,
    NBD_REP_ERR_BLOCK_SIZE_REQD = NBD_REP_ERR_BIT + 8,
    NBD_REP_ERR_TOO_BIG = NBD_REP_ERR_BIT + 9,
};

enum nbd_info {
    NBD_INFO_EXPORT = 0,
    NBD_INFO_NAME = 1,
    NBD_INFO_DESCRIPTION = 2,
    NBD_INFO_BLOCK_SIZE = 3,
};

enum nbd_cmd {
    NBD_CMD_READ = 0,
    NBD_CMD_WRITE = 1,
    NBD_CMD_DISC = 2,
    NBD_CMD_FLUSH = 3,
    NBD_CMD_TRIM = 4,
    NBD_CMD_CACHE = 5,
    NBD_CMD_WRITE_ZEROES = 6,
    NBD_CMD_BLOCK_STATUS = 7,
};

enum { /* command flags */
    NBD_CMD_FLAG_FUA = 1u << 0,
    NBD_CMD_FLAG_NO_HOLE = 1u << 1,
    NBD_CMD_FLAG_DF = 1u << 2,
    NBD_CMD_FLAG_REQ_ONE = 1u << 3,
    NBD_CMD_FLAG_FAST_ZERO = 1u << 4,
};

enum { /* transmission flags */
    NBD_TFLAG_HAS_FLAGS = 1u << 0,
    NBD_TFLAG_READ_ONLY = 1u << 1,
    NBD_TFLAG_SEND_FLUSH = 1u << 2,
    NBD_TFLAG_SEND_FUA = 1u << 3,
    NBD_TFLAG_ROTATIONAL = 1u << 4,
    NBD_TFLAG_SEND_TRIM = 1u << 5,
    NBD_TFLAG_SEND_WRITE_ZEROES = 1u << 6,
    NBD_TFLAG_SEND_DF = 1u << 7,
    NBD_TFLAG_CAN_MULTI_CONN = 1u << 8,
    NBD_TFLAG_SEND_RESIZE = 1u << 9,
    NBD_TFLAG_SEND_CACHE = 1u << 10,
    NBD_TFLAG_SEND_FAST_ZERO = 1u << 11,
};

#define NBD_CHUNK_FLAG_DONE 1u
#define NBD_CHUNK_ERR_BIT (1u << 15)

enum nbd_chunk_type {
    NBD_CHUNK_NONE = 0,
    NBD_CHUNK_OFFSET_DATA = 1,
    NBD_CHUNK_OFFSET_HOLE = 2,
    NBD_CHUNK_BLOCK_STATUS = 5,
    NBD_CHUNK_ERROR = NBD_CHUNK_ERR_BIT + 1,
    NBD_CHUNK_ERROR_OFFSET = NBD_CHUNK_ERR_BIT + 2,
};

enum { /* wire error numbers */
    NBD_EPERM = 1,
    NBD_EIO = 5,
    NBD_ENOMEM = 12,
    NBD_EINVAL = 22,
    NBD_ENOSPC = 28,
    NBD_EOVERFLOW = 75,
    NBD_ENOTSUP = 95,
    NBD_ESHUTDOWN = 108,
};

enum { /* extent flags */
    NBD_STATE_HOLE = 1u << 0, /* base:allocation */
    NBD_STATE_ZERO = 1u << 1,
    NBD_STATE_DIRTY = 1u << 0, /* qemu:dirty-bitmap:NAME */
};

#define NBD_CTX_BASE_ALLOCATION "base:allocation"
#define NBD_CTX_DIRTY_PREFIX "qemu:dirty-bitmap:"

/* A string inside a message: borrowed, not NUL-terminated. */
struct nbd_str {
    const uint8_t *p;
    uint32_t len;
};

struct nbd_opt_hdr {
    uint32_t opt;
    uint32_t len; /* data bytes that follow */
};

struct nbd_opt_reply {
    uint32_t opt;
    uint32_t type; /* enum nbd_rep */
    uint32_t len;
};

/* INFO and GO option data. */
struct nbd_opt_go {
    struct nbd_str name;
    uint16_t n_info;
    uint16_t info[NBD_INFO_REQ_MAX];
};

/* LIST_META_CONTEXT and SET_META_CONTEXT option data. */
struct nbd_opt_meta {
    struct nbd_str name;
    uint32_t n_queries;
    struct nbd_str queries[NBD_META_QUERIES_MAX];
};

/* What NBD_REP_INFO replies (or the EXPORT_NAME reply) told. */
struct nbd_export_info {
    uint64_t size;
    uint16_t tflags;
    bool has_block_size;
    uint32_t min_block, pref_block, max_block;
};

struct nbd_request {
    uint16_t flags;
    uint16_t type; /* enum nbd_cmd */
    uint64_t cookie;
    uint64_t offset;
    uint32_t len;
};

struct nbd_simple_reply {
    uint32_t error; /* wire errno */
    uint64_t cookie;
};

struct nbd_chunk {
    uint16_t flags;
    uint16_t type; /* enum nbd_chunk_type */
    uint64_t cookie;
    uint32_t len;  /* payload bytes that follow */
};

/* A decoded error chunk. */
struct nbd_chunk_error {
    uint32_t error;
    struct nbd_str msg;
    bool has_offset;
    uint64_t offset;
};

struct nbd_extent {
    uint32_t len;
    uint32_t flags;
};

/* Names for messages and logs: "GO", "READ", "ERR_UNKNOWN"; "?" if unknown. */
const char *nbd_opt_name(uint32_t opt);
const char *nbd_rep_name(uint32_t type);
const char *nbd_cmd_name(uint32_t type);

/* errno (negative) <-> wire error. Unknown errnos travel as EIO (the
 * failures blocksim's storage produces are I/O errors); unknown wire values
 * arrive as -EINVAL, as the protocol asks of clients. */
uint32_t nbd_errno_to_wire(int err);
int nbd_errno_from_wire(uint32_t error);

/* ---- handshake ---- */

void nbd_enc_greeting(uint8_t buf[NBD_GREETING_LEN], uint16_t hs_flags);
int nbd_dec_greeting(const uint8_t buf[NBD_GREETING_LEN], uint16_t *hs_flags,
                     struct err *e) WUR;

void nbd_enc_client_flags(uint8_t buf[NBD_CLIENT_FLAGS_LEN], uint32_t flags);
/* The flags must be a subset of what the server @offered (handshake flags). */
int nbd_dec_client_flags(const uint8_t buf[NBD_CLIENT_FLAGS_LEN], uint16_t offered,
                         uint32_t *flags, struct err *e) WUR;

void nbd_enc_opt_hdr(uint8_t buf[NBD_OPT_HDR_LEN], const struct nbd_opt_hdr *h);
/* Rejects a bad magic and data longer than NBD_OPT_DATA_MAX. */
int nbd_dec_opt_hdr(const uint8_t buf[NBD_OPT_HDR_LEN], struct nbd_opt_hdr *h,
                    struct err *e) WUR;

void nbd_enc_opt_reply(uint8_t buf[NBD_OPT_REPLY_HDR_LEN], const struct nbd_opt_reply *r);
int nbd_dec_opt_reply(const uint8_t buf[NBD_OPT_REPLY_HDR_LEN], struct nbd_opt_reply *r,
                      struct err *e) WUR;

/* Option data. Encoders return the bytes written, or 0 if @cap is short. */
size_t nbd_enc_opt_go(uint8_t *buf, size_t cap, const struct nbd_opt_go *g);
int nbd_dec_opt_go(const uint8_t *data, size_t len, struct nbd_opt_go *g, struct err *e) WUR;
size_t nbd_enc_opt_meta(uint8_t *buf, size_t cap, const struct nbd_opt_meta *m);
/* More than NBD_META_QUERIES_MAX queries is -E2BIG (reply ERR_TOO_BIG). */
int nbd_dec_opt_meta(const uint8_t *data, size_t len, struct nbd_opt_meta *m,
                     struct err *e) WUR;

/* The EXPORT_NAME option's reply: size and flags, then 124 zeroes unless
 * NO_ZEROES was agreed. Returns the bytes written (10 or 134). */
size_t nbd_enc_export_name_reply(uint8_t *buf, uint64_t size, uint16_t tflags, bool zeroes);
void nbd_dec_export_name_reply(const uint8_t buf[NBD_EXPORT_NAME_REPLY_LEN],
                               struct nbd_export_info *ei);

/* Reply payloads. NBD_REP_INFO: the info type, then its payload. */
size_t nbd_enc_info_export(uint8_t *buf, size_t cap, uint64_t size, uint16_t tflags);
size_t nbd_enc_info_block_size(uint8_t *buf, size_t cap, uint32_t min, uint32_t pref,
                               uint32_t max);
size_t nbd_enc_info_string(uint8_t *buf, size_t cap, uint16_t type, struct nbd_str s);
/* Fills @ei for EXPORT and BLOCK_SIZE; *type says which info it was. */
int nbd_dec_info(const uint8_t *data, size_t len, uint16_t *type, struct nbd_export_info *ei,
                 struct err *e) WUR;
/* NBD_REP_META_CONTEXT: context id and name. */
size_t nbd_enc_meta_context(uint8_t *buf, size_t cap, uint32_t id, struct nbd_str name);
int nbd_dec_meta_context(const uint8_t *data, size_t len, uint32_t *id, struct nbd_str *name,
                         struct err *e) WUR;
/* NBD_REP_SERVER: an export's name (and description). */
size_t nbd_enc_rep_server(uint8_t *buf, size_t cap, struct nbd_str name);
int nbd_dec_rep_server(const uint8_t *data, size_t len, struct nbd_str *name,
                       struct err *e) WUR;

/* ---- transmission ---- */

void nbd_enc_request(uint8_t buf[NBD_REQUEST_LEN], const struct nbd_request *r);
/* Checks the magic only; what a request may ask is nbd_request_check's. */
int nbd_dec_request(const uint8_t buf[NBD_REQUEST_LEN], struct nbd_request *r,
                    struct err *e) WUR;

/* The server's view of a decoded request against its export: 0 if it may
 * run, else the wire error to answer with (NBD_EINVAL for unknown commands
 * and flags and misaligned ranges, NBD_ENOSPC/NBD_EINVAL past the end,
 * NBD_EPERM for writes to a read-only export, NBD_EOVERFLOW for too long a
 * DF read). @e says why. */
uint32_t nbd_request_check(const struct nbd_request *r, uint64_t size, uint16_t tflags,
                           uint32_t align, bool structured, bool have_contexts,
                           struct err *e);

/* The magic at the start of a reply: NBD_SIMPLE_REPLY_MAGIC, NBD_CHUNK_MAGIC,
 * or BS_EPROTO. Both headers share their first 4 bytes. */
int nbd_dec_reply_magic(const uint8_t buf[4], uint32_t *magic, struct err *e) WUR;

void nbd_enc_simple_reply(uint8_t buf[NBD_SIMPLE_REPLY_LEN], const struct nbd_simple_reply *r);
int nbd_dec_simple_reply(const uint8_t buf[NBD_SIMPLE_REPLY_LEN], struct nbd_simple_reply *r,
                         struct err *e) WUR;

void nbd_enc_chunk(uint8_t buf[NBD_CHUNK_HDR_LEN], const struct nbd_chunk *c);
/* Checks the magic, unknown flags, NONE without DONE or with a payload, and
 * payload lengths the fixed-size types cannot have. */
int nbd_dec_chunk(const uint8_t buf[NBD_CHUNK_HDR_LEN], struct nbd_chunk *c,
                  struct err *e) WUR;

/* Chunk payloads. OFFSET_DATA: 8 bytes of offset, then the data. */
void nbd_enc_chunk_offset(uint8_t buf[8], uint64_t offset);
uint64_t nbd_dec_chunk_offset(const uint8_t buf[8]);
/* OFFSET_HOLE: offset and a non-zero size. */
void nbd_enc_chunk_hole(uint8_t buf[12], uint64_t offset, uint32_t size);
int nbd_dec_chunk_hole(const uint8_t buf[12], uint64_t *offset, uint32_t *size,
                       struct err *e) WUR;
/* ERROR and ERROR_OFFSET. Returns the payload length; 0 if @cap is short. */
size_t nbd_enc_chunk_error(uint8_t *buf, size_t cap, const struct nbd_chunk_error *ce);
int nbd_dec_chunk_error(const uint8_t *data, size_t len, uint16_t type,
                        struct nbd_chunk_error *ce, struct err *e) WUR;
/* BLOCK_STATUS: a context id, then extents. Decoding checks the shape (at
 * least one extent, no zero lengths); *n is their count and extent i is read
 * with nbd_block_status_extent. */
size_t nbd_enc_block_status(uint8_t *buf, size_t cap, uint32_t ctx_id,
                            const struct nbd_extent *ext, size_t n);
int nbd_dec_block_status(const uint8_t *data, size_t len, uint32_t *ctx_id, size_t *n,
                         struct err *e) WUR;
struct nbd_extent nbd_block_status_extent(const uint8_t *data, size_t i);

#endif
