/*
 * sock: see sock.h. Method: each connection keeps one pending recv and a
 * queue of unsent bytes; a poll round reads into the pending buffer and
 * writes the queue; completions are posted on the loop's evq, each holding
 * a reference so a closed connection is freed only once they ran.
 */
#include "sock.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../ref/base.h"

/* File descriptors kept back from the connection limit: stdio, the
 * listener, a trace file, libc's own. */
#define SOCK_FDS_RESERVED 16
#define SOCK_BACKLOG 1024

struct sock_conn {
    struct sock_loop *loop;
    int fd;
    bool closed;
    unsigned refs;
    int err;              /* sticky: the connection failed */
    uint8_t *rbuf;        /* pending recv */
    size_t rlen, rgot;
    env_io_cb *rcb;
    void *ropaque;
    uint8_t *tx;          /* unsent bytes: tx[tx_off, tx_len) */
    size_t tx_off, tx_len, tx_cap;
};

struct sock_loop {
    struct evq q;
    int listen_fd;
    char listen_path[108];
    sock_accept_cb *accept_cb;
    void *accept_opaque;
    struct sock_conn **conns;    /* every connection not yet freed */
    unsigned n_conns, cap_conns;
    unsigned max_conns;          /* open connections allowed (fd limit) */
    struct pollfd *pfd;          /* poll set, cap_conns + 1 */
    struct sock_conn **who;
    sock_log_cb *log_cb;
    void *log_opaque;
    uint64_t refused;
    char dial_path[108];
    unsigned dial_port;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t loop_now(void *ctx)
{
    struct sock_loop *l = ctx;
    return l->q.now_ns;
}

static void loop_post(void *ctx, uint64_t delay_ns, env_cb *cb, void *opaque)
{
    struct sock_loop *l = ctx;
    evq_post(&l->q, delay_ns, cb, opaque);
}

static const struct env_timer_ops loop_timer_ops = { loop_now, loop_post, NULL };

struct env_timer sock_loop_timer(struct sock_loop *l)
{
    struct env_timer t = { &loop_timer_ops, l };
    return t;
}

struct evq *sock_loop_evq(struct sock_loop *l)
{
    return &l->q;
}

struct sock_loop *sock_loop_new(void)
{
    struct sock_loop *l = mem_alloc(sizeof(*l));
    evq_init(&l->q);
    l->q.now_ns = mono_ns();
    l->listen_fd = -1;
    l->pfd = mem_alloc(sizeof(*l->pfd)); /* the listener's; grows with conns */
    struct rlimit rl;
    rlim_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    fds = fds > 1u << 20 ? 1u << 20 : fds; /* RLIM_INFINITY and its kin */
    l->max_conns = fds > 2 * SOCK_FDS_RESERVED ? (unsigned)(fds - SOCK_FDS_RESERVED)
                                               : SOCK_FDS_RESERVED;
    return l;
}

void sock_loop_set_log(struct sock_loop *l, sock_log_cb *cb, void *opaque)
{
    l->log_cb = cb;
    l->log_opaque = opaque;
}

void sock_loop_set_max_conns(struct sock_loop *l, unsigned max)
{
    ASSERT(max > 0);
    l->max_conns = max < l->max_conns ? max : l->max_conns;
}

unsigned sock_loop_max_conns(const struct sock_loop *l)
{
    return l->max_conns;
}

static void loop_log(struct sock_loop *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void loop_log(struct sock_loop *l, const char *fmt, ...)
{
    if (!l->log_cb) {
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    l->log_cb(l->log_opaque, msg);
}

static void conn_maybe_free(struct sock_conn *c)
{
    if (!c->closed || c->refs) {
        return;
    }
    struct sock_loop *l = c->loop;
    for (unsigned i = 0; i < l->n_conns; i++) {
        if (l->conns[i] == c) {
            l->conns[i] = l->conns[--l->n_conns];
            break;
        }
    }
    mem_free(c->tx, c->tx_cap);
    mem_free(c, sizeof(*c));
}

struct sock_done {
    struct sock_conn *c;
    env_io_cb *cb;
    void *opaque;
    int ret;
};

static void done_ev(void *opaque)
{
    struct sock_done d = *(struct sock_done *)opaque;
    mem_free(opaque, sizeof(d));
    if (!d.c->closed) {
        d.cb(d.opaque, d.ret);
    }
    d.c->refs--; /* only now: the callback may have closed it */
    conn_maybe_free(d.c);
}

static void post_done(struct sock_conn *c, env_io_cb *cb, void *opaque, int ret)
{
    struct sock_done *d = mem_alloc(sizeof(*d));
    *d = (struct sock_done){ c, cb, opaque, ret };
    c->refs++;
    evq_post(&c->loop->q, 0, done_ev, d);
}

static void conn_fail(struct sock_conn *c, int err)
{
    if (!c->err) {
        c->err = err;
    }
    if (c->rcb) {
        env_io_cb *cb = c->rcb;
        c->rcb = NULL;
        post_done(c, cb, c->ropaque, c->err);
    }
}

static void conn_send(void *conn, const uint8_t *buf, size_t len, env_io_cb *cb, void *opaque)
{
    struct sock_conn *c = conn;
    if (c->err) {
        post_done(c, cb, opaque, c->err);
        return;
    }
    if (c->tx_cap - c->tx_len < len) {
        size_t used = c->tx_len - c->tx_off;
        if (used) {
            memmove(c->tx, c->tx + c->tx_off, used);
        }
        c->tx_off = 0;
        c->tx_len = used;
        size_t cap = c->tx_cap ? c->tx_cap : 65536;
        while (cap - used < len) {
            cap *= 2;
        }
        if (cap != c->tx_cap) {
            c->tx = mem_realloc(c->tx, c->tx_cap, cap);
            c->tx_cap = cap;
        }
    }
    memcpy(c->tx + c->tx_len, buf, len);
    c->tx_len += len;
    post_done(c, cb, opaque, 0); /* the copy is taken; failures show on recv */
}

static void conn_recv(void *conn, uint8_t *buf, size_t len, env_io_cb *cb, void *opaque)
{
    struct sock_conn *c = conn;
    ASSERT(!c->rcb);
    c->rbuf = buf;
    c->rlen = len;
    c->rgot = 0;
    c->rcb = cb;
    c->ropaque = opaque;
    if (c->err) {
        conn_fail(c, c->err);
    } else if (len == 0) {
        c->rcb = NULL;
        post_done(c, cb, opaque, 0);
    }
}

static void conn_close(void *conn)
{
    struct sock_conn *c = conn;
    ASSERT(!c->closed);
    /* Unsent bytes go out before the close, as far as the socket takes them. */
    if (!c->err && c->tx_len > c->tx_off) {
        ssize_t n = write(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off);
        (void)n;
    }
    close(c->fd);
    c->closed = true;
    c->rcb = NULL;
    conn_maybe_free(c);
}

static const struct env_transport_ops sock_transport_ops = { conn_send, conn_recv, conn_close };

static struct env_transport conn_new(struct sock_loop *l, int fd)
{
    if (l->n_conns == l->cap_conns) {
        unsigned cap = l->cap_conns ? 2 * l->cap_conns : 16;
        l->conns = mem_realloc(l->conns, l->cap_conns * sizeof(*l->conns),
                               cap * sizeof(*l->conns));
        l->who = mem_realloc(l->who, l->cap_conns * sizeof(*l->who), cap * sizeof(*l->who));
        l->pfd = mem_realloc(l->pfd, (l->cap_conns + 1) * sizeof(*l->pfd),
                             (cap + 1) * sizeof(*l->pfd));
        l->cap_conns = cap;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on Unix: fine */
    struct sock_conn *c = mem_alloc(sizeof(*c));
    c->loop = l;
    c->fd = fd;
    l->conns[l->n_conns++] = c;
    struct env_transport t = { &sock_transport_ops, c };
    return t;
}

unsigned sock_loop_conns(const struct sock_loop *l)
{
    unsigned n = 0;
    for (unsigned i = 0; i < l->n_conns; i++) {
        n += !l->conns[i]->closed;
    }
    return n;
}

static int addr_make(const char *path, unsigned port, struct sockaddr_storage *ss,
                     socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (path) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        if (strlen(path) >= sizeof(un->sun_path)) {
            return -ENAMETOOLONG;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        *len = sizeof(*un);
        return AF_UNIX;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof(*in);
    return AF_INET;
}

/* A Unix socket path that exists is replaced only when it is a socket that
 * nobody listens on (left behind by a server that died); anything else is
 * refused, as qemu-nbd and nbdkit do. */
static int stale_socket_remove(const char *path, const struct sockaddr_storage *ss,
                               socklen_t len, char *why, size_t why_len)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return 0; /* absent: bind makes it */
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(why, why_len, "%s exists and is not a socket: not replacing it", path);
        return -EEXIST;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = probe >= 0 && connect(probe, (const struct sockaddr *)ss, len) == 0;
    if (probe >= 0) {
        close(probe);
    }
    if (live) {
        snprintf(why, why_len, "%s: another server is listening there", path);
        return -EADDRINUSE;
    }
    unlink(path);
    return 0;
}

int sock_listen(struct sock_loop *l, const char *path, unsigned port, sock_accept_cb *cb,
                void *opaque, char *why, size_t why_len)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int family = addr_make(path, port, &ss, &len);
    if (family < 0) {
        snprintf(why, why_len, "socket path too long: %s", path);
        return family;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0 && family == AF_INET) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (path && fd >= 0) {
        int ret = stale_socket_remove(path, &ss, len, why, why_len);
        if (ret < 0) {
            close(fd);
            return ret;
        }
    }
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOCK_BACKLOG) < 0) {
        int err = -errno;
        if (path) {
            snprintf(why, why_len, "cannot listen on %s: %s", path, strerror(-err));
        } else {
            snprintf(why, why_len, "cannot listen on 127.0.0.1:%u: %s", port, strerror(-err));
        }
        if (fd >= 0) {
            close(fd);
        }
        return err;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    l->listen_fd = fd;
    snprintf(l->listen_path, sizeof(l->listen_path), "%s", path ? path : "");
    l->accept_cb = cb;
    l->accept_opaque = opaque;
    return 0;
}

struct sock_dial {
    env_connect_cb *cb;
    void *opaque;
    int ret;
    struct env_transport t;
};

static void dial_done_ev(void *opaque)
{
    struct sock_dial d = *(struct sock_dial *)opaque;
    mem_free(opaque, sizeof(d));
    d.cb(d.opaque, d.ret, d.t);
}

static void dial_connect(void *ctx, env_connect_cb *cb, void *opaque)
{
    struct sock_loop *l = ctx;
    struct sock_dial *d = mem_alloc(sizeof(*d));
    d->cb = cb;
    d->opaque = opaque;
    struct sockaddr_storage ss;
    socklen_t len;
    int family = addr_make(l->dial_path[0] ? l->dial_path : NULL, l->dial_port, &ss, &len);
    int fd = family < 0 ? -1 : socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0) { /* blocking: local peers */
        d->ret = family < 0 ? family : -errno;
        if (fd >= 0) {
            close(fd);
        }
    } else {
        d->t = conn_new(l, fd);
    }
    evq_post(&l->q, 0, dial_done_ev, d);
}

static const struct env_dialer_ops sock_dialer_ops = { dial_connect };

struct env_dialer sock_dialer(struct sock_loop *l, const char *path, unsigned port)
{
    snprintf(l->dial_path, sizeof(l->dial_path), "%s", path ? path : "");
    l->dial_port = port;
    struct env_dialer dl = { &sock_dialer_ops, l };
    return dl;
}

static void conn_io(struct sock_conn *c, short revents)
{
    if ((revents & POLLOUT) && c->tx_len > c->tx_off) {
        ssize_t n = send(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->tx_off += (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            conn_fail(c, -ECONNRESET);
        }
    }
    if ((revents & (POLLIN | POLLHUP | POLLERR)) && c->rcb && !c->err) {
        ssize_t n = read(c->fd, c->rbuf + c->rgot, c->rlen - c->rgot);
        if (n > 0) {
            c->rgot += (size_t)n;
            if (c->rgot == c->rlen) {
                env_io_cb *cb = c->rcb;
                c->rcb = NULL;
                post_done(c, cb, c->ropaque, 0);
            }
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            conn_fail(c, -ECONNRESET);
        }
    }
}

/* Accept every connection waiting (a burst must not overflow the backlog
 * while the loop takes one a round); beyond the limit, refuse and say so. */
static void accept_ready(struct sock_loop *l)
{
    for (;;) {
        int fd = accept4(l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE) {
                loop_log(l, "out of file descriptors: a connection waits in the backlog");
            }
            return;
        }
        if (sock_loop_conns(l) >= l->max_conns) {
            close(fd);
            l->refused++;
            loop_log(l, "connection refused: %u connections open, the limit (see ulimit -n)",
                     l->max_conns);
            continue;
        }
        l->accept_cb(l->accept_opaque, conn_new(l, fd));
    }
}

void sock_loop_run_once(struct sock_loop *l, uint64_t max_wait_ns)
{
    struct pollfd *pfd = l->pfd;
    struct sock_conn **who = l->who;
    unsigned n = 0;
    for (unsigned i = 0; i < l->n_conns; i++) {
        struct sock_conn *c = l->conns[i];
        if (c->closed || c->err) {
            continue;
        }
        short ev = (short)((c->rcb ? POLLIN : 0) | (c->tx_len > c->tx_off ? POLLOUT : 0));
        pfd[n] = (struct pollfd){ c->fd, ev, 0 };
        who[n++] = c;
    }
    if (l->listen_fd >= 0) {
        pfd[n] = (struct pollfd){ l->listen_fd, POLLIN, 0 };
    }
    uint64_t now = mono_ns();
    uint64_t wait = max_wait_ns;
    if (!evq_empty(&l->q)) {
        uint64_t next = l->q.heap[0].time_ns;
        wait = next <= now ? 0 : min_u64(wait, next - now);
    }
    /* Rounded up: a timer less than 1 ms away must not make the loop spin. */
    int ready = poll(pfd, n + (l->listen_fd >= 0), (int)((wait + 999999) / 1000000));
    for (unsigned i = 0; ready > 0 && i < n; i++) {
        if (pfd[i].revents) {
            conn_io(who[i], pfd[i].revents);
        }
    }
    if (ready > 0 && l->listen_fd >= 0 && pfd[n].revents) {
        accept_ready(l);
    }
    /* Run what is due, then bring the clock up to real time: every event
     * left lies beyond it. */
    uint64_t real = mono_ns();
    while (evq_step(&l->q, real)) {
    }
    l->q.now_ns = max_u64(l->q.now_ns, real);
}

void sock_loop_free(struct sock_loop *l)
{
    while (!evq_empty(&l->q)) {
        evq_step(&l->q, UINT64_MAX);
    }
    ASSERT(sock_loop_conns(l) == 0);
    mem_free(l->conns, l->cap_conns * sizeof(*l->conns));
    mem_free(l->who, l->cap_conns * sizeof(*l->who));
    mem_free(l->pfd, (l->cap_conns + 1) * sizeof(*l->pfd));
    if (l->listen_fd >= 0) {
        close(l->listen_fd);
        if (l->listen_path[0]) {
            unlink(l->listen_path);
        }
    }
    evq_fini(&l->q);
    mem_free(l, sizeof(*l));
}
