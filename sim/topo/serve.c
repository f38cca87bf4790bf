/*
 * serve: see serve.h.
 */
#include "serve.h"

#include <stdio.h>

#include "../../ref/drv_file.h"
#include "../../ref/nbd_server.h"

struct disk_server {
    struct graph g;
    struct disk_handle *h;
    struct nbd_server *nbd;
    struct net *net;
    char host[NET_NAME_MAX];
    char service[NET_NAME_MAX];
};

static void server_accept(void *opaque, struct env_transport t)
{
    struct disk_server *srv = opaque;
    nbd_server_attach(srv->nbd, t);
}

static void server_free(struct disk_server *srv)
{
    graph_fini(&srv->g);
    disk_handle_free(srv->h);
    mem_free(srv, sizeof(*srv));
}

int disk_server_open(struct world *w, struct net *net, const char *host, const char *service,
                     unsigned disk, const char *export, struct err *e,
                     struct disk_server **out)
{
    struct disk_server *srv = mem_alloc(sizeof(*srv));
    srv->net = net;
    snprintf(srv->host, sizeof(srv->host), "%s", host);
    snprintf(srv->service, sizeof(srv->service), "%s", service);
    graph_init(&srv->g, world__timer(w), w->o.node_mutants);
    srv->h = disk_handle_new(w->disks[disk]);
    struct drv_file_opts fo = { disk_storage(srv->h) };
    struct node *file;
    int ret = node_new(&srv->g, &drv_file, "export", &fo, e, &file);
    if (ret < 0) {
        server_free(srv);
        return ret;
    }
    struct nbd_server_opts so = { .export = file, .name = export };
    srv->nbd = nbd_server_new(&so);
    net_listen(net, srv->host, srv->service, server_accept, srv);
    *out = srv;
    return 0;
}

static void server_idle(void *opaque)
{
    server_free(opaque);
}

void disk_server_kill(struct disk_server *srv)
{
    net_unlisten(srv->net, srv->host, srv->service);
    nbd_server_close(srv->nbd);
    net_host_reset(srv->net, srv->host);
    graph_kill(&srv->g, server_idle, srv);
}
