/* Unit tests for daemon/leaseid.c: ids from a state file in a temp dir. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/leaseid.h"

static char dir[64];
static char path[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/tl-leaseid-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof path, "%s/lease_id", dir);
	return 0;
}

static int
teardown(void **state)
{
	char tmp[160];
	(void)state;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	unlink(path);
	return rmdir(dir);
}

/* The mark in the state file now. */
static uint64_t
mark(void)
{
	uint64_t m = 0;
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%" SCNu64, &m), 1);
	fclose(f);
	return m;
}

static void
write_file(const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Every id handed out is below the mark on disk when it is handed out. */
static uint64_t
next_checked(void)
{
	char err[600];
	uint64_t id = leaseid_next(err, sizeof err);
	assert_true(id > 0);
	assert_true(id < mark());
	return id;
}

static void
test_fresh_file_starts_at_one_and_reserves_first(void **state)
{
	char err[600];
	(void)state;
	assert_int_equal(leaseid_init(path, err, sizeof err), 0);
	assert_int_equal(mark(), 1 + 100); /* reserved before any id goes out */
	for (uint64_t want = 1; want <= 250; want++)
		assert_int_equal(next_checked(), want);
}

static void
test_restart_continues_from_the_mark(void **state)
{
	char err[600];
	(void)state;
	uint64_t last = 0;
	for (int run = 0; run < 5; run++) {
		assert_int_equal(leaseid_init(path, err, sizeof err), 0);
		uint64_t first = next_checked();
		if (run > 0) {
			assert_true(first > last);
			assert_true(first - last <= 100); /* skips at most one block */
		}
		last = first;
		for (int i = 0; i < 3; i++) {
			uint64_t id = next_checked();
			assert_true(id == last + 1);
			last = id;
		}
	}
	assert_true(last < 1000); /* short ids */
}

/* A block used up within a second doubles the next one, so a busy daemon
 * writes the file about once a second at most; never beyond 10000. */
static void
test_busy_blocks_grow(void **state)
{
	char err[600];
	(void)state;
	assert_int_equal(leaseid_init(path, err, sizeof err), 0);
	for (int i = 0; i < 100; i++)
		next_checked();
	assert_int_equal(mark(), 101);
	next_checked(); /* id 101: the second block, twice the first */
	assert_int_equal(mark(), 101 + 200);
	uint64_t prev = mark(), widest = 0;
	for (int i = 0; i < 100000; i++) {
		next_checked();
		if (mark() != prev) {
			if (mark() - prev > widest)
				widest = mark() - prev;
			prev = mark();
		}
	}
	assert_int_equal(widest, 10000);
}

static void
test_refuses_a_mark_it_cannot_read(void **state)
{
	char err[600];
	(void)state;
	write_file("not a number\n");
	assert_int_equal(leaseid_init(path, err, sizeof err), -1);
	assert_non_null(strstr(err, "not a lease id high-water mark"));
	write_file("0\n");
	assert_int_equal(leaseid_init(path, err, sizeof err), -1);
	write_file("12345\n");
	assert_int_equal(leaseid_init(path, err, sizeof err), 0);
	assert_int_equal(next_checked(), 12345);
}

/* A missing directory whose parent is there is made (the default
 * /var/lib/tablelockd on a machine that never ran the unit). */
static void
test_missing_directory_is_made(void **state)
{
	char err[600], file[300], sub[200];
	struct stat st;
	(void)state;
	snprintf(sub, sizeof sub, "%s/state", dir);
	snprintf(file, sizeof file, "%s/lease_id", sub);
	assert_int_equal(leaseid_init(file, err, sizeof err), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(leaseid_next(err, sizeof err), 1);
	unlink(file);
	rmdir(sub);
}

/* Deeper than that, the daemon stops with what to do about it. */
static void
test_missing_directory(void **state)
{
	char err[600], missing[160];
	(void)state;
	snprintf(missing, sizeof missing, "%s/no/such/lease_id", dir);
	assert_int_equal(leaseid_init(missing, err, sizeof err), -1);
	assert_non_null(strstr(err, missing));
	assert_non_null(strstr(err, "No such file or directory"));
	assert_non_null(strstr(err, "StateDirectory="));
	assert_non_null(strstr(err, "state_file"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fresh_file_starts_at_one_and_reserves_first, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_restart_continues_from_the_mark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_blocks_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_a_mark_it_cannot_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_directory_is_made, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
