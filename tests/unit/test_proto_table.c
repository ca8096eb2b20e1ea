/* Unit tests for proto/proto_table.c: table name validation, splitting and keys. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/proto_table.h"

static bool table_valid(const char *s, const char *want_why);
static bool table_valid_n(const char *s, size_t len, const char *want_why);
static char *table_repeat(const char *unit, size_t times);

/* Validates s; when want_why is given, the reason must contain it. */
static bool
table_valid(const char *s, const char *want_why)
{
	return table_valid_n(s, strlen(s), want_why);
}

static bool
table_valid_n(const char *s, size_t len, const char *want_why)
{
	char why[128] = "";
	bool ok = proto_table_valid_part(s, len, why, sizeof(why));
	if (!ok && want_why != NULL && strstr(why, want_why) == NULL)
		fail_msg("reason '%s' lacks '%s'", why, want_why);
	if (!ok)
		assert_true(why[0] != '\0');
	return ok;
}

static char *
table_repeat(const char *unit, size_t times)
{
	size_t n = strlen(unit);
	char *s = malloc(n * times + 1);
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * n, unit, n);
	s[n * times] = '\0';
	return s;
}

static void
test_table_valid_simple(void **state)
{
	(void)state;
	assert_true(table_valid("t1", NULL));
	assert_true(table_valid("a", NULL));
	assert_true(table_valid("order items", NULL)); /* inner space is fine */
	assert_true(table_valid(" lead", NULL));	 /* only a trailing one is not */
	assert_true(table_valid("a`b", NULL));		 /* quoted later */
	assert_true(table_valid("select", NULL));	 /* reserved words are fine quoted */
	assert_true(table_valid("tbl-1$", NULL));
}

static void
test_table_empty(void **state)
{
	(void)state;
	assert_false(table_valid("", "empty"));
}

static void
test_table_length_in_characters(void **state)
{
	(void)state;
	char *s64 = table_repeat("a", 64), *s65 = table_repeat("a", 65);
	assert_true(table_valid(s64, NULL));
	assert_false(table_valid(s65, "64 characters"));
	free(s64);
	free(s65);

	/* 64 two-byte, three-byte characters: 128 and 192 bytes, still valid. */
	char *e64 = table_repeat("\xc3\xa9", 64), *e65 = table_repeat("\xc3\xa9", 65);
	char *k64 = table_repeat("\xe8\xa1\xa8", 64), *k65 = table_repeat("\xe8\xa1\xa8", 65);
	assert_true(table_valid(e64, NULL));
	assert_false(table_valid(e65, "64 characters"));
	assert_true(table_valid(k64, NULL));
	assert_false(table_valid(k65, "64 characters"));
	free(e64);
	free(e65);
	free(k64);
	free(k65);

	/* Mixed: 63 ASCII + one 3-byte character is 64 characters. */
	char *a63 = table_repeat("a", 63);
	char mixed[80];
	strcpy(mixed, a63);
	strcat(mixed, "\xe2\x82\xac");
	assert_true(table_valid(mixed, NULL));
	strcat(mixed, "b");
	assert_false(table_valid(mixed, "64 characters"));
	free(a63);
}

static void
test_table_invalid_utf8(void **state)
{
	(void)state;
	assert_false(table_valid("\xff", "UTF-8"));
	assert_false(table_valid("a\x80", "UTF-8"));	     /* stray continuation */
	assert_false(table_valid("\xc3", "UTF-8"));	     /* truncated */
	assert_false(table_valid("\xe2\x82", "UTF-8"));	     /* truncated */
	assert_false(table_valid("\xc3(", "UTF-8"));	     /* bad continuation */
	assert_false(table_valid("\xc0\xae", "UTF-8"));	     /* overlong '.' */
	assert_false(table_valid("\xc1\xbf", "UTF-8"));	     /* overlong */
	assert_false(table_valid("\xe0\x80\xaf", "UTF-8"));  /* overlong '/' */
	assert_false(table_valid("\xf0\x82\x82\xac", "UTF-8")); /* overlong euro */
	assert_false(table_valid("\xed\xa0\x80", "UTF-8"));  /* surrogate D800 */
	assert_false(table_valid("\xed\xbf\xbf", "UTF-8"));  /* surrogate DFFF */
	assert_false(table_valid("\xf4\x90\x80\x80", "UTF-8")); /* past U+10FFFF */
	assert_false(table_valid("\xf8\x88\x80\x80\x80", "UTF-8"));
	assert_true(table_valid("\xed\x9f\xbf", NULL));	     /* U+D7FF */
	assert_true(table_valid("\xef\xbf\xbd", NULL));	     /* U+FFFD */
	/* Well-formed but outside the BMP: MySQL identifiers cannot hold it. */
	assert_false(table_valid("\xf0\x9f\x98\x80", "Basic Multilingual Plane"));
}

static void
test_table_nul_dot_space(void **state)
{
	(void)state;
	assert_false(table_valid_n("a\0b", 3, "NUL"));
	assert_false(table_valid_n("\0", 1, "NUL"));
	assert_false(table_valid("a.b", "'.'"));
	assert_false(table_valid(".", "'.'"));
	assert_false(table_valid("t1 ", "space"));
	assert_false(table_valid(" ", "space"));
	/* The length, not a NUL, ends the part. */
	assert_true(table_valid_n("abc", 2, NULL));
}

static void
test_table_split(void **state)
{
	(void)state;
	char *db = NULL, *name = NULL, why[128];

	assert_true(proto_table_split("t1", 2, "app", &db, &name, why, sizeof(why)));
	assert_string_equal(db, "app");
	assert_string_equal(name, "t1");
	free(db);
	free(name);

	assert_true(proto_table_split("other.t2", 8, "app", &db, &name, why, sizeof(why)));
	assert_string_equal(db, "other");
	assert_string_equal(name, "t2");
	free(db);
	free(name);

	assert_true(proto_table_split("other.t2", 8, NULL, &db, &name, why, sizeof(why)));
	assert_string_equal(db, "other");
	free(db);
	free(name);

	/* Only len bytes count. */
	assert_true(proto_table_split("x.yz", 3, NULL, &db, &name, why, sizeof(why)));
	assert_string_equal(name, "y");
	free(db);
	free(name);
}

static void
test_table_split_invalid(void **state)
{
	(void)state;
	char *db = NULL, *name = NULL, why[128];
	struct {
		const char *spec;
		const char *default_db;
		const char *why;
	} cases[] = {
		{"t1", NULL, "no default database"},
		{"a.b.c", "app", "more than one '.'"},
		{"a..b", "app", "more than one '.'"},
		{".t1", "app", "database name is empty"},
		{"app.", "app", "table name is empty"},
		{".", "app", "database name is empty"},
		{"", "app", "table name is empty"},
		{"app .t1", "app", "database name ends with a space"},
		{"app.t1 ", "app", "table name ends with a space"},
		{"t1", "bad db ", "default database name ends with a space"},
		{"app.\xff", "app", "table name is not valid UTF-8"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why[0] = '\0';
		db = name = NULL;
		bool ok = proto_table_split(cases[i].spec, strlen(cases[i].spec), cases[i].default_db,
					    &db, &name, why, sizeof(why));
		if (ok)
			fail_msg("'%s' was accepted", cases[i].spec);
		if (strstr(why, cases[i].why) == NULL)
			fail_msg("'%s': reason '%s' lacks '%s'", cases[i].spec, why, cases[i].why);
		assert_null(db);
		assert_null(name);
	}
	/* NUL inside a table name (lengths, not C strings). */
	assert_false(proto_table_split("app.t\0x", 7, "app", &db, &name, why, sizeof(why)));
	assert_non_null(strstr(why, "NUL"));
	/* 65 characters in the database part. */
	char spec[80];
	memset(spec, 'd', 65);
	strcpy(spec + 65, ".t");
	assert_false(proto_table_split(spec, strlen(spec), NULL, &db, &name, why, sizeof(why)));
	assert_non_null(strstr(why, "database name is longer than 64"));
}

static void
test_table_key(void **state)
{
	(void)state;
	struct proto_table t = {.db = "app", .name = "t`1", .alias = "a", .write = true};
	char *key = proto_table_key(&t);
	assert_string_equal(key, "app.t`1");
	free(key);
}

static void
test_table_free_array(void **state)
{
	(void)state;
	proto_table_free_array(NULL, 0);
	struct proto_table *t = calloc(2, sizeof(*t));
	t[0].db = strdup("app");
	t[0].name = strdup("t1");
	t[1].db = strdup("app");
	t[1].name = strdup("t2");
	t[1].alias = strdup("a");
	proto_table_free_array(t, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_valid_simple),
		cmocka_unit_test(test_table_empty),
		cmocka_unit_test(test_table_length_in_characters),
		cmocka_unit_test(test_table_invalid_utf8),
		cmocka_unit_test(test_table_nul_dot_space),
		cmocka_unit_test(test_table_split),
		cmocka_unit_test(test_table_split_invalid),
		cmocka_unit_test(test_table_key),
		cmocka_unit_test(test_table_free_array),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
