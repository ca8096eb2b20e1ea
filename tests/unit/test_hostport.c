/* Unit tests for util/hostport.c: HOST:PORT and [IPV6]:PORT, and every refusal with its reason. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "util/hostport.h"

static void
test_hostport_accepted(void **state)
{
	static const struct {
		const char *text;
		const char *host;
		const char *port;
		unsigned int number;
	} cases[] = {
	    {"127.0.0.1:7000", "127.0.0.1", "7000", 7000},
	    {"0.0.0.0:1", "0.0.0.0", "1", 1},
	    {"localhost:65535", "localhost", "65535", 65535},
	    {"db-1.example:9470", "db-1.example", "9470", 9470},
	    {"[::1]:7000", "::1", "7000", 7000},
	    {"[::]:80", "::", "80", 80},
	    {"[fe80::1%eth0]:1", "fe80::1%eth0", "1", 1},
	    {"[2001:db8::7]:443", "2001:db8::7", "443", 443},
	    /* Leading zeros are the same port, written as getaddrinfo wants. */
	    {"h:007000", "h", "7000", 7000},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hostport hp;
		char why[128] = "";
		if (!hostport_parse(cases[i].text, "", &hp, why, sizeof why))
			fail_msg("%s: refused: %s", cases[i].text, why);
		assert_string_equal(hp.host, cases[i].host);
		assert_string_equal(hp.port, cases[i].port);
		assert_int_equal(hp.port_number, cases[i].number);
	}
}

static void
test_hostport_refused(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} cases[] = {
	    {"", "must be tcp:HOST:PORT, as tcp:127.0.0.1:7000"},
	    {"localhost", "must be tcp:HOST:PORT, as tcp:127.0.0.1:7000"},
	    {":7000", "must be tcp:HOST:PORT, as tcp:127.0.0.1:7000"},
	    /* Unbracketed IPv6 could be split two ways. */
	    {"::1:7000", "an IPv6 address goes in brackets, as tcp:[::1]:7000"},
	    {"a:b:7000", "an IPv6 address goes in brackets, as tcp:[::1]:7000"},
	    {"[::1]7000", "must be tcp:[IPV6]:PORT, as tcp:[::1]:7000"},
	    {"[]:7000", "must be tcp:[IPV6]:PORT, as tcp:[::1]:7000"},
	    {"[::1:7000", "must be tcp:[IPV6]:PORT, as tcp:[::1]:7000"},
	    {"[::1]", "must be tcp:[IPV6]:PORT, as tcp:[::1]:7000"},
	    {"[[::1]]:7000", "must be tcp:[IPV6]:PORT, as tcp:[::1]:7000"},
	    {"a]:7000", "must be tcp:[IPV6]:PORT, as tcp:[::1]:7000"},
	    {"a b:1", "the host contains a space or a control character"},
	    {"a\tb:1", "the host contains a space or a control character"},
	    {"a\x7f:1", "the host contains a space or a control character"},
	    {"[::1 ]:1", "the host contains a space or a control character"},
	    {"h:", "the port must be an integer between 1 and 65535"},
	    {"h:0", "the port must be an integer between 1 and 65535"},
	    {"h:65536", "the port must be an integer between 1 and 65535"},
	    {"h:99999999999999999999", "the port must be an integer between 1 and 65535"},
	    {"h:http", "the port must be an integer between 1 and 65535"},
	    {"h:+1", "the port must be an integer between 1 and 65535"},
	    {"h:1 ", "the port must be an integer between 1 and 65535"},
	    {"[::1]:", "the port must be an integer between 1 and 65535"},
	    {"[::1]:x", "the port must be an integer between 1 and 65535"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hostport hp;
		char why[128] = "";
		if (hostport_parse(cases[i].text, "tcp:", &hp, why, sizeof why))
			fail_msg("%s: accepted", cases[i].text);
		assert_string_equal(why, cases[i].why);
	}
}

/* A host of HOSTPORT_HOST_MAX bytes fits; one more is refused. */
static void
test_hostport_host_length(void **state)
{
	char text[HOSTPORT_HOST_MAX + 16], why[128] = "";
	struct hostport hp;

	(void)state;
	memset(text, 'a', HOSTPORT_HOST_MAX);
	snprintf(text + HOSTPORT_HOST_MAX, sizeof text - HOSTPORT_HOST_MAX, ":1");
	assert_true(hostport_parse(text, "", &hp, why, sizeof why));
	assert_int_equal(strlen(hp.host), HOSTPORT_HOST_MAX);
	memset(text, 'a', HOSTPORT_HOST_MAX + 1);
	snprintf(text + HOSTPORT_HOST_MAX + 1, sizeof text - HOSTPORT_HOST_MAX - 1, ":1");
	assert_false(hostport_parse(text, "", &hp, why, sizeof why));
	assert_string_equal(why, "the host is longer than 255 bytes");
}

/* The prefix is the text before the address where it came from; why may
 * be NULL or small. */
static void
test_hostport_reasons(void **state)
{
	struct hostport hp;
	char small[8];

	(void)state;
	{
		char why[128];
		assert_false(hostport_parse("nohost", "", &hp, why, sizeof why));
		assert_string_equal(why, "must be HOST:PORT, as 127.0.0.1:7000");
		assert_false(hostport_parse("::1:9470", "", &hp, why, sizeof why));
		assert_string_equal(why, "an IPv6 address goes in brackets, as [::1]:7000");
	}
	assert_false(hostport_parse("nohost", "", &hp, NULL, 0));
	assert_false(hostport_parse("h:0", "", &hp, small, sizeof small));
	assert_string_equal(small, "the por");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hostport_accepted),
	    cmocka_unit_test(test_hostport_refused),
	    cmocka_unit_test(test_hostport_host_length),
	    cmocka_unit_test(test_hostport_reasons),
	};

	return cmocka_run_group_tests_name("hostport", tests, NULL, NULL);
}
