/* Unit tests: access rules, their parsing, errors and matching. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/access.h"

/* Rules given as one string each sit on lines 10, 11, …. */
#define RULES_FIRST_LINE 10

static struct access *rules_compile(const char *const *values, size_t n);
static void rules_refuse(const char *value, const char *want);
static struct access_identity unix_peer(uid_t uid, const char *user, const char *const *groups,
					size_t ngroups);
static struct access_identity tcp_token(const char *token);
static struct access_identity tcp_cn(const char *cn);

#define RULES(...)                                                                                 \
	rules_compile((const char *const[]){__VA_ARGS__},                                          \
		      sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static struct access *
rules_compile(const char *const *values, size_t n)
{
	struct conf_list l = {0};
	struct access *a = (struct access *)1;
	char err[512] = "";

	l.items = calloc(n, sizeof *l.items);
	l.lines = calloc(n, sizeof *l.lines);
	for (size_t i = 0; i < n; i++) {
		l.items[i] = (char *)values[i];
		l.lines[i] = RULES_FIRST_LINE + (int)i;
	}
	l.n = n;
	if (access_compile(&l, "t.conf", &a, err, sizeof err) != 0)
		fail_msg("unexpected error: %s", err);
	free(l.items);
	free(l.lines);
	assert_non_null(a);
	return a;
}

/* value must be refused on its line with exactly want. */
static void
rules_refuse(const char *value, const char *want)
{
	char *items[] = {(char *)"user:ok read *", (char *)value};
	int lines[] = {3, 17};
	struct conf_list l = {items, lines, 2};
	struct access *a = (struct access *)1;
	char err[512], expected[600];

	memset(err, 'x', sizeof err);
	assert_int_equal(access_compile(&l, "/etc/t.conf", &a, err, sizeof err), -1);
	assert_null(a);
	snprintf(expected, sizeof expected, "/etc/t.conf:17: [access] allow: %s", want);
	assert_string_equal(err, expected);
}

static struct access_identity
unix_peer(uid_t uid, const char *user, const char *const *groups, size_t ngroups)
{
	struct access_identity id = {
		.is_unix = true, .uid = uid, .user = user, .groups = groups, .ngroups = ngroups};
	return id;
}

static struct access_identity
tcp_token(const char *token)
{
	struct access_identity id = {.token = token};
	return id;
}

static struct access_identity
tcp_cn(const char *cn)
{
	struct access_identity id = {.cn = cn};
	return id;
}

static void
test_no_rules_allows_everything(void **state)
{
	(void)state;
	struct conf_list empty = {0};
	struct access *a = NULL;
	char err[64] = "junk";
	struct access_identity nobody = {0};

	assert_int_equal(access_compile(NULL, "t.conf", &a, err, sizeof err), 0);
	assert_non_null(a);
	assert_string_equal(err, "");
	assert_false(access_enabled(a));
	assert_true(access_may_lock(a, &nobody, "app", "t", true));
	assert_false(access_is_admin(a, &nobody)); /* the caller decides */
	access_free(a);

	assert_int_equal(access_compile(&empty, "t.conf", &a, err, sizeof err), 0);
	assert_false(access_enabled(a));
	access_free(a);

	assert_false(access_enabled(NULL));
	assert_true(access_may_lock(NULL, &nobody, "app", "t", true));
	access_free(NULL);
}

static void
test_every_identity_kind(void **state)
{
	(void)state;
	const char *ops[] = {"wheel", "ops"};
	struct access *a = RULES("user:alice read a.t", "group:ops read b.t", "uid:1000 read c.t",
				 "token:billing read d.t", "cn:reports.example.com read e.t",
				 "* read f.t");
	struct access_identity alice = unix_peer(1001, "alice", NULL, 0);
	struct access_identity bob_ops = unix_peer(1002, "bob", ops, 2);
	struct access_identity u1000 = unix_peer(1000, NULL, NULL, 0);
	struct access_identity billing = tcp_token("billing");
	struct access_identity reports = tcp_cn("reports.example.com");
	struct access_identity *all[] = {&alice, &bob_ops, &u1000, &billing, &reports};
	const char *tables[] = {"a", "b", "c", "d", "e"};

	assert_true(access_enabled(a));
	/* Each identity gets its own table, and the * table, and nothing else. */
	for (size_t i = 0; i < 5; i++) {
		for (size_t j = 0; j < 5; j++)
			assert_int_equal(access_may_lock(a, all[i], tables[j], "t", false), i == j);
		assert_true(access_may_lock(a, all[i], "f", "t", false));
		assert_false(access_may_lock(a, all[i], "f", "t", true));
	}
	access_free(a);
}

static void
test_keywords_case_insensitive(void **state)
{
	(void)state;
	struct access *a = RULES("USER:alice READ app.* Write app.orders ADMIN",
				 "Group:ops\tread\t*  ", "  TOKEN:x   wRiTe app.t  ");
	const char *ops[] = {"ops"};
	struct access_identity alice = unix_peer(1, "alice", NULL, 0);
	struct access_identity carol = unix_peer(2, "carol", ops, 1);
	struct access_identity x = tcp_token("x");

	assert_true(access_may_lock(a, &alice, "app", "orders", true));
	assert_true(access_may_lock(a, &alice, "app", "other", false));
	assert_true(access_is_admin(a, &alice));
	assert_true(access_may_lock(a, &carol, "any", "thing", false));
	assert_false(access_is_admin(a, &carol));
	assert_true(access_may_lock(a, &x, "app", "t", true));
	access_free(a);

	/* Names are not keywords: they compare exactly. */
	a = RULES("user:Alice read *");
	assert_false(access_may_lock(a, &alice, "app", "t", false));
	access_free(a);
}

static void
test_patterns(void **state)
{
	(void)state;
	struct access_identity alice = unix_peer(1, "alice", NULL, 0);
	struct access *a = RULES("user:alice read app.orders");

	assert_true(access_may_lock(a, &alice, "app", "orders", false));
	assert_false(access_may_lock(a, &alice, "app", "orders2", false));
	assert_false(access_may_lock(a, &alice, "app", "Orders", false));
	assert_false(access_may_lock(a, &alice, "app2", "orders", false));
	assert_false(access_may_lock(a, &alice, "ap", "porders", false));
	access_free(a);

	a = RULES("user:alice read app.*");
	assert_true(access_may_lock(a, &alice, "app", "orders", false));
	assert_true(access_may_lock(a, &alice, "app", "*", false));
	assert_false(access_may_lock(a, &alice, "app_x", "orders", false));
	assert_false(access_may_lock(a, &alice, "APP", "orders", false));
	access_free(a);

	a = RULES("user:alice read *");
	assert_true(access_may_lock(a, &alice, "app", "orders", false));
	assert_true(access_may_lock(a, &alice, "mysql", "user", false));
	access_free(a);

	/* Non-ASCII and backtick names are names like any other. */
	a = RULES("user:alice write caf\xc3\xa9.t`x");
	assert_true(access_may_lock(a, &alice, "caf\xc3\xa9", "t`x", true));
	assert_false(access_may_lock(a, &alice, "cafe", "t`x", true));
	access_free(a);
}

static void
test_write_implies_read(void **state)
{
	(void)state;
	struct access_identity alice = unix_peer(1, "alice", NULL, 0);
	struct access *a = RULES("user:alice read app.* write app.orders app.order_lines");

	assert_true(access_may_lock(a, &alice, "app", "orders", true));
	assert_true(access_may_lock(a, &alice, "app", "orders", false));
	assert_true(access_may_lock(a, &alice, "app", "order_lines", true));
	/* read does not imply write */
	assert_true(access_may_lock(a, &alice, "app", "customers", false));
	assert_false(access_may_lock(a, &alice, "app", "customers", true));
	assert_false(access_is_admin(a, &alice));
	access_free(a);

	a = RULES("user:alice write *");
	assert_true(access_may_lock(a, &alice, "x", "y", false));
	assert_true(access_may_lock(a, &alice, "x", "y", true));
	access_free(a);
}

static void
test_rules_add_up(void **state)
{
	(void)state;
	const char *groups[] = {"staff", "ops"};
	struct access_identity alice = unix_peer(1000, "alice", groups, 2);
	struct access *a = RULES("user:alice read app.a", "group:ops write app.b",
				 "uid:1000 read app.c", "group:staff admin",
				 "user:alice read app.d");

	assert_true(access_may_lock(a, &alice, "app", "a", false));
	assert_true(access_may_lock(a, &alice, "app", "b", true));
	assert_true(access_may_lock(a, &alice, "app", "c", false));
	assert_true(access_may_lock(a, &alice, "app", "d", false));
	assert_false(access_may_lock(a, &alice, "app", "a", true));
	assert_false(access_may_lock(a, &alice, "app", "e", false));
	assert_true(access_is_admin(a, &alice));
	access_free(a);
}

static void
test_admin(void **state)
{
	(void)state;
	const char *ops[] = {"ops"};
	struct access_identity carol = unix_peer(5, "carol", ops, 1);
	struct access_identity dave = unix_peer(6, "dave", NULL, 0);
	struct access_identity root = unix_peer(0, "root", NULL, 0);
	struct access_identity boss = tcp_cn("boss");
	struct access *a = RULES("group:ops admin read *", "cn:boss admin", "* read app.public");

	assert_true(access_is_admin(a, &carol));
	assert_false(access_is_admin(a, &dave));
	/* With rules, root is only what the rules say. */
	assert_false(access_is_admin(a, &root));
	assert_false(access_may_lock(a, &root, "app", "t", false));
	assert_true(access_is_admin(a, &boss));
	/* admin alone grants no table beyond the * rule's */
	assert_false(access_may_lock(a, &boss, "app", "t", false));
	assert_true(access_may_lock(a, &boss, "app", "public", false));
	access_free(a);
}

static void
test_deny_by_default(void **state)
{
	(void)state;
	struct access_identity mallory = unix_peer(666, "mallory", NULL, 0);
	struct access_identity bad_token = tcp_token("nope");
	struct access_identity nobody = {0};
	struct access *a = RULES("user:alice write *", "token:billing write app.invoices");

	assert_false(access_may_lock(a, &mallory, "app", "invoices", false));
	assert_false(access_may_lock(a, &bad_token, "app", "invoices", false));
	assert_false(access_may_lock(a, &nobody, "app", "invoices", false));
	assert_false(access_may_lock(a, NULL, "app", "invoices", false));
	assert_false(access_is_admin(a, &mallory));
	assert_false(access_may_lock(a, &mallory, NULL, "invoices", false));
	access_free(a);
}

static void
test_unix_kinds_need_a_unix_peer(void **state)
{
	(void)state;
	const char *ops[] = {"ops"};
	/* A TCP identity whose fields happen to be set is still no Unix peer:
	 * its uid (0 in a zeroed struct) must not match uid:0. */
	struct access_identity tcp = {.is_unix = false, .uid = 0, .user = "alice",
				      .groups = ops, .ngroups = 1, .token = "t"};
	struct access *a = RULES("uid:0 write *", "user:alice write *", "group:ops write *");

	assert_false(access_may_lock(a, &tcp, "app", "t", false));
	access_free(a);

	/* Tokens and CNs do not care about the transport. */
	struct access_identity unix_token = unix_peer(7, "erin", NULL, 0);
	unix_token.token = "billing";
	a = RULES("token:billing read app.*");
	assert_true(access_may_lock(a, &unix_token, "app", "x", false));
	access_free(a);
}

static void
test_anyone(void **state)
{
	(void)state;
	struct access_identity nobody = {0};
	struct access_identity peer = unix_peer(9, NULL, NULL, 0);
	struct access *a = RULES("* read app.public_data", "user:alice read *");

	assert_true(access_may_lock(a, &nobody, "app", "public_data", false));
	assert_true(access_may_lock(a, &peer, "app", "public_data", false));
	assert_true(access_may_lock(a, NULL, "app", "public_data", false));
	assert_false(access_may_lock(a, &peer, "app", "public_data", true));
	assert_false(access_may_lock(a, &peer, "app", "private", false));
	access_free(a);
}

static void
test_uid_bounds(void **state)
{
	(void)state;
	struct access_identity top = unix_peer(4294967294u, NULL, NULL, 0);
	struct access_identity zero = unix_peer(0, NULL, NULL, 0);
	struct access *a = RULES("uid:4294967294 read *", "uid:000 write app.t");

	assert_true(access_may_lock(a, &top, "x", "y", false));
	assert_false(access_may_lock(a, &top, "app", "t", true));
	assert_true(access_may_lock(a, &zero, "app", "t", true));
	access_free(a);
}

static void
test_errors(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		const char *want;
	} cases[] = {
		{"foo:bar read *", "unknown identity kind 'foo' in 'foo:bar' (expected user:, "
				   "group:, uid:, token:, cn: or *)"},
		{"alice read *", "unknown identity 'alice' (expected user:NAME, group:NAME, uid:N, "
				 "token:NAME, cn:NAME or *)"},
		{"user: read *", "empty name in 'user:'"},
		{"cn: admin", "empty name in 'cn:'"},
		{"cn:* read *",
		 "bad name in 'cn:*': names are literal (for anyone, write * alone)"},
		{"uid:abc read *", "bad name in 'uid:abc': a uid is a number from 0 to 4294967294"},
		{"uid:-1 read *", "bad name in 'uid:-1': a uid is a number from 0 to 4294967294"},
		{"uid:4294967295 read *",
		 "bad name in 'uid:4294967295': a uid is a number from 0 to 4294967294"},
		{"uid:99999999999999999999999 read *",
		 "bad name in 'uid:99999999999999999999999': a uid is a number from 0 to "
		 "4294967294"},
		{"user:alice read orders",
		 "pattern 'orders' names no database (patterns are db.table, db.* or *)"},
		{"user:alice write app.t orders",
		 "pattern 'orders' names no database (patterns are db.table, db.* or *)"},
		{"user:alice read app.a.b", "bad pattern 'app.a.b': has more than one '.'"},
		{"user:alice read .t", "bad pattern '.t': database name is empty"},
		{"user:alice read app.", "bad pattern 'app.': table name is empty"},
		{"user:alice read .*", "bad pattern '.*': database name is empty"},
		{"user:alice read app.t\xff",
		 "bad pattern 'app.t\xff': table name is not valid UTF-8 (at byte 1)"},
		{"user:alice read *.t",
		 "bad pattern '*.t': the database cannot be '*' (patterns are db.table, db.* or "
		 "*)"},
		{"user:alice read *.*",
		 "bad pattern '*.*': the database cannot be '*' (patterns are db.table, db.* or "
		 "*)"},
		{"user:alice read app.order_*",
		 "bad pattern 'app.order_*': '*' only stands alone (patterns are db.table, db.* or "
		 "*)"},
		{"user:alice read a*.*",
		 "bad pattern 'a*.*': '*' only stands alone (patterns are db.table, db.* or *)"},
		{"user:alice rad app.t",
		 "unknown keyword 'rad' after the identity (expected read, write or admin)"},
		{"user:alice app.t",
		 "unknown keyword 'app.t' after the identity (expected read, write or admin)"},
		{"user:alice admin app.t", "unknown keyword 'app.t' after admin, which takes no "
					   "patterns (expected read, write or admin)"},
		{"user:alice",
		 "the rule for 'user:alice' grants nothing (add read, write or admin)"},
		{"*", "the rule for '*' grants nothing (add read, write or admin)"},
		{"user:alice read",
		 "read needs at least one pattern (patterns are db.table, db.* or *)"},
		{"user:alice write read app.t",
		 "write needs at least one pattern (patterns are db.table, db.* or *)"},
		{"user:alice read app.t write admin",
		 "write needs at least one pattern (patterns are db.table, db.* or *)"},
		{"user:alice read app.t\r", "contains a control character (byte 0x0d)"},
		{"user:al\x7f" "ice read *", "contains a control character (byte 0x7f)"},
		{" \t ", "empty rule"},
		{"", "empty rule"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		rules_refuse(cases[i].value, cases[i].want);

	/* A name of 255 bytes is fine, 256 is not. */
	char rule[400], want[400];
	snprintf(rule, sizeof rule, "token:%0255d read *", 0);
	struct access *a = RULES(rule);
	access_free(a);
	snprintf(rule, sizeof rule, "token:%0256d read *", 0);
	snprintf(want, sizeof want, "name in 'token:%074d...' is longer than 255 bytes", 0);
	rules_refuse(rule, want);
}

static void
test_error_buffers(void **state)
{
	(void)state;
	char *items[] = {(char *)"user:x nope"};
	int lines[] = {42};
	struct conf_list l = {items, lines, 1};
	struct access *a = (struct access *)1;
	char err[16];

	memset(err, 'x', sizeof err);
	assert_int_equal(access_compile(&l, "t.conf", &a, err, sizeof err), -1);
	assert_null(a);
	assert_string_equal(err, "t.conf:42: [acc");

	assert_int_equal(access_compile(&l, "t.conf", &a, err, 0), -1);
	assert_int_equal(err[0], 't');

	/* A missing value is an empty one. */
	char *missing[] = {NULL};
	struct conf_list holes = {missing, lines, 1};
	char full[200];
	assert_int_equal(access_compile(&holes, "t.conf", &a, full, sizeof full), -1);
	assert_string_equal(full, "t.conf:42: [access] allow: empty rule");

	/* No line numbers, no file name. */
	struct conf_list bare = {items, NULL, 1};
	assert_int_equal(access_compile(&bare, NULL, &a, full, sizeof full), -1);
	assert_string_equal(full, "config: [access] allow: unknown keyword 'nope' after the "
				  "identity (expected read, write or admin)");
}

static void
test_labels(void **state)
{
	(void)state;
	char out[64];
	const char *groups[] = {"ops"};
	struct access_identity alice = unix_peer(1000, "alice", groups, 1);
	struct access_identity u = unix_peer(1000, NULL, NULL, 0);
	struct access_identity tok = tcp_token("billing");
	struct access_identity cn = tcp_cn("reports.example.com");
	struct access_identity nobody = {0};
	struct access_identity both = tcp_cn("c");
	both.token = "t";

	access_identity_label(&alice, out, sizeof out);
	assert_string_equal(out, "user:alice");
	access_identity_label(&u, out, sizeof out);
	assert_string_equal(out, "uid:1000");
	access_identity_label(&tok, out, sizeof out);
	assert_string_equal(out, "token:billing");
	access_identity_label(&cn, out, sizeof out);
	assert_string_equal(out, "cn:reports.example.com");
	access_identity_label(&nobody, out, sizeof out);
	assert_string_equal(out, "anonymous");
	access_identity_label(NULL, out, sizeof out);
	assert_string_equal(out, "anonymous");
	access_identity_label(&both, out, sizeof out);
	assert_string_equal(out, "token:t");

	/* A CN is the certificate's to choose: no control characters out. */
	struct access_identity evil = tcp_cn("a\nb\x1b[31m\x7f");
	access_identity_label(&evil, out, sizeof out);
	assert_string_equal(out, "cn:a?b?[31m?");

	/* Cut short: NUL-terminated, never half a character. */
	access_identity_label(&alice, out, 6);
	assert_string_equal(out, "user:");
	struct access_identity e = tcp_cn("\xc3\xa9\xc3\xa9");
	access_identity_label(&e, out, 7);
	assert_string_equal(out, "cn:\xc3\xa9");
	access_identity_label(&e, out, 6);
	assert_string_equal(out, "cn:\xc3\xa9");
	access_identity_label(&e, out, 5);
	assert_string_equal(out, "cn:");
	out[0] = 'x';
	access_identity_label(&e, out, 0);
	assert_int_equal(out[0], 'x');
	access_identity_label(&e, out, 1);
	assert_string_equal(out, "");
}

static void
test_many_rules(void **state)
{
	(void)state;
	enum { N = 500 };
	char *items[N];
	int lines[N];
	struct conf_list l = {items, lines, N};
	struct access *a = NULL;
	char err[256];

	for (int i = 0; i < N; i++) {
		char buf[64];
		snprintf(buf, sizeof buf, "user:u%d read db%d.* write db%d.t", i, i, i);
		items[i] = strdup(buf);
		lines[i] = i + 1;
	}
	assert_int_equal(access_compile(&l, "t.conf", &a, err, sizeof err), 0);
	struct access_identity last = unix_peer(1, "u499", NULL, 0);
	assert_true(access_may_lock(a, &last, "db499", "t", true));
	assert_true(access_may_lock(a, &last, "db499", "x", false));
	assert_false(access_may_lock(a, &last, "db498", "t", false));
	access_free(a);
	for (int i = 0; i < N; i++)
		free(items[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_rules_allows_everything),
		cmocka_unit_test(test_every_identity_kind),
		cmocka_unit_test(test_keywords_case_insensitive),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_write_implies_read),
		cmocka_unit_test(test_rules_add_up),
		cmocka_unit_test(test_admin),
		cmocka_unit_test(test_deny_by_default),
		cmocka_unit_test(test_unix_kinds_need_a_unix_peer),
		cmocka_unit_test(test_anyone),
		cmocka_unit_test(test_uid_bounds),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_buffers),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_many_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
