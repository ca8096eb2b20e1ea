/* SQL text: placeholders, and binding params into them with their escapes. */
#include "daemon/sqltext.h"
#include "daemon/sqltext_private.h"
#include "util/plural.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool sqltext_bind_needs_space(unsigned char c);
static void sqltext_bind_number(struct buf *out, const char *text);
static void sqltext_bind_real(char *text, size_t size, double value);
static const char *sqltext_bind_problem(const json_t *value);
static bool sqltext_bind_value(struct buf *out, const json_t *value, size_t index,
                               sqltext_escape_fn *escape, void *escape_arg, char *why,
                               size_t whysize);
static bool sqltext_bind_next_placeholder(struct sqltext_lexer *lx, struct sqltext_token *tok);
static bool sqltext_bind_reading(void *arg, uint32_t mask, unsigned *versioned_seen);
static bool sqltext_bind_check(const char *sql, size_t len, const json_t *params, char *why,
                               size_t whysize);

unsigned long
sqltext_escape_backslash(void *arg, char *out, const char *src, unsigned long len)
{
	static const char from[] = {'\0', '\n', '\r', '\\', '\'', '"', '\032'};
	static const char to[] = {'0', 'n', 'r', '\\', '\'', '"', 'Z'};
	unsigned long n = 0;

	(void)arg;
	for (unsigned long i = 0; i < len; i++) {
		const char *hit = memchr(from, src[i], sizeof from);
		if (hit != NULL) {
			out[n++] = '\\';
			out[n++] = to[hit - from];
		} else {
			out[n++] = src[i];
		}
	}
	out[n] = '\0';
	return n;
}

long
sqltext_count_placeholders(const char *sql, size_t len)
{
	struct sqltext_lexer lx;
	struct sqltext_token tok;
	enum sqltext_token_kind kind;
	long count = 0;

	sqltext_lexer_init(&lx, sql, len, 0, false);
	while ((kind = sqltext_lexer_next(&lx, &tok)) != SQLTEXT_TOKEN_END) {
		if (kind == SQLTEXT_TOKEN_ERROR)
			return -1;
		if (kind == SQLTEXT_TOKEN_PLACEHOLDER)
			count++;
	}
	return count;
}

/* A bound value never touches a name, number, quote, '.', '!' or another
 * value, so it stays one token: "?'x'" bound to 'a' would otherwise read as
 * the single literal 'a''x', and "/\*!?" bound to 50000 as the version
 * marker "/\*!50000", which the server skips. */
static bool
sqltext_bind_needs_space(unsigned char c)
{
	return sqltext_lexer_is_name_byte(c) || c == '\'' || c == '"' || c == '`' || c == '?' ||
	       c == '.' || c == '!';
}

/* A negative number goes in parentheses: "5-?" with -3 must not become
 * "5--3" (a comment when followed by a space in "5-- 3") or merge with the
 * minus before it. */
static void
sqltext_bind_number(struct buf *out, const char *text)
{
	if (text[0] == '-')
		buf_appendf(out, "(%s)", text);
	else
		buf_append_str(out, text);
}

/* The shortest of %.15g, %.16g and %.17g that reads back as the same
 * double (%.17g always does): 0.1 stays "0.1", which MariaDB reads as the
 * exact decimal 0.1, not 0.10000000000000001. */
static void
sqltext_bind_real(char *text, size_t size, double value)
{
	for (int precision = 15; precision < 17; precision++) {
		snprintf(text, size, "%.*g", precision, value);
		if (strtod(text, NULL) == value)
			return;
	}
	snprintf(text, size, "%.17g", value);
}

/* The problem with a param, or NULL if it can be bound. */
static const char *
sqltext_bind_problem(const json_t *value)
{
	if (json_is_object(value))
		return "is an object";
	if (json_is_array(value))
		return "is an array";
	if (json_is_real(value) && !isfinite(json_real_value(value)))
		return "is not a finite number";
	return NULL;
}

static bool
sqltext_bind_value(struct buf *out, const json_t *value, size_t index, sqltext_escape_fn *escape,
                   void *escape_arg, char *why, size_t whysize)
{
	char text[64];

	switch (json_typeof(value)) {
	case JSON_NULL:
		buf_append_str(out, "NULL");
		return true;
	case JSON_TRUE:
		buf_append_str(out, "TRUE");
		return true;
	case JSON_FALSE:
		buf_append_str(out, "FALSE");
		return true;
	case JSON_INTEGER:
		snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
		sqltext_bind_number(out, text);
		return true;
	case JSON_REAL:
		sqltext_bind_real(text, sizeof text, json_real_value(value));
		/* %g follows LC_NUMERIC: a decimal comma would split the value
		 * into two SQL items, so anything but C-locale output is refused. */
		if (strspn(text, "0123456789.eE+-") != strlen(text))
			return sqltext_reason(
			    why, whysize, "param %zu could not be formatted (LC_NUMERIC is not C)",
			    index);
		sqltext_bind_number(out, text);
		return true;
	case JSON_STRING: {
		const char *s = json_string_value(value);
		size_t n = json_string_length(value);

		if (escape == NULL)
			return sqltext_reason(
			    why, whysize, "param %zu is a string but no escape function was given",
			    index);
		if (n > (SIZE_MAX - 4) / 2 || n > ULONG_MAX / 2)
			return sqltext_reason(why, whysize, "param %zu is too long", index);
		buf_append_char(out, '\'');
		buf_reserve(out, 2 * n + 1);
		unsigned long written =
		    escape(escape_arg, out->data + out->len, s, (unsigned long)n);
		if (written > 2 * n)
			return sqltext_reason(why, whysize, "param %zu could not be escaped",
			                      index);
		out->len += written;
		out->data[out->len] = '\0';
		buf_append_char(out, '\'');
		return true;
	}
	case JSON_OBJECT:
	case JSON_ARRAY:
		break;
	}
	return sqltext_reason(why, whysize,
	                      "param %zu %s; params must be null, boolean, number or string", index,
	                      sqltext_bind_problem(value));
}

/* The next placeholder; false at the end or on an error. */
static bool
sqltext_bind_next_placeholder(struct sqltext_lexer *lx, struct sqltext_token *tok)
{
	enum sqltext_token_kind kind;

	while ((kind = sqltext_lexer_next(lx, tok)) != SQLTEXT_TOKEN_END &&
	       kind != SQLTEXT_TOKEN_ERROR)
		if (kind == SQLTEXT_TOKEN_PLACEHOLDER)
			return true;
	return false;
}

struct sqltext_bind_reading {
	const char *sql;
	size_t len;
	char *why;
	size_t whysize;
};

/*
 * Every placeholder of the all-code reading must be a placeholder in this
 * reading too. Otherwise a versioned comment hides it from some servers,
 * and a string value holding "*\/" would end that comment and turn the rest
 * of the value into code. The two lexers walk the text in step.
 */
static bool
sqltext_bind_reading(void *arg, uint32_t mask, unsigned *versioned_seen)
{
	struct sqltext_bind_reading *r = arg;
	struct sqltext_lexer code, reading;
	struct sqltext_token a, b;
	size_t index = 0;

	sqltext_lexer_init(&code, r->sql, r->len, 0, false);
	sqltext_lexer_init(&reading, r->sql, r->len, mask, true);
	bool more = sqltext_bind_next_placeholder(&reading, &b);
	while (sqltext_bind_next_placeholder(&code, &a)) {
		index++;
		while (more && b.start < a.start)
			more = sqltext_bind_next_placeholder(&reading, &b);
		if (!more || b.start != a.start) {
			if (reading.error != NULL && reading.error_offset < a.start)
				return sqltext_reason(r->why, r->whysize,
				                      "placeholder %zu (offset %zu) follows text "
				                      "that not every server "
				                      "reads the same way because of a versioned "
				                      "comment (%s at offset %zu)",
				                      index, a.start, reading.error,
				                      reading.error_offset);
			return sqltext_reason(
			    r->why, r->whysize,
			    "placeholder %zu (offset %zu) is hidden by a versioned comment "
			    "(/*!NNNNN "
			    "... */ at offset %zu) on servers that read it as a comment",
			    index, a.start, reading.ignored_any ? reading.ignored_offset : a.start);
		}
		more = sqltext_bind_next_placeholder(&reading, &b);
	}
	while (more)
		more = sqltext_bind_next_placeholder(&reading, &b);
	*versioned_seen = reading.versioned_seen;
	return true;
}

/* Checks the text and the params before anything is written. */
static bool
sqltext_bind_check(const char *sql, size_t len, const json_t *params, char *why, size_t whysize)
{
	struct sqltext_lexer lx;
	struct sqltext_token tok;
	enum sqltext_token_kind kind;
	size_t count = 0, given = params != NULL ? json_array_size(params) : 0;

	if (params != NULL && !json_is_array(params))
		return sqltext_reason(why, whysize, "params must be an array");
	sqltext_lexer_init(&lx, sql, len, 0, false);
	while ((kind = sqltext_lexer_next(&lx, &tok)) != SQLTEXT_TOKEN_END) {
		if (kind == SQLTEXT_TOKEN_ERROR)
			return sqltext_reason(why, whysize, "%s at offset %zu", lx.error,
			                      lx.error_offset);
		if (kind == SQLTEXT_TOKEN_PLACEHOLDER)
			count++;
	}
	if (count != given)
		return sqltext_reason(why, whysize,
		                      "statement has %zu placeholder%s but %zu param%s given",
		                      count, plural_s(count), given, plural_s(given));
	for (size_t i = 0; i < given; i++) {
		const char *problem = sqltext_bind_problem(json_array_get(params, i));
		if (problem != NULL)
			return sqltext_reason(
			    why, whysize,
			    "param %zu %s; params must be null, boolean, number or string", i + 1,
			    problem);
	}
	if (count > 0 && lx.versioned_seen > 0) {
		struct sqltext_bind_reading reading = {sql, len, why, whysize};
		if (!sqltext_lexer_each_reading(sqltext_bind_reading, &reading))
			return false;
	}
	return true;
}

bool
sqltext_bind(const char *sql, size_t len, const json_t *params, sqltext_escape_fn *escape,
             void *escape_arg, struct buf *out, char *why, size_t whysize)
{
	struct sqltext_lexer lx;
	struct sqltext_token tok;
	size_t copied = 0, index = 0, original = out->len;

	if (sql == NULL) {
		sql = "";
		len = 0;
	}
	if (!sqltext_bind_check(sql, len, params, why, whysize))
		return false;
	sqltext_lexer_init(&lx, sql, len, 0, false);
	while (sqltext_lexer_next(&lx, &tok) != SQLTEXT_TOKEN_END) {
		if (tok.kind != SQLTEXT_TOKEN_PLACEHOLDER)
			continue;
		buf_append(out, sql + copied, tok.start - copied);
		if (out->len > original &&
		    sqltext_bind_needs_space((unsigned char)out->data[out->len - 1]))
			buf_append_char(out, ' ');
		if (!sqltext_bind_value(out, json_array_get(params, index), index + 1, escape,
		                        escape_arg, why, whysize)) {
			out->len = original;
			if (out->data != NULL)
				out->data[original] = '\0';
			return false;
		}
		if (tok.end < len && sqltext_bind_needs_space((unsigned char)sql[tok.end]))
			buf_append_char(out, ' ');
		copied = tok.end;
		index++;
	}
	buf_append(out, sql + copied, len - copied);
	return true;
}
