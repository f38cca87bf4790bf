/* The table of Check suites, one per module (tests mirror the source tree). */
#ifndef BLOCKSIM_SUITES_H
#define BLOCKSIM_SUITES_H

#include <check.h>
#include <stddef.h>

Suite *suite_base(void);
Suite *suite_node(void);
Suite *suite_drv_file(void);
Suite *suite_drv_overlay(void);
Suite *suite_rng(void);
Suite *suite_evq(void);
Suite *suite_u64map(void);
Suite *suite_fault(void);
Suite *suite_disk(void);
Suite *suite_content(void);
Suite *suite_model_disk(void);
Suite *suite_checkers(void);
Suite *suite_trace(void);
Suite *suite_import_fio(void);
Suite *suite_import_recorded(void);
Suite *suite_world(void);
Suite *suite_report(void);
Suite *suite_engine(void);
Suite *suite_crashx(void);
Suite *suite_bitmap(void);
Suite *suite_dirty(void);
Suite *suite_qbm(void);
Suite *suite_net(void);
Suite *suite_nbd(void);
Suite *suite_quorum(void);
Suite *suite_job(void);
Suite *suite_jobs(void);
Suite *suite_replication(void);
Suite *suite_colo(void);

static Suite *(*const suites[])(void) = {
    suite_base,    suite_node,       suite_drv_file, suite_drv_overlay, suite_rng,
    suite_evq,     suite_u64map,     suite_fault,    suite_disk,        suite_content,
    suite_model_disk, suite_checkers, suite_trace, suite_import_fio, suite_import_recorded,
    suite_world,
    suite_report, suite_engine, suite_crashx, suite_bitmap, suite_dirty,
    suite_qbm, suite_net, suite_nbd, suite_quorum, suite_job, suite_jobs, suite_replication,
    suite_colo,
};
#define SUITES_COUNT (sizeof(suites) / sizeof(suites[0]))

#endif
