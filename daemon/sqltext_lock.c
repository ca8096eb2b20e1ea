/* SQL text: the daemon's own LOCK TABLES, built from a lease's validated table names. */
#include "daemon/sqltext.h"

#include "util/buf.h"

void
sqltext_lock_quote(struct buf *out, const char *part)
{
	buf_append_char(out, '`');
	for (const char *p = part; *p != '\0'; p++) {
		if (*p == '`')
			buf_append_char(out, '`');
		buf_append_char(out, *p);
	}
	buf_append_char(out, '`');
}

void
sqltext_lock_ref(struct buf *out, const struct proto_table *t)
{
	sqltext_lock_quote(out, t->db);
	buf_append_char(out, '.');
	sqltext_lock_quote(out, t->name);
	if (t->alias != NULL) {
		buf_append_str(out, " AS ");
		sqltext_lock_quote(out, t->alias);
	}
}

void
sqltext_lock_tables(struct buf *out, const struct proto_table *tables, size_t n)
{
	buf_append_str(out, "LOCK TABLES ");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_append_str(out, ", ");
		sqltext_lock_ref(out, &tables[i]);
		buf_append_str(out, tables[i].write ? " WRITE" : " READ");
	}
}
