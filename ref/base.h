/*
 * base: assertions, error codes, counted allocation and small helpers.
 *
 * Role: the one module every other blocksim module includes.
 * Model: QEMU's g_malloc (abort on exhaustion) and negative-errno results;
 *   TigerBeetle's always-on assertions; LMDB's reserved error range.
 * Invariants: mem_blocks_live() equals mem_alloc calls minus mem_free calls.
 * Ownership: mem_alloc'd blocks belong to the caller until mem_free.
 * Async contract: none; everything here is synchronous.
 * Depends on: libc only.
 *
 * Process-wide state: the allocation counters and the panic hook are the only
 * mutable statics in ref/ and sim/. They are diagnostics of the process, not
 * state of a run, so two worlds in one process never see each other through
 * them (the hook only prints).
 */
#ifndef BLOCKSIM_BASE_H
#define BLOCKSIM_BASE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WUR __attribute__((warn_unused_result))
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))

#define STATIC_ASSERT(x) _Static_assert(x, #x)

/* Always on, in every build: a failed assertion is a bug in blocksim. */
#define ASSERT(x)                                                            \
    do {                                                                     \
        if (__builtin_expect(!(x), 0)) {                                     \
            base_panic(__FILE__, __LINE__, "assertion failed: " #x);         \
        }                                                                    \
    } while (0)

#define UNREACHABLE() base_panic(__FILE__, __LINE__, "unreachable code reached")

/* Propagate a negative errno: the one macro with hidden control flow. */
#define TRY(expr)                                                            \
    do {                                                                     \
        int try_ret_ = (expr);                                               \
        if (try_ret_ < 0) {                                                  \
            return try_ret_;                                                 \
        }                                                                    \
    } while (0)

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A planted bug a module can switch on (its mutant bit), so that a checker
 * or property can be shown to catch it. Each module with planted bugs
 * publishes a table of these; sim/trace/mutant gathers them by name. */
struct planted_bug {
    const char *name;  /* as --mutant and 'mutant' records name it */
    uint64_t bit;      /* the module's mutant bit */
    const char *what;  /* the bug, in a phrase */
};

/* Project error codes live below -1000, apart from every errno value. */
enum {
    BS_ERR_BASE = -1000,
    BS_EPARSE = -1001,      /* malformed input; details in struct err */
    BS_EFORMAT = -1002,     /* a file is not in the expected format */
    BS_EVERSION = -1003,    /* unsupported format version */
    BS_ECORRUPT = -1004,    /* checksum or structure mismatch in stored data */
    BS_ECRASHED = -1005,    /* the request's host crashed under it */
    BS_EPROTO = -1006,      /* a peer broke the wire protocol (NBD) */
    BS_ERR_LAST = -1006,
};

/* Text for a negative errno or a BS_E* code; never NULL. */
const char *blocksim_strerror(int err);

/* Parse and input errors: filled by the callee, printed by the caller. */
struct err {
    char msg[256];
    const char *file; /* borrowed; the input's name */
    unsigned line;    /* 1-based; 0 when not line oriented */
    unsigned field;   /* 1-based; 0 when the whole line or file is meant */
};

/* Fill @e (may be NULL) and return BS_EPARSE. */
int err_set(struct err *e, unsigned line, unsigned field, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

/* "file:line: field N: msg" into @buf. */
void err_format(const struct err *e, char *buf, size_t size);

typedef void base_panic_cb(void *opaque, char *buf, size_t size);

/* Install a hook that describes the current run (seed, virtual time) in
 * assertion messages. The last installed hook wins; NULL removes it. */
void base_panic_hook_set(base_panic_cb *cb, void *opaque);
_Noreturn void base_panic(const char *file, int line, const char *msg);

/* Counted allocation; aborts on exhaustion. mem_alloc zeroes the block. */
void *mem_alloc(size_t size);
/* The same, not zeroed: for a buffer its user fills whole before reading. */
void *mem_alloc_raw(size_t size);
void *mem_realloc(void *p, size_t old_size, size_t new_size);
void mem_free(void *p, size_t size);
char *mem_strdup(const char *s);

/* A block of @size bytes aligned to 2 MiB, not zeroed (bulk stores: a
 * simulated disk's contents). */
void *mem_alloc_huge(size_t size); /* free it with mem_free */
void mem_strfree(char *s);
int64_t mem_blocks_live(void);
int64_t mem_bytes_live(void);
int64_t mem_bytes_peak(void);

static inline bool is_pow2(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static inline uint64_t align_down(uint64_t x, uint64_t a)
{
    return x - x % a;
}

static inline uint64_t align_up(uint64_t x, uint64_t a)
{
    return align_down(x + a - 1, a);
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static inline bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Little-endian fields. On a little-endian host each is one load or store
 * (the byte loops were not merged into one by the compiler). */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline void put_le64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

static inline uint64_t get_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}
#else
static inline void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}
#endif

static inline uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)p[i] << (8 * i);
    }
    return v;
}

/* Big-endian (network order) fields, for the NBD wire format. */
static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (24 - 8 * i));
    }
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    }
}

static inline uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Parse "4096", "4K", "1M", "2G", "1T" (binary units) into bytes.
 * Returns 0 or -EINVAL (bad syntax) / -ERANGE (overflow). */
int parse_size(const char *s, uint64_t *out) WUR;

/* Parse "250ns", "20us", "5ms", "2s" into nanoseconds; the unit is required. */
int parse_duration(const char *s, uint64_t *out) WUR;

/* Parse a decimal or 0x-hex unsigned integer, the whole string. */
int parse_u64(const char *s, uint64_t *out) WUR;

/* Parse a probability "0.25" or "25%" into a threshold out of 2^64 - 1. */
int parse_prob(const char *s, uint64_t *out) WUR;

#endif
