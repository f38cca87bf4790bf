/*
 * cmd_campaign: campaign results as JSON lines (check --jsonl, explore
 *   --jsonl), `blocksim campaign merge` into a failure database, and
 *   `blocksim campaign replay` of it.
 *
 * Results file: one JSON object a line, appended and flushed to disk as
 *   each is known, so a campaign killed mid-way loses no failure it found:
 *     {"type":"batch", "command", "property", "seed", "shard":[I,N],
 *      "trials", "passed", "seconds"}
 *     {"type":"failure", "command", "property", "seed", "shard", "trial",
 *      "kind", "violation", "repro", "digest", "mutants", "reproduce",
 *      "trace"}
 *   `kind` is the violation's property (what the checker named), `digest`
 *   the XXH3 of the shrunk trace's records (comments left out), `trace` its
 *   text: the database needs nothing else.
 * Database: a directory with index.json (the summary and one entry a
 *   distinct failure: property, kind and digest; the fastest-failing seed
 *   first) and one trace file a failure, named PROPERTY-DIGEST.trace.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "../sim/world/report_html.h"
#include "../sim/world/world.h"
#include "cli.h"

FILE *cli_jsonl_open(const char *cmd, const char *path)
{
    if (cli_out_file_check(cmd, "--jsonl", path) != 0) {
        return NULL;
    }
    FILE *f = fopen(path, "a");
    if (!f) {
        cli_error(cmd, "--jsonl %s: %s", path, strerror(errno));
    }
    return f;
}

/* Append @o (consumed) as one line and make it durable before going on. */
int cli_jsonl_put(FILE *f, json_t *o)
{
    int ret = json_dumpf(o, f, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (ret < 0 || fputc('\n', f) == EOF || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        return -1;
    }
    return 0;
}

uint64_t cli_trace_digest(const char *text, size_t len)
{
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) + 1 : len - at;
        if (text[at] != '#') { /* comments name seeds and trials: not the scenario */
            XXH3_64bits_update(h, text + at, n);
        }
        at += n;
    }
    uint64_t d = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return d;
}

json_t *cli_failure_json(const char *command, const char *property, const char *message,
                         const char *trace, size_t len)
{
    char digest[17];
    snprintf(digest, sizeof(digest), "%016" PRIx64, cli_trace_digest(trace, len));
    size_t kind = strcspn(message, ":");
    json_t *o = json_pack("{s:s, s:s, s:s, s:s#, s:s, s:s}", "type", "failure", "command",
                          command, "property", property, "kind", message, (int)kind,
                          "violation", message, "digest", digest);
    json_object_set_new(o, "trace", json_stringn(trace, len));
    return o;
}

/* ---- merge ---- */

struct merged {
    json_t *props;    /* property -> {trials, passed, seconds, failures} */
    json_t *failures; /* signature -> the fastest-failing failure line (+ occurrences) */
};

static void add_batch(struct merged *m, const json_t *o)
{
    const char *p = json_string_value(json_object_get(o, "property"));
    json_t *s = json_object_get(m->props, p);
    if (!s) {
        s = json_pack("{s:I, s:I, s:f, s:I}", "trials", (json_int_t)0, "passed", (json_int_t)0,
                      "seconds", 0.0, "failures", (json_int_t)0);
        json_object_set_new(m->props, p, s);
    }
    static const char *const keys[] = { "trials", "passed" };
    for (unsigned k = 0; k < 2; k++) {
        json_object_set_new(s, keys[k], json_integer(
            json_integer_value(json_object_get(s, keys[k])) +
            json_integer_value(json_object_get(o, keys[k]))));
    }
    json_object_set_new(s, "seconds", json_real(json_number_value(json_object_get(s,
        "seconds")) + json_number_value(json_object_get(o, "seconds"))));
}

static void add_failure(struct merged *m, json_t *o)
{
    char sig[256];
    snprintf(sig, sizeof(sig), "%s|%s|%s", json_string_value(json_object_get(o, "property")),
             json_string_value(json_object_get(o, "kind")),
             json_string_value(json_object_get(o, "digest")));
    json_t *old = json_object_get(m->failures, sig);
    json_int_t seen = old ? json_integer_value(json_object_get(old, "occurrences")) : 0;
    json_int_t t_old = old ? json_integer_value(json_object_get(old, "trial")) : 0;
    if (!old || json_integer_value(json_object_get(o, "trial")) < t_old) {
        json_object_set(m->failures, sig, o); /* the fastest-failing seed first */
        old = o;
    }
    json_object_set_new(old, "occurrences", json_integer(seen + 1));
    json_t *s = json_object_get(m->props, json_string_value(json_object_get(o, "property")));
    if (s) {
        json_object_set_new(s, "failures", json_integer(
            json_integer_value(json_object_get(s, "failures")) + 1));
    }
}

static int merge_file(struct merged *m, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_error("campaign", "%s: %s", path, strerror(errno));
        return CLI_USAGE;
    }
    char *line = NULL;
    size_t cap = 0;
    unsigned no = 0;
    int ret = 0;
    while (ret == 0 && getline(&line, &cap, f) > 0) {
        no++;
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        const char *type = json_string_value(json_object_get(o, "type"));
        bool batch = type && strcmp(type, "batch") == 0;
        bool fail = type && strcmp(type, "failure") == 0;
        if (!o || !(batch || fail) || !json_is_string(json_object_get(o, "property")) ||
            (fail && (!json_is_string(json_object_get(o, "trace")) ||
                      !json_is_string(json_object_get(o, "digest"))))) {
            cli_error("campaign", "%s:%u: not a blocksim results line (%s)", path, no,
                      o ? "missing fields" : je.text);
            ret = CLI_USAGE;
        } else if (batch) {
            add_batch(m, o);
        } else {
            add_failure(m, o);
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    return ret;
}

static int merge_arg(struct merged *m, const char *arg)
{
    struct stat st;
    if (stat(arg, &st) != 0) {
        cli_error("campaign", "%s: %s", arg, strerror(errno));
        return CLI_USAGE;
    }
    if (!S_ISDIR(st.st_mode)) {
        return merge_file(m, arg);
    }
    struct dirent **names;
    int n = scandir(arg, &names, NULL, alphasort);
    int ret = n < 0 ? CLI_USAGE : 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]->d_name);
        if (ret == 0 && len > 6 && strcmp(names[i]->d_name + len - 6, ".jsonl") == 0) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", arg, names[i]->d_name);
            ret = merge_file(m, path);
        }
        free(names[i]);
    }
    free(names);
    return ret;
}

/* Copy the file at @path (a fuzz input) into @f. */
static int copy_into(FILE *f, const char *path)
{
    FILE *in = fopen(path, "rb");
    if (!in) {
        return -1;
    }
    char buf[65536];
    size_t n;
    int ret = 0;
    while (ret == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0) {
        ret = fwrite(buf, 1, n, f) == n ? 0 : -1;
    }
    ret = ferror(in) ? -1 : ret;
    fclose(in);
    return ret;
}

/* The page that explains stored failure @file (a trace) next to it, as
 * FILE.html: the trace replayed with its events logged. */
static int failure_page(const char *db, const char *file, const char *text)
{
    struct trace t;
    struct err e = { .file = file };
    if (trace_parse(&t, text, strlen(text), &e) < 0) {
        return -1;
    }
    struct html_log log;
    html_log_init(&log);
    struct world_opts o = { .on_event = html_log_event, .event_opaque = &log };
    struct world_result r;
    int ran = world_run(&t, &o, &r, &e);
    char path[4800];
    snprintf(path, sizeof(path), "%s/%s.html", db, file);
    FILE *f = ran < 0 ? NULL : fopen(path, "w");
    int ret = f && report_html_write(f, file, &t, &r, &log) == 0 ? 0 : -1;
    ret = f && fclose(f) != 0 ? -1 : ret;
    if (ran >= 0) {
        world_result_fini(&r);
    }
    html_log_fini(&log);
    trace_fini(&t);
    return ret;
}

/* DB/index.html: every failure, linked to its page and its trace. */
static int index_page(const char *db, const json_t *list)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/index.html", db);
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            "blocksim failure database</title><style>body{font:14px sans-serif;margin:20px}"
            "td,th{padding:4px 10px;text-align:left;border-bottom:1px solid #dee2e6}"
            "</style></head><body><h1>blocksim failure database</h1><table id=\"failures\">"
            "<tr><th>property</th><th>violation</th><th>seen</th><th>first</th><th>page</th>"
            "</tr>\n");
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *e = json_array_get(list, i);
        const char *file = json_string_value(json_object_get(e, "file"));
        bool trace = !json_object_get(e, "input");
        fprintf(f, "<tr><td>%s</td><td>%s</td><td>%" JSON_INTEGER_FORMAT "</td><td>seed %"
                JSON_INTEGER_FORMAT ", trial %" JSON_INTEGER_FORMAT "</td><td>",
                json_string_value(json_object_get(e, "property")),
                json_string_value(json_object_get(e, "kind")),
                json_integer_value(json_object_get(e, "occurrences")),
                json_integer_value(json_object_get(e, "seed")),
                json_integer_value(json_object_get(e, "trial")));
        if (trace) {
            fprintf(f, "<a href=\"%s.html\">picture</a> ", file);
        }
        fprintf(f, "<a href=\"%s\">%s</a></td></tr>\n", file, trace ? "trace" : "input");
    }
    fprintf(f, "</table></body></html>\n");
    return fclose(f) != 0 ? -1 : 0;
}

/* Write each distinct failure's trace (or fuzz input) and index.json into
 * @db. */
static int db_write(const struct merged *m, const char *db)
{
    if (mkdir(db, 0777) != 0 && errno != EEXIST) {
        cli_error("campaign", "--db %s: %s", db, strerror(errno));
        return CLI_USAGE;
    }
    json_t *list = json_array();
    const char *sig;
    json_t *o;
    json_object_foreach(m->failures, sig, o) {
        char file[600];
        char path[4800];
        const char *input = json_string_value(json_object_get(o, "input"));
        snprintf(file, sizeof(file), "%s-%s.%s",
                 json_string_value(json_object_get(o, "property")),
                 json_string_value(json_object_get(o, "digest")), input ? "input" : "trace");
        snprintf(path, sizeof(path), "%s/%s", db, file);
        FILE *f = fopen(path, "w");
        const char *text = json_string_value(json_object_get(o, "trace"));
        if (!f || (input ? copy_into(f, input) : fputs(text, f)) < 0 || fclose(f) != 0) {
            cli_error("campaign", "%s: %s", path, strerror(errno));
            json_decref(list);
            return CLI_USAGE;
        }
        json_t *e = json_deep_copy(o);
        json_object_del(e, "trace");
        json_object_set_new(e, "file", json_string(file));
        char cmd[4900];
        const char *target = json_string_value(json_object_get(o, "target"));
        snprintf(cmd, sizeof(cmd), "%s %s", input ? (target ? target : "fuzz_TARGET_standalone")
                                                  : "blocksim replay", path);
        json_object_set_new(e, "reproduce", json_string(cmd)); /* a fuzz input: its target */
        if (!input && failure_page(db, file, text) < 0) {
            fprintf(stderr, "blocksim campaign: %s: no page (the trace does not replay)\n",
                    file);
        }
        json_array_append_new(list, e);
    }
    if (index_page(db, list) < 0) {
        cli_error("campaign", "%s/index.html: cannot write", db);
        json_decref(list);
        return CLI_USAGE;
    }
    json_t *index = json_pack("{s:O, s:o}", "properties", m->props, "failures", list);
    char path[4200];
    snprintf(path, sizeof(path), "%s/index.json", db);
    int ret = json_dump_file(index, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(index);
    if (ret != 0) {
        cli_error("campaign", "%s: cannot write", path);
        return CLI_USAGE;
    }
    return 0;
}

static void merge_print(const struct merged *m, const char *db)
{
    const char *p;
    json_t *s;
    json_object_foreach(m->props, p, s) {
        double secs = json_number_value(json_object_get(s, "seconds"));
        json_int_t trials = json_integer_value(json_object_get(s, "trials"));
        printf("%-20s %10" JSON_INTEGER_FORMAT " trials %9.2f s %9.0f trials/s %4"
               JSON_INTEGER_FORMAT " failure(s)\n", p, trials, secs,
               secs > 0 ? (double)trials / secs : 0.0,
               json_integer_value(json_object_get(s, "failures")));
    }
    const char *sig;
    json_t *o;
    json_object_foreach(m->failures, sig, o) {
        bool input = json_object_get(o, "input") != NULL;
        const char *target = json_string_value(json_object_get(o, "target"));
        printf("failure %s (%s), %" JSON_INTEGER_FORMAT " time(s), first at seed %"
               JSON_INTEGER_FORMAT " trial %" JSON_INTEGER_FORMAT ":\n  %s\n  reproduce: "
               "%s %s/%s-%s.%s\n",
               json_string_value(json_object_get(o, "property")),
               json_string_value(json_object_get(o, "kind")),
               json_integer_value(json_object_get(o, "occurrences")),
               json_integer_value(json_object_get(o, "seed")),
               json_integer_value(json_object_get(o, "trial")),
               json_string_value(json_object_get(o, "violation")),
               input ? (target ? target : "fuzz_TARGET_standalone") : "blocksim replay", db,
               json_string_value(json_object_get(o, "property")),
               json_string_value(json_object_get(o, "digest")), input ? "input" : "trace");
    }
    printf("campaign: %zu propert%s, %zu distinct failure(s); database %s\n",
           json_object_size(m->props), json_object_size(m->props) == 1 ? "y" : "ies",
           json_object_size(m->failures), db);
}

static int campaign_merge(int argc, char **argv)
{
    const char *db = NULL;
    int first = 2;
    int last = argc;
    if (argc >= 4 && strcmp(argv[argc - 2], "--db") == 0) {
        db = argv[argc - 1];
        last = argc - 2;
    }
    if (!db || last <= first) {
        cli_error("campaign", "merge: expected RESULTS... --db DB");
        return CLI_USAGE;
    }
    struct merged m = { json_object(), json_object() };
    int ret = 0;
    for (int i = first; i < last && ret == 0; i++) {
        ret = merge_arg(&m, argv[i]);
    }
    ret = ret ? ret : db_write(&m, db);
    if (ret == 0) {
        merge_print(&m, db);
    }
    json_decref(m.props);
    json_decref(m.failures);
    return ret;
}

/* ---- replay ---- */

#define REPLAY_NAMED 3

/* Replay one stored failure: 1 still fails, 0 fixed, CLI_USAGE unreadable;
 * a fuzz input is replayed by its target (named, not run: REPLAY_NAMED). */
static int replay_one(const char *db, const json_t *e)
{
    if (json_object_get(e, "input")) {
        printf("%-9s %s/%s: replay it with its target: %s\n", "(fuzz)", db,
               json_string_value(json_object_get(e, "file")),
               json_string_value(json_object_get(e, "reproduce")));
        return REPLAY_NAMED;
    }
    char path[4800];
    snprintf(path, sizeof(path), "%s/%s", db, json_string_value(json_object_get(e, "file")));
    struct trace t;
    const char *format = "native";
    CLI_TRY(trace_load("campaign", path, &format, NULL, &t));
    struct world_opts o = { 0 };
    struct world_result r;
    struct err err = { .file = path };
    int ret = world_run(&t, &o, &r, &err);
    trace_fini(&t);
    if (ret < 0) {
        return cli_input_error("campaign", &err);
    }
    bool fails = r.verdict == WORLD_FAIL;
    printf("%-9s %s: %s\n", fails ? "FAILS" : "fixed", path, fails ? r.first.msg : "passes now");
    world_result_fini(&r);
    return fails;
}

static int campaign_replay(int argc, char **argv)
{
    if (argc != 3) {
        cli_error("campaign", "replay: expected DB");
        return CLI_USAGE;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/index.json", argv[2]);
    json_error_t je;
    json_t *index = json_load_file(path, 0, &je);
    json_t *list = json_object_get(index, "failures");
    if (!json_is_array(list)) {
        cli_error("campaign", "%s: not a failure database (%s)", path,
                  index ? "no failures list" : je.text);
        json_decref(index);
        return CLI_USAGE;
    }
    unsigned still = 0;
    unsigned named = 0;
    int ret = 0;
    bool progress = isatty(2) != 0;
    for (size_t i = 0; i < json_array_size(list) && ret >= 0 && ret != CLI_USAGE; i++) {
        if (progress) { /* on a terminal: where it is, what it found */
            fprintf(stderr, "\rcampaign replay: %zu of %zu, %u still failing   ", i,
                    json_array_size(list), still);
        }
        ret = replay_one(argv[2], json_array_get(list, i));
        still += ret == 1;
        named += ret == REPLAY_NAMED;
    }
    if (progress) {
        fprintf(stderr, "\r%60s\r", "");
    }
    size_t n = json_array_size(list);
    json_decref(index);
    if (ret == CLI_USAGE) {
        return CLI_USAGE;
    }
    printf("campaign: %u of %zu stored failure(s) still fail, %zu fixed", still, n,
           n - still - named);
    if (named) {
        printf(", %u fuzz input(s) to replay with their targets", named);
    }
    printf("\n");
    return still ? CLI_FAIL : CLI_OK;
}

static void campaign_usage(FILE *out)
{
    fprintf(out,
            "usage: blocksim campaign merge RESULTS... --db DB\n"
            "       blocksim campaign replay DB\n"
            "merge: read results files (JSON lines written by check --jsonl and explore\n"
            "--jsonl; a directory stands for its *.jsonl files), add up each property's\n"
            "trials and time, and keep one trace per distinct failure (property, violation\n"
            "kind, shrunk trace digest), the fastest-failing seed first, in directory DB\n"
            "(index.json and PROPERTY-DIGEST.trace files).\n"
            "replay: replay every failure stored in DB and say which still fail.\n"
            "Exit status: merge 0; replay 0 when every failure is fixed, 1 when some still\n"
            "fail; 2 usage or input error (a results line that is not one names its\n"
            "file and line).\n");
}

int cmd_campaign(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        campaign_usage(stdout);
        return CLI_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "merge") == 0) {
        return campaign_merge(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "replay") == 0) {
        return campaign_replay(argc, argv);
    }
    cli_error("campaign", "expected 'merge' or 'replay' (see --help)");
    return CLI_USAGE;
}
