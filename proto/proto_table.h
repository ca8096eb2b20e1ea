/* Table names in requests: validation, splitting and the canonical db.name form. */
#ifndef TABLELOCK_PROTO_TABLE_H
#define TABLELOCK_PROTO_TABLE_H

#include <stdbool.h>
#include <stddef.h>

/* One entry of a lease: a table (with its database) locked READ or WRITE,
 * optionally under an alias (MySQL requires one lock per alias used). */
struct proto_table {
	char *db;	/* never NULL after proto_request_parse (default applied) */
	char *name;
	char *alias;	/* NULL when none */
	bool write;
};

/* Checks one identifier part (database, table or alias): 1 to 64 characters
 * (UTF-8 code points), valid UTF-8, no NUL, no '.', not ending in a space,
 * and no character past U+FFFF (MySQL keeps identifiers in utf8mb3).
 * Returns true when valid; else writes a reason into why, phrased to follow
 * the name ("is empty", "ends with a space"). */
bool proto_table_valid_part(const char *s, size_t len, char *why, size_t whysize);

/* Splits "name" or "db.name" into parts, validating both. default_db is used
 * when there is no dot (NULL: a name without database is invalid). On success
 * returns true and sets *db and *name (malloced); else why says which part
 * fails and how ("table name is empty", "has more than one '.'"). */
bool proto_table_split(const char *spec, size_t len, const char *default_db,
		       char **db, char **name, char *why, size_t whysize);

/* "db.name" (unquoted, for logs, status and the lock manager's keys). */
char *proto_table_key(const struct proto_table *t);

void proto_table_free_array(struct proto_table *tables, size_t n);

#endif
