/* Bytes on the wire: the {"base64":"…"} value of binary result cells. */
#ifndef TABLELOCK_PROTO_BYTES_H
#define TABLELOCK_PROTO_BYTES_H

#include <jansson.h>
#include <stddef.h>

/* JSON strings must be text, so raw bytes never go into one: a binary
 * cell (PROTOCOL.md, "Results") is {"base64":"…"}, standard base64 with
 * padding (RFC 4648, section 4). The daemon encodes, the client library
 * decodes. */

/* A new {"base64":"…"} object holding data[0..len). */
json_t *proto_bytes_encode(const char *data, size_t len);

/* The bytes a {"base64":"…"} object holds, malloced with a NUL after them
 * (*len excludes it); NULL when value is not such an object or its text is
 * not base64. Padding may be left out, but nothing may follow it. */
char *proto_bytes_decode(const json_t *value, size_t *len);

#endif
