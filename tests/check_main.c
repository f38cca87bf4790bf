/*
 * check_main: runs every Check suite. CK_FORK=no (valgrind) runs them in
 * one process; CK_RUN_SUITE picks one suite.
 */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>

#include "suites.h"

int main(void)
{
    json_object_seed(1);
    SRunner *sr = srunner_create(NULL);
    for (size_t i = 0; i < SUITES_COUNT; i++) {
        srunner_add_suite(sr, suites[i]());
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
