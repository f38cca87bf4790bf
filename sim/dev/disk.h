/*
 * disk: a sparse simulated block device with a volatile write cache, latency
 *   and injected faults; implements the storage ops of ref/env.h.
 *
 * Role: where every byte of a simulated host lives.
 * Model: a disk with a volatile cache (spec: flush and FUA semantics of
 *   QEMU's file driver); crash resolution after SQLite's test6.c and
 *   CrashMonkey / dm-log-writes; TigerBeetle's storage simulator, which keeps
 *   true data apart from injected faults.
 * Invariants: contents are held in 4 KiB chunks, absent chunks read as zero;
 *   the cache log holds, in completion order, every write not yet durable,
 *   with the bytes it replaced, and at most cache_bytes of new data (older
 *   entries are written back, i.e. leave the log, first); a sector whose
 *   contents an injected fault made untrue is "tainted" until rewritten.
 * Ownership: the world owns disks; a graph owns the handles it opened.
 * Async contract: storage ops complete through events after the drawn
 *   latency; data moves at completion time. A request made through a handle
 *   from before the last crash completes with BS_ECRASHED and changes nothing.
 * Depends on: base, env, evq, rng, fault, u64map, xxhash (content hash).
 */
#ifndef BLOCKSIM_DISK_H
#define BLOCKSIM_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "../../ref/env.h"
#include "../base/evq.h"
#include "fault.h"
#include "../base/rng.h"
#include "../base/u64map.h"

#define DISK_CHUNK 4096u
#define DISK_SECTOR 512u
#define DISK_SLAB (2u << 20)

enum disk_crash_mode {
    DISK_CRASH_PREFIX, /* a prefix of the cache log, through its last FUA */
    DISK_CRASH_SUBSET, /* any subset of the log; FUA writes always kept */
    DISK_CRASH_TEAR,   /* per sector: kept, dropped (torn, garbage if not atomic) */
    DISK_CRASH__COUNT,
};

enum disk_mutant {
    DISK_MUTANT_FUA_VOLATILE = 1u << 0, /* acknowledges FUA but caches it */
    DISK_MUTANT_FLUSH_NOOP = 1u << 1,   /* flush succeeds but persists nothing */
    DISK_MUTANT_DESC_MISPLACE = 1u << 2, /* a described sector's bytes are made as the
                                          * next sector's */
};

enum disk_taint {
    DISK_TAINT_NONE,
    DISK_TAINT_MISDIRECT_STALE,   /* a misdirected write never reached it */
    DISK_TAINT_MISDIRECT_CLOBBER, /* a misdirected write landed on it */
    DISK_TAINT_READ_CORRUPT,      /* a read of it returned a flipped byte */
    DISK_TAINT_TORN,              /* crash tore it: part old, part new */
    DISK_TAINT_GARBAGE,           /* crash left garbage in it */
    DISK_TAINT__COUNT,
};

struct disk_config {
    char name[FAULT_NAME_MAX];
    uint64_t size;        /* bytes, multiple of 512 */
    uint64_t cache_bytes; /* volatile cache; 0 = write-through */
    uint64_t lat_min_ns;  /* per request, uniform in [min, max] */
    uint64_t lat_max_ns;
    uint64_t flush_ns;    /* added to a flush's latency */
    bool atomic_sector;   /* a crash never tears inside a sector */
    bool sync_read_faults; /* synchronous reads (a loader's read_sync) obey the read
                            * fault rules too; off: they see the media as it is */
    bool no_log;          /* its owner promises no power loss, shutdown or durable
                           * peek: the cache keeps no log of what it would lose */
};

struct disk_stats {
    uint64_t ops[5]; /* read, write, flush, discard, write-zeroes */
    uint64_t bytes_read;
    uint64_t bytes_written;
    uint64_t faults[FAULT__COUNT];
    uint64_t crashes;
    uint64_t written_back; /* cache entries made durable by capacity */
    uint64_t corruptions;  /* injected untrue data: flipped reads, misdirected
                            * writes, torn or garbage sectors; never decreases */
};

struct disk_crash_report {
    enum disk_crash_mode mode;
    uint64_t pending; /* cache log entries at the crash */
    uint64_t kept;    /* entries kept whole */
    uint64_t partial; /* entries kept in part (tear) */
    uint64_t torn_sectors;
    uint64_t garbage_sectors;
};

struct disk_log_entry {
    uint64_t seq;    /* completion order */
    uint64_t offset;
    uint64_t len;
    uint8_t *old;    /* the bytes it replaced */
    uint8_t *data;   /* the bytes it wrote; NULL: zeroes */
    uint8_t *taint;  /* per sector, the taint it cleared; NULL: none */
    bool fua;
};

/* Fixed-size units carved from slabs that grow from 64 KiB to DISK_SLAB,
 * with a free list. */
struct disk_pool {
    uint64_t unit;
    uint8_t **slabs;
    uint64_t n_slabs;
    uint64_t cap_slabs;
    uint64_t used;           /* units handed out from the newest slab */
    uint64_t *free;
    uint64_t n_free;
    uint64_t cap_free;
};

struct disk {
    struct disk_config cfg;
    struct evq *evq;
    struct fault_plan *plan; /* borrowed: the world's rules */
    struct rng rng_latency;
    struct rng rng_fault;
    struct rng rng_crash;
    unsigned mutants;
    uint64_t epoch;          /* bumped by every crash */
    /* chunk index -> uint8_t[DISK_CHUNK], or (pointer | 1) to a described
     * chunk: uint64_t[DISK_CHUNK / DISK_SECTOR] content tags (0: zeroes) */
    struct u64map chunks;
    struct disk_pool bytes;  /* the byte chunks */
    struct disk_pool tags;   /* the described chunks' tag arrays */
    bool describe;           /* takes described I/O (disk_describe) */
    uint64_t content_seed;   /* what described sectors' bytes derive from */
    struct u64map taint;     /* sector -> enum disk_taint */
    struct u64map latent;    /* sector -> 1: unreadable until rewritten */
    bool track;              /* record changed chunks (disk_track) */
    struct u64map changed;   /* chunk index -> 1: contents changed since the last
                              * disk_changed_take */
    struct disk_log_entry *log; /* ring */
    uint64_t log_head;       /* index of oldest entry */
    uint64_t log_n;
    uint64_t log_cap;
    uint64_t log_bytes;      /* new data bytes in the log */
    uint64_t next_seq;
    uint64_t inflight;
    struct disk_stats stats;
    env_cb *flush_hook;      /* called as each flush is submitted (crashx) */
    void *flush_hook_opaque;
    /* Called as an injected fault taints sectors [first, first + n): fault
     * attribution that must outlive the taint (data that moves). */
    void (*taint_hook)(void *opaque, const struct disk *d, uint64_t first, uint64_t n);
    void *taint_hook_opaque;
};

struct disk_handle {
    struct disk *disk;
    uint64_t epoch;
};

void disk_config_default(struct disk_config *c, const char *name, uint64_t size);

/* A disk whose streams derive from @root_seed and @id. */
struct disk *disk_new(const struct disk_config *c, struct evq *q, struct fault_plan *plan,
                      uint64_t root_seed, unsigned id, unsigned mutants);

/* Free the disk; no request may be in flight. */
void disk_free(struct disk *d);

/* A handle for the current epoch, and the storage ops over it. */
struct disk_handle *disk_handle_new(struct disk *d);
void disk_handle_free(struct disk_handle *h);
struct env_storage disk_storage(struct disk_handle *h);

/* Power loss: resolve the cache log with @mode (draws from the crash stream)
 * and invalidate every handle. Requests in flight complete with BS_ECRASHED. */
void disk_crash(struct disk *d, enum disk_crash_mode mode, struct disk_crash_report *out);

/* An explicit crash state (the crash explorer's): entry i of the cache log,
 * oldest first, is kept when keep[i] is 1, dropped when 0, and torn per
 * sector (from a stream seeded by tear_seed) when 2. Entries past n keep. */
struct disk_crash_plan {
    const uint8_t *keep;
    size_t n;
    uint64_t tear_seed;
};

void disk_crash_planned(struct disk *d, const struct disk_crash_plan *plan,
                        struct disk_crash_report *out);

/* From now on take described I/O (ref/env.h struct env_desc): a described
 * sector holds content_make(@seed, tag, sector). Sectors written so are kept
 * as tags, not bytes, while no fault, cache log or tear needs their bytes. */
void disk_describe(struct disk *d, uint64_t seed);

/* Current contents (what a read would see without faults). */
void disk_peek(const struct disk *d, uint64_t offset, uint8_t *buf, uint64_t len);

/* What is on media: the current contents without the volatile cache's
 * writes (what a power loss that kept none of them would leave). */
void disk_peek_durable(const struct disk *d, uint64_t offset, uint8_t *buf, uint64_t len);

/* Set contents directly, durable at once (test and scenario set-up). */
void disk_poke(struct disk *d, uint64_t offset, const uint8_t *buf, uint64_t len);

enum disk_taint disk_taint_get(const struct disk *d, uint64_t sector);

/* XXH3 of the non-zero chunks and their indexes, in ascending order. */
uint64_t disk_content_hash(const struct disk *d);

/* Bytes of memory held for contents and the cache log. */
uint64_t disk_mem_bytes(const struct disk *d);

const char *disk_crash_mode_name(enum disk_crash_mode mode);
int disk_crash_mode_parse(const char *s, enum disk_crash_mode *out) WUR;
const char *disk_taint_name(enum disk_taint t);

void disk_check(const struct disk *d);

/* From now on, remember which DISK_CHUNK-sized chunks change (any write,
 * write-zeroes, discard, crash undo or redo, poke). */
void disk_track(struct disk *d);
/* The chunks changed since tracking began or the last take, in ascending
 * order (mem_free it, *n entries); the record starts afresh. */
uint64_t *disk_changed_take(struct disk *d, size_t *n);

/* This module's planted bugs (sim/trace/mutant gathers them). */
extern const struct planted_bug disk_bugs[];
extern const size_t disk_bugs_count;

#endif
