/*
 * files: the simulated metadata files behind env_files (QBM descriptors and
 *   bitmap files).
 *
 * Role: a flat namespace of named files, each one a simulated disk of its
 *   own (struct disk: latency, a volatile cache, injected faults, crashes).
 * Model: a host file system reduced to what QBM needs: files whose contents
 *   obey the same crash rules as the guest's disks, and a namespace that is
 *   durable at once (env.h states the simplification).
 * Invariants: at most one live entry per name; a removed entry's disk stays
 *   until its last handle is closed; every disk is named "qbm", so a fault
 *   rule with disk=qbm hits the metadata files and nothing else; the
 *   loaders' synchronous reads obey the read rules too (a flipped read is
 *   what a checksum must catch).
 * Ownership: files owns its disks; a handle from env_files belongs to the
 *   caller until its close.
 * Async contract: the files' storage ops complete through the event queue;
 *   namespace operations are synchronous.
 * Depends on: disk, evq, fault, ref/env.
 */
#ifndef BLOCKSIM_FILES_H
#define BLOCKSIM_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "../../ref/env.h"
#include "disk.h"

#define FILES_DISK_NAME "qbm"

struct files_entry {
    char name[ENV_FILE_NAME_MAX];
    struct disk *disk;
    unsigned handles; /* open handles */
    bool removed;     /* out of the namespace; freed at its last close */
};

struct files {
    struct evq *q;
    struct fault_plan *plan; /* borrowed */
    uint64_t seed;
    unsigned disk_mutants;
    struct files_entry *ents;
    size_t n;
    size_t cap;
    unsigned created; /* disk stream ids: FILES_ID_BASE + creation count */
};

void files_init(struct files *f, struct evq *q, struct fault_plan *plan, uint64_t seed,
                unsigned disk_mutants);
/* Every handle must be closed. */
void files_fini(struct files *f);

struct env_files files_env(struct files *f);

/* The disk of live file @name, or NULL (tests, the fuzzer, reports). */
struct disk *files_disk(const struct files *f, const char *name);

/* Power loss on every file's disk. */
void files_crash(struct files *f, enum disk_crash_mode mode);

/* Add each fault kind fired on the files' disks to @counts; the total. */
uint64_t files_faults(const struct files *f, uint64_t counts[FAULT__COUNT]);

/* Reads of file @name that a read-corrupt rule flipped so far (0 when
 * there is no such file). */
uint64_t files_read_corrupts(const struct files *f, const char *name);

/* Untrue data injected into the files so far (disk stats.corruptions). */
uint64_t files_corruptions(const struct files *f);

/* Does file @name hold a sector whose last write an injected fault sent
 * elsewhere (it never landed: an undetectable loss)? */
bool files_stale(const struct files *f, const char *name);

/* Number of live files. */
size_t files_count(const struct files *f);

#endif
