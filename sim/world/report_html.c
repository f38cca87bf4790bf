/*
 * report_html: see report_html.h.
 *
 * Method: the page is written in one pass: a header with the verdict, the
 *   violation (its writers' trace lines found among the logged operations:
 *   write #N is the operation of index N), one SVG lane a host on a common
 *   time axis, an SVG disk map of 64 x 32 cells, and the trace with one
 *   anchor a line.
 */
#include "report_html.h"

#include <inttypes.h>
#include <string.h>

#include "../base/content.h"
#include "../check/check_rw.h"

#define LANE_W 1100.0
#define LANE_H 70.0
#define MAP_COLS 64u
#define MAP_ROWS 32u

void html_log_init(struct html_log *l)
{
    memset(l, 0, sizeof(*l));
}

void html_log_fini(struct html_log *l)
{
    mem_free(l->ev, l->cap * sizeof(*l->ev));
}

void html_log_event(void *opaque, const struct world_event *ev)
{
    struct html_log *l = opaque;
    if (l->n == HTML_EVENTS_MAX) {
        l->dropped++;
        return;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        l->ev = mem_realloc(l->ev, l->cap * sizeof(*l->ev), cap * sizeof(*l->ev));
        l->cap = cap;
    }
    struct html_event *e = &l->ev[l->n++];
    e->ev = *ev;
    snprintf(e->text, sizeof(e->text), "%s", ev->text ? ev->text : "");
    e->ev.text = NULL;
}

/* @s HTML-escaped. */
static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* The trace line of guest operation @index, or 0. */
static unsigned op_line(const struct html_log *l, uint64_t index)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->ev[i].ev.kind == WORLD_EV_OP && l->ev[i].ev.index == index) {
            return l->ev[i].ev.line;
        }
    }
    return 0;
}

/* A tag as words, linked to its writer's trace line when it has one. */
static void tag_link(FILE *f, const struct html_log *l, uint64_t tag)
{
    char name[48];
    check_tag_name(tag, name, sizeof(name));
    unsigned line = tag != CONTENT_TAG_ZERO && tag < CONTENT_TAG_SPECIAL
                        ? op_line(l, content_tag_op(tag)) : 0;
    if (line) {
        fprintf(f, "<a href=\"#L%u\">", line);
        esc(f, name);
        fprintf(f, " (trace line %u)</a>", line);
    } else {
        esc(f, name);
    }
}

static void violation_html(FILE *f, const struct world_result *r, const struct html_log *l)
{
    const struct violation *v = &r->first;
    fprintf(f, "<section id=\"violation\" class=\"violation\"><h2>First violation: ");
    esc(f, v->property);
    fprintf(f, "</h2><p class=\"msg\">");
    esc(f, v->msg);
    fprintf(f, "</p><p>At ");
    if (v->line) {
        fprintf(f, "<a href=\"#L%u\">trace line %u</a>, ", v->line, v->line);
    }
    fprintf(f, "virtual time %" PRIu64 " ns, sector %" PRIu64 ".</p>", v->time_ns, v->sector);
    if (v->n_expected) {
        fprintf(f, "<p>Expected: ");
        for (unsigned i = 0; i < v->n_expected; i++) {
            fprintf(f, "%s", i ? " or " : "");
            tag_link(f, l, v->expected[i]);
        }
        fprintf(f, ". Read: <span class=\"actual\">");
        tag_link(f, l, v->actual);
        fprintf(f, "</span>.</p>");
    }
    fprintf(f, "</section>\n");
}

static const char *op_color(const struct world_event *e)
{
    if (e->ret < 0) {
        return "#e8590c";
    }
    switch (e->rec) {
    case TRACE_READ: return "#1c7ed6";
    case TRACE_WRITE: return "#2f9e44";
    case TRACE_FLUSH: return "#868e96";
    default: return "#ae3ec9";
    }
}

static const char *control_color(enum trace_kind k)
{
    switch (k) {
    case TRACE_CRASH: return "#e03131";
    case TRACE_RESTART: return "#37b24d";
    case TRACE_SHUTDOWN: return "#495057";
    case TRACE_COLO:
    case TRACE_REPLICATION: return "#7048e8";
    default: return "#1098ad";
    }
}

/* The time axis is ordinal: each distinct moment of the run gets an equal
 * share of the width, so a long wait does not squash the rest. */
struct axis {
    uint64_t *t; /* distinct moments, ascending */
    size_t n;
};

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* @a->t is sized 2 * l->n + 1 (freed with that size). */
static void axis_build(struct axis *a, const struct html_log *l, uint64_t extra)
{
    a->t = mem_alloc((2 * l->n + 1) * sizeof(*a->t));
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        a->t[n++] = l->ev[i].ev.t_ns;
        if (l->ev[i].ev.kind == WORLD_EV_OP) {
            a->t[n++] = l->ev[i].ev.t_start_ns;
        }
    }
    a->t[n++] = extra;
    qsort(a->t, n, sizeof(*a->t), u64_cmp);
    a->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (a->n == 0 || a->t[a->n - 1] != a->t[i]) {
            a->t[a->n++] = a->t[i];
        }
    }
}

static double axis_x(const struct axis *a, uint64_t t)
{
    size_t lo = 0;
    size_t hi = a->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a->t[mid] < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return a->n > 1 ? LANE_W * (double)lo / (double)(a->n - 1) : 0;
}

static void lane_event(FILE *f, const struct html_event *h, const struct axis *ax, double y)
{
    const struct world_event *e = &h->ev;
    double x = axis_x(ax, e->t_ns);
    if (e->kind == WORLD_EV_OP) {
        double x0 = axis_x(ax, e->t_start_ns);
        double w = x - x0 < 1.5 ? 1.5 : x - x0;
        double row = e->rec == TRACE_READ ? 8 : e->rec == TRACE_WRITE ? 22 : 36;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"10\" fill=\"%s\">"
                "<title>line %u: %s %" PRIu64 "+%" PRIu64 " (op #%" PRIu64 "), %" PRIu64
                "..%" PRIu64 " ns%s</title></rect>", x0, y + row, w, op_color(e), e->line,
                trace_kind_name(e->rec), e->offset, e->len, e->index, e->t_start_ns, e->t_ns,
                e->ret < 0 ? ": failed" : "");
        return;
    }
    const char *color = e->kind == WORLD_EV_FAULT ? "#c92a2a"
                        : e->kind == WORLD_EV_JOB ? "#0b7285" : control_color(e->rec);
    if (e->kind == WORLD_EV_FAULT) {
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>", x,
                y + LANE_H - 12, color);
        fprintf(f, "%" PRIu64 " fault(s) fired: ", e->index);
    } else {
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"2\"><title>line %u: %s ", x, x, y + 2, y + LANE_H - 4, color,
                e->line, e->kind == WORLD_EV_JOB ? "job" : trace_kind_name(e->rec));
    }
    esc(f, h->text);
    fprintf(f, "</title></%s>", e->kind == WORLD_EV_FAULT ? "circle" : "line");
}

static void timeline_html(FILE *f, const struct world_result *r, const struct html_log *l)
{
    uint64_t end = 1;
    for (size_t i = 0; i < l->n; i++) {
        end = l->ev[i].ev.t_ns > end ? l->ev[i].ev.t_ns : end;
    }
    struct axis ax;
    axis_build(&ax, l, r->verdict == WORLD_FAIL ? r->first.time_ns : end);
    unsigned hosts = r->n_hosts ? r->n_hosts : 1;
    fprintf(f, "<section><h2>Timeline</h2><p class=\"legend\"><b style=\"color:#1c7ed6\">"
            "reads</b> <b style=\"color:#2f9e44\">writes</b> <b style=\"color:#868e96\">flushes"
            "</b> <b style=\"color:#e8590c\">failed</b> <b style=\"color:#e03131\">crash</b> "
            "<b style=\"color:#37b24d\">restart</b> <b style=\"color:#7048e8\">replication</b> "
            "<b style=\"color:#0b7285\">job</b> <b style=\"color:#c92a2a\">&#9679; faults</b>; "
            "0 to %" PRIu64 " ns of virtual time, each moment an equal step (hover for "
            "times and trace lines)%s</p>\n", end,
            l->dropped ? " (later events dropped)" : "");
    fprintf(f, "<svg id=\"timeline\" width=\"%.0f\" height=\"%.0f\" "
            "xmlns=\"http://www.w3.org/2000/svg\">", LANE_W + 120, hosts * (LANE_H + 10));
    for (unsigned h = 0; h < hosts; h++) {
        double y = h * (LANE_H + 10);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" class=\"host\">", LANE_W + 8, y + 30);
        esc(f, r->n_hosts ? r->hosts[h].name : "guest");
        fprintf(f, "</text><rect x=\"0\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" "
                "fill=\"#f8f9fa\" stroke=\"#dee2e6\"/>", y, LANE_W, LANE_H);
        for (size_t i = 0; i < l->n; i++) {
            if (l->ev[i].ev.host == h) {
                lane_event(f, &l->ev[i], &ax, y);
            }
        }
    }
    if (r->verdict == WORLD_FAIL) {
        double x = axis_x(&ax, r->first.time_ns);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"0\" y2=\"%.0f\" stroke=\"#f03e3e\" "
                "stroke-dasharray=\"4 3\" stroke-width=\"2\"><title>the first violation"
                "</title></line>", x, x, hosts * (LANE_H + 10));
    }
    fprintf(f, "</svg></section>\n");
    mem_free(ax.t, (2 * l->n + 1) * sizeof(*ax.t));
}

/* The guest disk as MAP_COLS x MAP_ROWS cells: written (by the primary
 * guest), read wrong (the violation's sector and the read around it). */
static void map_html(FILE *f, const struct trace *t, const struct world_result *r,
                     const struct html_log *l)
{
    uint64_t size = world_trace_size(t);
    uint64_t cells = MAP_COLS * MAP_ROWS;
    uint64_t per = (size + cells - 1) / cells;
    uint8_t state[MAP_COLS * MAP_ROWS] = { 0 }; /* 1 written, 2 read, 3 wrong */
    for (size_t i = 0; i < l->n; i++) {
        const struct world_event *e = &l->ev[i].ev;
        if (e->kind != WORLD_EV_OP || e->host != 0 || e->rec == TRACE_FLUSH || !per) {
            continue;
        }
        for (uint64_t c = e->offset / per; c <= (e->offset + e->len - 1) / per && c < cells;
             c++) {
            uint8_t s = e->rec == TRACE_READ ? 2 : 1;
            state[c] = state[c] > s ? state[c] : s;
        }
    }
    if (r->verdict == WORLD_FAIL && per && r->first.sector * 512 / per < cells) {
        state[r->first.sector * 512 / per] = 3;
    }
    static const char *const fill[] = { "#f1f3f5", "#b2f2bb", "#a5d8ff", "#fa5252" };
    fprintf(f, "<section><h2>Disk map</h2><p class=\"legend\">%" PRIu64 " bytes a cell: "
            "<b style=\"color:#2f9e44\">written</b>, <b style=\"color:#1c7ed6\">read</b>, "
            "<b style=\"color:#fa5252\">where the wrong value was read</b></p>", per);
    fprintf(f, "<svg id=\"diskmap\" width=\"%u\" height=\"%u\" "
            "xmlns=\"http://www.w3.org/2000/svg\">", MAP_COLS * 14, MAP_ROWS * 14);
    for (uint64_t c = 0; c < cells; c++) {
        fprintf(f, "<rect x=\"%" PRIu64 "\" y=\"%" PRIu64 "\" width=\"13\" height=\"13\" "
                "fill=\"%s\"%s><title>bytes %" PRIu64 "..%" PRIu64 "</title></rect>",
                (c % MAP_COLS) * 14, (c / MAP_COLS) * 14, fill[state[c]],
                state[c] == 3 ? " class=\"wrong\"" : "", c * per, (c + 1) * per - 1);
    }
    fprintf(f, "</svg></section>\n");
}

static void trace_html(FILE *f, const struct trace *t, unsigned bad_line)
{
    size_t len;
    char *text = trace_print_string(t, false, &len);
    fprintf(f, "<section><h2>Trace</h2><pre class=\"trace\">");
    unsigned line = 1;
    for (char *p = text; p < text + len; line++) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        char buf[4096];
        snprintf(buf, sizeof(buf), "%.*s", (int)(n < sizeof(buf) - 1 ? n : sizeof(buf) - 1),
                 p);
        fprintf(f, "<span id=\"L%u\"%s><i>%5u</i> ", line,
                line == bad_line ? " class=\"bad\"" : "", line);
        esc(f, buf);
        fprintf(f, "</span>\n");
        p += n + (nl != NULL);
    }
    fprintf(f, "</pre></section>\n");
    free(text);
}

int report_html_write(FILE *f, const char *title, const struct trace *t,
                      const struct world_result *r, const struct html_log *l)
{
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            "blocksim: ");
    esc(f, title);
    fprintf(f, "</title><style>body{font:14px sans-serif;margin:20px;color:#212529}"
            "h1{font-size:20px}h2{font-size:16px;margin-top:24px}.verdict{padding:6px 12px;"
            "border-radius:4px;color:#fff;font-weight:bold}.pass{background:#2f9e44}"
            ".fail{background:#e03131}.violation{border:2px solid #e03131;background:#fff5f5;"
            "padding:8px 14px;border-radius:6px}.msg{font-family:monospace}.actual{color:"
            "#c92a2a;font-weight:bold}.host{font:12px monospace}.legend b{margin-right:8px}"
            "pre.trace{background:#f8f9fa;padding:8px;font-size:12px}pre.trace i{color:#adb5bd;"
            "font-style:normal}pre.trace .bad{background:#ffc9c9;display:inline-block;"
            "width:100%%}</style></head><body>\n<h1>");
    esc(f, title);
    fprintf(f, " <span id=\"verdict\" class=\"verdict %s\">%s</span></h1>\n",
            r->verdict == WORLD_PASS ? "pass" : "fail",
            r->verdict == WORLD_PASS ? "PASS" : "FAIL");
    fprintf(f, "<p>Topology %s, seed %" PRIu64 ", %" PRIu64 " crash(es), virtual time %" PRIu64
            " ns.</p>\n", r->topology, r->seed, r->crashes, r->sim_ns);
    if (r->verdict == WORLD_FAIL) {
        violation_html(f, r, l);
    }
    timeline_html(f, r, l);
    map_html(f, t, r, l);
    trace_html(f, t, r->verdict == WORLD_FAIL ? r->first.line : 0);
    fprintf(f, "</body></html>\n");
    return ferror(f) ? -1 : 0;
}
