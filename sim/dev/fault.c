/*
 * fault: see fault.h. Method: parsing splits on blanks and dispatches each
 * key through a table; firing checks the static filters (kind against the
 * request, disk, range, window) before it draws, so a rule that cannot match
 * never consumes randomness and adding a rule for another disk does not
 * change this disk's run.
 */
#include "fault.h"

#include <stdio.h>
#include <string.h>

struct kind_info {
    const char *name;
    enum fault_io io;
};

static const struct kind_info kinds[FAULT__COUNT] = {
    [FAULT_READ_EIO] = { "read-eio", FAULT_IO_READ },
    [FAULT_WRITE_EIO] = { "write-eio", FAULT_IO_WRITE },
    [FAULT_FLUSH_EIO] = { "flush-eio", FAULT_IO_FLUSH },
    [FAULT_ENOSPC] = { "enospc", FAULT_IO_WRITE },
    [FAULT_LATENT] = { "latent", FAULT_IO_READ },
    [FAULT_MISDIRECT] = { "misdirect", FAULT_IO_WRITE },
    [FAULT_READ_CORRUPT] = { "read-corrupt", FAULT_IO_READ },
    [FAULT_NET_RESET] = { "net-reset", FAULT_IO_NET },
    [FAULT_NET_CLOG] = { "clog", FAULT_IO_NET },
    [FAULT_NET_STALL] = { "net-stall", FAULT_IO_NET },
    [FAULT_NET_PARTITION] = { "partition", FAULT_IO_NET },
};

const char *fault_kind_name(enum fault_kind kind)
{
    ASSERT(kind < FAULT__COUNT);
    return kinds[kind].name;
}

typedef int key_parser(struct fault_rule *r, const char *val);

static int key_disk(struct fault_rule *r, const char *val)
{
    size_t n = strlen(val);
    if (n == 0 || n >= FAULT_NAME_MAX) {
        return -EINVAL;
    }
    memcpy(r->disk, val, n + 1);
    return 0;
}

static int key_range(struct fault_rule *r, const char *val)
{
    const char *dash = strchr(val, '-');
    if (!dash || dash == val || (size_t)(dash - val) >= 32) {
        return -EINVAL;
    }
    char start[32];
    memcpy(start, val, (size_t)(dash - val));
    start[dash - val] = '\0';
    TRY(parse_size(start, &r->range_start));
    TRY(parse_size(dash + 1, &r->range_end));
    return r->range_end > r->range_start ? 0 : -EINVAL;
}

static int key_after(struct fault_rule *r, const char *val)
{
    return parse_duration(val, &r->after_ns);
}

static int key_before(struct fault_rule *r, const char *val)
{
    return parse_duration(val, &r->before_ns);
}

static int key_prob(struct fault_rule *r, const char *val)
{
    r->prob_set = true;
    return parse_prob(val, &r->prob);
}

static int key_nth(struct fault_rule *r, const char *val)
{
    TRY(parse_u64(val, &r->nth));
    return r->nth > 0 ? 0 : -EINVAL;
}

static int key_times(struct fault_rule *r, const char *val)
{
    TRY(parse_u64(val, &r->times));
    return r->times > 0 ? 0 : -EINVAL;
}

static int key_delta(struct fault_rule *r, const char *val)
{
    TRY(parse_size(val, &r->delta));
    return r->delta % 512 == 0 && r->delta > 0 ? 0 : -EINVAL;
}

static int key_delay(struct fault_rule *r, const char *val)
{
    TRY(parse_duration(val, &r->delay_ns));
    return r->delay_ns > 0 ? 0 : -EINVAL;
}

struct key_info {
    const char *name;
    key_parser *parse;
    const char *expect;
};

static const struct key_info keys[] = {
    { "disk", key_disk, "a disk name" },
    { "range", key_range, "START-END byte sizes with END > START" },
    { "after", key_after, "a duration such as 5ms" },
    { "before", key_before, "a duration such as 5ms" },
    { "prob", key_prob, "a probability such as 0.01 or 1%" },
    { "nth", key_nth, "a positive count" },
    { "times", key_times, "a positive count" },
    { "delta", key_delta, "a positive multiple of 512 bytes" },
    { "host", key_disk, "a host name" },
    { "delay", key_delay, "a positive duration such as 2ms" },
};

static int parse_word(struct fault_rule *r, char *word, unsigned field, struct err *e)
{
    if (strcmp(word, "sticky") == 0) {
        r->sticky = true;
        return 0;
    }
    if (strcmp(word, "oneway") == 0) {
        r->oneway = true;
        return 0;
    }
    char *eq = strchr(word, '=');
    if (!eq) {
        return err_set(e, 0, field, "unknown fault option '%s'", word);
    }
    *eq = '\0';
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (strcmp(word, keys[i].name) == 0) {
            if (keys[i].parse(r, eq + 1) < 0) {
                return err_set(e, 0, field, "fault option %s=%s: expected %s", word,
                               eq + 1, keys[i].expect);
            }
            return 0;
        }
    }
    return err_set(e, 0, field, "unknown fault option '%s'", word);
}

static int parse_kind(struct fault_rule *r, const char *word, struct err *e)
{
    for (int k = 0; k < FAULT__COUNT; k++) {
        if (strcmp(word, kinds[k].name) == 0) {
            r->kind = (enum fault_kind)k;
            return 0;
        }
    }
    return err_set(e, 0, 1, "unknown fault kind '%s' (expected read-eio, write-eio, "
                   "flush-eio, enospc, latent, misdirect, read-corrupt, net-reset, clog, "
                   "net-stall or partition)", word);
}

/* Keys that belong to disk kinds or to net kinds only. */
static int rule_validate_keys(const struct fault_rule *r, struct err *e)
{
    bool net = fault_kind_is_net(r->kind);
    const char *name = fault_kind_name(r->kind);
    if (net && (r->range_start != 0 || r->range_end != UINT64_MAX || r->delta || r->sticky)) {
        return err_set(e, 0, 0, "%s takes no range, delta or sticky (those are for disks)",
                       name);
    }
    if (!net && (r->oneway || r->delay_ns)) {
        return err_set(e, 0, 0, "%s takes no oneway or delay (those are for the network)",
                       name);
    }
    bool window = r->kind == FAULT_NET_STALL || r->kind == FAULT_NET_PARTITION;
    if (window && (r->prob_set || r->nth || r->times)) {
        return err_set(e, 0, 0, "%s is a time window: it takes after= and before=, not prob, "
                       "nth or times", name);
    }
    if (r->kind == FAULT_NET_STALL && r->before_ns == UINT64_MAX) {
        return err_set(e, 0, 0, "net-stall needs before= (a stall that never ends is a "
                       "partition)");
    }
    if (r->kind == FAULT_NET_CLOG && r->delay_ns == 0) {
        return err_set(e, 0, 0, "clog needs delay=DUR");
    }
    return 0;
}

int fault_rule_parse(const char *text, struct fault_rule *out, struct err *e)
{
    char buf[512];
    if (strlen(text) >= sizeof(buf)) {
        return err_set(e, 0, 0, "fault rule longer than %zu bytes", sizeof(buf) - 1);
    }
    memcpy(buf, text, strlen(text) + 1);
    struct fault_rule r;
    memset(&r, 0, sizeof(r));
    r.range_end = UINT64_MAX;
    r.before_ns = UINT64_MAX;
    unsigned field = 0;
    char *save = NULL;
    for (char *w = strtok_r(buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        field++;
        int ret = field == 1 ? parse_kind(&r, w, e) : parse_word(&r, w, field, e);
        if (ret < 0) {
            return ret;
        }
    }
    if (field == 0) {
        return err_set(e, 0, 0, "empty fault rule");
    }
    if (r.kind == FAULT_MISDIRECT && r.delta == 0) {
        return err_set(e, 0, 0, "misdirect needs delta=SIZE");
    }
    if (r.after_ns >= r.before_ns) {
        return err_set(e, 0, 0, "fault window is empty (after >= before)");
    }
    TRY(rule_validate_keys(&r, e));
    *out = r;
    return 0;
}

/* Append to a bounded buffer; output past @size is cut, never overflows. */
static void put(char *buf, size_t size, size_t *at, const char *text)
{
    size_t n = strlen(text);
    if (*at + n >= size) {
        n = *at < size - 1 ? size - 1 - *at : 0;
    }
    memcpy(buf + *at, text, n);
    *at += n;
    buf[*at] = '\0';
}

static void put_u64(char *buf, size_t size, size_t *at, const char *key, uint64_t v,
                    const char *unit)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), " %s=%llu%s", key, (unsigned long long)v, unit);
    put(buf, size, at, tmp);
}

void fault_rule_format(const struct fault_rule *r, char *buf, size_t size)
{
    size_t at = 0;
    ASSERT(size > 0);
    buf[0] = '\0';
    put(buf, size, &at, fault_kind_name(r->kind));
    if (r->disk[0]) {
        put(buf, size, &at, fault_kind_is_net(r->kind) ? " host=" : " disk=");
        put(buf, size, &at, r->disk);
    }
    if (r->oneway) {
        put(buf, size, &at, " oneway");
    }
    if (r->range_start != 0 || r->range_end != UINT64_MAX) {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), " range=%llu-%llu", (unsigned long long)r->range_start,
                 (unsigned long long)r->range_end);
        put(buf, size, &at, tmp);
    }
    if (r->after_ns) {
        put_u64(buf, size, &at, "after", r->after_ns, "ns");
    }
    if (r->before_ns != UINT64_MAX) {
        put_u64(buf, size, &at, "before", r->before_ns, "ns");
    }
    if (r->prob_set) {
        /* %.17g round-trips a double, and threshold / 2^64 is the exact
         * double the threshold was made from. */
        char tmp[64];
        double p = r->prob == UINT64_MAX ? 1.0 : (double)r->prob / 18446744073709551616.0;
        snprintf(tmp, sizeof(tmp), " prob=%.17g", p);
        put(buf, size, &at, tmp);
    }
    if (r->nth) {
        put_u64(buf, size, &at, "nth", r->nth, "");
    }
    if (r->times) {
        put_u64(buf, size, &at, "times", r->times, "");
    }
    if (r->sticky) {
        put(buf, size, &at, " sticky");
    }
    if (r->delta) {
        put_u64(buf, size, &at, "delta", r->delta, "");
    }
    if (r->delay_ns) {
        put_u64(buf, size, &at, "delay", r->delay_ns, "ns");
    }
}

void fault_plan_init(struct fault_plan *p)
{
    memset(p, 0, sizeof(*p));
}

void fault_plan_fini(struct fault_plan *p)
{
    mem_free(p->rules, p->cap * sizeof(*p->rules));
    memset(p, 0, sizeof(*p));
}

void fault_plan_add(struct fault_plan *p, const struct fault_rule *r)
{
    fault_rule_check(r);
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 4;
        p->rules = mem_realloc(p->rules, p->cap * sizeof(*p->rules), cap * sizeof(*p->rules));
        p->cap = cap;
    }
    p->rules[p->n++] = *r;
}

int fault_plan_parse_spec(struct fault_plan *p, const char *spec, struct err *e)
{
    const char *start = spec;
    unsigned index = 0;
    for (;;) {
        const char *end = strchr(start, ';');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        char rule_text[512];
        index++;
        if (len >= sizeof(rule_text)) {
            return err_set(e, 0, index, "fault rule %u is too long", index);
        }
        memcpy(rule_text, start, len);
        rule_text[len] = '\0';
        struct fault_rule r;
        struct err sub = { .file = NULL };
        if (fault_rule_parse(rule_text, &r, &sub) < 0) {
            return err_set(e, 0, index, "fault rule %u ('%s'): %s", index, rule_text,
                           sub.msg);
        }
        fault_plan_add(p, &r);
        if (!end) {
            return 0;
        }
        start = end + 1;
    }
}

static bool rule_applies(const struct fault_rule *r, const char *disk, enum fault_io io,
                         uint64_t offset, uint64_t len, uint64_t now_ns)
{
    if (kinds[r->kind].io != io) {
        return false;
    }
    if (r->disk[0] && strcmp(r->disk, disk) != 0) {
        return false;
    }
    if (io != FAULT_IO_FLUSH && !ranges_overlap(offset, len, r->range_start,
                                                r->range_end - r->range_start)) {
        return false;
    }
    return now_ns >= r->after_ns && now_ns < r->before_ns;
}

static bool rule_fires(struct fault_rule *r, struct rng *rng)
{
    if (r->stuck) {
        return true;
    }
    r->matched++;
    if (r->times && r->fired >= r->times) {
        return false;
    }
    bool fire;
    if (r->nth) {
        fire = r->matched % r->nth == 0;
    } else if (r->prob_set) {
        fire = rng_chance(rng, r->prob);
    } else {
        fire = true;
    }
    if (fire) {
        r->fired++;
        r->stuck = r->sticky;
    }
    return fire;
}

struct fault_rule *fault_plan_fire(struct fault_plan *p, struct rng *r, const char *disk,
                                   enum fault_io io, uint64_t offset, uint64_t len,
                                   uint64_t now_ns)
{
    for (size_t i = 0; i < p->n && !p->paused; i++) {
        struct fault_rule *rule = &p->rules[i];
        if (rule_applies(rule, disk, io, offset, len, now_ns) && rule_fires(rule, r)) {
            fault_rule_check(rule);
            return rule;
        }
    }
    return NULL;
}

bool fault_rule_matches_hosts(const struct fault_rule *r, const char *src, const char *dst)
{
    if (!r->disk[0]) {
        return true;
    }
    return strcmp(r->disk, dst) == 0 || (!r->oneway && strcmp(r->disk, src) == 0);
}

struct fault_rule *fault_plan_fire_net(struct fault_plan *p, struct rng *r, unsigned mask,
                                       const char *src, const char *dst, uint64_t now_ns)
{
    for (size_t i = 0; i < p->n && !p->paused; i++) {
        struct fault_rule *rule = &p->rules[i];
        if (!(mask & (1u << rule->kind)) || !fault_rule_matches_hosts(rule, src, dst) ||
            now_ns < rule->after_ns || now_ns >= rule->before_ns) {
            continue;
        }
        if (rule_fires(rule, r)) {
            fault_rule_check(rule);
            return rule;
        }
    }
    return NULL;
}

void fault_rule_check(const struct fault_rule *r)
{
    ASSERT(r->kind < FAULT__COUNT);
    ASSERT(r->range_end > r->range_start);
    ASSERT(r->before_ns > r->after_ns);
    if (r->times && !r->sticky) {
        ASSERT(r->fired <= r->times);
    }
    if (r->kind == FAULT_MISDIRECT) {
        ASSERT(r->delta > 0);
    }
    if (r->kind == FAULT_NET_CLOG) {
        ASSERT(r->delay_ns > 0);
    }
}

uint64_t fault_counts_add(uint64_t *counts, const uint64_t fired[FAULT__COUNT])
{
    uint64_t n = 0;
    for (int k = 0; k < FAULT__COUNT; k++) {
        n += fired[k];
        if (counts) {
            counts[k] += fired[k];
        }
    }
    return n;
}

bool fault_rule_transient(const struct fault_rule *r, uint64_t limit_ns)
{
    switch (r->kind) {
    case FAULT_NET_RESET:
        return r->times > 0;
    case FAULT_NET_CLOG:
        return r->delay_ns <= limit_ns;
    case FAULT_NET_STALL:
    case FAULT_NET_PARTITION:
        return r->before_ns != UINT64_MAX && r->before_ns - r->after_ns <= limit_ns;
    default:
        return true;
    }
}
