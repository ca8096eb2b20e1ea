/* Line framing: splits a byte stream into '\n'-terminated request lines. */
#ifndef TABLELOCK_PROTO_FRAME_H
#define TABLELOCK_PROTO_FRAME_H

#include <stddef.h>

/* Holds bytes received but not yet returned as lines. Pure: no I/O.
 * A zeroed struct after proto_frame_init() is empty; memory is only held
 * while a partial line is buffered (idle connections cost nothing here). */
struct proto_frame {
	char *data;
	size_t len;	/* bytes held, from data[0] */
	size_t cap;
	size_t start;	/* offset of the first byte not yet returned */
	size_t scanned; /* bytes after start known to hold no '\n' */
	size_t max_line; /* longest line accepted, without its '\n' */
};

enum proto_frame_status {
	PROTO_FRAME_LINE,	/* *line and *len set: one line, without '\n' or a final '\r' */
	PROTO_FRAME_NEED_MORE,	/* no complete line buffered */
	PROTO_FRAME_TOO_LARGE	/* a line (complete or not) exceeds max_line */
};

/* max_line 0 means no limit. */
void proto_frame_init(struct proto_frame *f, size_t max_line);
/* Appends received bytes. Call proto_frame_next() until NEED_MORE after each
 * feed: the oversize check runs there, so the buffer stays bounded. */
void proto_frame_feed(struct proto_frame *f, const void *data, size_t len);
/* Returns the next complete line, NUL-terminated in place (it may also hold
 * NUL bytes of its own: use *len). The returned pointer stays valid until the
 * next feed/next/free call. A final '\r' does not count towards max_line.
 * Empty and whitespace-only lines are returned as lines too (the caller
 * decides to skip them). Once TOO_LARGE is returned, the caller must stop
 * using the frame (the connection is closed). */
enum proto_frame_status proto_frame_next(struct proto_frame *f, const char **line, size_t *len);
/* Bytes buffered and not yet returned. */
size_t proto_frame_pending(const struct proto_frame *f);
void proto_frame_free(struct proto_frame *f);

#endif
