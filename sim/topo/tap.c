/*
 * tap: see tap.h. Method: one child request per request; its callback
 * calls the observer, then completes the parent.
 */
#include "tap.h"

struct tap_state {
    struct tap_opts o;
};

static int tap_open(struct node *n, const void *opts, struct err *e)
{
    const struct tap_opts *o = opts;
    if (!o || !o->child || !o->on_done) {
        return err_set(e, 0, 0, "tap node '%s' needs a child and an observer", n->name);
    }
    ((struct tap_state *)n->state)->o = *o;
    node_child_attach(n, o->child, NODE_ROLE_FILE);
    n->length = o->child->length;
    return 0;
}

static void tap_done(void *opaque, int ret)
{
    struct req *req = opaque;
    const struct tap_opts *o = &((struct tap_state *)req->node->state)->o;
    bool data = req->op == NODE_OP_READ || req->op == NODE_OP_WRITE;
    bool described = req->desc && (req->op == NODE_OP_WRITE || req->desc->described);
    o->on_done(o->opaque, o->id, req, ret, data && !described ? req->buf : NULL);
    req_complete(req, ret);
}

static void tap_submit(struct node *n, struct req *req)
{
    const struct tap_opts *o = &((struct tap_state *)n->state)->o;
    if (o->on_submit) {
        o->on_submit(o->opaque, o->id, req);
    }
    node_submit_desc(n->children[0].node, req->op, req->offset, req->len, req->buf, req->desc,
                     req->flags, tap_done, req);
}

static bool tap_takes_desc(const struct node *n)
{
    return node_takes_desc(n->children[0].node);
}

static int tap_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    return node_block_status(n->children[0].node, offset, len, pnum);
}

const struct node_driver drv_tap = {
    .name = "tap",
    .state_size = sizeof(struct tap_state),
    .open = tap_open,
    .submit = { tap_submit, tap_submit, tap_submit, tap_submit, tap_submit },
    .block_status = tap_block_status,
    .takes_desc = tap_takes_desc,
};

/* ---- redirect ---- */

struct redirect_state {
    struct node **target;
};

static int redirect_open(struct node *n, const void *opts, struct err *e)
{
    const struct redirect_opts *o = opts;
    if (!o || !o->target || !*o->target) {
        return err_set(e, 0, 0, "redirect node '%s' needs a target", n->name);
    }
    ((struct redirect_state *)n->state)->target = o->target;
    n->length = (*o->target)->length;
    return 0;
}

static void redirect_done(void *opaque, int ret)
{
    req_complete(opaque, ret);
}

static void redirect_submit(struct node *n, struct req *req)
{
    struct node *to = *((struct redirect_state *)n->state)->target;
    node_submit(to, req->op, req->offset, req->len, req->buf, req->flags, redirect_done, req);
}

static int redirect_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    return node_block_status(*((struct redirect_state *)n->state)->target, offset, len, pnum);
}

const struct node_driver drv_redirect = {
    .name = "redirect",
    .state_size = sizeof(struct redirect_state),
    .open = redirect_open,
    .submit = { redirect_submit, redirect_submit, redirect_submit, redirect_submit,
                redirect_submit },
    .block_status = redirect_block_status,
};
