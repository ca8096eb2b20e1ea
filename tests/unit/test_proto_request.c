/* Unit tests: request parsing and validation, every op and every error path. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto_request.h"
#include "util/buf.h"

static const struct proto_parse_options request_opts = {
	.default_db = "app",
	.max_depth = 32,
	.max_tables = 8,
	.max_statements = 4,
	.max_params = 3,
	.max_sql_bytes = 100,
};

static enum proto_error request_parse_with(const struct proto_parse_options *opts,
					   const char *line, struct proto_request *req,
					   char *msg, size_t msgsize);
static void request_ok(const char *line, struct proto_request *req);
static void request_err_with(const struct proto_parse_options *opts, const char *line,
			     enum proto_error code, const char *part, const char *id);
static void request_err(const char *line, enum proto_error code, const char *part);
static void request_err_id(const char *line, enum proto_error code, const char *part,
			   const char *id);
static void request_expect_table(const struct proto_request *req, size_t i, const char *db,
				 const char *name, const char *alias, bool write);

static enum proto_error
request_parse_with(const struct proto_parse_options *opts, const char *line,
		   struct proto_request *req, char *msg, size_t msgsize)
{
	return proto_request_parse(line, strlen(line), opts, req, msg, msgsize);
}

/* Parses line with request_opts and requires success. */
static void
request_ok(const char *line, struct proto_request *req)
{
	char msg[256] = "";
	enum proto_error err = request_parse_with(&request_opts, line, req, msg, sizeof(msg));
	if (err != PROTO_OK)
		fail_msg("%s: %s: %s", line, proto_error_name(err), msg);
}

/* Requires code, a message containing part (valid UTF-8), and an echoed id
 * equal to the JSON text id (NULL: no id). */
static void
request_err_with(const struct proto_parse_options *opts, const char *line, enum proto_error code,
		 const char *part, const char *id)
{
	struct proto_request req;
	char msg[256] = "";
	enum proto_error err = request_parse_with(opts, line, &req, msg, sizeof(msg));
	if (err != code)
		fail_msg("%s: got %s (%s), want %s", line, proto_error_name(err), msg,
			 proto_error_name(code));
	if (strstr(msg, part) == NULL)
		fail_msg("%s: message '%s' lacks '%s'", line, msg, part);
	json_t *str = json_string(msg);
	assert_non_null(str); /* valid UTF-8 */
	json_decref(str);
	if (id == NULL) {
		assert_null(req.id);
	} else {
		json_t *want = json_loads(id, JSON_DECODE_ANY, NULL);
		assert_non_null(want);
		if (req.id == NULL || !json_equal(req.id, want))
			fail_msg("%s: id not echoed as %s", line, id);
		json_decref(want);
	}
	proto_request_free(&req);
}

static void
request_err(const char *line, enum proto_error code, const char *part)
{
	request_err_with(&request_opts, line, code, part, NULL);
}

static void
request_err_id(const char *line, enum proto_error code, const char *part, const char *id)
{
	request_err_with(&request_opts, line, code, part, id);
}

static void
request_expect_table(const struct proto_request *req, size_t i, const char *db, const char *name,
		     const char *alias, bool write)
{
	assert_true(i < req->ntables);
	assert_string_equal(req->tables[i].db, db);
	assert_string_equal(req->tables[i].name, name);
	if (alias == NULL)
		assert_null(req->tables[i].alias);
	else
		assert_string_equal(req->tables[i].alias, alias);
	assert_int_equal(req->tables[i].write, write);
}

static void
test_request_op_names(void **state)
{
	(void)state;
	const char *names[] = {"ping",	   "hello",  "acquire", "query",    "commit",
			       "rollback", "renew",  "status",	"transact", "revoke"};
	assert_int_equal(sizeof(names) / sizeof(names[0]), PROTO_OP__COUNT);
	for (int op = 0; op < PROTO_OP__COUNT; op++) {
		assert_string_equal(proto_op_name((enum proto_op)op), names[op]);
		assert_int_equal(proto_op_from_name(names[op]), op);
	}
	assert_int_equal(proto_op_from_name("PING"), PROTO_OP__COUNT);
	assert_int_equal(proto_op_from_name(""), PROTO_OP__COUNT);
	assert_non_null(proto_op_name(PROTO_OP__COUNT));
}

static void
test_request_simple_ops(void **state)
{
	(void)state;
	struct {
		const char *line;
		enum proto_op op;
	} cases[] = {
		{"{\"op\":\"ping\"}", PROTO_OP_PING},
		{"{\"op\":\"status\"}", PROTO_OP_STATUS},
		{"{\"op\":\"commit\"}", PROTO_OP_COMMIT},
		{"{\"op\":\"rollback\"}", PROTO_OP_ROLLBACK},
		{"  {\"op\" : \"ping\"}  ", PROTO_OP_PING},
		/* Unknown fields are ignored (forward compatibility). */
		{"{\"op\":\"ping\",\"future\":{\"x\":[1,2]},\"sql\":5}", PROTO_OP_PING},
		{"{\"op\":\"commit\",\"lease\":\"whatever\"}", PROTO_OP_COMMIT},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct proto_request req;
		request_ok(cases[i].line, &req);
		assert_int_equal(req.op, cases[i].op);
		assert_null(req.id);
		assert_int_equal(req.wait_ms, -1);
		assert_int_equal(req.ttl_ms, -1);
		assert_int_equal(req.lease, -1);
		assert_int_equal(req.ntables, 0);
		assert_null(req.query.sql);
		proto_request_free(&req);
	}
}

static void
test_request_id_echo(void **state)
{
	(void)state;
	const char *ids[] = {"1", "\"abc\"", "null", "{\"a\":[1,{\"b\":2}]}", "[1,2]", "-3.5",
			     "true", "18446744073709551615.0"};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char line[128];
		struct proto_request req;
		snprintf(line, sizeof(line), "{\"id\":%s,\"op\":\"ping\"}", ids[i]);
		request_ok(line, &req);
		json_t *want = json_loads(ids[i], JSON_DECODE_ANY, NULL);
		assert_non_null(req.id);
		assert_true(json_equal(req.id, want));
		json_decref(want);
		proto_request_free(&req);

		/* Echoed on errors found after the id was read. */
		snprintf(line, sizeof(line), "{\"id\":%s,\"op\":\"nope\"}", ids[i]);
		request_err_id(line, PROTO_ERR_BAD_REQUEST, "unknown op 'nope'", ids[i]);
		snprintf(line, sizeof(line), "{\"op\":\"revoke\",\"id\":%s}", ids[i]);
		request_err_id(line, PROTO_ERR_BAD_REQUEST, "field 'lease' is required", ids[i]);
		snprintf(line, sizeof(line), "{\"id\":%s,\"op\":\"acquire\",\"write\":[\"a.b.c\"]}",
			 ids[i]);
		request_err_id(line, PROTO_ERR_INVALID_TABLE, "write[0]", ids[i]);
	}
}

static void
test_request_malformed(void **state)
{
	(void)state;
	const char *lines[] = {
		"",
		"   ",
		"{",
		"not json",
		"{\"op\":\"ping\"} {\"op\":\"ping\"}",
		"{\"op\":\"ping\"} x",
		"{\"op\":'ping'}",
		"{\"op\":\"ping\",}",
		"{\"op\":\"p\xffng\"}",	    /* invalid UTF-8 */
		"{\"op\":\"ping\"\x01}",    /* control byte */
		"{\"op\":\"\xc0\xae\"}",    /* overlong */
		"{\"id\":1e999999,\"op\":\"ping\"}",
		"{\"id\":99999999999999999999,\"op\":\"ping\"}",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		request_err(lines[i], PROTO_ERR_BAD_REQUEST, "invalid JSON");

	/* A raw NUL byte in the line (length, not strlen). */
	struct proto_request req;
	char msg[256];
	assert_int_equal(proto_request_parse("{\"op\":\"ping\"}\0", 14, &request_opts, &req, msg,
					     sizeof(msg)),
			 PROTO_ERR_BAD_REQUEST);
	proto_request_free(&req);
}

static void
test_request_duplicate_keys(void **state)
{
	(void)state;
	request_err("{\"op\":\"ping\",\"op\":\"status\"}", PROTO_ERR_BAD_REQUEST, "duplicate");
	request_err("{\"op\":\"revoke\",\"lease\":1,\"lease\":2}", PROTO_ERR_BAD_REQUEST,
		    "duplicate");
	request_err("{\"op\":\"acquire\",\"write\":[{\"table\":\"a\",\"table\":\"b\"}]}",
		    PROTO_ERR_BAD_REQUEST, "duplicate");
}

static void
test_request_not_object(void **state)
{
	(void)state;
	const char *lines[] = {"[]", "[{\"op\":\"ping\"}]", "42", "\"ping\"", "null", "true"};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		request_err(lines[i], PROTO_ERR_BAD_REQUEST, "request must be a JSON object");
}

static void
test_request_op_field(void **state)
{
	(void)state;
	request_err("{}", PROTO_ERR_BAD_REQUEST, "field 'op' is required");
	request_err_id("{\"id\":7}", PROTO_ERR_BAD_REQUEST, "field 'op' is required", "7");
	request_err("{\"op\":null}", PROTO_ERR_BAD_REQUEST, "field 'op' must be a string");
	request_err("{\"op\":1}", PROTO_ERR_BAD_REQUEST, "field 'op' must be a string");
	request_err("{\"op\":[\"ping\"]}", PROTO_ERR_BAD_REQUEST, "field 'op' must be a string");
	request_err("{\"op\":\"frobnicate\"}", PROTO_ERR_BAD_REQUEST, "unknown op 'frobnicate'");
	request_err("{\"op\":\"PING\"}", PROTO_ERR_BAD_REQUEST, "unknown op 'PING'");
	request_err("{\"op\":\"\"}", PROTO_ERR_BAD_REQUEST, "unknown op ''");
	request_err("{\"op\":\" ping\"}", PROTO_ERR_BAD_REQUEST, "unknown op ' ping'");
	/* A NUL must not let "ping\0…" pass as "ping". */
	request_err("{\"op\":\"ping\\u0000x\"}", PROTO_ERR_BAD_REQUEST, "unknown op 'ping?x'");
	request_err("{\"op\":\"a\\nb\"}", PROTO_ERR_BAD_REQUEST, "unknown op 'a?b'");

	/* A long op is cut at a character boundary, with "...". */
	struct buf line = {0};
	buf_append_str(&line, "{\"op\":\"");
	for (int i = 0; i < 100; i++)
		buf_append_str(&line, "\xc3\xa9");
	buf_append_str(&line, "\"}");
	request_err(line.data, PROTO_ERR_BAD_REQUEST, "\xc3\xa9...'");
	buf_free(&line);
}

static void
test_request_depth(void **state)
{
	(void)state;
	struct buf line = {0};
	struct proto_request req;

	/* Root object (1) + params (2) + 30 nested arrays = 32: accepted. */
	buf_append_str(&line, "{\"id\":5,\"op\":\"query\",\"sql\":\"SELECT ?\",\"params\":[");
	for (int i = 0; i < 30; i++)
		buf_append_char(&line, '[');
	for (int i = 0; i < 30; i++)
		buf_append_char(&line, ']');
	buf_append_str(&line, "]}");
	request_ok(line.data, &req);
	proto_request_free(&req);

	/* 33: refused, naming the limit, id echoed. */
	buf_reset(&line);
	buf_append_str(&line, "{\"id\":5,\"op\":\"query\",\"sql\":\"SELECT ?\",\"params\":[");
	for (int i = 0; i < 31; i++)
		buf_append_char(&line, '[');
	for (int i = 0; i < 31; i++)
		buf_append_char(&line, ']');
	buf_append_str(&line, "]}");
	request_err_id(line.data, PROTO_ERR_BAD_REQUEST, "nested deeper than 32 levels", "5");

	/* Depth counts in unknown fields too, and in objects. */
	buf_reset(&line);
	buf_append_str(&line, "{\"op\":\"ping\",\"x\":");
	for (int i = 0; i < 40; i++)
		buf_append_str(&line, "{\"a\":");
	buf_append_str(&line, "1");
	for (int i = 0; i < 40; i++)
		buf_append_char(&line, '}');
	buf_append_char(&line, '}');
	request_err(line.data, PROTO_ERR_BAD_REQUEST, "nested deeper than 32");

	/* No cap: only jansson's own limit (2048) applies. */
	struct proto_parse_options opts = request_opts;
	opts.max_depth = 0;
	request_err_with(&opts, line.data, PROTO_OK, "", NULL);

	buf_reset(&line);
	buf_append_str(&line, "{\"op\":\"ping\",\"x\":");
	for (int i = 0; i < 5000; i++)
		buf_append_char(&line, '[');
	for (int i = 0; i < 5000; i++)
		buf_append_char(&line, ']');
	buf_append_char(&line, '}');
	request_err_with(&opts, line.data, PROTO_ERR_BAD_REQUEST, "invalid JSON", NULL);
	buf_free(&line);
}

static void
test_request_hello(void **state)
{
	(void)state;
	struct proto_request req;

	request_ok("{\"op\":\"hello\"}", &req);
	assert_int_equal(req.op, PROTO_OP_HELLO);
	assert_null(req.client);
	assert_null(req.token);
	proto_request_free(&req);

	request_ok("{\"op\":\"hello\",\"client\":\"orders-svc\",\"token\":\"s3cret\"}", &req);
	assert_string_equal(req.client, "orders-svc");
	assert_string_equal(req.token, "s3cret");
	proto_request_free(&req);

	request_ok("{\"op\":\"hello\",\"client\":\"caf\xc3\xa9 worker #2\",\"client_version\":1}",
		   &req);
	assert_string_equal(req.client, "caf\xc3\xa9 worker #2");
	proto_request_free(&req);

	request_ok("{\"op\":\"hello\",\"client\":null,\"token\":null}", &req);
	assert_null(req.client);
	assert_null(req.token);
	proto_request_free(&req);

	/* 128 bytes accepted, 129 refused. */
	char line[300];
	char name[130];
	memset(name, 'c', 128);
	name[128] = '\0';
	snprintf(line, sizeof(line), "{\"op\":\"hello\",\"client\":\"%s\"}", name);
	request_ok(line, &req);
	assert_int_equal(strlen(req.client), 128);
	proto_request_free(&req);
	name[128] = 'c';
	name[129] = '\0';
	snprintf(line, sizeof(line), "{\"op\":\"hello\",\"client\":\"%s\"}", name);
	request_err(line, PROTO_ERR_BAD_REQUEST, "field 'client' must be a string of 1 to 128");

	request_err("{\"op\":\"hello\",\"client\":\"\"}", PROTO_ERR_BAD_REQUEST, "field 'client'");
	request_err("{\"op\":\"hello\",\"client\":5}", PROTO_ERR_BAD_REQUEST, "field 'client'");
	request_err("{\"op\":\"hello\",\"client\":[\"a\"]}", PROTO_ERR_BAD_REQUEST,
		    "field 'client'");
	request_err("{\"op\":\"hello\",\"client\":\"a\\nb\"}", PROTO_ERR_BAD_REQUEST,
		    "field 'client' must not contain control characters");
	request_err("{\"op\":\"hello\",\"client\":\"a\\u0000\"}", PROTO_ERR_BAD_REQUEST,
		    "field 'client' must not contain control characters");
	request_err("{\"op\":\"hello\",\"client\":\"a\\u007f\"}", PROTO_ERR_BAD_REQUEST,
		    "field 'client' must not contain control characters");
	request_err("{\"op\":\"hello\",\"client\":\"a\\u0085\"}", PROTO_ERR_BAD_REQUEST,
		    "field 'client' must not contain control characters");
	request_err("{\"op\":\"hello\",\"client\":\"\\u001b[31mred\"}", PROTO_ERR_BAD_REQUEST,
		    "control characters");
	request_err("{\"op\":\"hello\",\"token\":1}", PROTO_ERR_BAD_REQUEST,
		    "field 'token' must be a string");
	request_err("{\"op\":\"hello\",\"token\":\"ab\\u0000cd\"}", PROTO_ERR_BAD_REQUEST,
		    "field 'token' must not contain NUL");
}

static void
test_request_acquire_basic(void **state)
{
	(void)state;
	struct proto_request req;

	request_ok("{\"id\":\"r1\",\"op\":\"acquire\",\"write\":[\"t1\"],\"read\":[\"other.t2\"],"
		   "\"wait_ms\":5000,\"ttl_ms\":30000}",
		   &req);
	assert_int_equal(req.op, PROTO_OP_ACQUIRE);
	assert_string_equal(json_string_value(req.id), "r1");
	assert_int_equal(req.ntables, 2);
	request_expect_table(&req, 0, "app", "t1", NULL, true);
	request_expect_table(&req, 1, "other", "t2", NULL, false);
	assert_int_equal(req.wait_ms, 5000);
	assert_int_equal(req.ttl_ms, 30000);
	proto_request_free(&req);

	/* Only read, defaults absent (-1), wait_ms 0 is a try-lock. */
	request_ok("{\"op\":\"acquire\",\"read\":[\"t1\"]}", &req);
	assert_int_equal(req.ntables, 1);
	request_expect_table(&req, 0, "app", "t1", NULL, false);
	assert_int_equal(req.wait_ms, -1);
	assert_int_equal(req.ttl_ms, -1);
	proto_request_free(&req);

	request_ok("{\"op\":\"acquire\",\"write\":[\"t1\"],\"read\":[],\"wait_ms\":0,"
		   "\"ttl_ms\":1}",
		   &req);
	assert_int_equal(req.wait_ms, 0);
	assert_int_equal(req.ttl_ms, 1);
	proto_request_free(&req);

	/* null means absent for optional fields. */
	request_ok("{\"op\":\"acquire\",\"write\":null,\"read\":[\"t1\"],\"wait_ms\":null,"
		   "\"ttl_ms\":null}",
		   &req);
	assert_int_equal(req.ntables, 1);
	assert_int_equal(req.wait_ms, -1);
	assert_int_equal(req.ttl_ms, -1);
	proto_request_free(&req);

	request_ok("{\"op\":\"acquire\",\"write\":[\"t1\"],\"wait_ms\":9223372036854775807}",
		   &req);
	assert_int_equal(req.wait_ms, INT64_MAX);
	proto_request_free(&req);
}

static void
test_request_acquire_aliases(void **state)
{
	(void)state;
	struct proto_request req;

	request_ok("{\"op\":\"acquire\",\"write\":[{\"table\":\"t1\"},{\"table\":\"t1\",\"as\":\"a\"}],"
		   "\"read\":[{\"table\":\"o.t2\",\"as\":\"b\"},{\"table\":\"t3\",\"as\":null}]}",
		   &req);
	assert_int_equal(req.ntables, 4);
	request_expect_table(&req, 0, "app", "t1", NULL, true);
	request_expect_table(&req, 1, "app", "t1", "a", true);
	request_expect_table(&req, 2, "o", "t2", "b", false);
	request_expect_table(&req, 3, "app", "t3", NULL, false);
	proto_request_free(&req);

	/* A self-join: one table locked under two aliases, one per mode. */
	request_ok("{\"op\":\"acquire\",\"write\":[{\"table\":\"t1\",\"as\":\"w\"}],"
		   "\"read\":[{\"table\":\"t1\",\"as\":\"r\"},\"t1\"]}",
		   &req);
	assert_int_equal(req.ntables, 3);
	proto_request_free(&req);
}

static void
test_request_acquire_field_errors(void **state)
{
	(void)state;
	request_err("{\"op\":\"acquire\"}", PROTO_ERR_BAD_REQUEST, "no tables");
	request_err("{\"op\":\"acquire\",\"write\":[],\"read\":[]}", PROTO_ERR_BAD_REQUEST,
		    "no tables");
	request_err("{\"op\":\"acquire\",\"write\":\"t1\"}", PROTO_ERR_BAD_REQUEST,
		    "field 'write' must be an array");
	request_err("{\"op\":\"acquire\",\"read\":{\"table\":\"t1\"}}", PROTO_ERR_BAD_REQUEST,
		    "field 'read' must be an array");
	request_err("{\"op\":\"acquire\",\"write\":[\"t1\",5]}", PROTO_ERR_BAD_REQUEST,
		    "field 'write[1]' must be a table name string or an object");
	request_err("{\"op\":\"acquire\",\"read\":[null]}", PROTO_ERR_BAD_REQUEST,
		    "field 'read[0]' must be a table name");
	request_err("{\"op\":\"acquire\",\"read\":[[\"t1\"]]}", PROTO_ERR_BAD_REQUEST,
		    "field 'read[0]'");
	request_err("{\"op\":\"acquire\",\"write\":[{\"as\":\"a\"}]}", PROTO_ERR_BAD_REQUEST,
		    "field 'write[0].table' is required");
	request_err("{\"op\":\"acquire\",\"write\":[{\"table\":1}]}", PROTO_ERR_BAD_REQUEST,
		    "field 'write[0].table' must be a string");
	request_err("{\"op\":\"acquire\",\"write\":[{\"table\":null}]}", PROTO_ERR_BAD_REQUEST,
		    "field 'write[0].table' must be a string");
	request_err("{\"op\":\"acquire\",\"read\":[\"x\",{\"table\":\"t\",\"as\":2}]}",
		    PROTO_ERR_BAD_REQUEST, "field 'read[1].as' must be a string");

	const char *bad_wait[] = {"-1", "1.5", "5.0", "\"5\"", "true", "[]", "{}"};
	for (size_t i = 0; i < sizeof(bad_wait) / sizeof(bad_wait[0]); i++) {
		char line[128];
		snprintf(line, sizeof(line), "{\"op\":\"acquire\",\"write\":[\"t\"],\"wait_ms\":%s}",
			 bad_wait[i]);
		request_err(line, PROTO_ERR_BAD_REQUEST,
			    "field 'wait_ms' must be a non-negative integer");
		snprintf(line, sizeof(line), "{\"op\":\"acquire\",\"write\":[\"t\"],\"ttl_ms\":%s}",
			 bad_wait[i]);
		request_err(line, PROTO_ERR_BAD_REQUEST, "field 'ttl_ms' must be a positive integer");
	}
	request_err("{\"op\":\"acquire\",\"write\":[\"t\"],\"ttl_ms\":0}", PROTO_ERR_BAD_REQUEST,
		    "field 'ttl_ms' must be a positive integer");
}

static void
test_request_acquire_invalid_tables(void **state)
{
	(void)state;
	request_err("{\"op\":\"acquire\",\"write\":[\"a.b.c\"]}", PROTO_ERR_INVALID_TABLE,
		    "invalid table in write[0] ('a.b.c'): has more than one '.'");
	request_err("{\"op\":\"acquire\",\"write\":[\"ok\"],\"read\":[\"t1\",\"app.\"]}",
		    PROTO_ERR_INVALID_TABLE, "invalid table in read[1] ('app.'): table name is empty");
	request_err("{\"op\":\"acquire\",\"read\":[\"\"]}", PROTO_ERR_INVALID_TABLE,
		    "invalid table in read[0] (''): table name is empty");
	request_err("{\"op\":\"acquire\",\"read\":[\".t\"]}", PROTO_ERR_INVALID_TABLE,
		    "database name is empty");
	request_err("{\"op\":\"acquire\",\"read\":[\"t \"]}", PROTO_ERR_INVALID_TABLE,
		    "table name ends with a space");
	request_err("{\"op\":\"acquire\",\"read\":[\"t\\u0000x\"]}", PROTO_ERR_INVALID_TABLE,
		    "invalid table in read[0] ('t?x'): table name contains NUL");
	request_err("{\"op\":\"acquire\",\"read\":[\"\\ud83d\\ude00\"]}", PROTO_ERR_INVALID_TABLE,
		    "Basic Multilingual Plane");
	request_err("{\"op\":\"acquire\",\"write\":[{\"table\":\"a..b\",\"as\":\"x\"}]}",
		    PROTO_ERR_INVALID_TABLE, "invalid table in write[0] ('a..b')");
	request_err("{\"op\":\"acquire\",\"write\":[{\"table\":\"t\",\"as\":\"\"}]}",
		    PROTO_ERR_INVALID_TABLE, "invalid alias in write[0] (''): alias is empty");
	request_err("{\"op\":\"acquire\",\"write\":[{\"table\":\"t\",\"as\":\"a.b\"}]}",
		    PROTO_ERR_INVALID_TABLE, "alias contains '.'");
	request_err("{\"op\":\"acquire\",\"write\":[{\"table\":\"t\",\"as\":\"a \"}]}",
		    PROTO_ERR_INVALID_TABLE, "alias ends with a space");

	/* 64 characters fit, 65 do not. */
	char line[300], name[70];
	memset(name, 'n', 64);
	name[64] = '\0';
	snprintf(line, sizeof(line), "{\"op\":\"acquire\",\"write\":[\"app.%s\"]}", name);
	struct proto_request req;
	request_ok(line, &req);
	proto_request_free(&req);
	strcat(name, "n");
	snprintf(line, sizeof(line), "{\"op\":\"acquire\",\"write\":[\"app.%s\"]}", name);
	request_err(line, PROTO_ERR_INVALID_TABLE, "longer than 64 characters");
	/* The quoted name is cut, with "...". */
	request_err(line, PROTO_ERR_INVALID_TABLE, "...')");

	/* No default database: names need one. */
	struct proto_parse_options opts = request_opts;
	opts.default_db = NULL;
	request_err_with(&opts, "{\"id\":3,\"op\":\"acquire\",\"write\":[\"app.t1\",\"t2\"]}",
			 PROTO_ERR_INVALID_TABLE,
			 "invalid table in write[1] ('t2'): names no database", "3");
	request_err_with(&opts, "{\"op\":\"acquire\",\"write\":[\"app.t1\"]}", PROTO_OK, "", NULL);
}

static void
test_request_acquire_merge(void **state)
{
	(void)state;
	struct proto_request req;

	/* "t1" and "app.t1" are the same table once the default applies. */
	request_ok("{\"op\":\"acquire\",\"write\":[\"t1\",\"app.t1\",\"t2\",\"t1\"],"
		   "\"read\":[\"t3\",\"t3\",{\"table\":\"t3\"}]}",
		   &req);
	assert_int_equal(req.ntables, 3);
	request_expect_table(&req, 0, "app", "t1", NULL, true);
	request_expect_table(&req, 1, "app", "t2", NULL, true);
	request_expect_table(&req, 2, "app", "t3", NULL, false);
	proto_request_free(&req);

	/* Same alias merges; different aliases are different entries. */
	request_ok("{\"op\":\"acquire\",\"read\":[{\"table\":\"t1\",\"as\":\"a\"},"
		   "{\"table\":\"app.t1\",\"as\":\"a\"},{\"table\":\"t1\",\"as\":\"b\"},\"t1\"]}",
		   &req);
	assert_int_equal(req.ntables, 3);
	request_expect_table(&req, 0, "app", "t1", "a", false);
	request_expect_table(&req, 1, "app", "t1", "b", false);
	request_expect_table(&req, 2, "app", "t1", NULL, false);
	proto_request_free(&req);

	/* Names compare as exact bytes. */
	request_ok("{\"op\":\"acquire\",\"read\":[\"t1\",\"T1\",\"App.t1\"]}", &req);
	assert_int_equal(req.ntables, 3);
	proto_request_free(&req);

	/* In both lists: which mode was meant? */
	request_err_id("{\"id\":9,\"op\":\"acquire\",\"write\":[\"t1\"],\"read\":[\"app.t1\"]}",
		       PROTO_ERR_BAD_REQUEST, "table 'app.t1' is in both 'write' and 'read'", "9");
	request_err("{\"op\":\"acquire\",\"write\":[{\"table\":\"t1\",\"as\":\"a\"}],"
		    "\"read\":[\"t1\",{\"table\":\"t1\",\"as\":\"a\"}]}",
		    PROTO_ERR_BAD_REQUEST, "table 'app.t1' as 'a' is in both 'write' and 'read'");
	/* The first conflict in request order is named. */
	request_err("{\"op\":\"acquire\",\"write\":[\"zz\",\"aa\"],\"read\":[\"aa\",\"zz\"]}",
		    PROTO_ERR_BAD_REQUEST, "table 'app.zz' is in both");
	/* Merging happens before the cap. */
	request_ok("{\"op\":\"acquire\",\"write\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\","
		   "\"a\",\"b\",\"c\"]}",
		   &req);
	assert_int_equal(req.ntables, 8);
	proto_request_free(&req);
}

static void
test_request_acquire_cap(void **state)
{
	(void)state;
	request_err_id("{\"id\":[1],\"op\":\"acquire\",\"write\":[\"a\",\"b\",\"c\",\"d\",\"e\"],"
		       "\"read\":[\"f\",\"g\",\"h\",\"i\"]}",
		       PROTO_ERR_BAD_REQUEST, "too many tables: 9, at most 8", "[1]");

	/* No cap, a long list: merging stays fast (sorted, not pairwise). */
	struct proto_parse_options opts = request_opts;
	opts.max_tables = 0;
	struct buf line = {0};
	buf_append_str(&line, "{\"op\":\"acquire\",\"read\":[");
	for (int i = 0; i < 40000; i++)
		buf_appendf(&line, "%s\"t%d\"", i ? "," : "", i % 20000);
	buf_append_str(&line, "]}");
	struct proto_request req;
	char msg[256];
	assert_int_equal(request_parse_with(&opts, line.data, &req, msg, sizeof(msg)), PROTO_OK);
	assert_int_equal(req.ntables, 20000);
	assert_string_equal(req.tables[0].name, "t0");
	assert_string_equal(req.tables[19999].name, "t19999");
	proto_request_free(&req);
	buf_free(&line);
}

static void
test_request_query(void **state)
{
	(void)state;
	struct proto_request req;

	request_ok("{\"id\":2,\"op\":\"query\",\"sql\":\"UPDATE t1 SET v=v+? WHERE id=?\","
		   "\"params\":[1,7]}",
		   &req);
	assert_int_equal(req.op, PROTO_OP_QUERY);
	assert_string_equal(req.query.sql, "UPDATE t1 SET v=v+? WHERE id=?");
	assert_int_equal(req.query.sql_len, strlen(req.query.sql));
	assert_true(json_is_array(req.query.params));
	assert_int_equal(json_array_size(req.query.params), 2);
	proto_request_free(&req);

	request_ok("{\"op\":\"query\",\"sql\":\"SELECT 1\"}", &req);
	assert_null(req.query.params);
	proto_request_free(&req);
	request_ok("{\"op\":\"query\",\"sql\":\"SELECT 1\",\"params\":null}", &req);
	assert_null(req.query.params);
	proto_request_free(&req);
	request_ok("{\"op\":\"query\",\"sql\":\"SELECT 1\",\"params\":[]}", &req);
	assert_int_equal(json_array_size(req.query.params), 0);
	proto_request_free(&req);

	/* Element types are the daemon's business (bad_params), and strings
	 * in params may carry NUL (binary data). */
	request_ok("{\"op\":\"query\",\"sql\":\"SELECT ?\",\"params\":[{\"a\":1},[2],\"x\\u0000y\"]}",
		   &req);
	assert_int_equal(json_string_length(json_array_get(req.query.params, 2)), 3);
	proto_request_free(&req);

	request_err_id("{\"id\":2,\"op\":\"query\"}", PROTO_ERR_BAD_REQUEST,
		       "field 'sql' is required", "2");
	request_err("{\"op\":\"query\",\"sql\":\"\"}", PROTO_ERR_BAD_REQUEST,
		    "field 'sql' must be a non-empty string");
	request_err("{\"op\":\"query\",\"sql\":null}", PROTO_ERR_BAD_REQUEST,
		    "field 'sql' must be a non-empty string");
	request_err("{\"op\":\"query\",\"sql\":[\"SELECT 1\"]}", PROTO_ERR_BAD_REQUEST,
		    "field 'sql' must be a non-empty string");
	request_err("{\"op\":\"query\",\"sql\":\"SELECT 1\\u0000; DROP TABLE t\"}",
		    PROTO_ERR_BAD_REQUEST, "field 'sql' must not contain NUL");
	request_err("{\"op\":\"query\",\"sql\":\"SELECT 1\",\"params\":1}", PROTO_ERR_BAD_REQUEST,
		    "field 'params' must be an array");
	request_err("{\"op\":\"query\",\"sql\":\"SELECT 1\",\"params\":{\"a\":1}}",
		    PROTO_ERR_BAD_REQUEST, "field 'params' must be an array");
	request_err("{\"op\":\"query\",\"sql\":\"SELECT ?\",\"params\":[1,2,3,4]}",
		    PROTO_ERR_BAD_REQUEST, "field 'params' has 4 elements, at most 3 are allowed");
	request_ok("{\"op\":\"query\",\"sql\":\"SELECT ?\",\"params\":[1,2,3]}", &req);
	proto_request_free(&req);

	/* max_sql_bytes: 100 fit, 101 do not. */
	char line[300], sql[120];
	memset(sql, 'x', 100);
	sql[100] = '\0';
	snprintf(line, sizeof(line), "{\"op\":\"query\",\"sql\":\"%s\"}", sql);
	request_ok(line, &req);
	assert_int_equal(req.query.sql_len, 100);
	proto_request_free(&req);
	strcat(sql, "x");
	snprintf(line, sizeof(line), "{\"op\":\"query\",\"sql\":\"%s\"}", sql);
	request_err(line, PROTO_ERR_BAD_REQUEST,
		    "field 'sql' is 101 bytes long, at most 100 are allowed");
}

/* acquire and commit may carry statements, as transact does; absent or
 * empty means none. */
static void
test_request_statements_on_acquire_and_commit(void **state)
{
	(void)state;
	struct proto_request req;

	request_ok("{\"op\":\"acquire\",\"write\":[\"t1\"],\"statements\":["
		   "{\"sql\":\"SELECT v FROM t1 WHERE id=?\",\"params\":[7]}]}",
		   &req);
	assert_int_equal(req.op, PROTO_OP_ACQUIRE);
	assert_int_equal(req.nstatements, 1);
	assert_string_equal(req.statements[0].sql, "SELECT v FROM t1 WHERE id=?");
	assert_int_equal(json_array_size(req.statements[0].params), 1);
	proto_request_free(&req);

	request_ok("{\"op\":\"acquire\",\"write\":[\"t1\"]}", &req);
	assert_int_equal(req.nstatements, 0);
	assert_null(req.statements);
	proto_request_free(&req);

	request_ok("{\"op\":\"commit\",\"statements\":[{\"sql\":\"UPDATE t1 SET v=1\"},"
		   "{\"sql\":\"SELECT 1\"}]}",
		   &req);
	assert_int_equal(req.op, PROTO_OP_COMMIT);
	assert_int_equal(req.nstatements, 2);
	assert_string_equal(req.statements[1].sql, "SELECT 1");
	proto_request_free(&req);

	request_ok("{\"op\":\"commit\",\"statements\":[]}", &req);
	assert_int_equal(req.nstatements, 0);
	proto_request_free(&req);
	request_ok("{\"op\":\"commit\"}", &req);
	assert_int_equal(req.nstatements, 0);
	proto_request_free(&req);

	request_err("{\"op\":\"commit\",\"statements\":{\"sql\":\"SELECT 1\"}}",
		    PROTO_ERR_BAD_REQUEST, "field 'statements' must be an array");
	request_err("{\"op\":\"acquire\",\"write\":[\"t1\"],\"statements\":[\"SELECT 1\"]}",
		    PROTO_ERR_BAD_REQUEST, "field 'statements[0]' must be an object");
	request_err("{\"op\":\"commit\",\"statements\":[{\"sql\":\"\"}]}", PROTO_ERR_BAD_REQUEST,
		    "field 'statements[0].sql' must be a non-empty string");
}

static void
test_request_transact(void **state)
{
	(void)state;
	struct proto_request req;

	request_ok("{\"id\":\"tx\",\"op\":\"transact\",\"write\":[\"t1\"],\"read\":[\"t2\"],"
		   "\"wait_ms\":100,\"ttl_ms\":2000,\"statements\":["
		   "{\"sql\":\"UPDATE t1 SET v=v+? WHERE id=?\",\"params\":[1,7]},"
		   "{\"sql\":\"SELECT v FROM t2\"}]}",
		   &req);
	assert_int_equal(req.op, PROTO_OP_TRANSACT);
	assert_int_equal(req.ntables, 2);
	assert_int_equal(req.wait_ms, 100);
	assert_int_equal(req.ttl_ms, 2000);
	assert_int_equal(req.nstatements, 2);
	assert_string_equal(req.statements[0].sql, "UPDATE t1 SET v=v+? WHERE id=?");
	assert_int_equal(json_array_size(req.statements[0].params), 2);
	assert_string_equal(req.statements[1].sql, "SELECT v FROM t2");
	assert_null(req.statements[1].params);
	proto_request_free(&req);

	const char *tables = "\"write\":[\"t1\"]";
	struct {
		const char *rest;
		enum proto_error code;
		const char *part;
	} cases[] = {
		{"", PROTO_ERR_BAD_REQUEST, "field 'statements' is required"},
		{",\"statements\":[]", PROTO_ERR_BAD_REQUEST,
		 "field 'statements' must be a non-empty array"},
		{",\"statements\":null", PROTO_ERR_BAD_REQUEST,
		 "field 'statements' must be a non-empty array"},
		{",\"statements\":{\"sql\":\"SELECT 1\"}", PROTO_ERR_BAD_REQUEST,
		 "field 'statements' must be a non-empty array"},
		{",\"statements\":[{\"sql\":\"SELECT 1\"},\"SELECT 2\"]", PROTO_ERR_BAD_REQUEST,
		 "field 'statements[1]' must be an object"},
		{",\"statements\":[{\"sql\":\"SELECT 1\"},{\"params\":[]}]", PROTO_ERR_BAD_REQUEST,
		 "field 'statements[1].sql' is required"},
		{",\"statements\":[{\"sql\":\"\"}]", PROTO_ERR_BAD_REQUEST,
		 "field 'statements[0].sql' must be a non-empty string"},
		{",\"statements\":[{\"sql\":\"SELECT ?\",\"params\":5}]", PROTO_ERR_BAD_REQUEST,
		 "field 'statements[0].params' must be an array"},
		{",\"statements\":[{\"sql\":\"SELECT 1\"},{\"sql\":\"SELECT ?\",\"params\":[1,2,3,4]}]",
		 PROTO_ERR_BAD_REQUEST, "field 'statements[1].params' has 4 elements, at most 3"},
		{",\"statements\":[{\"sql\":\"a\"},{\"sql\":\"b\"},{\"sql\":\"c\"},{\"sql\":\"d\"},"
		 "{\"sql\":\"e\"}]",
		 PROTO_ERR_BAD_REQUEST, "field 'statements' has 5 elements, at most 4 are allowed"},
		{",\"statements\":[{\"sql\":\"a\\u0000\"}]", PROTO_ERR_BAD_REQUEST,
		 "field 'statements[0].sql' must not contain NUL"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char line[512];
		snprintf(line, sizeof(line), "{\"id\":%zu,\"op\":\"transact\",%s%s}", i, tables,
			 cases[i].rest);
		char id[16];
		snprintf(id, sizeof(id), "%zu", i);
		request_err_id(line, cases[i].code, cases[i].part, id);
	}

	/* The acquire rules hold for transact too. */
	request_err("{\"op\":\"transact\",\"statements\":[{\"sql\":\"SELECT 1\"}]}",
		    PROTO_ERR_BAD_REQUEST, "no tables");
	request_err("{\"op\":\"transact\",\"write\":[\"a.b.c\"],"
		    "\"statements\":[{\"sql\":\"SELECT 1\"}]}",
		    PROTO_ERR_INVALID_TABLE, "write[0]");
	request_err("{\"op\":\"transact\",\"write\":[\"t\"],\"read\":[\"t\"],"
		    "\"statements\":[{\"sql\":\"SELECT 1\"}]}",
		    PROTO_ERR_BAD_REQUEST, "in both");
	request_err("{\"op\":\"transact\",\"write\":[\"t\"],\"wait_ms\":-5,"
		    "\"statements\":[{\"sql\":\"SELECT 1\"}]}",
		    PROTO_ERR_BAD_REQUEST, "field 'wait_ms'");
	request_ok("{\"op\":\"transact\",\"write\":[\"t\"],\"statements\":[{\"sql\":\"a\"},"
		   "{\"sql\":\"b\"},{\"sql\":\"c\"},{\"sql\":\"d\"}]}",
		   &req);
	assert_int_equal(req.nstatements, 4);
	proto_request_free(&req);
}

static void
test_request_renew(void **state)
{
	(void)state;
	struct proto_request req;
	request_ok("{\"op\":\"renew\"}", &req);
	assert_int_equal(req.op, PROTO_OP_RENEW);
	assert_int_equal(req.ttl_ms, -1);
	proto_request_free(&req);
	request_ok("{\"op\":\"renew\",\"ttl_ms\":30000}", &req);
	assert_int_equal(req.ttl_ms, 30000);
	proto_request_free(&req);
	request_err("{\"op\":\"renew\",\"ttl_ms\":0}", PROTO_ERR_BAD_REQUEST,
		    "field 'ttl_ms' must be a positive integer");
	request_err("{\"op\":\"renew\",\"ttl_ms\":\"30000\"}", PROTO_ERR_BAD_REQUEST,
		    "field 'ttl_ms' must be a positive integer");
}

static void
test_request_revoke(void **state)
{
	(void)state;
	struct proto_request req;
	request_ok("{\"op\":\"revoke\",\"lease\":17}", &req);
	assert_int_equal(req.op, PROTO_OP_REVOKE);
	assert_int_equal(req.lease, 17);
	proto_request_free(&req);
	request_err("{\"op\":\"revoke\"}", PROTO_ERR_BAD_REQUEST, "field 'lease' is required");
	const char *bad[] = {"0", "-1", "1.0", "\"17\"", "null", "[17]"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "{\"op\":\"revoke\",\"lease\":%s}", bad[i]);
		request_err(line, PROTO_ERR_BAD_REQUEST, "field 'lease' must be a positive integer");
	}
}

static void
test_request_free_safety(void **state)
{
	(void)state;
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	proto_request_free(&req);
	proto_request_free(&req);

	/* Partly filled: tables parsed, then a statement fails. */
	char msg[128];
	const char *line = "{\"op\":\"transact\",\"write\":[\"t1\",\"t2\"],"
			   "\"statements\":[{\"sql\":\"SELECT 1\"},{\"sql\":5}]}";
	assert_int_equal(request_parse_with(&request_opts, line, &req, msg, sizeof(msg)),
			 PROTO_ERR_BAD_REQUEST);
	assert_int_equal(req.ntables, 2);
	proto_request_free(&req);
	assert_null(req.root);
	assert_null(req.tables);
	proto_request_free(&req);

	/* A table list that fails half way. */
	line = "{\"op\":\"acquire\",\"write\":[\"t1\",\"t2\",\"x.y.z\"]}";
	assert_int_equal(request_parse_with(&request_opts, line, &req, msg, sizeof(msg)),
			 PROTO_ERR_INVALID_TABLE);
	proto_request_free(&req);

	/* Failed before anything was parsed. */
	assert_int_equal(request_parse_with(&request_opts, "{", &req, msg, sizeof(msg)),
			 PROTO_ERR_BAD_REQUEST);
	assert_null(req.id);
	proto_request_free(&req);
}

static void
test_request_small_message_buffer(void **state)
{
	(void)state;
	struct proto_request req;
	char msg[32];
	/* "unknown op 'éééé…": cut by the buffer inside a character. */
	const char *line = "{\"op\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
			   "\xc3\xa9\xc3\xa9\xc3\xa9\"}";
	for (size_t size = 1; size <= sizeof(msg); size++) {
		memset(msg, 'Z', sizeof(msg));
		assert_int_equal(request_parse_with(&request_opts, line, &req, msg, size),
				 PROTO_ERR_BAD_REQUEST);
		assert_true(strlen(msg) < size);
		json_t *str = json_string(msg);
		if (str == NULL)
			fail_msg("message of size %zu is not valid UTF-8", size);
		json_decref(str);
		proto_request_free(&req);
	}
	/* No message buffer at all. */
	assert_int_equal(request_parse_with(&request_opts, line, &req, NULL, 0),
			 PROTO_ERR_BAD_REQUEST);
	proto_request_free(&req);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_op_names),
		cmocka_unit_test(test_request_simple_ops),
		cmocka_unit_test(test_request_id_echo),
		cmocka_unit_test(test_request_malformed),
		cmocka_unit_test(test_request_duplicate_keys),
		cmocka_unit_test(test_request_not_object),
		cmocka_unit_test(test_request_op_field),
		cmocka_unit_test(test_request_depth),
		cmocka_unit_test(test_request_hello),
		cmocka_unit_test(test_request_acquire_basic),
		cmocka_unit_test(test_request_acquire_aliases),
		cmocka_unit_test(test_request_acquire_field_errors),
		cmocka_unit_test(test_request_acquire_invalid_tables),
		cmocka_unit_test(test_request_acquire_merge),
		cmocka_unit_test(test_request_acquire_cap),
		cmocka_unit_test(test_request_query),
		cmocka_unit_test(test_request_statements_on_acquire_and_commit),
		cmocka_unit_test(test_request_transact),
		cmocka_unit_test(test_request_renew),
		cmocka_unit_test(test_request_revoke),
		cmocka_unit_test(test_request_free_safety),
		cmocka_unit_test(test_request_small_message_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
