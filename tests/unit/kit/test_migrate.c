/* Unit tests for src/kit/migrate.c on SQLite (:memory: and a WAL file shared by threads). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "db_cases.h"

static struct db_env memory_env = {.kind = ENV_MEMORY};
static struct db_env file_env = {.kind = ENV_FILE};

#define BOTH(fn)                                                                                   \
    cmocka_unit_test_prestate_setup_teardown(fn, env_setup, env_teardown, &memory_env),            \
        cmocka_unit_test_prestate_setup_teardown(fn, env_setup, env_teardown, &file_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(case_migrate_in_order),
        BOTH(case_migrate_one_by_one),
        BOTH(case_migrate_failure_rolls_back),
        BOTH(case_migrate_refusals),
        BOTH(case_migrate_driver_text),
        cmocka_unit_test_prestate_setup_teardown(case_migrate_concurrent, env_setup, env_teardown,
                                                 &file_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
