/* Unit tests for daemon/mdl.c: which metadata locks hold up LOCK TABLES. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "daemon/mdl.h"

/* Every table lock type MariaDB shows, and whether it holds up LOCK TABLES
 * … WRITE and … READ (MySQL's compatibility matrix, sql/mdl.cc). */
static const struct {
	const char *type;
	bool blocks_write, blocks_read;
} mdl_table_cases[] = {
    {"SHARED", false, false},
    {"SHARED_HIGH_PRIO", false, false},
    {"SHARED_READ", true, false},
    {"SHARED_WRITE", true, true},
    {"SHARED_WRITE_LOW_PRIO", true, true},
    {"SHARED_UPGRADABLE", true, false},
    {"SHARED_READ_ONLY", true, false},
    {"SHARED_NO_WRITE", true, false},
    {"SHARED_NO_READ_WRITE", true, true},
    {"EXCLUSIVE", true, true},
};

static void
test_mdl_table_locks(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mdl_table_cases) / sizeof(mdl_table_cases[0]); i++) {
		char prefixed[64] = "MDL_";
		const char *type = mdl_table_cases[i].type;
		strncat(prefixed, type, sizeof(prefixed) - 5);
		/* performance_schema's names and METADATA_LOCK_INFO's agree. */
		assert_int_equal(mdl_blocks_lock_tables(true, false, type),
				 mdl_table_cases[i].blocks_write);
		assert_int_equal(mdl_blocks_lock_tables(false, false, type),
				 mdl_table_cases[i].blocks_read);
		assert_int_equal(mdl_blocks_lock_tables(true, false, prefixed),
				 mdl_table_cases[i].blocks_write);
		assert_int_equal(mdl_blocks_lock_tables(false, false, prefixed),
				 mdl_table_cases[i].blocks_read);
	}
}

static void
test_mdl_backup_locks(void **state)
{
	(void)state;
	/* FLUSH TABLES WITH READ LOCK stops writers, not readers. */
	assert_true(mdl_blocks_lock_tables(true, true, "MDL_BACKUP_FTWRL1"));
	assert_true(mdl_blocks_lock_tables(true, true, "BACKUP_FTWRL2"));
	assert_false(mdl_blocks_lock_tables(false, true, "BACKUP_FTWRL2"));
	/* The locks every DML statement or DDL takes in the backup namespace. */
	assert_false(mdl_blocks_lock_tables(true, true, "BACKUP_DML"));
	assert_false(mdl_blocks_lock_tables(true, true, "BACKUP_DDL"));
	assert_false(mdl_blocks_lock_tables(true, true, "MDL_BACKUP_TRANS_DML"));
}

static void
test_mdl_unknown(void **state)
{
	(void)state;
	assert_false(mdl_blocks_lock_tables(true, false, NULL));
	/* A type a later MySQL adds: a writer assumes the worst, a reader not. */
	assert_true(mdl_blocks_lock_tables(true, false, "SHARED_SOMETHING_NEW"));
	assert_false(mdl_blocks_lock_tables(false, false, "SHARED_SOMETHING_NEW"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mdl_table_locks),
	    cmocka_unit_test(test_mdl_backup_locks),
	    cmocka_unit_test(test_mdl_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
