/*
 * drv_file: the protocol driver that maps node requests onto env storage.
 *
 * Role: the bottom of every graph; each guest-visible byte lives in one.
 * Model: QEMU block/file-posix.c: read, write (FUA passed down), flush,
 *   discard, write-zeroes and allocation status map straight onto the device.
 * Invariants: node length equals the storage length rounded down to sectors.
 * Ownership: the storage handle is borrowed and must outlive the node.
 * Async contract: every request completes through req_complete.
 * Depends on: node, env (storage).
 */
#ifndef BLOCKSIM_DRV_FILE_H
#define BLOCKSIM_DRV_FILE_H

#include "node.h"

struct drv_file_opts {
    struct env_storage storage;
};

extern const struct node_driver drv_file;

/* This module's planted bugs (sim/trace/mutant gathers them). */
extern const struct planted_bug drv_file_bugs[];
extern const size_t drv_file_bugs_count;

#endif
