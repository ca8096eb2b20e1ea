/* Unit tests: response, error and event encoding as single JSON lines. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proto/proto_request.h"
#include "proto/proto_response.h"
#include "util/buf.h"

static void response_expect_line(json_t *obj, const char *want);

/* Encodes obj (and drops it) and requires exactly want + '\n'. */
static void
response_expect_line(json_t *obj, const char *want)
{
	struct buf out = {0};
	assert_int_equal(proto_write_line(&out, obj), 0);
	assert_int_equal(out.len, strlen(want) + 1);
	assert_memory_equal(out.data, want, strlen(want));
	assert_int_equal(out.data[out.len - 1], '\n');
	assert_int_equal(out.data[out.len], '\0');
	buf_free(&out);
	json_decref(obj);
}

static void
test_response_ok(void **state)
{
	(void)state;
	response_expect_line(proto_response_ok(NULL), "{\"ok\":true}");

	json_t *id = json_integer(7);
	response_expect_line(proto_response_ok(id), "{\"id\":7,\"ok\":true}");
	json_decref(id);

	/* Fields added later follow "id" and "ok", in the order added. */
	id = json_string("r1");
	json_t *obj = proto_response_ok(id);
	json_decref(id);
	json_object_set_new(obj, "lease", json_integer(17));
	json_object_set_new(obj, "ttl_ms", json_integer(30000));
	json_object_set_new(obj, "waited_ms", json_integer(3));
	response_expect_line(obj, "{\"id\":\"r1\",\"ok\":true,\"lease\":17,\"ttl_ms\":30000,"
				  "\"waited_ms\":3}");

	/* A JSON null id is echoed as null (it was given). */
	response_expect_line(proto_response_ok(json_null()), "{\"id\":null,\"ok\":true}");
}

static void
test_response_id_outlives_request(void **state)
{
	(void)state;
	struct proto_request req;
	char msg[128];
	const char *line = "{\"id\":{\"k\":[1,\"two\"]},\"op\":\"nope\"}";
	enum proto_error err = proto_request_parse(line, strlen(line), &(struct proto_parse_options){0},
						   &req, msg, sizeof(msg));
	assert_int_equal(err, PROTO_ERR_BAD_REQUEST);
	json_t *obj = proto_response_error(req.id, err, msg);
	proto_request_free(&req);
	response_expect_line(obj, "{\"id\":{\"k\":[1,\"two\"]},\"ok\":false,\"error\":{\"code\":"
				  "\"bad_request\",\"message\":\"unknown op 'nope'\"}}");
}

static void
test_response_error(void **state)
{
	(void)state;
	response_expect_line(proto_response_error(NULL, PROTO_ERR_NO_LEASE, "no lease held"),
			     "{\"ok\":false,\"error\":{\"code\":\"no_lease\",\"message\":"
			     "\"no lease held\"}}");

	json_t *id = json_integer(3);
	response_expect_line(proto_response_error(id, PROTO_ERR_LOCK_TIMEOUT, NULL),
			     "{\"id\":3,\"ok\":false,\"error\":{\"code\":\"lock_timeout\","
			     "\"message\":\"lock_timeout\"}}");
	json_decref(id);

	/* Quotes, newlines and control characters are escaped: still one line. */
	response_expect_line(proto_response_error(NULL, PROTO_ERR_MYSQL, "a \"b\"\nc\td\x01"),
			     "{\"ok\":false,\"error\":{\"code\":\"mysql\",\"message\":"
			     "\"a \\\"b\\\"\\nc\\td\\u0001\"}}");

	/* UTF-8 passes through as is. */
	response_expect_line(proto_response_error(NULL, PROTO_ERR_INTERNAL, "caf\xc3\xa9"),
			     "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":"
			     "\"caf\xc3\xa9\"}}");

	/* Invalid UTF-8 does not lose the message. */
	response_expect_line(proto_response_error(NULL, PROTO_ERR_MYSQL, "bad \xff\xc3 byte"),
			     "{\"ok\":false,\"error\":{\"code\":\"mysql\",\"message\":"
			     "\"bad ?? byte\"}}");
}

static void
test_response_every_code(void **state)
{
	(void)state;
	for (int code = 1; code < PROTO_ERR__COUNT; code++) {
		json_t *obj = proto_response_error(NULL, (enum proto_error)code, "m");
		json_t *error = json_object_get(obj, "error");
		const char *name = json_string_value(json_object_get(error, "code"));
		assert_non_null(name);
		assert_string_equal(name, proto_error_name((enum proto_error)code));
		assert_int_equal(proto_error_from_name(name), code);
		assert_true(json_is_false(json_object_get(obj, "ok")));
		json_decref(obj);
	}
}

static void
test_response_mysql(void **state)
{
	(void)state;
	json_t *obj = proto_response_error(NULL, PROTO_ERR_MYSQL,
					   "Table 't2' was locked with a READ lock and can't be "
					   "updated");
	proto_response_add_mysql(obj, 1099, "HY000");
	response_expect_line(obj, "{\"ok\":false,\"error\":{\"code\":\"mysql\",\"message\":"
				  "\"Table 't2' was locked with a READ lock and can't be updated\","
				  "\"mysql_errno\":1099,\"sqlstate\":\"HY000\"}}");

	obj = proto_response_error(NULL, PROTO_ERR_MYSQL, "x");
	proto_response_add_mysql(obj, 2013, NULL);
	response_expect_line(obj, "{\"ok\":false,\"error\":{\"code\":\"mysql\",\"message\":\"x\","
				  "\"mysql_errno\":2013}}");

	/* On a success response it changes nothing. */
	obj = proto_response_ok(NULL);
	proto_response_add_mysql(obj, 1100, "HY000");
	response_expect_line(obj, "{\"ok\":true}");
}

static void
test_response_event(void **state)
{
	(void)state;
	response_expect_line(proto_event("lease_expired", 17),
			     "{\"event\":\"lease_expired\",\"lease\":17}");
	json_t *obj = proto_event("lease_lost", 18);
	json_object_set_new(obj, "reason", json_string("MySQL server has gone away"));
	response_expect_line(obj, "{\"event\":\"lease_lost\",\"lease\":18,"
				  "\"reason\":\"MySQL server has gone away\"}");
	assert_null(json_object_get(obj = proto_event("lease_revoked", 1), "ok"));
	json_decref(obj);
	response_expect_line(proto_event("lease_revoked", INT64_MAX),
			     "{\"event\":\"lease_revoked\",\"lease\":9223372036854775807}");
}

static void
test_response_write_line(void **state)
{
	(void)state;
	struct buf out = {0};
	json_t *a = proto_response_ok(NULL);
	json_t *b = proto_event("lease_expired", 2);

	/* Appends after what is already buffered (pipelined responses). */
	assert_int_equal(proto_write_line(&out, a), 0);
	assert_int_equal(proto_write_line(&out, b), 0);
	assert_string_equal(out.data, "{\"ok\":true}\n{\"event\":\"lease_expired\",\"lease\":2}\n");

	/* Nothing appended when jansson cannot encode. */
	size_t len = out.len;
	assert_int_equal(proto_write_line(&out, NULL), -1);
	json_t *scalar = json_integer(1);
	assert_int_equal(proto_write_line(&out, scalar), -1);
	assert_int_equal(out.len, len);
	assert_int_equal(out.data[out.len], '\0');
	json_decref(scalar);

	/* Results of every JSON kind, compact; reals round-trip. */
	buf_reset(&out);
	json_t *r = proto_response_ok(NULL);
	json_t *row = json_array();
	json_array_append_new(row, json_integer(-9223372036854775807LL - 1));
	json_array_append_new(row, json_string("18446744073709551615"));
	json_array_append_new(row, json_real(-2.25));
	json_array_append_new(row, json_null());
	json_t *bin = json_object();
	json_object_set_new(bin, "base64", json_string("AP8="));
	json_array_append_new(row, bin);
	json_t *rows = json_array();
	json_array_append_new(rows, row);
	json_object_set_new(r, "rows", rows);
	assert_int_equal(proto_write_line(&out, r), 0);
	assert_string_equal(out.data, "{\"ok\":true,\"rows\":[[-9223372036854775808,"
				      "\"18446744073709551615\",-2.25,null,{\"base64\":\"AP8=\"}]]}\n");
	json_decref(r);

	/* Reals are written with 17 significant digits: exact, not shortest. */
	buf_reset(&out);
	r = json_pack("{s:f}", "v", 0.1);
	assert_int_equal(proto_write_line(&out, r), 0);
	json_t *back = json_loadb(out.data, out.len, 0, NULL);
	assert_true(json_real_value(json_object_get(back, "v")) == 0.1);
	json_decref(back);
	json_decref(r);

	json_decref(a);
	json_decref(b);
	buf_free(&out);
}

static void
test_response_large(void **state)
{
	(void)state;
	struct buf out = {0};
	json_t *r = proto_response_ok(NULL);
	json_t *rows = json_array();
	for (int i = 0; i < 20000; i++)
		json_array_append_new(rows, json_pack("[i,s]", i, "row text"));
	json_object_set_new(r, "rows", rows);
	assert_int_equal(proto_write_line(&out, r), 0);
	assert_int_equal(memchr(out.data, '\n', out.len), out.data + out.len - 1);
	json_t *back = json_loadb(out.data, out.len, 0, NULL);
	assert_non_null(back);
	assert_true(json_equal(back, r));
	json_decref(back);
	json_decref(r);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_response_ok),
		cmocka_unit_test(test_response_id_outlives_request),
		cmocka_unit_test(test_response_error),
		cmocka_unit_test(test_response_every_code),
		cmocka_unit_test(test_response_mysql),
		cmocka_unit_test(test_response_event),
		cmocka_unit_test(test_response_write_line),
		cmocka_unit_test(test_response_large),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
