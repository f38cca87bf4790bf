/*
 * serve: a host that serves one disk over NBD (a quorum's server hosts,
 *   an extra disk on a host of its own).
 *
 * Role: the server host's graph (a file node on the disk) and an NBD
 *   server exporting it, listening on the simulated network; taken down
 *   with its host.
 * Model: qemu-nbd / QEMU's NBD server exporting a raw image.
 * Invariants: listening from open to kill; after kill nothing of it runs
 *   but its draining graph, which frees itself when idle.
 * Ownership: the server owns its graph, disk handle and NBD server.
 * Async contract: none beyond the node graph's.
 * Depends on: world_int, net, nbd_server, drv_file.
 */
#ifndef BLOCKSIM_SERVE_H
#define BLOCKSIM_SERVE_H

#include "../world/world_int.h"

struct disk_server;

/* Serve disk @disk of @w as export @export on @net at @host's service
 * @service. */
int disk_server_open(struct world *w, struct net *net, const char *host, const char *service,
                     unsigned disk, const char *export, struct err *e,
                     struct disk_server **out) WUR;

/* Its host goes down: listener and connections first (clients' requests
 * fail after their reconnect delay), then its graph drains and frees. */
void disk_server_kill(struct disk_server *srv);

#endif
