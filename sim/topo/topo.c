/*
 * topo: see topo.h.
 */
#include "topo.h"

const struct topo_ops *topo_find(enum trace_topology t)
{
    static const struct topo_ops *const table[] = {
        [TRACE_TOPO_PLAIN] = &topo_plain,
        [TRACE_TOPO_OVERLAY] = &topo_overlay,
        [TRACE_TOPO_QUORUM] = &topo_quorum,
        [TRACE_TOPO_COLO] = &topo_colo,
    };
    ASSERT((size_t)t < ARRAY_LEN(table) && table[t]);
    return table[t];
}
