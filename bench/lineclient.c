/* A tiny client for the daemon's JSON-lines protocol: one socket, one buffer,
 * no JSON parsing on the hot path (responses are classified by their prefix). */
#include "lineclient.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"
#include "util/monotime.h"
#include "util/xmalloc.h"

#define LINECLIENT_INITIAL_CAP 4096

int
lineclient_connect(struct lineclient *c, const char *path, bool nonblocking, int timeout_ms)
{
	struct sockaddr_un addr;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (timeout_ms > 0) {
		struct timeval tv = {.tv_sec = timeout_ms / 1000,
		                     .tv_usec = (timeout_ms % 1000) * 1000};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	/* A blocking connect waits while the listen backlog is full, which is
	 * what opening thousands of connections at once needs. */
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (nonblocking)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c->fd = fd;
	/* The buffer comes with the first read: idle connections cost the
	 * benchmark no memory. */
	return 0;
}

void
lineclient_close(struct lineclient *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->data);
	c->data = NULL;
	c->fd = -1;
	c->head = c->tail = c->scan = c->cap = 0;
}

int
lineclient_send(struct lineclient *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(c->fd, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

long
lineclient_fill(struct lineclient *c)
{
	if (c->head == c->tail) {
		c->head = c->tail = c->scan = 0;
	} else if (c->tail == c->cap && c->head > 0) {
		memmove(c->data, c->data + c->head, c->tail - c->head);
		c->tail -= c->head;
		c->scan -= c->head;
		c->head = 0;
	}
	if (c->tail == c->cap) {
		c->cap = c->cap ? c->cap * 2 : LINECLIENT_INITIAL_CAP;
		c->data = xreallocarray(c->data, c->cap + 1, 1);
	}
	ssize_t n;
	do
		n = read(c->fd, c->data + c->tail, c->cap - c->tail);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		c->tail += (size_t)n;
	return (long)n;
}

char *
lineclient_next_line(struct lineclient *c)
{
	if (c->scan < c->head)
		c->scan = c->head;
	char *nl = c->scan < c->tail ? memchr(c->data + c->scan, '\n', c->tail - c->scan) : NULL;
	if (nl == NULL) {
		c->scan = c->tail;
		return NULL;
	}
	char *line = c->data + c->head;
	*nl = '\0';
	if (nl > line && nl[-1] == '\r')
		nl[-1] = '\0';
	c->head = c->scan = (size_t)(nl - c->data) + 1;
	return line;
}

char *
lineclient_read_line(struct lineclient *c)
{
	for (;;) {
		char *line = lineclient_next_line(c);
		if (line != NULL)
			return line;
		if (lineclient_fill(c) <= 0)
			return NULL;
	}
}

enum lineclient_kind
lineclient_classify(const char *line)
{
	/* The daemon writes keys in order: "id" (absent here), then "ok", or
	 * "event" first for events. */
	if (strncmp(line, "{\"ok\":true", 10) == 0)
		return LINE_OK;
	if (strncmp(line, "{\"ok\":false", 11) == 0)
		return LINE_ERROR;
	if (strncmp(line, "{\"event\"", 8) == 0)
		return LINE_EVENT;
	if (strstr(line, "\"ok\":true") != NULL)
		return LINE_OK;
	if (strstr(line, "\"ok\":false") != NULL)
		return LINE_ERROR;
	return strstr(line, "\"event\"") != NULL ? LINE_EVENT : LINE_ERROR;
}

char *
lineclient_read_response(struct lineclient *c)
{
	for (;;) {
		char *line = lineclient_read_line(c);
		if (line == NULL || lineclient_classify(line) != LINE_EVENT)
			return line;
		c->events_seen++;
		c->last_event_ns = monotime_ns();
		snprintf(c->last_event, sizeof(c->last_event), "%s", line);
	}
}

int
lineclient_call(struct lineclient *c, const char *request, size_t len, char **response)
{
	if (lineclient_send(c, request, len) != 0)
		return -1;
	char *line = lineclient_read_response(c);
	if (response != NULL)
		*response = line;
	if (line == NULL)
		return -1;
	return (int)lineclient_classify(line);
}
