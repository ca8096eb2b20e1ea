/* Unit tests for proto/proto_bytes.c: the {"base64":"…"} cells, encoded and decoded. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/proto_bytes.h"

/* RFC 4648, section 10. */
static const struct {
	const char *bytes;
	const char *base64;
} test_proto_bytes_vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void
test_proto_bytes_rfc4648(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof test_proto_bytes_vectors / sizeof test_proto_bytes_vectors[0];
	     i++) {
		const char *bytes = test_proto_bytes_vectors[i].bytes;
		json_t *obj = proto_bytes_encode(bytes, strlen(bytes));
		size_t len = 99;

		assert_non_null(obj);
		assert_int_equal(json_object_size(obj), 1);
		assert_string_equal(json_string_value(json_object_get(obj, "base64")),
		                    test_proto_bytes_vectors[i].base64);
		char *back = proto_bytes_decode(obj, &len);
		assert_non_null(back);
		assert_int_equal(len, strlen(bytes));
		assert_memory_equal(back, bytes, len);
		assert_int_equal(back[len], '\0');
		free(back);
		json_decref(obj);
	}
}

/* Every length from 0 to 300, every byte value, back as they went. */
static void
test_proto_bytes_round_trip(void **state)
{
	char data[300];

	(void)state;
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (char)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof data; n++) {
		json_t *obj = proto_bytes_encode(data, n);
		size_t len = 0;
		char *back = proto_bytes_decode(obj, &len);

		assert_non_null(back);
		assert_int_equal(len, n);
		assert_memory_equal(back, data, n);
		assert_int_equal(strlen(json_string_value(json_object_get(obj, "base64"))),
		                 4 * ((n + 2) / 3));
		free(back);
		json_decref(obj);
	}
}

static void
test_proto_bytes_refused(void **state)
{
	static const char *const bad[] = {
	    "{\"base64\":\"Zm9v!\"}",
	    "{\"base64\":\"Zg==Zg==\"}",
	    "{\"base64\":\"Zm 9v\"}",
	    "{\"base64\":1}",
	    "{\"base64\":null}",
	    "{\"hex\":\"00\"}",
	    "[\"Zm9v\"]",
	    "\"Zm9v\"",
	};
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		assert_non_null(v);
		assert_null(proto_bytes_decode(v, &len));
		json_decref(v);
	}
	assert_null(proto_bytes_decode(NULL, &len));

	/* Padding may be left out. */
	json_t *v = json_pack("{s:s}", "base64", "Zm8");
	char *back = proto_bytes_decode(v, &len);
	assert_non_null(back);
	assert_int_equal(len, 2);
	assert_memory_equal(back, "fo", 2);
	free(back);
	json_decref(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_proto_bytes_rfc4648),
	    cmocka_unit_test(test_proto_bytes_round_trip),
	    cmocka_unit_test(test_proto_bytes_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
