/* Allocation that aborts on failure, so callers need no NULL checks (as tmux's xmalloc.c). */
#ifndef TABLELOCK_XMALLOC_H
#define TABLELOCK_XMALLOC_H

#include <stddef.h>

/* Each returns memory or ends the process with "out of memory" on stderr;
 * a size of 0 is rounded up to 1, so the result is never NULL. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
/* xrealloc(p, n * size), aborting when the product overflows. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
/* The first n bytes of s (which need not be NUL-terminated) and a NUL. */
char *xstrndup(const char *s, size_t n);

#endif
