/* A tiny client for the daemon's JSON-lines protocol: one socket, one buffer,
 * no JSON parsing on the hot path (responses are classified by their prefix). */
#ifndef TABLELOCK_BENCH_LINECLIENT_H
#define TABLELOCK_BENCH_LINECLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lineclient {
	int fd;
	char *data;
	size_t head; /* first unconsumed byte */
	size_t tail; /* end of the bytes read */
	size_t scan; /* where the search for '\n' resumes */
	size_t cap;
	uint64_t events_seen;  /* event lines skipped by lineclient_read_response */
	int64_t last_event_ns; /* when the last event line was read */
	char last_event[256];  /* its text, truncated */
};

enum lineclient_kind { LINE_OK, LINE_ERROR, LINE_EVENT };

/* Connects to the Unix socket path. With nonblocking false, every read or
 * write waits at most timeout_ms (SO_RCVTIMEO/SO_SNDTIMEO). Returns 0 or -1
 * (errno set). */
int lineclient_connect(struct lineclient *c, const char *path, bool nonblocking, int timeout_ms);
void lineclient_close(struct lineclient *c);

/* Writes all of len bytes (the caller ends each line with '\n'). 0 or -1. */
int lineclient_send(struct lineclient *c, const char *data, size_t len);

/* Blocking: the next line without its '\n' (NUL-terminated, valid until the
 * next read), or NULL on EOF, timeout or error. */
char *lineclient_read_line(struct lineclient *c);
/* Blocking: the next line that is not an event. Events are counted and the
 * last one kept. */
char *lineclient_read_response(struct lineclient *c);
/* Sends one request line (with its '\n') and reads its response. Returns
 * LINE_OK or LINE_ERROR, or -1 on I/O failure; *response (if not NULL) gets
 * the line. */
int lineclient_call(struct lineclient *c, const char *request, size_t len, char **response);

/* Nonblocking use: one read() into the buffer. Returns bytes read, 0 on EOF,
 * -1 on error; errno EAGAIN means nothing to read yet. */
long lineclient_fill(struct lineclient *c);
/* Nonblocking use: a complete line already in the buffer, or NULL. */
char *lineclient_next_line(struct lineclient *c);

enum lineclient_kind lineclient_classify(const char *line);

#endif
