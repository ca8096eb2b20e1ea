/* UTF-8: decoding one character strictly, and cutting text at a character boundary. */
#ifndef TABLELOCK_UTF8_H
#define TABLELOCK_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one UTF-8 sequence at s[0..len) into *cp. Returns its length, or
 * 0 when it is not well-formed (overlong forms, surrogates and values past
 * U+10FFFF included, per RFC 3629's table of well-formed byte sequences). */
size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* For text that was valid UTF-8 before something cut it at len (snprintf
 * into a short buffer, a length limit): the length of its longest prefix
 * that does not end inside a multibyte character, len when it does not. */
size_t utf8_complete_prefix(const char *s, size_t len);

#endif
