/* Response and event encoding: JSON objects written as single lines. */
#include "proto/proto_response.h"

#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

/* Compact, one line, keys in the order they were added: "id" then "ok". */
#define PROTO_RESPONSE_DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

static json_t *proto_response_text(const char *s);

/* A JSON string for s. jansson refuses invalid UTF-8, and a message may
 * quote bytes a client sent or MySQL returned: such text is kept, with every
 * non-ASCII byte shown as '?', rather than losing the whole message. */
static json_t *
proto_response_text(const char *s)
{
	json_t *str = json_string(s);
	if (str != NULL)
		return str;
	char *copy = xstrdup(s);
	for (char *p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	str = json_string(copy);
	free(copy);
	return str;
}

json_t *
proto_response_ok(json_t *id)
{
	json_t *obj = json_object();
	if (id != NULL)
		json_object_set(obj, "id", id);
	json_object_set_new(obj, "ok", json_true());
	return obj;
}

json_t *
proto_response_error(json_t *id, enum proto_error code, const char *message)
{
	json_t *obj = json_object();
	json_t *error = json_object();
	if (id != NULL)
		json_object_set(obj, "id", id);
	json_object_set_new(obj, "ok", json_false());
	json_object_set_new(error, "code", json_string(proto_error_name(code)));
	json_object_set_new(error, "message",
			    proto_response_text(message != NULL ? message : proto_error_name(code)));
	json_object_set_new(obj, "error", error);
	return obj;
}

void
proto_response_add_mysql(json_t *response, unsigned int mysql_errno, const char *sqlstate)
{
	json_t *error = json_object_get(response, "error");
	if (!json_is_object(error))
		return;
	json_object_set_new(error, "mysql_errno", json_integer((json_int_t)mysql_errno));
	if (sqlstate != NULL)
		json_object_set_new(error, "sqlstate", proto_response_text(sqlstate));
}

json_t *
proto_event(const char *name, uint64_t lease)
{
	json_t *obj = json_object();
	json_object_set_new(obj, "event", json_string(name));
	json_object_set_new(obj, "lease", json_integer((json_int_t)lease));
	return obj;
}

int
proto_write_line(struct buf *out, const json_t *obj)
{
	size_t size = json_dumpb(obj, NULL, 0, PROTO_RESPONSE_DUMP_FLAGS);
	if (size == 0)
		return -1;
	buf_reserve(out, size + 1);
	if (json_dumpb(obj, out->data + out->len, size, PROTO_RESPONSE_DUMP_FLAGS) != size) {
		out->data[out->len] = '\0';
		return -1;
	}
	out->len += size;
	buf_append_char(out, '\n');
	return 0;
}
