/*
 * mutant: see mutant.h.
 */
#include "mutant.h"

#include <errno.h>
#include <string.h>

#include "../../ref/base.h"
#include "../../ref/node.h"
#include "../../ref/backup.h"
#include "../../ref/dirty.h"
#include "../../ref/job.h"
#include "../../ref/mirror.h"
#include "../../ref/replication.h"
#include "../../ref/drv_file.h"
#include "../../ref/drv_nbd.h"
#include "../../ref/drv_overlay.h"
#include "../../ref/drv_quorum.h"
#include "../../ref/nbd_server.h"
#include "../../ref/qbm.h"
#include "../dev/disk.h"

/* Every module's table, in a fixed order (record values index into it). */
static const struct module_bugs {
    const struct planted_bug *bugs;
    const size_t *count;
    bool disk; /* the disk's bits, not a node's */
} modules[] = {
    { drv_overlay_bugs, &drv_overlay_bugs_count, false },
    { drv_file_bugs, &drv_file_bugs_count, false },
    { dirty_bugs, &dirty_bugs_count, false },
    { qbm_bugs, &qbm_bugs_count, false },
    { drv_quorum_bugs, &drv_quorum_bugs_count, false },
    { drv_nbd_bugs, &drv_nbd_bugs_count, false },
    { nbd_server_bugs, &nbd_server_bugs_count, false },
    { backup_bugs, &backup_bugs_count, false },
    { mirror_bugs, &mirror_bugs_count, false },
    { job_bugs, &job_bugs_count, false },
    { replication_bugs, &replication_bugs_count, false },
    { disk_bugs, &disk_bugs_count, true },
};

size_t mutant_count(void)
{
    size_t n = 0;
    for (size_t m = 0; m < ARRAY_LEN(modules); m++) {
        n += *modules[m].count;
    }
    return n;
}

struct mutant mutant_get(size_t i)
{
    for (size_t m = 0; m < ARRAY_LEN(modules); m++) {
        if (i < *modules[m].count) {
            const struct planted_bug *b = &modules[m].bugs[i];
            struct mutant out = { b->name, modules[m].disk ? 0 : b->bit,
                                  modules[m].disk ? b->bit : 0, b->what, i };
            return out;
        }
        i -= *modules[m].count;
    }
    UNREACHABLE();
}

int mutant_find(const char *name, size_t len, struct mutant *out)
{
    size_t n = mutant_count();
    for (size_t i = 0; i < n; i++) {
        struct mutant m = mutant_get(i);
        if (strlen(m.name) == len && memcmp(name, m.name, len) == 0) {
            m.index = i;
            *out = m;
            return 0;
        }
    }
    return -ENOENT;
}
