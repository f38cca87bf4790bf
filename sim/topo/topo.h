/*
 * topo: topologies as modules behind one small interface.
 *
 * Role: a topology turns the scenario's `topology` record into hosts, disks
 *   and the guest host's graph, and tells the world what only it knows:
 *   which control records it runs, how a wrong value may be explained by an
 *   injected fault, what its own checker saw. world.c names no topology:
 *   a new one is a file in sim/topo/ and an entry in topo_find's table.
 * Model: ../shared/DESIGN.md "Hosts, topologies and checkers".
 * Invariants: setup runs once, before the disks exist; start once after;
 *   guest_open/guest_kill alternate, as do host_open/host_kill per host
 *   beyond the guest's; the module's state lives in world.tst from setup to
 *   fini.
 * Ownership: the module allocates and frees its state.
 * Async contract: none; every hook runs from the world's event loop.
 * Depends on: world_int (the world's internals), trace.
 */
#ifndef BLOCKSIM_TOPO_H
#define BLOCKSIM_TOPO_H

#include <stdbool.h>
#include <stdint.h>

#include "../../ref/node.h"
#include "../dev/fault.h"
#include "../check/check_rw.h"
#include "../trace/trace.h"

struct world;
struct stack;

struct topo_ops {
    const char *name;
    /* Hosts and disks (w->size is set; @c is the topology record or NULL);
     * the module's state goes to w->tst. */
    void (*setup)(struct world *w, const struct trace_cfg *c);
    /* The disk whose contents the guest starts from (image=), or -1. */
    int (*guest_disk)(const struct world *w);
    /* Once the disks exist (optional). */
    void (*start)(struct world *w);
    /* Once every host is up, before the first record (optional): it may
     * start a control action (world__control_new) that holds the records. */
    void (*ready)(struct world *w);
    /* The guest host's graph in @s (s->root); its death and its end
     * (optional both). */
    int (*guest_open)(struct world *w, struct stack *s, struct err *e);
    void (*guest_kill)(struct world *w, struct stack *s);
    void (*guest_free)(struct world *w, struct stack *s);
    /* The host of guest @guest (> 0: colo's secondary) and where its
     * requests go, NULL while that host is down (optional: one guest). */
    unsigned (*guest_host)(const struct world *w, unsigned guest);
    struct node *(*guest_front)(struct world *w, unsigned guest);
    /* Another host comes up, goes down (hosts[1..]; optional). */
    int (*host_open)(struct world *w, unsigned h, struct err *e);
    void (*host_kill)(struct world *w, unsigned h);
    /* Must guest request @rec wait for @o in flight, beyond the overlap
     * rule every topology keeps? (optional) */
    bool (*conflict)(const struct trace_rec *rec, const struct trace_rec *o);
    /* An injected fault tainted sectors [first, first + n) of disk @disk
     * (optional: for attribution that follows data as it moves). */
    void (*taint_seen)(struct world *w, unsigned disk, uint64_t first, uint64_t n);
    /* Does an injected fault explain a wrong value the guest read at
     * @sector? */
    bool (*explained)(const struct world *w, uint64_t sector);
    /* Did a fault damage the state its stack keeps on disk (metadata a
     * reopen or an operator action reads)? (optional) */
    bool (*state_touched)(const struct world *w);
    /* Control records it runs (bit 1u << TRACE_kind) and how. */
    uint32_t controls;
    void (*control)(struct world *w, const struct trace_rec *rec);
    /* The guest disk's default bitmap granularity and the image format the
     * QBM descriptor records (optional: 64 KiB and "raw"). */
    uint64_t (*bitmap_granularity)(const struct world *w);
    const char *image_format;
    /* The guest's disk was loaded from @image (optional). */
    void (*image_loaded)(struct world *w, const uint8_t *image, uint64_t len);
    /* Views it exports besides its disks and `guest` (--export NAME): their
     * names, comma-separated, and a synchronous read of one: 0, or a
     * negative errno (optional both). */
    const char *export_names;
    int (*export_read)(struct world *w, const char *name, uint64_t off, uint8_t *buf,
                       uint64_t len);
    /* Faults its own devices fired (the network), added to @counts. */
    uint64_t (*faults)(const struct world *w, uint64_t counts[FAULT__COUNT]);
    /* After the run: figures into the result; then free the state
     * (optional both). Its own checkers it registers in start
     * (world__checker_add); the world dispatches to them and frees them
     * before fini. */
    void (*end)(struct world *w);
    void (*fini)(struct world *w);
    bool replicas; /* the guest reads a vote over replicas (check_rw) */
    bool jobs;     /* runs block jobs (extra disks on the guest's host) */
};

extern const struct topo_ops topo_plain;
extern const struct topo_ops topo_overlay;
extern const struct topo_ops topo_quorum;
extern const struct topo_ops topo_colo;

/* The module of topology @t. */
const struct topo_ops *topo_find(enum trace_topology t);

#endif
