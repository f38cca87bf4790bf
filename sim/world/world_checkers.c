/*
 * world_checkers: the world's side of the checker interface (checker.h):
 *   registration, dispatch in registration order, and the verdict, which is
 *   the first violation any checker reports, in event order.
 */
#include <string.h>

#include "../../ref/base.h"
#include "world_int.h"

void world__checker_add(struct world *w, const struct checker_ops *ops, void *self)
{
    ASSERT(ops != NULL && ops->name != NULL && ops->violation != NULL);
    ASSERT(w->n_checkers < CHECKERS_MAX);
    for (unsigned i = 0; i < w->n_checkers; i++) {
        ASSERT(strcmp(w->checkers[i].ops->name, ops->name) != 0); /* one report section each */
    }
    w->checkers[w->n_checkers++] = (struct checker){ ops, self };
}

/* After a checker's hook: its first violation, if any, may be the verdict. */
static void poll(struct world *w, const struct checker *c)
{
    const struct violation *v = c->ops->violation(c->self);
    if (v) {
        world__verdict_fail(w, v);
    }
}

/* Does checker @c hear request @io? */
static bool hears(const struct checker *c, const struct checker_io *io)
{
    return c->ops->other_guests || !io->rec || (io->rec->guest == 0 && !io->rec->export[0]);
}

void world__checkers_submit(struct world *w, const struct checker_io *io,
                            uint64_t cookie[CHECKERS_MAX])
{
    for (unsigned i = 0; i < w->n_checkers; i++) {
        const struct checker *c = &w->checkers[i];
        cookie[i] = c->ops->io_submit && hears(c, io) ? c->ops->io_submit(c->self, io) : 0;
    }
}

void world__checkers_done(struct world *w, struct checker_io *io,
                          const uint64_t cookie[CHECKERS_MAX])
{
    for (unsigned i = 0; i < w->n_checkers; i++) {
        const struct checker *c = &w->checkers[i];
        if (c->ops->io_done && hears(c, io)) {
            io->cookie = cookie[i];
            c->ops->io_done(c->self, io);
            poll(w, c);
        }
    }
}

void world__checkers_lost(struct world *w, struct checker_io *io,
                          const uint64_t cookie[CHECKERS_MAX])
{
    for (unsigned i = 0; i < w->n_checkers; i++) {
        const struct checker *c = &w->checkers[i];
        if (c->ops->io_lost && hears(c, io)) {
            io->cookie = cookie[i];
            c->ops->io_lost(c->self, io);
            poll(w, c);
        }
    }
}

void world__checkers_control(struct world *w, const struct trace_rec *rec)
{
    for (unsigned i = 0; i < w->n_checkers; i++) {
        const struct checker *c = &w->checkers[i];
        if (c->ops->control) {
            c->ops->control(c->self, rec);
            poll(w, c);
        }
    }
}

void world__checkers_job(struct world *w, const struct job_event *ev)
{
    for (unsigned i = 0; i < w->n_checkers; i++) {
        const struct checker *c = &w->checkers[i];
        if (c->ops->job_event) {
            c->ops->job_event(c->self, ev);
            poll(w, c);
        }
    }
}

void world__checkers_crash(struct world *w, unsigned host, int mode)
{
    for (unsigned i = 0; i < w->n_checkers; i++) {
        const struct checker *c = &w->checkers[i];
        if (c->ops->crash) {
            c->ops->crash(c->self, host, host == WORLD_GUEST_HOST, mode);
            poll(w, c);
        }
    }
}

void world__checkers_restart(struct world *w, unsigned host)
{
    for (unsigned i = 0; i < w->n_checkers; i++) {
        const struct checker *c = &w->checkers[i];
        if (c->ops->restart) {
            c->ops->restart(c->self, host, host == WORLD_GUEST_HOST);
            poll(w, c);
        }
    }
}

void world__checkers_end(struct world *w)
{
    for (unsigned i = 0; i < w->n_checkers; i++) {
        const struct checker *c = &w->checkers[i];
        if (c->ops->end) {
            c->ops->end(c->self);
        }
        poll(w, c);
    }
}

void world__checkers_check(const struct world *w)
{
    for (unsigned i = 0; i < w->n_checkers; i++) {
        const struct checker *c = &w->checkers[i];
        if (c->ops->check) {
            c->ops->check(c->self);
        }
    }
}

json_t *world__checkers_json(const struct world *w)
{
    json_t *checks = json_object();
    for (unsigned i = 0; i < w->n_checkers; i++) {
        const struct checker *c = &w->checkers[i];
        if (c->ops->json) {
            json_object_set_new(checks, c->ops->name, c->ops->json(c->self));
        }
    }
    return checks;
}

void world__checkers_fini(struct world *w)
{
    for (unsigned i = w->n_checkers; i-- > 0;) {
        const struct checker *c = &w->checkers[i];
        if (c->ops->fini) {
            c->ops->fini(c->self);
        }
    }
    w->n_checkers = 0;
}
