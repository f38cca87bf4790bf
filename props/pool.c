/*
 * pool: see pool.h.
 *
 * Method: a worker reads a request (tag, length, bytes) from its pipe,
 * runs the trial under alarm() and writes a result (tag, verdict, message)
 * back; end of file on its request pipe ends it. The parent polls the
 * result pipes of its busy workers; end of file there means the worker died
 * in its trial, and its wait status names how. Each worker closes the
 * parent's ends of its siblings' pipes, so a dead worker's pipe reads end
 * of file at once. SIGPIPE is ignored while the pool lives: a write to a
 * worker that died is an error the pool handles, not the end of the run.
 */
#include "pool.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../ref/base.h"

struct worker {
    pid_t pid; /* 0: not started (or reaped) */
    int to;    /* requests, parent's end */
    int from;  /* results, parent's end */
    bool busy;
    uint64_t tag;
};

struct pool {
    pool_run_fn *run;
    const void *ctx;
    unsigned n;
    unsigned timeout_s;
    struct worker w[POOL_MAX];
    void (*old_sigpipe)(int);
};

struct pool_req {
    uint64_t tag;
    uint32_t len;
};

struct pool_res {
    uint64_t tag;
    uint32_t fail;
    uint32_t msg_len;
};

unsigned pool_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > POOL_MAX ? POOL_MAX : (unsigned)n;
}

/* The message for a worker that ended with wait status @status (a signal, a
 * SIGALRM timeout of @timeout_s, or an exit status), or "" for exit 0. */
static void child_verdict(int status, unsigned timeout_s, char *msg, size_t size)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (sig == SIGALRM) {
            snprintf(msg, size, "trial hung (over %u s)", timeout_s);
        } else {
            snprintf(msg, size, "trial crashed: signal %d (%s)", sig, strsignal(sig));
        }
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        /* Died without saying why (under valgrind an abort ends this way). */
        snprintf(msg, size, "trial exited with status %d", WEXITSTATUS(status));
    } else {
        msg[0] = '\0';
    }
}

/* All @len bytes read (@out false) or written, or false: end of file or an
 * error (EINTR retried). */
static bool io_full(int fd, void *buf, size_t len, bool out)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = out ? write(fd, p, len) : read(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool read_full(int fd, void *buf, size_t len)
{
    return io_full(fd, buf, len, false);
}

static bool write_full(int fd, const void *buf, size_t len)
{
    return io_full(fd, (void *)(uintptr_t)buf, len, true);
}

static _Noreturn void worker_main(const struct pool *pl, int in, int out)
{
    /* The host program may have its own SIGALRM handler (Check's kills the
     * whole process group): the timeout must only end this worker. */
    signal(SIGALRM, SIG_DFL);
    signal(SIGINT, SIG_DFL); /* ^C ends the trial; the parent discards it */
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    struct pool_req req;
    while (read_full(in, &req, sizeof(req))) {
        uint8_t *bytes = mem_alloc_raw(req.len);
        if (!read_full(in, bytes, req.len)) {
            _exit(3);
        }
        char msg[POOL_MSG] = "";
        alarm(pl->timeout_s ? pl->timeout_s : 30);
        bool fail = pl->run(pl->ctx, bytes, req.len, msg, sizeof(msg));
        alarm(0);
        mem_free(bytes, req.len);
        struct pool_res res = { req.tag, fail, (uint32_t)strlen(msg) };
        if (!write_full(out, &res, sizeof(res)) || !write_full(out, msg, res.msg_len)) {
            _exit(3);
        }
    }
    _exit(0);
}

static void worker_start(struct pool *pl, struct worker *w)
{
    int req[2];
    int res[2];
    if (pipe(req) != 0 || pipe(res) != 0) {
        base_panic(__FILE__, __LINE__, "pool: pipe failed");
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        base_panic(__FILE__, __LINE__, "pool: fork failed");
    }
    if (pid == 0) {
        close(req[1]);
        close(res[0]);
        for (unsigned i = 0; i < pl->n; i++) {
            if (pl->w[i].pid > 0 && &pl->w[i] != w) { /* siblings' pipes */
                close(pl->w[i].to);
                close(pl->w[i].from);
            }
        }
        worker_main(pl, req[0], res[1]);
    }
    close(req[0]);
    close(res[1]);
    *w = (struct worker){ pid, req[1], res[0], false, 0 };
}

/* Close @w's pipes and reap it; its wait status. */
static int worker_end(struct worker *w, bool kill_it)
{
    int status = 0;
    if (w->pid <= 0) {
        return 0;
    }
    if (kill_it) {
        kill(w->pid, SIGKILL);
    }
    close(w->to);
    close(w->from);
    while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR) {
    }
    w->pid = 0;
    w->busy = false;
    return status;
}

struct pool *pool_new(pool_run_fn *run, const void *ctx, unsigned workers,
                      unsigned timeout_s)
{
    ASSERT(workers >= 1 && workers <= POOL_MAX);
    struct pool *pl = mem_alloc(sizeof(*pl));
    pl->run = run;
    pl->ctx = ctx;
    pl->n = workers;
    pl->timeout_s = timeout_s;
    pl->old_sigpipe = signal(SIGPIPE, SIG_IGN);
    return pl;
}

void pool_free(struct pool *pl)
{
    for (unsigned i = 0; i < pl->n; i++) {
        (void)worker_end(&pl->w[i], pl->w[i].busy);
    }
    signal(SIGPIPE, pl->old_sigpipe);
    mem_free(pl, sizeof(*pl));
}

unsigned pool_idle(const struct pool *pl)
{
    unsigned idle = 0;
    for (unsigned i = 0; i < pl->n; i++) {
        idle += !pl->w[i].busy;
    }
    return idle;
}

void pool_submit(struct pool *pl, uint64_t tag, const uint8_t *bytes, size_t len)
{
    ASSERT(len <= UINT32_MAX);
    struct worker *w = NULL;
    for (unsigned i = 0; i < pl->n && !w; i++) {
        w = pl->w[i].busy ? NULL : &pl->w[i];
    }
    ASSERT(w != NULL);
    struct pool_req req = { tag, (uint32_t)len };
    for (unsigned tries = 0;; tries++) {
        if (w->pid <= 0) {
            worker_start(pl, w);
        }
        if (write_full(w->to, &req, sizeof(req)) && write_full(w->to, bytes, len)) {
            break;
        }
        /* It died between trials (killed from outside): a new one runs it. */
        ASSERT(tries < 3);
        (void)worker_end(w, true);
    }
    w->busy = true;
    w->tag = tag;
}

void pool_wait(struct pool *pl, uint64_t *tag, bool *fail, char *msg, size_t size)
{
    ASSERT(size > 0);
    for (;;) {
        struct pollfd fds[POOL_MAX];
        unsigned who[POOL_MAX];
        nfds_t n = 0;
        for (unsigned i = 0; i < pl->n; i++) {
            if (pl->w[i].busy) {
                fds[n] = (struct pollfd){ .fd = pl->w[i].from, .events = POLLIN };
                who[n++] = i;
            }
        }
        ASSERT(n > 0);
        if (poll(fds, n, -1) < 0) {
            ASSERT(errno == EINTR);
            continue;
        }
        for (nfds_t k = 0; k < n; k++) {
            if (!fds[k].revents) {
                continue;
            }
            struct worker *w = &pl->w[who[k]];
            struct pool_res res;
            char buf[POOL_MSG];
            *tag = w->tag;
            if (read_full(w->from, &res, sizeof(res)) && res.tag == w->tag &&
                res.msg_len < sizeof(buf) && read_full(w->from, buf, res.msg_len)) {
                buf[res.msg_len] = '\0';
                snprintf(msg, size, "%s", buf);
                *fail = res.fail != 0;
                w->busy = false;
                return;
            }
            /* The worker died in this trial: how is the verdict. */
            int status = worker_end(w, true);
            child_verdict(status, pl->timeout_s, msg, size);
            if (msg[0] == '\0') {
                snprintf(msg, size, "trial's worker ended without a result");
            }
            *fail = true;
            return;
        }
    }
}
