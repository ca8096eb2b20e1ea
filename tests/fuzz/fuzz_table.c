/* libFuzzer harness for table names: proto/proto_table.c, and daemon/sqltext_lock.c round trips. */
/*
 * Input: one flag byte, then lines. With flag bit 0, the first line is the
 * default database. Every other line is "SPEC" or "SPEC\tALIAS"; bit 1+i of
 * the flags (cycling) makes entry i a WRITE lock.
 *
 * Invariants:
 * - proto_table_valid_part agrees with an independent reference (RFC 3629's
 *   table restricted to the BMP, no NUL or '.', 1 to 64 characters, no
 *   trailing space), and explains every refusal;
 * - proto_table_split succeeds only with two valid parts that rebuild the
 *   spec (or the default database and the spec);
 * - the LOCK TABLES text, read back by the tiny backtick unquoter below,
 *   gives exactly the names, aliases and modes put in, and to the statement
 *   lexer (daemon/sqltext.h) it is one statement without placeholders
 *   whatever the names hold ('?', quotes, comment starters).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/sqltext.h"
#include "proto/proto_table.h"

#define FUZZ_TABLE_MAX 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fuzz_table_reference_valid(const unsigned char *s, size_t len);
static void fuzz_table_check_part(const char *s, size_t len);
static bool fuzz_table_unquote(const char **p, const char *end, struct buf *out);
static bool fuzz_table_expect(const char **p, const char *end, const char *word);
static void fuzz_table_check_lock_sql(const struct proto_table *tables, size_t n);

/* The rule written out as data: well-formed UTF-8 sequences of 1 to 3
 * bytes (RFC 3629, section 4, without the four-byte rows: MySQL's utf8mb3
 * stops at U+FFFF), counted in characters. */
static bool
fuzz_table_reference_valid(const unsigned char *s, size_t len)
{
	static const struct {
		unsigned char lead_lo, lead_hi, second_lo, second_hi;
		size_t length;
	} rows[] = {
		{0x01, 0x7f, 0, 0, 1}, /* NUL is refused */
		{0xc2, 0xdf, 0x80, 0xbf, 2},
		{0xe0, 0xe0, 0xa0, 0xbf, 3},
		{0xe1, 0xec, 0x80, 0xbf, 3},
		{0xed, 0xed, 0x80, 0x9f, 3},
		{0xee, 0xef, 0x80, 0xbf, 3},
	};
	size_t chars = 0;

	if (len == 0 || s[len - 1] == ' ')
		return false;
	for (size_t i = 0; i < len; chars++) {
		size_t r, n;
		for (r = 0; r < sizeof rows / sizeof rows[0]; r++)
			if (s[i] >= rows[r].lead_lo && s[i] <= rows[r].lead_hi)
				break;
		if (r == sizeof rows / sizeof rows[0] || s[i] == '.')
			return false;
		n = rows[r].length;
		if (len - i < n)
			return false;
		if (n > 1 && (s[i + 1] < rows[r].second_lo || s[i + 1] > rows[r].second_hi))
			return false;
		if (n > 2 && (s[i + 2] < 0x80 || s[i + 2] > 0xbf))
			return false;
		i += n;
	}
	return chars <= 64;
}

static void
fuzz_table_check_part(const char *s, size_t len)
{
	char why[160];
	memset(why, 0x55, sizeof why);
	bool valid = proto_table_valid_part(s, len, why, sizeof why);
	if (valid != fuzz_table_reference_valid((const unsigned char *)s, len)) {
		fprintf(stderr, "valid_part says %d, the reference disagrees\n", valid);
		abort();
	}
	if (!valid && (memchr(why, '\0', sizeof why) == NULL || why[0] == '\0'))
		abort();
}

/* Reads one `name` (backticks doubled inside) at *p into out. */
static bool
fuzz_table_unquote(const char **p, const char *end, struct buf *out)
{
	const char *s = *p;
	buf_reset(out);
	buf_append(out, "", 0);
	if (s == end || *s != '`')
		return false;
	for (s++; s < end; s++) {
		if (*s == '`') {
			if (s + 1 < end && s[1] == '`') {
				buf_append_char(out, '`');
				s++;
				continue;
			}
			*p = s + 1;
			return true;
		}
		buf_append_char(out, *s);
	}
	return false;
}

static bool
fuzz_table_expect(const char **p, const char *end, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(end - *p) < n || memcmp(*p, word, n) != 0)
		return false;
	*p += n;
	return true;
}

static void
fuzz_table_check_lock_sql(const struct proto_table *tables, size_t n)
{
	struct buf sql = {0}, part = {0};
	char why[256];

	sqltext_lock_tables(&sql, tables, n);
	const char *p = sql.data, *end = sql.data + sql.len;
	if (!fuzz_table_expect(&p, end, "LOCK TABLES "))
		abort();
	for (size_t i = 0; i < n; i++) {
		const struct proto_table *t = &tables[i];
		if (i > 0 && !fuzz_table_expect(&p, end, ", "))
			abort();
		if (!fuzz_table_unquote(&p, end, &part) || strcmp(part.data, t->db) != 0)
			abort();
		if (!fuzz_table_expect(&p, end, ".") || !fuzz_table_unquote(&p, end, &part) ||
		    strcmp(part.data, t->name) != 0)
			abort();
		if (t->alias != NULL &&
		    (!fuzz_table_expect(&p, end, " AS ") || !fuzz_table_unquote(&p, end, &part) ||
		     strcmp(part.data, t->alias) != 0))
			abort();
		if (!fuzz_table_expect(&p, end, t->write ? " WRITE" : " READ"))
			abort();
	}
	if (p != end)
		abort();

	/* The lexer must see every name as one quoted identifier. */
	if (sqltext_count_placeholders(sql.data, sql.len) != 0) {
		fprintf(stderr, "placeholders found in: %s\n", sql.data);
		abort();
	}
	/* Refused for being LOCK, as plain names are: not for a lexical
	 * error or odd text a name would have caused. */
	static const char plain[] = "LOCK TABLES `a`.`b` READ";
	char plain_why[256];
	if (sqltext_firewall(plain, sizeof plain - 1, plain_why, sizeof plain_why) !=
		    SQLTEXT_DENY ||
	    sqltext_firewall(sql.data, sql.len, why, sizeof why) != SQLTEXT_DENY)
		abort();
	if (strcmp(why, plain_why) != 0) {
		fprintf(stderr, "names changed the lexer's reading: %s\n", why);
		abort();
	}
	buf_free(&sql);
	buf_free(&part);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_table tables[FUZZ_TABLE_MAX];
	size_t ntables = 0, index = 0;
	char *default_db = NULL;
	char why[160];

	if (size == 0)
		return 0;
	uint8_t flags = data[0];
	const char *p = (const char *)data + 1, *end = (const char *)data + size;

	while (p <= end && ntables < FUZZ_TABLE_MAX) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl != NULL ? nl : end;
		size_t len = (size_t)(line_end - p);

		if ((flags & 1) && index == 0) {
			default_db = strndup(p, len); /* stops at a NUL: fine */
			index++;
			p = line_end + 1;
			continue;
		}
		const char *tab = memchr(p, '\t', len);
		size_t speclen = tab != NULL ? (size_t)(tab - p) : len;

		fuzz_table_check_part(p, len);
		fuzz_table_check_part(p, speclen);

		char *db = NULL, *name = NULL;
		memset(why, 0x55, sizeof why);
		if (proto_table_split(p, speclen, default_db, &db, &name, why, sizeof why)) {
			const char *dot = memchr(p, '.', speclen);
			if (!proto_table_valid_part(db, strlen(db), why, sizeof why) ||
			    !proto_table_valid_part(name, strlen(name), why, sizeof why))
				abort();
			if (dot == NULL &&
			    (default_db == NULL || strcmp(db, default_db) != 0 ||
			     strlen(name) != speclen || memcmp(name, p, speclen) != 0))
				abort();
			if (dot != NULL && (strlen(db) + 1 + strlen(name) != speclen ||
					    memcmp(db, p, strlen(db)) != 0 ||
					    memcmp(name, dot + 1, strlen(name)) != 0))
				abort();

			struct proto_table *t = &tables[ntables++];
			t->db = db;
			t->name = name;
			t->alias = NULL;
			t->write = (flags >> (1 + ntables % 7)) & 1;
			if (tab != NULL && proto_table_valid_part(tab + 1, len - speclen - 1, why,
								  sizeof why))
				t->alias = strndup(tab + 1, len - speclen - 1);

			char *key = proto_table_key(t);
			if (strlen(key) != strlen(db) + 1 + strlen(name) ||
			    strncmp(key, db, strlen(db)) != 0 || key[strlen(db)] != '.' ||
			    strcmp(key + strlen(db) + 1, name) != 0)
				abort();
			free(key);
		} else if (memchr(why, '\0', sizeof why) == NULL || why[0] == '\0') {
			abort();
		}
		index++;
		if (nl == NULL)
			break;
		p = nl + 1;
	}

	if (ntables > 0)
		fuzz_table_check_lock_sql(tables, ntables);
	for (size_t i = 0; i < ntables; i++) {
		free(tables[i].db);
		free(tables[i].name);
		free(tables[i].alias);
	}
	free(default_db);
	return 0;
}
