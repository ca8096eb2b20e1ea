/* Response and event encoding: JSON objects written as single lines. */
#ifndef TABLELOCK_PROTO_RESPONSE_H
#define TABLELOCK_PROTO_RESPONSE_H

#include <jansson.h>
#include <stdint.h>

#include "proto/proto_error.h"
#include "util/buf.h"

/* {"id":id,"ok":true}; "id" omitted when id is NULL. Returns a new object
 * the caller adds fields to. */
json_t *proto_response_ok(json_t *id);
/* {"id":id,"ok":false,"error":{"code":…,"message":…}}. */
json_t *proto_response_error(json_t *id, enum proto_error code, const char *message);
/* Adds "mysql_errno" and "sqlstate" to an error response's "error". */
void proto_response_add_mysql(json_t *response, unsigned int mysql_errno, const char *sqlstate);
/* {"event":name,"lease":lease}; the caller may add fields ("reason"). */
json_t *proto_event(const char *name, uint64_t lease);
/* Appends obj as one compact JSON line ending in '\n'. Returns 0, or -1 if
 * jansson cannot encode it (nothing appended then). */
int proto_write_line(struct buf *out, const json_t *obj);

#endif
