/* Reads counters from the daemon's Prometheus endpoint (GET /metrics). */
#include "scrape.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench.h"
#include "util/hostport.h"
#include "util/xmalloc.h"

#define SCRAPE_TIMEOUT_S 5
#define SCRAPE_MAX_BYTES (4 << 20)

static char *scrape_fetch(const char *hostport, char *err, size_t errlen);
static int scrape_connect(const char *hostport, char *err, size_t errlen);

static int
scrape_connect(const char *hostport, char *err, size_t errlen)
{
	struct hostport hp;
	char why[128];
	if (!hostport_parse(hostport, "", &hp, why, sizeof(why))) {
		snprintf(err, errlen, "metrics address '%s': %s", hostport, why);
		return -1;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai;
	int gai = getaddrinfo(hp.host, hp.port, &hints, &ai);
	if (gai != 0) {
		snprintf(err, errlen, "metrics address '%s': %s", hostport, gai_strerror(gai));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *a = ai; a != NULL && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		struct timeval tv = {.tv_sec = SCRAPE_TIMEOUT_S};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
			snprintf(err, errlen, "connect %s: %s", hostport, strerror(errno));
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	return fd;
}

/* The whole HTTP/1.0 response (the server closes after it), NUL-terminated. */
static char *
scrape_fetch(const char *hostport, char *err, size_t errlen)
{
	static const char request[] = "GET /metrics HTTP/1.0\r\nHost: tablelockd\r\n\r\n";
	int fd = scrape_connect(hostport, err, errlen);
	if (fd < 0)
		return NULL;
	if (write(fd, request, sizeof(request) - 1) != (ssize_t)(sizeof(request) - 1)) {
		snprintf(err, errlen, "send to %s: %s", hostport, strerror(errno));
		close(fd);
		return NULL;
	}
	size_t len = 0, cap = 65536;
	char *text = xcalloc(cap + 1, 1);
	for (;;) {
		if (len == cap) {
			if (cap >= SCRAPE_MAX_BYTES)
				break;
			cap *= 2;
			text = xreallocarray(text, cap + 1, 1);
		}
		ssize_t n = read(fd, text + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "read from %s: %s", hostport, strerror(errno));
			close(fd);
			free(text);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	text[len] = '\0';
	if (strncmp(text, "HTTP/1.", 7) != 0 || strstr(text, " 200 ") == NULL) {
		snprintf(err, errlen, "GET /metrics from %s: %.80s", hostport, text);
		free(text);
		return NULL;
	}
	return text;
}

int
scrape_counters(const char *hostport, const char *const names[], double values[], size_t n,
                char *err, size_t errlen)
{
	char *text = scrape_fetch(hostport, err, errlen);
	if (text == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		values[i] = -1;
	char *save = NULL;
	for (char *line = strtok_r(text, "\r\n", &save); line != NULL;
	     line = strtok_r(NULL, "\r\n", &save)) {
		if (line[0] == '#')
			continue;
		for (size_t i = 0; i < n; i++) {
			size_t k = strlen(names[i]);
			if (strncmp(line, names[i], k) != 0 || (line[k] != ' ' && line[k] != '{'))
				continue;
			/* The value follows the name and its labels. */
			const char *v = line[k] == '{' ? strchr(line + k, '}') : line + k;
			if (v == NULL)
				continue;
			v += v[0] == '}';
			values[i] = (values[i] < 0 ? 0 : values[i]) + strtod(v, NULL);
		}
	}
	free(text);
	return 0;
}
