/* Line framing: splits a byte stream into '\n'-terminated request lines. */
#include "proto/proto_frame.h"

#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

#define PROTO_FRAME_MIN_CAP 256
/* A buffer this much larger than what it holds is shrunk when idle, so one
 * past 1 MiB request does not pin 1 MiB for the connection's lifetime. */
#define PROTO_FRAME_SHRINK_SLACK 4096

static void proto_frame_make_room(struct proto_frame *f, size_t extra);
static void proto_frame_settle(struct proto_frame *f);
static size_t proto_frame_partial_len(const struct proto_frame *f);

void
proto_frame_init(struct proto_frame *f, size_t max_line)
{
	memset(f, 0, sizeof(*f));
	f->max_line = max_line;
}

/* Makes room for extra bytes after len. Pending bytes move to the front only
 * when that frees at least as many bytes as it copies, or when the buffer
 * must be reallocated anyway, so every byte is copied O(1) times amortized. */
static void
proto_frame_make_room(struct proto_frame *f, size_t extra)
{
	size_t pending = f->len - f->start;
	if (f->len + extra <= f->cap)
		return;
	if (pending + extra <= f->cap && f->start >= pending) {
		memmove(f->data, f->data + f->start, pending);
		f->len = pending;
		f->start = 0;
		return;
	}
	size_t cap = f->cap ? f->cap : PROTO_FRAME_MIN_CAP;
	while (cap < pending + extra)
		cap *= 2;
	char *data = xmalloc(cap);
	if (pending > 0)
		memcpy(data, f->data + f->start, pending);
	free(f->data);
	f->data = data;
	f->cap = cap;
	f->len = pending;
	f->start = 0;
}

void
proto_frame_feed(struct proto_frame *f, const void *data, size_t len)
{
	if (len == 0)
		return;
	proto_frame_make_room(f, len);
	memcpy(f->data + f->len, data, len);
	f->len += len;
}

/* Called when no complete line is left: frees the buffer if everything was
 * consumed (idle connections hold no memory), else moves the partial line
 * to the front and drops excess capacity. */
static void
proto_frame_settle(struct proto_frame *f)
{
	size_t pending = f->len - f->start;
	if (pending == 0) {
		free(f->data);
		f->data = NULL;
		f->len = f->cap = f->start = f->scanned = 0;
		return;
	}
	if (f->start == 0)
		return;
	memmove(f->data, f->data + f->start, pending);
	f->len = pending;
	f->start = 0;
	if (f->cap > 2 * pending + PROTO_FRAME_SHRINK_SLACK) {
		size_t cap = PROTO_FRAME_MIN_CAP;
		while (cap < 2 * pending)
			cap *= 2;
		f->data = xrealloc(f->data, cap);
		f->cap = cap;
	}
}

/* Length of the unterminated tail, not counting a final '\r' that may be
 * the first half of "\r\n" (so a \r\n client gets the same max_line). */
static size_t
proto_frame_partial_len(const struct proto_frame *f)
{
	size_t pending = f->len - f->start;
	if (pending > 0 && f->data[f->len - 1] == '\r')
		pending--;
	return pending;
}

enum proto_frame_status
proto_frame_next(struct proto_frame *f, const char **line, size_t *len)
{
	size_t from = f->start + f->scanned;
	char *nl = NULL;
	if (from < f->len)
		nl = memchr(f->data + from, '\n', f->len - from);
	if (nl == NULL) {
		f->scanned = f->len - f->start;
		if (f->max_line > 0 && proto_frame_partial_len(f) > f->max_line)
			return PROTO_FRAME_TOO_LARGE;
		proto_frame_settle(f);
		return PROTO_FRAME_NEED_MORE;
	}

	char *begin = f->data + f->start;
	size_t n = (size_t)(nl - begin);
	if (n > 0 && begin[n - 1] == '\r')
		n--;
	if (f->max_line > 0 && n > f->max_line)
		return PROTO_FRAME_TOO_LARGE;
	/* The '\n' (or '\r') is consumed, so it can become the line's NUL. */
	begin[n] = '\0';
	f->start = (size_t)(nl - f->data) + 1;
	f->scanned = 0;
	*line = begin;
	*len = n;
	return PROTO_FRAME_LINE;
}

size_t
proto_frame_pending(const struct proto_frame *f)
{
	return f->len - f->start;
}

void
proto_frame_free(struct proto_frame *f)
{
	free(f->data);
	f->data = NULL;
	f->len = f->cap = f->start = f->scanned = 0;
}
