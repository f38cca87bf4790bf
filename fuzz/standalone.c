/*
 * standalone: replay corpus files through a target without libFuzzer, so
 * gcc, valgrind and coverage builds can run the corpora.
 *
 * usage: fuzz_TARGET_standalone [--jsonl FILE] FILE|DIR...
 *        (a directory: its files, sorted)
 *
 * With --jsonl, each input runs in a child of its own, so one that crashes
 * is recorded and the others still run: a failure line per crashing input
 * (its path and digest: `blocksim campaign merge` stores the input) and a
 * batch line at the end, appended to FILE, each synced to disk when known.
 */
#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "../sim/trace/trace.h"
#include "fuzz.h"

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static FILE *jsonl;       /* --jsonl: results file, or NULL */
static const char *self;  /* argv[0] */
static unsigned failures;

static void jsonl_put(json_t *o)
{
    if (json_dumpf(o, jsonl, JSON_COMPACT | JSON_SORT_KEYS) < 0 || fputc('\n', jsonl) == EOF ||
        fflush(jsonl) != 0 || fsync(fileno(jsonl)) != 0) {
        fprintf(stderr, "standalone: --jsonl: cannot write\n");
    }
    json_decref(o);
}

static const char *target_name(void)
{
    const char *base = strrchr(self, '/');
    return base ? base + 1 : self;
}

/* Run @data in a child; record a crash as a failure line. */
static int run_forked(const char *path, const char *data, size_t len, unsigned index)
{
    pid_t pid = fork();
    if (pid == 0) {
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
        _exit(0);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        return 1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }
    char msg[300];
    char digest[17];
    char cmd[4400];
    char *abs = realpath(path, NULL);
    snprintf(msg, sizeof(msg), "crash: input %.200s %s %d", path,
             WIFSIGNALED(status) ? "killed by signal" : "exited", WIFSIGNALED(status) ?
             WTERMSIG(status) : WEXITSTATUS(status));
    snprintf(digest, sizeof(digest), "%016" PRIx64, XXH3_64bits(data, len));
    snprintf(cmd, sizeof(cmd), "%s %s", self, abs ? abs : path);
    jsonl_put(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}",
                        "type", "failure", "command", "fuzz-replay", "target", self,
                        "property", target_name(),
                        "kind", "crash", "violation", msg, "digest", digest, "trace", "",
                        "input", abs ? abs : path, "seed", (json_int_t)0, "trial",
                        (json_int_t)index, "reproduce", cmd));
    free(abs);
    failures++;
    return 1;
}

static int run_file(const char *path, unsigned index)
{
    char *data = NULL;
    size_t len = 0;
    struct err e = { .file = path };
    if (trace_file_read(path, 64u << 20, &data, &len, &e) < 0) {
        fprintf(stderr, "standalone: %s: %s\n", path, e.msg);
        return 1;
    }
    int ret = 0;
    if (jsonl) {
        ret = run_forked(path, data, len, index);
    } else {
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    }
    trace_file_free(data, len);
    return ret;
}

static int run_dir(const char *dir, unsigned *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        return run_file(dir, *count) == 0 ? (++*count, 0) : (++*count, 1);
    }
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;
    for (struct dirent *de = readdir(d); de; de = readdir(d)) {
        if (de->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof(*names));
        }
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        names[n] = malloc(len);
        snprintf(names[n++], len, "%s/%s", dir, de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), name_cmp);
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        ret |= run_file(names[i], *count);
        *count += 1;
        free(names[i]);
    }
    free(names);
    return ret;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    int ret = 0;
    int first = 1;
    self = argv[0];
    if (argc >= 3 && strcmp(argv[1], "--jsonl") == 0) {
        jsonl = fopen(argv[2], "a");
        if (!jsonl) {
            fprintf(stderr, "standalone: --jsonl %s: cannot open\n", argv[2]);
            return 2;
        }
        first = 3;
    }
    struct timespec t0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = first; i < argc; i++) {
        ret |= run_dir(argv[i], &count);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (jsonl) {
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        jsonl_put(json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:f}", "type", "batch", "command",
                            "fuzz-replay", "property", target_name(), "seed", (json_int_t)0,
                            "trials", (json_int_t)count, "passed",
                            (json_int_t)(count - failures), "seconds", secs));
        fclose(jsonl);
    }
    printf("%s: %u inputs replayed%s\n", argv[0], count, failures ? ", some crashed" : "");
    return ret;
}
