/* Unit tests: line framing (partial lines, batches, \r\n, oversized lines). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto_frame.h"

static void frame_feed_str(struct proto_frame *f, const char *s);
static void frame_expect_line(struct proto_frame *f, const char *want);
static void frame_expect(struct proto_frame *f, enum proto_frame_status want);

static void
frame_feed_str(struct proto_frame *f, const char *s)
{
	proto_frame_feed(f, s, strlen(s));
}

static void
frame_expect_line(struct proto_frame *f, const char *want)
{
	const char *line = NULL;
	size_t len = 0;
	assert_int_equal(proto_frame_next(f, &line, &len), PROTO_FRAME_LINE);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(line, want, len);
	assert_int_equal(line[len], '\0');
}

static void
frame_expect(struct proto_frame *f, enum proto_frame_status want)
{
	const char *line;
	size_t len;
	assert_int_equal(proto_frame_next(f, &line, &len), want);
}

static void
test_frame_empty(void **state)
{
	(void)state;
	struct proto_frame f;
	proto_frame_init(&f, 100);
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	assert_int_equal(proto_frame_pending(&f), 0);
	proto_frame_feed(&f, "", 0);
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	assert_null(f.data);
	proto_frame_free(&f);
	proto_frame_free(&f); /* twice is harmless */
}

static void
test_frame_one_line(void **state)
{
	(void)state;
	struct proto_frame f;
	proto_frame_init(&f, 100);
	frame_feed_str(&f, "{\"op\":\"ping\"}\n");
	frame_expect_line(&f, "{\"op\":\"ping\"}");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	proto_frame_free(&f);
}

static void
test_frame_partial_across_feeds(void **state)
{
	(void)state;
	struct proto_frame f;
	proto_frame_init(&f, 100);
	frame_feed_str(&f, "{\"op\":");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	assert_int_equal(proto_frame_pending(&f), 6);
	frame_feed_str(&f, "\"pi");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	frame_feed_str(&f, "ng\"}");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	frame_feed_str(&f, "\n");
	frame_expect_line(&f, "{\"op\":\"ping\"}");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	assert_int_equal(proto_frame_pending(&f), 0);
	proto_frame_free(&f);
}

static void
test_frame_several_lines_one_feed(void **state)
{
	(void)state;
	struct proto_frame f;
	proto_frame_init(&f, 100);
	frame_feed_str(&f, "a\nbb\n\nccc\ndd");
	frame_expect_line(&f, "a");
	frame_expect_line(&f, "bb");
	frame_expect_line(&f, "");
	frame_expect_line(&f, "ccc");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	assert_int_equal(proto_frame_pending(&f), 2);
	/* The partial line was moved to the front. */
	assert_int_equal(f.start, 0);
	frame_feed_str(&f, "d\n");
	frame_expect_line(&f, "ddd");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	proto_frame_free(&f);
}

static void
test_frame_crlf(void **state)
{
	(void)state;
	struct proto_frame f;
	proto_frame_init(&f, 100);
	frame_feed_str(&f, "one\r\ntwo\n\r\na\rb\r\n \t \n");
	frame_expect_line(&f, "one");
	frame_expect_line(&f, "two");
	frame_expect_line(&f, "");
	frame_expect_line(&f, "a\rb"); /* only a final '\r' goes */
	frame_expect_line(&f, " \t "); /* whitespace lines are the caller's call */
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	/* "\r" and "\n" in separate feeds. */
	frame_feed_str(&f, "x\r");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	frame_feed_str(&f, "\n");
	frame_expect_line(&f, "x");
	proto_frame_free(&f);
}

static void
test_frame_one_byte_feeds(void **state)
{
	(void)state;
	struct proto_frame f;
	const char *input = "{\"op\":\"ping\",\"id\":1}\r\n{\"op\":\"status\"}\n\nlast\n";
	const char *want[] = {"{\"op\":\"ping\",\"id\":1}", "{\"op\":\"status\"}", "", "last"};
	size_t got = 0;

	proto_frame_init(&f, 100);
	for (const char *p = input; *p != '\0'; p++) {
		proto_frame_feed(&f, p, 1);
		const char *line;
		size_t len;
		enum proto_frame_status st;
		while ((st = proto_frame_next(&f, &line, &len)) == PROTO_FRAME_LINE) {
			assert_true(got < 4);
			assert_int_equal(len, strlen(want[got]));
			assert_memory_equal(line, want[got], len);
			got++;
		}
		assert_int_equal(st, PROTO_FRAME_NEED_MORE);
	}
	assert_int_equal(got, 4);
	assert_null(f.data);
	proto_frame_free(&f);
}

static void
test_frame_embedded_nul(void **state)
{
	(void)state;
	struct proto_frame f;
	const char *line;
	size_t len;
	proto_frame_init(&f, 100);
	proto_frame_feed(&f, "a\0b\n", 4);
	assert_int_equal(proto_frame_next(&f, &line, &len), PROTO_FRAME_LINE);
	assert_int_equal(len, 3);
	assert_memory_equal(line, "a\0b", 3);
	proto_frame_free(&f);
}

static void
test_frame_max_line_exact_fits(void **state)
{
	(void)state;
	struct proto_frame f;
	proto_frame_init(&f, 10);
	frame_feed_str(&f, "0123456789");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	frame_feed_str(&f, "\n0123456789\r");
	frame_expect_line(&f, "0123456789");
	/* max_line bytes plus a '\r' waiting for its '\n' is not too large. */
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	frame_feed_str(&f, "\n");
	frame_expect_line(&f, "0123456789");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	proto_frame_free(&f);
}

static void
test_frame_too_large_complete(void **state)
{
	(void)state;
	struct proto_frame f;
	proto_frame_init(&f, 10);
	frame_feed_str(&f, "ok\n01234567890\nnext\n");
	frame_expect_line(&f, "ok");
	frame_expect(&f, PROTO_FRAME_TOO_LARGE);
	/* Stays too large: the caller is expected to close. */
	frame_expect(&f, PROTO_FRAME_TOO_LARGE);
	proto_frame_free(&f);

	proto_frame_init(&f, 10);
	frame_feed_str(&f, "01234567890\r\n");
	frame_expect(&f, PROTO_FRAME_TOO_LARGE);
	proto_frame_free(&f);
}

static void
test_frame_too_large_incomplete(void **state)
{
	(void)state;
	struct proto_frame f;
	proto_frame_init(&f, 10);
	frame_feed_str(&f, "01234");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	frame_feed_str(&f, "56789");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	frame_feed_str(&f, "a"); /* 11 bytes, no '\n' yet: no need to wait */
	frame_expect(&f, PROTO_FRAME_TOO_LARGE);
	proto_frame_free(&f);

	/* After complete lines in the same feed. */
	proto_frame_init(&f, 10);
	frame_feed_str(&f, "a\nb\n0123456789ab");
	frame_expect_line(&f, "a");
	frame_expect_line(&f, "b");
	frame_expect(&f, PROTO_FRAME_TOO_LARGE);
	proto_frame_free(&f);

	/* One byte at a time: caught at the 11th byte. */
	proto_frame_init(&f, 10);
	for (int i = 0; i < 10; i++) {
		proto_frame_feed(&f, "x", 1);
		frame_expect(&f, PROTO_FRAME_NEED_MORE);
	}
	proto_frame_feed(&f, "x", 1);
	frame_expect(&f, PROTO_FRAME_TOO_LARGE);
	proto_frame_free(&f);
}

static void
test_frame_no_limit(void **state)
{
	(void)state;
	struct proto_frame f;
	size_t n = 100000;
	char *big = malloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\n';
	proto_frame_init(&f, 0);
	proto_frame_feed(&f, big, n + 1);
	const char *line;
	size_t len;
	assert_int_equal(proto_frame_next(&f, &line, &len), PROTO_FRAME_LINE);
	assert_int_equal(len, n);
	proto_frame_free(&f);
	free(big);
}

/* A 1 MiB line in small pieces: each byte is scanned once (scanned keeps up
 * with what is buffered), and the line comes out whole. */
static void
test_frame_big_line_small_pieces(void **state)
{
	(void)state;
	struct proto_frame f;
	size_t total = 1024 * 1024, piece = 7;
	char chunk[7];
	memset(chunk, 'y', sizeof(chunk));
	proto_frame_init(&f, total);
	size_t fed = 0;
	while (fed < total) {
		size_t n = total - fed < piece ? total - fed : piece;
		proto_frame_feed(&f, chunk, n);
		fed += n;
		frame_expect(&f, PROTO_FRAME_NEED_MORE);
		assert_int_equal(f.scanned, fed);
		assert_int_equal(proto_frame_pending(&f), fed);
	}
	proto_frame_feed(&f, "\n{}\n", 4);
	const char *line;
	size_t len;
	assert_int_equal(proto_frame_next(&f, &line, &len), PROTO_FRAME_LINE);
	assert_int_equal(len, total);
	assert_int_equal(line[0], 'y');
	assert_int_equal(line[total - 1], 'y');
	frame_expect_line(&f, "{}");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	/* Everything consumed: the megabyte is given back. */
	assert_null(f.data);
	assert_int_equal(f.cap, 0);
	proto_frame_free(&f);
}

static void
test_frame_memory_released(void **state)
{
	(void)state;
	struct proto_frame f;
	size_t n = 200000;
	char *big = malloc(n + 2);
	memset(big, 'z', n);
	big[n] = '\n';
	big[n + 1] = 'p';
	proto_frame_init(&f, n);
	proto_frame_feed(&f, big, n + 2);
	const char *line;
	size_t len;
	assert_int_equal(proto_frame_next(&f, &line, &len), PROTO_FRAME_LINE);
	assert_int_equal(len, n);
	/* A short partial line is left: the big buffer shrinks around it. */
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	assert_int_equal(proto_frame_pending(&f), 1);
	assert_true(f.cap < 8192);
	frame_feed_str(&f, "ing\n");
	frame_expect_line(&f, "ping");
	frame_expect(&f, PROTO_FRAME_NEED_MORE);
	assert_null(f.data);
	assert_int_equal(proto_frame_pending(&f), 0);
	proto_frame_free(&f);
	free(big);
}

/* Many short lines through one frame, fed in uneven chunks, with lines
 * taken as they complete: the buffer is compacted instead of growing. */
static void
test_frame_stream_compacts(void **state)
{
	(void)state;
	struct proto_frame f;
	struct {
		char *data;
		size_t len;
	} in = {NULL, 0};
	size_t lines = 5000;
	in.data = malloc(lines * 16);
	for (size_t i = 0; i < lines; i++)
		in.len += (size_t)sprintf(in.data + in.len, "{\"id\":%zu}\n", i);

	proto_frame_init(&f, 64);
	size_t got = 0, off = 0, step = 1;
	size_t max_cap = 0;
	while (off < in.len) {
		size_t n = in.len - off < step ? in.len - off : step;
		proto_frame_feed(&f, in.data + off, n);
		off += n;
		step = step % 97 + 13;
		const char *line;
		size_t len;
		while (proto_frame_next(&f, &line, &len) == PROTO_FRAME_LINE) {
			char want[32];
			int w = sprintf(want, "{\"id\":%zu}", got);
			assert_int_equal(len, (size_t)w);
			assert_memory_equal(line, want, len);
			got++;
		}
		if (f.cap > max_cap)
			max_cap = f.cap;
	}
	assert_int_equal(got, lines);
	assert_true(max_cap <= 512);
	proto_frame_free(&f);
	free(in.data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_empty),
		cmocka_unit_test(test_frame_one_line),
		cmocka_unit_test(test_frame_partial_across_feeds),
		cmocka_unit_test(test_frame_several_lines_one_feed),
		cmocka_unit_test(test_frame_crlf),
		cmocka_unit_test(test_frame_one_byte_feeds),
		cmocka_unit_test(test_frame_embedded_nul),
		cmocka_unit_test(test_frame_max_line_exact_fits),
		cmocka_unit_test(test_frame_too_large_complete),
		cmocka_unit_test(test_frame_too_large_incomplete),
		cmocka_unit_test(test_frame_no_limit),
		cmocka_unit_test(test_frame_big_line_small_pieces),
		cmocka_unit_test(test_frame_memory_released),
		cmocka_unit_test(test_frame_stream_compacts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
