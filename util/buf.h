/* Growable byte buffer, for SQL text, protocol lines and anything else built piecewise. */
#ifndef TABLELOCK_BUF_H
#define TABLELOCK_BUF_H

#include <stdarg.h>
#include <stddef.h>

/* A zeroed struct buf is an empty buffer. data is always NUL-terminated
 * once anything was appended; len excludes the NUL. Allocation failure
 * aborts the process (util/xmalloc.h), so callers need no checks. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
/* fmt is never NULL: saying so also keeps GCC's -Wformat-truncation from
 * seeing a NULL format on the paths UBSan's checks add. */
void buf_appendf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), nonnull(2)));
void buf_vappendf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0), nonnull(2)));
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

#endif
