/*
 * drv_overlay: a copy-on-write overlay over a backing node (the COLO active
 * and hidden disks are two of these).
 *
 * Role: reads of clusters this layer does not hold go to the backing node;
 *   writes allocate clusters here; make-empty drops every cluster; commit
 *   copies every cluster into the backing node, then empties the layer.
 * Model: qcow2 with a backing file as COLO uses it (docs/block-replication.txt,
 *   spec §1.2): cluster-granular allocation, copy-up of the rest of a cluster
 *   on a partial write, bdrv_make_empty, block-commit.
 * Invariants: each map byte is UNALLOC, DATA or ZERO; a cluster is DATA only
 *   after its whole cluster was written to the file child; the on-disk map
 *   only records clusters whose data was flushed before it (so a crash never
 *   exposes a cluster the map claims but the disk lost).
 * Ownership: the overlay owns its map; children belong to the graph.
 * Async contract: requests, overlay_make_empty and overlay_commit complete
 *   through callbacks posted on the timer. make-empty and commit require a
 *   quiesced node (no request in flight), as COLO runs them with the guest
 *   stopped; they assert it.
 * Depends on: node, zlib (header CRC).
 *
 * On-disk layout of the file child (little endian):
 *   0   8  magic "BSOVLY01"
 *   8   4  version (1)
 *   12  4  cluster size in bytes (power of two, 512 .. 2 MiB)
 *   16  8  virtual size in bytes
 *   24  8  map offset (4096)
 *   32  8  data offset (cluster aligned, after the map)
 *   40  4  CRC-32 of bytes 0..39
 *   map: one byte per cluster (0 unallocated, 1 data, 2 zero)
 *   data: cluster i at data offset + i * cluster size
 */
#ifndef BLOCKSIM_DRV_OVERLAY_H
#define BLOCKSIM_DRV_OVERLAY_H

#include "node.h"

#define OVERLAY_CLUSTER_DEFAULT (64u * 1024)
#define OVERLAY_MAP_OFFSET 4096u

struct drv_overlay_opts {
    struct node *file;     /* required: holds header, map and data */
    struct node *backing;  /* optional copy-on-write source */
    uint64_t size;         /* fresh overlay: virtual size (0: backing's) */
    uint64_t cluster_size; /* fresh overlay: 0 for the default */
};

extern const struct node_driver drv_overlay;

/* Bytes the file child needs for an overlay of @size with @cluster_size. */
uint64_t overlay_file_size(uint64_t size, uint64_t cluster_size);

/* Drop every cluster and persist the empty map (flushes the file child). */
void overlay_make_empty(struct node *n, env_io_cb *cb, void *opaque);

/* Copy every cluster into the backing node, flush it, then make-empty. */
void overlay_commit(struct node *n, env_io_cb *cb, void *opaque);

/* Number of clusters in DATA or ZERO state. */
uint64_t overlay_clusters_allocated(const struct node *n);

/* This module's planted bugs (sim/trace/mutant gathers them). */
extern const struct planted_bug drv_overlay_bugs[];
extern const size_t drv_overlay_bugs_count;

#endif
