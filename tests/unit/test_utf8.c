/* Unit tests for util/utf8.c: strict decoding, and cutting text at a character boundary. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "util/utf8.h"

static void
test_utf8_decode_well_formed(void **state)
{
	static const struct {
		const char *s;
		size_t len;
		uint32_t cp;
	} cases[] = {
	    {"A", 1, 0x41},
	    {"\x7f", 1, 0x7f},
	    {"\xc2\x80", 2, 0x80},
	    {"\xc3\xa9", 2, 0xe9},
	    {"\xe0\xa0\x80", 3, 0x800},
	    {"\xe2\x82\xac", 3, 0x20ac},
	    {"\xef\xbf\xbf", 3, 0xffff},
	    {"\xf0\x90\x80\x80", 4, 0x10000},
	    {"\xf4\x8f\xbf\xbf", 4, 0x10ffff},
	};
	uint32_t cp;

	(void)state;
	assert_int_equal(utf8_decode((const unsigned char *)"", 1, &cp), 1);
	assert_int_equal(cp, 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cp = 0xdead;
		assert_int_equal(
		    utf8_decode((const unsigned char *)cases[i].s, strlen(cases[i].s), &cp),
		    cases[i].len);
		assert_int_equal(cp, cases[i].cp);
	}
}

/* RFC 3629, section 4: nothing outside its table of well-formed sequences. */
static void
test_utf8_decode_ill_formed(void **state)
{
	static const char *const bad[] = {
	    "\x80",             /* a lone continuation byte */
	    "\xc0\xaf",         /* overlong '/' */
	    "\xc1\xbf",         /* overlong */
	    "\xe0\x9f\xbf",     /* overlong three bytes */
	    "\xed\xa0\x80",     /* a surrogate */
	    "\xf0\x8f\xbf\xbf", /* overlong four bytes */
	    "\xf4\x90\x80\x80", /* past U+10FFFF */
	    "\xf5\x80\x80\x80", /* no such lead byte */
	    "\xff",
	    "\xc3(", /* a lead byte without its continuation */
	    "\xe2\x82(",
	};
	uint32_t cp;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(utf8_decode((const unsigned char *)bad[i], strlen(bad[i]), &cp),
		                 0);
	/* Cut short by len. */
	assert_int_equal(utf8_decode((const unsigned char *)"\xe2\x82\xac", 2, &cp), 0);
	assert_int_equal(utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 3, &cp), 0);
}

static void
test_utf8_complete_prefix(void **state)
{
	/* "a", "é" (2), "€" (3), "😀" (4): every cut of this text. */
	static const char text[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10};

	(void)state;
	assert_int_equal(sizeof want / sizeof want[0], sizeof text);
	for (size_t len = 0; len < sizeof text; len++)
		assert_int_equal(utf8_complete_prefix(text, len), want[len]);
	/* ASCII, and text that was not UTF-8 to begin with, are left alone. */
	assert_int_equal(utf8_complete_prefix("abc", 3), 3);
	assert_int_equal(utf8_complete_prefix("\x80\x80\x80\x80", 4), 4);
	assert_int_equal(utf8_complete_prefix("a\xbf", 2), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8_decode_well_formed),
	    cmocka_unit_test(test_utf8_decode_ill_formed),
	    cmocka_unit_test(test_utf8_complete_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
