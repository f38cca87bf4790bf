/*
 * report: see report.h. Method: both forms read the same fields in the same
 * order; per-kind counters are walked through tables so adding an operation
 * or fault kind adds a row, not code.
 */
#include "report.h"

#include <inttypes.h>
#include <string.h>

#include "../check/check_rw.h"

static const enum trace_kind op_kinds[] = {
    TRACE_READ, TRACE_WRITE, TRACE_FLUSH, TRACE_DISCARD, TRACE_ZERO,
};

int report_exit_status(const struct world_result *r)
{
    if (r->expect_failed) {
        return 1;
    }
    return r->verdict == WORLD_PASS ? 0 : 1;
}

static json_t *hex_json(uint64_t v)
{
    char buf[20];
    snprintf(buf, sizeof(buf), "%016" PRIx64, v);
    return json_string(buf);
}

static uint64_t ops_total(const struct world_result *r)
{
    uint64_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(op_kinds); i++) {
        n += r->ops[op_kinds[i]];
    }
    return n;
}

static json_t *counts_json(const uint64_t *counts)
{
    json_t *o = json_object();
    for (size_t i = 0; i < ARRAY_LEN(op_kinds); i++) {
        json_object_set_new(o, trace_kind_name(op_kinds[i]),
                            json_integer((json_int_t)counts[op_kinds[i]]));
    }
    return o;
}

static json_t *faults_json(const struct world_result *r)
{
    json_t *o = json_object();
    for (int k = 0; k < FAULT__COUNT; k++) {
        json_object_set_new(o, fault_kind_name((enum fault_kind)k),
                            json_integer((json_int_t)r->faults[k]));
    }
    return o;
}

static json_t *bitmaps_json(const struct world_result *r)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < r->n_bitmaps; i++) {
        const struct world_bitmap *b = &r->bitmaps[i];
        json_t *ext = json_array();
        for (size_t k = 0; k < b->n_extents; k++) {
            json_array_append_new(ext, json_pack("[I, I]", (json_int_t)b->extents[k][0],
                                                 (json_int_t)b->extents[k][1]));
        }
        json_array_append_new(a, json_pack("{s:s, s:I, s:s, s:b, s:b, s:I, s:o}", "name",
                                           b->name, "granularity", (json_int_t)b->granularity,
                                           "state", b->state, "persistent", b->persistent,
                                           "recording", b->recording, "dirty_bytes",
                                           (json_int_t)b->count, "extents", ext));
    }
    return a;
}

static json_t *hosts_json(const struct world_result *r)
{
    json_t *hosts = json_array();
    for (unsigned h = 0; h < r->n_hosts; h++) {
        json_array_append_new(hosts, json_pack("{s:s, s:b, s:I, s:I}", "name",
                                               r->hosts[h].name, "up", r->hosts[h].up,
                                               "crashes", (json_int_t)r->hosts[h].crashes,
                                               "downs", (json_int_t)r->hosts[h].downs));
    }
    return hosts;
}

static void quorum_json(const struct world_result *r, json_t *o)
{
    json_object_set_new(o, "quorum", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
                        "judged", (json_int_t)r->quorum_judged,
                        "outvoted", (json_int_t)r->quorum_votes,
                        "repairs", (json_int_t)r->quorum_repairs,
                        "report_bad", (json_int_t)r->quorum_events[0],
                        "failure", (json_int_t)r->quorum_events[1],
                        "child_errors", (json_int_t)r->child_errors));
    json_object_set_new(o, "net", json_pack("{s:I, s:I}", "segments",
                        (json_int_t)r->net_segments, "resets",
                        (json_int_t)r->net_resets));
}

/* The sections a run has only when it used what they describe. */
static void sections_json(const struct world_result *r, json_t *o)
{
    if (r->replication) {
        json_object_set(o, "replication", r->replication);
        json_object_set_new(o, "net", json_pack("{s:I, s:I}", "segments",
                            (json_int_t)r->net_segments, "resets", (json_int_t)r->net_resets));
    }
    if (r->jobs) {
        json_object_set(o, "jobs", r->jobs);
    }
    if (r->job_refusals) {
        json_object_set_new(o, "job_refusals", json_integer((json_int_t)r->job_refusals));
        json_object_set_new(o, "job_refusal", json_string(r->job_refusal));
    }
    if (r->checks) {
        json_object_set(o, "checks", r->checks);
    }
}

json_t *report_json(const struct world_result *r, const struct report_info *info)
{
    json_t *o = json_object();
    sections_json(r, o);
    json_object_set_new(o, "verdict", json_string(r->verdict == WORLD_PASS ? "pass" : "fail"));
    json_object_set_new(o, "expectations", json_string(r->expect_failed ? "failed"
                                                       : r->expects ? "met" : "none"));
    if (r->expect_failed) {
        json_object_set_new(o, "expectation_failure", json_string(r->expect_msg));
    }
    json_object_set_new(o, "trace", json_string(info->trace));
    json_object_set_new(o, "format", json_string(info->format));
    json_object_set_new(o, "seed", json_integer((json_int_t)r->seed));
    json_object_set_new(o, "digest", hex_json(r->digest));
    json_object_set_new(o, "content_hash", hex_json(r->content_hash));
    json_object_set_new(o, "topology", json_string(r->topology));
    json_object_set_new(o, "ops", counts_json(r->ops));
    json_object_set_new(o, "errors", counts_json(r->errors));
    json_object_set_new(o, "ops_total", json_integer((json_int_t)ops_total(r)));
    json_object_set_new(o, "lost_in_crash", json_integer((json_int_t)r->lost));
    json_object_set_new(o, "bytes_read", json_integer((json_int_t)r->bytes_read));
    json_object_set_new(o, "bytes_written", json_integer((json_int_t)r->bytes_written));
    json_object_set_new(o, "serialised", json_integer((json_int_t)r->serialised));
    json_object_set_new(o, "described_reads", json_integer((json_int_t)r->described_reads));
    json_object_set_new(o, "crashes", json_integer((json_int_t)r->crashes));
    json_object_set_new(o, "restarts", json_integer((json_int_t)r->restarts));
    json_object_set_new(o, "hosts", hosts_json(r));
    json_object_set_new(o, "sectors_checked", json_integer((json_int_t)r->sectors_checked));
    json_object_set_new(o, "explained_by_faults", json_integer((json_int_t)r->explained));
    json_object_set_new(o, "faults_fired", faults_json(r));
    json_object_set_new(o, "buggify_fired", json_integer((json_int_t)r->buggified));
    if (strcmp(r->topology, "quorum") == 0) {
        quorum_json(r, o);
    }
    if (r->bitmaps_on) {
        json_object_set_new(o, "bitmap_ops", json_integer((json_int_t)r->ops[TRACE_BITMAP]));
        json_object_set_new(o, "bitmap_ops_refused",
                            json_integer((json_int_t)r->errors[TRACE_BITMAP]));
        if (r->refusal[0]) {
            json_object_set_new(o, "first_refusal", json_string(r->refusal));
        }
        json_object_set_new(o, "bitmaps_lost_in_crash", json_boolean(r->bitmaps_lost));
        json_object_set_new(o, "bitmaps", bitmaps_json(r));
    }
    if (r->ended_early) {
        json_object_set_new(o, "ended_early", json_string(r->note));
    }
    if (info->bytes_check) {
        json_object_set_new(o, "bytes_check", json_string(info->bytes_check[0]
                                                              ? info->bytes_check : "same"));
    }
    json_object_set_new(o, "sim_time_ns", json_integer((json_int_t)r->sim_ns));
    json_object_set_new(o, "events", json_integer((json_int_t)r->events));
    if (r->verdict == WORLD_FAIL) {
        json_object_set_new(o, "violation", check_violation_json(&r->first));
        if (info->repro) {
            json_object_set_new(o, "reproduce", json_string(info->repro));
        }
    }
    if (info->has_wall) {
        json_t *wall = json_object();
        double secs = info->wall_seconds > 0 ? info->wall_seconds : 1e-9;
        json_object_set_new(wall, "seconds", json_real(info->wall_seconds));
        json_object_set_new(wall, "ops_per_sec", json_real((double)ops_total(r) / secs));
        json_object_set_new(o, "wall", wall);
    }
    return o;
}

static void text_violation(const struct violation *v, FILE *out)
{
    fprintf(out, "  violation   %s\n", v->property);
    fprintf(out, "              %s\n", v->msg);
    fprintf(out, "              at guest operation #%" PRIu64 ", trace line %u, virtual "
            "time %" PRIu64 " ns\n", v->op_index, v->line, v->time_ns);
}

/* One line per bitmap: its state and the first few dirty extents. */
static void text_bitmaps(const struct world_result *r, FILE *out)
{
    fprintf(out, "  bitmaps     %" PRIu64 " operation(s), %" PRIu64 " refused%s\n",
            r->ops[TRACE_BITMAP], r->errors[TRACE_BITMAP],
            r->bitmaps_lost ? "; the host crashed and did not restart: bitmaps lost" : "");
    if (r->refusal[0]) {
        fprintf(out, "              first refused: %s\n", r->refusal);
    }
    for (unsigned i = 0; i < r->n_bitmaps; i++) {
        const struct world_bitmap *b = &r->bitmaps[i];
        fprintf(out, "              %s: %s%s, granularity %" PRIu64 ", %" PRIu64 " dirty bytes "
                "in %zu extent(s)", b->name, b->state, b->persistent ? ", persistent" : "",
                b->granularity, b->count, b->n_extents);
        for (size_t k = 0; k < b->n_extents && k < 4; k++) {
            fprintf(out, "%s%" PRIu64 "+%" PRIu64, k ? " " : ": ", b->extents[k][0],
                    b->extents[k][1]);
        }
        fprintf(out, "%s\n", b->n_extents > 4 ? " ..." : "");
    }
}

static const char *stage_of(const json_t *rep, const char *host)
{
    const char *s = json_string_value(json_object_get(json_object_get(rep, host), "stage"));
    return s ? s : "none (no node)";
}

/* colo: each host's stage, the checkpoints and failovers. */
static void text_replication(const struct world_result *r, FILE *out)
{
    const json_t *rep = r->replication;
    if (!rep) {
        return;
    }
    fprintf(out, "  replication %s: primary %s, secondary %s; %" JSON_INTEGER_FORMAT
            " checkpoint(s), %" JSON_INTEGER_FORMAT " refused, %" JSON_INTEGER_FORMAT
            " failover(s); %zu operation(s) in the history\n",
            json_string_value(json_object_get(rep, "variant")), stage_of(rep, "primary"),
            stage_of(rep, "secondary"), json_integer_value(json_object_get(rep, "checkpoints")),
            json_integer_value(json_object_get(rep, "checkpoints_refused")),
            json_integer_value(json_object_get(rep, "failovers")),
            json_array_size(json_object_get(rep, "history")));
}

/* One line per job: its end state, progress and error. */
static void text_jobs(const struct world_result *r, FILE *out)
{
    size_t n = json_array_size(r->jobs);
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_array_get(r->jobs, i);
        json_t *err = json_object_get(j, "error");
        fprintf(out, "  %-11s %s %s (line %d): %s, %" JSON_INTEGER_FORMAT " of %"
                JSON_INTEGER_FORMAT " bytes, %zu event(s)%s%s\n", i ? "" : "jobs",
                json_string_value(json_object_get(j, "type")),
                json_string_value(json_object_get(j, "id")),
                (int)json_integer_value(json_object_get(j, "line")),
                json_string_value(json_object_get(j, "status")),
                json_integer_value(json_object_get(j, "offset")),
                json_integer_value(json_object_get(j, "len")),
                json_array_size(json_object_get(j, "events")), json_is_string(err) ? ": " : "",
                json_is_string(err) ? json_string_value(err) : "");
    }
    if (r->job_refusals) {
        fprintf(out, "              %" PRIu64 " job command(s) refused; first: %s\n",
                r->job_refusals, r->job_refusal);
    }
}

static void text_hosts(const struct world_result *r, FILE *out)
{
    fprintf(out, "  host        %" PRIu64 " crash(es), %" PRIu64 " restart(s), %" PRIu64
            " operations waited for an overlapping one\n", r->crashes, r->restarts,
            r->serialised);
    if (r->n_hosts <= 1) {
        return;
    }
    fprintf(out, "  hosts      ");
    for (unsigned h = 0; h < r->n_hosts; h++) {
        fprintf(out, "%s %s (%s, %" PRIu64 " crash(es), %" PRIu64 " down)", h ? "," : "",
                r->hosts[h].name, r->hosts[h].up ? "up" : "down", r->hosts[h].crashes,
                r->hosts[h].downs);
    }
    fputc('\n', out);
}

static void text_faults(const struct world_result *r, FILE *out)
{
    fprintf(out, "  faults      ");
    unsigned shown = 0;
    for (int k = 0; k < FAULT__COUNT; k++) {
        if (r->faults[k]) {
            fprintf(out, "%s%s %" PRIu64, shown++ ? ", " : "",
                    fault_kind_name((enum fault_kind)k), r->faults[k]);
        }
    }
    fprintf(out, "%s", shown ? "" : "none fired");
    if (r->buggified) {
        fprintf(out, "; BUGGIFY points fired %" PRIu64 " times", r->buggified);
    }
    fprintf(out, "\n");
}

void report_text(const struct world_result *r, const struct report_info *info, FILE *out)
{
    fprintf(out, "blocksim replay: %s (%s, %s topology)\n", info->trace, info->format,
            r->topology);
    fprintf(out, "  verdict     %s%s\n", r->verdict == WORLD_PASS ? "PASS" : "FAIL",
            r->expect_failed ? " (expectation FAILED)" : "");
    if (r->expect_failed) {
        fprintf(out, "              %s\n", r->expect_msg);
    }
    if (r->verdict == WORLD_FAIL) {
        text_violation(&r->first, out);
    }
    if (r->ended_early) {
        fprintf(out, "  ended early %s\n", r->note);
    }
    fprintf(out, "  seed        %" PRIu64 "   digest %016" PRIx64 "   content %016" PRIx64
            "\n", r->seed, r->digest, r->content_hash);
    fprintf(out, "  operations  %" PRIu64 " (", ops_total(r));
    for (size_t i = 0; i < ARRAY_LEN(op_kinds); i++) {
        enum trace_kind k = op_kinds[i];
        fprintf(out, "%s%s %" PRIu64, i ? ", " : "", trace_kind_name(k), r->ops[k]);
        if (r->errors[k]) {
            fprintf(out, " [%" PRIu64 " failed]", r->errors[k]);
        }
    }
    fprintf(out, "), %" PRIu64 " lost in crashes\n", r->lost);
    fprintf(out, "  data        %" PRIu64 " bytes read, %" PRIu64 " written, %" PRIu64
            " sectors checked, %" PRIu64 " wrong values explained by injected faults\n",
            r->bytes_read, r->bytes_written, r->sectors_checked, r->explained);
    text_hosts(r, out);
    text_replication(r, out);
    text_jobs(r, out);
    text_faults(r, out);
    if (r->bitmaps_on) {
        text_bitmaps(r, out);
    }
    if (strcmp(r->topology, "quorum") == 0) {
        fprintf(out, "  quorum      %" PRIu64 " requests judged, %" PRIu64 " reads outvoted a "
                "child, %" PRIu64 " repairs, %" PRIu64 " REPORT_BAD, %" PRIu64 " FAILURE, %"
                PRIu64 " child requests failed\n", r->quorum_judged, r->quorum_votes,
                r->quorum_repairs, r->quorum_events[0], r->quorum_events[1], r->child_errors);
    }
    if (r->net_segments) {
        fprintf(out, "  network     %" PRIu64 " segments, %" PRIu64 " connections reset\n",
                r->net_segments, r->net_resets);
    }
    fprintf(out, "  time        %.6f s virtual, %" PRIu64 " events", (double)r->sim_ns / 1e9,
            r->events);
    if (info->has_wall) {
        double secs = info->wall_seconds > 0 ? info->wall_seconds : 1e-9;
        fprintf(out, "; %.3f s wall, %.0f ops/s", info->wall_seconds,
                (double)ops_total(r) / secs);
    }
    fprintf(out, "\n");
    if (info->bytes_check) {
        fprintf(out, "  bytes-check %s\n", info->bytes_check[0] ? info->bytes_check
                                                              : "the same run with every byte "
                                                                "carried (--bytes)");
    }
    if (r->verdict == WORLD_FAIL && info->repro) {
        fprintf(out, "  reproduce   %s\n", info->repro);
    }
}
