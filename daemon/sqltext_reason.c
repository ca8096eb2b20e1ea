/* SQL text: the reasons for refusals, printable ASCII whatever the client sent. */
#include "daemon/sqltext_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool
sqltext_reason(char *why, size_t whysize, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whysize == 0)
		return false;
	va_start(ap, fmt);
	vsnprintf(why, whysize, fmt, ap);
	va_end(ap);
	return false;
}

void
sqltext_reason_quote(char *dst, size_t size, const char *src, size_t len)
{
	size_t used = 0;

	if (size == 0)
		return;
	dst[0] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		char piece[8];

		if (i == SQLTEXT_REASON_QUOTE_MAX) {
			snprintf(piece, sizeof piece, "...");
		} else if (c >= 0x20 && c < 0x7f) {
			piece[0] = (char)c;
			piece[1] = '\0';
		} else {
			snprintf(piece, sizeof piece, "\\x%02x", c);
		}
		size_t n = strlen(piece);
		if (used + n >= size)
			return;
		memcpy(dst + used, piece, n + 1);
		used += n;
		if (i == SQLTEXT_REASON_QUOTE_MAX)
			return;
	}
}
