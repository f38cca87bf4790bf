/*
 * base: see base.h. Method: allocation keeps live block and byte counts so a
 * test can assert that a run freed everything (libuv's MAKE_VALGRIND_HAPPY);
 * the caller passes the size back to mem_free, which lets the counts stay
 * exact without a header in front of each block.
 */
#include "base.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* tidy:global process-wide diagnostics, see base.h */
static int64_t mem_blocks; /* tidy:global */
static int64_t mem_bytes;  /* tidy:global */
static int64_t mem_peak;   /* tidy:global */
static base_panic_cb *panic_cb; /* tidy:global */
static void *panic_opaque;      /* tidy:global */

struct errname {
    int code;
    const char *text;
};

static const struct errname project_errors[] = {
    { BS_EPARSE, "malformed input" },
    { BS_EFORMAT, "not in the expected format" },
    { BS_EVERSION, "unsupported format version" },
    { BS_ECORRUPT, "stored data is corrupt" },
    { BS_ECRASHED, "host crashed during the request" },
    { BS_EPROTO, "NBD protocol error" },
};

const char *blocksim_strerror(int err)
{
    for (size_t i = 0; i < ARRAY_LEN(project_errors); i++) {
        if (project_errors[i].code == err) {
            return project_errors[i].text;
        }
    }
    if (err < 0 && err > BS_ERR_BASE) {
        return strerror(-err);
    }
    return "unknown error";
}

int err_set(struct err *e, unsigned line, unsigned field, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        e->line = line;
        e->field = field;
    }
    return BS_EPARSE;
}

/* @msg with every byte that is not printable ASCII as \xNN: input echoed
 * in a message must not reach a terminal as escape sequences. */
static void escape_text(const char *msg, char *out, size_t size)
{
    size_t at = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && at + 5 < size; p++) {
        if (*p >= 0x20 && *p < 0x7f) {
            out[at++] = (char)*p;
        } else {
            at += (size_t)snprintf(out + at, size - at, "\\x%02x", *p);
        }
    }
    out[at] = '\0';
}

void err_format(const struct err *e, char *buf, size_t size)
{
    char msg[4 * sizeof(e->msg) + 1];
    escape_text(e->msg, msg, sizeof(msg));
    const char *file = e->file ? e->file : "<input>";
    if (e->line && e->field) {
        snprintf(buf, size, "%s:%u: field %u: %s", file, e->line, e->field, msg);
    } else if (e->line) {
        snprintf(buf, size, "%s:%u: %s", file, e->line, msg);
    } else {
        snprintf(buf, size, "%s: %s", file, msg);
    }
}

void base_panic_hook_set(base_panic_cb *cb, void *opaque)
{
    panic_cb = cb;
    panic_opaque = opaque;
}

void base_panic(const char *file, int line, const char *msg)
{
    char ctx[256] = "";
    if (panic_cb) {
        panic_cb(panic_opaque, ctx, sizeof(ctx));
    }
    fprintf(stderr, "blocksim: %s:%d: %s%s%s\n", file, line, msg, ctx[0] ? " " : "", ctx);
    fflush(stderr);
    abort();
}

static void mem_account(int64_t blocks, int64_t bytes)
{
    mem_blocks += blocks;
    mem_bytes += bytes;
    if (mem_bytes > mem_peak) {
        mem_peak = mem_bytes;
    }
    ASSERT(mem_blocks >= 0);
    ASSERT(mem_bytes >= 0);
}

/* A free-list cache of small blocks, per 16-byte size class: the simulator
 * allocates and frees requests, events and 4 KiB buffers for every guest
 * operation, and libc's malloc and free were an eighth of a replay. Off
 * under ASan and when BLOCKSIM_NO_MEMCACHE or BLOCKSIM_UNDER_VALGRIND is
 * set, so that those tools see every use after free; emptied at exit, so
 * leak checkers see nothing left. A block joins the cache only when libc
 * says it is as large as its class (whatever allocated it). */
#define MEM_CACHE_MAX 4096u
#define MEM_CACHE_STEP 16u
#define MEM_CACHE_DEPTH 128u
struct mem_cache_class {
    void *head; /* blocks linked through their first word */
    unsigned n;
};
static struct mem_cache_class mem_cache[MEM_CACHE_MAX / MEM_CACHE_STEP + 1]; /* tidy:global */
static int mem_cache_on = -1; /* tidy:global: -1 until the first allocation decides */

#if defined(__SANITIZE_ADDRESS__)
#define MEM_CACHE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_CACHE_ASAN 1
#endif
#endif

#ifndef MEM_CACHE_ASAN
static void mem_cache_release(void)
{
    for (size_t c = 0; c < sizeof(mem_cache) / sizeof(mem_cache[0]); c++) {
        while (mem_cache[c].head) {
            void *p = mem_cache[c].head;
            memcpy(&mem_cache[c].head, p, sizeof(void *));
            free(p);
        }
        mem_cache[c].n = 0;
    }
}
#endif

static bool mem_cache_enabled(void)
{
    if (mem_cache_on < 0) {
#ifdef MEM_CACHE_ASAN
        mem_cache_on = 0;
#else
        mem_cache_on = !getenv("BLOCKSIM_NO_MEMCACHE") && !getenv("BLOCKSIM_UNDER_VALGRIND");
        if (mem_cache_on) {
            atexit(mem_cache_release);
        }
#endif
    }
    return mem_cache_on > 0;
}

static void *mem_get(size_t size, bool zero)
{
    void *p;
    if (size <= MEM_CACHE_MAX && mem_cache_enabled()) {
        size_t c = (size + MEM_CACHE_STEP - 1) / MEM_CACHE_STEP;
        c += c == 0;
        if (mem_cache[c].head) {
            p = mem_cache[c].head;
            memcpy(&mem_cache[c].head, p, sizeof(void *));
            mem_cache[c].n--;
            if (zero) {
                memset(p, 0, size ? size : 1);
            }
        } else {
            p = zero ? calloc(1, c * MEM_CACHE_STEP) : malloc(c * MEM_CACHE_STEP);
        }
    } else {
        p = zero ? calloc(1, size ? size : 1) : malloc(size ? size : 1);
    }
    if (!p) {
        base_panic(__FILE__, __LINE__, "out of memory");
    }
    mem_account(1, (int64_t)size);
    return p;
}

void *mem_alloc(size_t size)
{
    return mem_get(size, true);
}

void *mem_alloc_raw(size_t size)
{
    return mem_get(size, false);
}

void *mem_realloc(void *p, size_t old_size, size_t new_size)
{
    if (!p) {
        ASSERT(old_size == 0);
        return mem_alloc(new_size);
    }
    void *q = realloc(p, new_size ? new_size : 1);
    if (!q) {
        base_panic(__FILE__, __LINE__, "out of memory");
    }
    if (new_size > old_size) {
        memset((char *)q + old_size, 0, new_size - old_size);
    }
    mem_account(0, (int64_t)new_size - (int64_t)old_size);
    return q;
}

void mem_free(void *p, size_t size)
{
    if (!p) {
        return;
    }
    mem_account(-1, -(int64_t)size);
    if (size <= MEM_CACHE_MAX && mem_cache_on > 0) {
        size_t c = (size + MEM_CACHE_STEP - 1) / MEM_CACHE_STEP;
        c += c == 0;
        if (mem_cache[c].n < MEM_CACHE_DEPTH && malloc_usable_size(p) >= c * MEM_CACHE_STEP) {
            memcpy(p, &mem_cache[c].head, sizeof(void *));
            mem_cache[c].head = p;
            mem_cache[c].n++;
            return;
        }
    }
    free(p);
}

void *mem_alloc_huge(size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, 2u << 20, size ? size : 1) != 0) {
        base_panic(__FILE__, __LINE__, "out of memory");
    }
    /* No MADV_HUGEPAGE: with the kernel's default defrag policy a huge page
     * fault may compact memory first, and a replay then takes 1x to 3x as
     * long from run to run (measured; small pages are steady and, on the
     * bench's 1 GiB writes, faster). The pages are faulted in at once, one
     * call instead of a trap a page; a kernel without it faults them later. */
    (void)madvise(p, size, MADV_POPULATE_WRITE);
    mem_account(1, (int64_t)size);
    return p;
}

char *mem_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = mem_alloc(n);
    memcpy(d, s, n);
    return d;
}

void mem_strfree(char *s)
{
    if (s) {
        mem_free(s, strlen(s) + 1);
    }
}

int64_t mem_blocks_live(void)
{
    return mem_blocks;
}

int64_t mem_bytes_live(void)
{
    return mem_bytes;
}

int64_t mem_bytes_peak(void)
{
    return mem_peak;
}

int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!*s) {
        return -EINVAL;
    }
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9') {
            d = (unsigned)(*s - '0');
        } else if (base == 16 && *s >= 'a' && *s <= 'f') {
            d = (unsigned)(*s - 'a' + 10);
        } else if (base == 16 && *s >= 'A' && *s <= 'F') {
            d = (unsigned)(*s - 'A' + 10);
        } else {
            return -EINVAL;
        }
        if (v > (UINT64_MAX - d) / base) {
            return -ERANGE;
        }
        v = v * base + d;
    }
    *out = v;
    return 0;
}

struct unit {
    const char *suffix;
    uint64_t mult;
};

static int parse_with_units(const char *s, const struct unit *units, size_t n, uint64_t *out)
{
    size_t len = strlen(s);
    size_t digits = 0;
    while (digits < len && s[digits] >= '0' && s[digits] <= '9') {
        digits++;
    }
    if (digits == 0 || digits > 20) {
        return -EINVAL;
    }
    char num[24];
    memcpy(num, s, digits);
    num[digits] = '\0';
    uint64_t v;
    TRY(parse_u64(num, &v));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s + digits, units[i].suffix) == 0) {
            if (units[i].mult && v > UINT64_MAX / units[i].mult) {
                return -ERANGE;
            }
            *out = v * units[i].mult;
            return 0;
        }
    }
    return -EINVAL;
}

static const struct unit size_units[] = {
    { "", 1 }, { "B", 1 }, { "K", 1ull << 10 }, { "M", 1ull << 20 },
    { "G", 1ull << 30 }, { "T", 1ull << 40 }, { "P", 1ull << 50 },
};

int parse_size(const char *s, uint64_t *out)
{
    return parse_with_units(s, size_units, ARRAY_LEN(size_units), out);
}

/* A duration always names its unit: "5" could be ns or s to a reader. */
static const struct unit time_units[] = {
    { "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", 1000000000 },
};

int parse_duration(const char *s, uint64_t *out)
{
    return parse_with_units(s, time_units, ARRAY_LEN(time_units), out);
}

int parse_prob(const char *s, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-' || *s == '+' || *s == ' ') {
        return -EINVAL;
    }
    double p = strtod(s, &end);
    if (end == s) {
        return -EINVAL;
    }
    if (*end == '%' && end[1] == '\0') {
        p /= 100.0;
    } else if (*end != '\0') {
        return -EINVAL;
    }
    if (!(p >= 0.0 && p <= 1.0)) {
        return -ERANGE;
    }
    /* 2^64 as a double is exact; p == 1.0 maps to "always". */
    *out = p >= 1.0 ? UINT64_MAX : (uint64_t)(p * 18446744073709551616.0);
    return 0;
}
