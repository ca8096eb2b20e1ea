/* HOST:PORT: the one way listen lines, the metrics endpoint, the clients and the bench split an address. */
#ifndef TABLELOCK_HOSTPORT_H
#define TABLELOCK_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

/* The longest host: a DNS name has at most 253 bytes (RFC 1035, 2.3.4), and
 * an IPv6 address with a zone ("fe80::1%eth0") far fewer. */
#define HOSTPORT_HOST_MAX 255

struct hostport {
	char host[HOSTPORT_HOST_MAX + 1]; /* a name or an address, without [ ] */
	char port[6];                     /* the port in decimal, for getaddrinfo() */
	unsigned int port_number;         /* 1 to 65535 */
};

/*
 * Splits "HOST:PORT", or "[IPV6]:PORT" for an IPv6 address (with a zone
 * too: "[fe80::1%eth0]:7000"), into *out. Pure: names are not resolved.
 * HOST is not empty and has no space, control byte or bracket, and no ':'
 * outside brackets ("::1:7000" could be split two ways); PORT is decimal
 * digits, 1 to 65535. Returns true; or false with a reason in why (ASCII,
 * one line), whose examples start with prefix, the text before the
 * address where it came from ("tcp:" in a listen line, "" for a bare
 * address); *out is then unspecified.
 */
bool hostport_parse(const char *text, const char *prefix, struct hostport *out, char *why,
                    size_t whysize);

#endif
