/*
 * standalone: replay corpus files through a target without libFuzzer, so
 * gcc, valgrind and coverage builds can run the corpora.
 *
 * usage: fuzz_TARGET_standalone FILE|DIR...   (a directory: its files, sorted)
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sim/trace/trace.h"
#include "fuzz.h"

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_file(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    struct err e = { .file = path };
    if (trace_file_read(path, 64u << 20, &data, &len, &e) < 0) {
        fprintf(stderr, "standalone: %s: %s\n", path, e.msg);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    trace_file_free(data, len);
    return 0;
}

static int run_dir(const char *dir, unsigned *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        return run_file(dir) == 0 ? (++*count, 0) : 1;
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
        ret |= run_file(names[i]);
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
    for (int i = 1; i < argc; i++) {
        ret |= run_dir(argv[i], &count);
    }
    printf("%s: %u inputs replayed\n", argv[0], count);
    return ret;
}
