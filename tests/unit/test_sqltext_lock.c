/* Unit tests for daemon/sqltext_lock.c: the daemon's LOCK TABLES text and its quoting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "daemon/sqltext.h"
#include "proto/proto_request.h"
#include "util/buf.h"

static void
test_sqltext_lock_quote(void **state)
{
	(void)state;
	struct buf b = {0};
	sqltext_lock_quote(&b, "t1");
	assert_string_equal(b.data, "`t1`");
	buf_reset(&b);
	sqltext_lock_quote(&b, "a`b");
	assert_string_equal(b.data, "`a``b`");
	buf_reset(&b);
	sqltext_lock_quote(&b, "``");
	assert_string_equal(b.data, "``````");
	buf_reset(&b);
	sqltext_lock_quote(&b, "x'); DROP TABLE t; --");
	assert_string_equal(b.data, "`x'); DROP TABLE t; --`");
	buf_reset(&b);
	sqltext_lock_quote(&b, "\xc3\xa9t\xc3\xa9");
	assert_string_equal(b.data, "`\xc3\xa9t\xc3\xa9`");
	buf_free(&b);
}

static void
test_sqltext_lock_ref(void **state)
{
	(void)state;
	struct buf b = {0};
	struct proto_table t = {.db = "app", .name = "t`1", .alias = NULL, .write = true};
	sqltext_lock_ref(&b, &t);
	assert_string_equal(b.data, "`app`.`t``1`");
	buf_reset(&b);
	t.alias = "a";
	sqltext_lock_ref(&b, &t);
	assert_string_equal(b.data, "`app`.`t``1` AS `a`");
	buf_free(&b);
}

static void
test_sqltext_lock_tables(void **state)
{
	(void)state;
	struct buf b = {0};
	struct proto_table tables[] = {
	    {.db = "app", .name = "t1", .alias = NULL, .write = true},
	    {.db = "app", .name = "t2", .alias = "a", .write = false},
	    {.db = "o`db", .name = "t3", .alias = "x`y", .write = false},
	};
	sqltext_lock_tables(&b, tables, 1);
	assert_string_equal(b.data, "LOCK TABLES `app`.`t1` WRITE");
	buf_reset(&b);
	sqltext_lock_tables(&b, tables, 2);
	assert_string_equal(b.data, "LOCK TABLES `app`.`t1` WRITE, `app`.`t2` AS `a` READ");
	buf_reset(&b);
	sqltext_lock_tables(&b, tables, 3);
	assert_string_equal(b.data, "LOCK TABLES `app`.`t1` WRITE, `app`.`t2` AS `a` READ, "
	                            "`o``db`.`t3` AS `x``y` READ");
	buf_free(&b);
}

/* What the daemon locks for an acquire: the parsed tables, aliases and
 * modes, in the request's order (writes first). */
static void
test_sqltext_lock_tables_of_a_request(void **state)
{
	static const struct proto_parse_options opts = {
	    .default_db = "app",
	    .max_depth = 32,
	    .max_tables = 8,
	    .max_statements = 4,
	    .max_params = 3,
	    .max_sql_bytes = 100,
	};
	static const char line[] =
	    "{\"op\":\"acquire\",\"write\":[{\"table\":\"t1\"},{\"table\":\"t1\",\"as\":\"a\"}],"
	    "\"read\":[{\"table\":\"o.t2\",\"as\":\"b\"},{\"table\":\"t3\",\"as\":null}]}";
	struct proto_request req;
	struct buf sql = {0};
	char msg[256] = "";

	(void)state;
	if (proto_request_parse(line, strlen(line), &opts, &req, msg, sizeof msg) != PROTO_OK)
		fail_msg("%s", msg);
	sqltext_lock_tables(&sql, req.tables, req.ntables);
	assert_string_equal(sql.data, "LOCK TABLES `app`.`t1` WRITE, `app`.`t1` AS `a` WRITE, "
	                              "`o`.`t2` AS `b` READ, `app`.`t3` READ");
	buf_free(&sql);
	proto_request_free(&req);
}

/* Whatever a name holds, the module's own lexer reads each one as a single
 * quoted name: no placeholder, no comment, no second statement; the
 * firewall refuses the text for being LOCK, like any LOCK TABLES. */
static void
test_sqltext_lock_tables_lex_as_one_statement(void **state)
{
	struct proto_table tables[] = {
	    {.db = "a?b", .name = "t'1\"", .alias = "-- x", .write = true},
	    {.db = "#", .name = "/*!50000 ; */", .alias = "`;`", .write = false},
	};
	struct buf sql = {0};
	char why[256], plain_why[256];

	(void)state;
	sqltext_lock_tables(&sql, tables, 2);
	assert_int_equal(sqltext_count_placeholders(sql.data, sql.len), 0);
	assert_int_equal(sqltext_statement_length(sql.data, sql.len), sql.len);
	assert_int_equal(sqltext_firewall(sql.data, sql.len, why, sizeof why), SQLTEXT_DENY);
	assert_int_equal(sqltext_firewall("LOCK TABLES t READ", 18, plain_why, sizeof plain_why),
	                 SQLTEXT_DENY);
	assert_string_equal(why, plain_why);
	buf_free(&sql);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sqltext_lock_quote),
	    cmocka_unit_test(test_sqltext_lock_ref),
	    cmocka_unit_test(test_sqltext_lock_tables),
	    cmocka_unit_test(test_sqltext_lock_tables_of_a_request),
	    cmocka_unit_test(test_sqltext_lock_tables_lex_as_one_statement),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
