/* Table names in requests: validation, splitting and the canonical db.name form. */
#include "proto/proto_table.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

/* MySQL's limit for database, table and alias names, in characters
 * (MariaDB manual, "Identifier Names"). */
#define PROTO_TABLE_MAX_CHARS 64

static bool proto_table_valid_named(const char *what, const char *s, size_t len, char *why,
				    size_t whysize);

bool
proto_table_valid_part(const char *s, size_t len, char *why, size_t whysize)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t chars = 0;

	if (len == 0) {
		snprintf(why, whysize, "is empty");
		return false;
	}
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		if (n == 0) {
			snprintf(why, whysize, "is not valid UTF-8 (at byte %zu)", i);
			return false;
		}
		if (cp == 0) {
			snprintf(why, whysize, "contains NUL");
			return false;
		}
		if (cp == '.') {
			snprintf(why, whysize, "contains '.'");
			return false;
		}
		/* MySQL stores identifiers as utf8mb3: only the Basic
		 * Multilingual Plane is allowed (manual, "Identifier Names"). */
		if (cp > 0xffff) {
			snprintf(why, whysize, "contains a character outside the Basic Multilingual Plane");
			return false;
		}
		i += n;
		chars++;
	}
	if (chars > PROTO_TABLE_MAX_CHARS) {
		snprintf(why, whysize, "is longer than %d characters", PROTO_TABLE_MAX_CHARS);
		return false;
	}
	/* MySQL refuses database and table names ending in a space. */
	if (s[len - 1] == ' ') {
		snprintf(why, whysize, "ends with a space");
		return false;
	}
	return true;
}

/* proto_table_valid_part with the part's role ("database name") in front. */
static bool
proto_table_valid_named(const char *what, const char *s, size_t len, char *why, size_t whysize)
{
	char reason[128];
	if (proto_table_valid_part(s, len, reason, sizeof(reason)))
		return true;
	snprintf(why, whysize, "%s %s", what, reason);
	return false;
}

bool
proto_table_split(const char *spec, size_t len, const char *default_db, char **db,
		  char **name, char *why, size_t whysize)
{
	const char *dot = memchr(spec, '.', len);

	if (dot != NULL && memchr(dot + 1, '.', len - (size_t)(dot - spec) - 1) != NULL) {
		snprintf(why, whysize, "has more than one '.'");
		return false;
	}
	if (dot == NULL) {
		if (default_db == NULL) {
			snprintf(why, whysize,
				 "names no database and no default database is configured");
			return false;
		}
		if (!proto_table_valid_named("default database name", default_db,
					     strlen(default_db), why, whysize) ||
		    !proto_table_valid_named("table name", spec, len, why, whysize))
			return false;
		*db = xstrdup(default_db);
		*name = xstrndup(spec, len);
		return true;
	}

	size_t dblen = (size_t)(dot - spec);
	if (!proto_table_valid_named("database name", spec, dblen, why, whysize) ||
	    !proto_table_valid_named("table name", dot + 1, len - dblen - 1, why, whysize))
		return false;
	*db = xstrndup(spec, dblen);
	*name = xstrndup(dot + 1, len - dblen - 1);
	return true;
}

char *
proto_table_key(const struct proto_table *t)
{
	struct buf b = {0};
	buf_appendf(&b, "%s.%s", t->db, t->name);
	return b.data;
}

void
proto_table_free_array(struct proto_table *tables, size_t n)
{
	if (tables == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(tables[i].db);
		free(tables[i].name);
		free(tables[i].alias);
	}
	free(tables);
}
