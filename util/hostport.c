/* HOST:PORT: the one way listen lines, the metrics endpoint, the clients and the bench split an address. */
#include "util/hostport.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool hostport_fail(char *why, size_t whysize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool hostport_host(const char *host, size_t len, bool bracketed, const char *prefix,
                          struct hostport *out, char *why, size_t whysize);
static bool hostport_port(const char *port, struct hostport *out, char *why, size_t whysize);

/* Writes the reason (when there is room) and returns false. */
static bool
hostport_fail(char *why, size_t whysize, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whysize == 0)
		return false;
	va_start(ap, fmt);
	vsnprintf(why, whysize, fmt, ap);
	va_end(ap);
	return false;
}

static bool
hostport_host(const char *host, size_t len, bool bracketed, const char *prefix,
              struct hostport *out, char *why, size_t whysize)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)host[i];
		if (c <= ' ' || c == 0x7f)
			return hostport_fail(why, whysize,
			                     "the host contains a space or a control character");
		if (c == '[' || c == ']')
			return hostport_fail(why, whysize, "must be %s[IPV6]:PORT, as %s[::1]:7000",
			                     prefix, prefix);
		if (c == ':' && !bracketed)
			return hostport_fail(why, whysize,
			                     "an IPv6 address goes in brackets, as %s[::1]:7000", prefix);
	}
	if (len > HOSTPORT_HOST_MAX)
		return hostport_fail(why, whysize, "the host is longer than %d bytes",
		                     HOSTPORT_HOST_MAX);
	memcpy(out->host, host, len);
	out->host[len] = '\0';
	return true;
}

static bool
hostport_port(const char *port, struct hostport *out, char *why, size_t whysize)
{
	unsigned int n = 0;
	const char *p = port;

	for (; *p >= '0' && *p <= '9' && n <= 65535; p++)
		n = n * 10 + (unsigned int)(*p - '0');
	if (p == port || *p != '\0' || n < 1 || n > 65535)
		return hostport_fail(why, whysize, "the port must be an integer between 1 and 65535");
	out->port_number = n;
	snprintf(out->port, sizeof(out->port), "%u", n);
	return true;
}

bool
hostport_parse(const char *text, const char *prefix, struct hostport *out, char *why,
               size_t whysize)
{
	const char *colon;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close == text + 1 || close[1] != ':')
			return hostport_fail(why, whysize, "must be %s[IPV6]:PORT, as %s[::1]:7000",
			                     prefix, prefix);
		return hostport_host(text + 1, (size_t)(close - text - 1), true, prefix, out, why,
		                     whysize) &&
		       hostport_port(close + 2, out, why, whysize);
	}
	colon = strrchr(text, ':');
	if (colon == NULL || colon == text)
		return hostport_fail(why, whysize, "must be %sHOST:PORT, as %s127.0.0.1:7000",
		                     prefix, prefix);
	return hostport_host(text, (size_t)(colon - text), false, prefix, out, why, whysize) &&
	       hostport_port(colon + 1, out, why, whysize);
}
