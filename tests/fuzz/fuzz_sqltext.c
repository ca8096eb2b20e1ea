/* libFuzzer harness for daemon/sqltext.h: counting, binding, the firewall, statement starts and ends, effects. */
/*
 * Built by tests/fuzz/fuzz.mk, run by `make fuzz` and tests/fuzz/run.sh
 * (with tests/fuzz/sqltext.dict).
 *
 * Invariants, for the input as SQL text:
 * - count is -1 (unterminated) or more; unterminated text is never allowed;
 * - bind fails, leaving out alone, with one param too many or too few, and
 *   with the right count succeeds (versioned comments aside), leaving no
 *   placeholder, and a statement the firewall allowed stays allowed;
 * - the statement length n is at most the length, and sqltext_session_effects
 *   sets no flag outside SQLTEXT_EFFECT_ALL;
 * - for text T the firewall allows: T[n] is the ';' if n < len; T[0..n) is
 *   allowed and has no ';' in any reading of its versioned comments (its
 *   own length is n, and the firewall refuses a ';' that moves between
 *   readings); the daemon's batch piece T[0..n) + "\n;" is allowed and
 *   ends at that ';', and with a statement after it is refused for text
 *   after the ';' at n + 1; and the cut drops no token, so all three have
 *   T's session effects, and T[0..n) starts as T does (leading DO, rows);
 * - sqltext_leading_do's offset is that of a "DO" inside the text, and
 *   when T[0..n) leads with DO, the daemon's rewrite of it, with SELECT in
 *   place of the DO, is allowed, has T's effects, ends at n + 4, leads
 *   with DO no longer and may return rows.
 * And for the input as a string param (escaped by the daemon's own
 * sqltext_escape_backslash, which is mysql_real_escape_string's with
 * backslash escapes on, as the daemon's sessions require):
 * - bound into allowed templates ("SELECT ?", two params, trailing
 *   comments), the result has no placeholder and is still allowed: the
 *   value cannot end its quotes;
 * - "SELECT ?" reads back, through a reference unescaper, as the input.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/sqltext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_sqltext_check_reason(const char *why, size_t size, bool must_have_one);
static json_t *fuzz_sqltext_params(const uint8_t *data, size_t size, long count);
static void fuzz_sqltext_unescape_select(const struct buf *bound, const uint8_t *data, size_t size);
static void fuzz_sqltext_check_strings(const uint8_t *data, size_t size);
static void fuzz_sqltext_check_cut(const char *sql, size_t size);
static void fuzz_sqltext_check_do(const char *sql, size_t n, unsigned effects);

static void
fuzz_sqltext_check_reason(const char *why, size_t size, bool must_have_one)
{
	if (memchr(why, '\0', size) == NULL)
		abort();
	if (must_have_one && why[0] == '\0')
		abort();
	for (const char *p = why; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			abort();
}

/* count params of every kind, chosen and filled from the input itself. */
static json_t *
fuzz_sqltext_params(const uint8_t *data, size_t size, long count)
{
	json_t *params = json_array();

	for (long i = 0; i < count; i++) {
		uint8_t pick = size > 0 ? data[(size_t)i % size] : 0;
		size_t from = size > 0 ? ((size_t)i * 7) % size : 0;
		size_t len = size > from ? (size - from) % 24 : 0;
		long long number = 0;
		double real;
		json_t *value;

		memcpy(&number, data + from, len < sizeof number ? len : sizeof number);
		real = (double)number / 3.0;
		switch (pick % 8) {
		case 0: value = json_null(); break;
		case 1: value = json_true(); break;
		case 2: value = json_false(); break;
		case 3: value = json_integer(number); break;
		case 4: value = json_integer(-llabs(number % 1000) - 1); break;
		case 5: value = json_real(isfinite(real) ? -real : 0.5); break;
		case 6: value = json_stringn_nocheck((const char *)data + from, len); break;
		default: value = json_string_nocheck("'; COMMIT; -- */ \\"); break;
		}
		json_array_append_new(params, value != NULL ? value : json_null());
	}
	return params;
}

/* bound is "SELECT '...'": the literal, unescaped as the server does for
 * what sqltext_escape_backslash writes, must be the input, and end the text. */
static void
fuzz_sqltext_unescape_select(const struct buf *bound, const uint8_t *data, size_t size)
{
	static const char from[] = { '0', 'n', 'r', '\\', '\'', '"', 'Z' };
	static const char to[] = { '\0', '\n', '\r', '\\', '\'', '"', '\032' };
	static const char prefix[] = "SELECT '";
	const char *p = bound->data + sizeof prefix - 1, *end = bound->data + bound->len;
	size_t n = 0;

	if (bound->len < sizeof prefix || memcmp(bound->data, prefix, sizeof prefix - 1) != 0)
		abort();
	for (; p < end && *p != '\''; p++, n++) {
		char c = *p;
		if (c == '\\') {
			const char *hit = ++p < end ? memchr(from, *p, sizeof from) : NULL;
			if (hit == NULL)
				abort();
			c = to[hit - from];
		}
		if (n >= size || (uint8_t)c != data[n])
			abort();
	}
	if (n != size || p + 1 != end)
		abort();
}

static void
fuzz_sqltext_check_strings(const uint8_t *data, size_t size)
{
	/* Each allowed, with one or two string params. */
	static const char *const templates[] = {
		"SELECT ?",
		"SELECT ?,?",
		"UPDATE t SET a=? WHERE b=?",
		"SELECT ?-- c",
		"INSERT INTO t VALUES(?,?)#c",
		"SELECT 1 FROM t WHERE a IN (?)/* c */;",
	};
	char why[512];

	for (size_t i = 0; i < sizeof templates / sizeof templates[0]; i++) {
		const char *t = templates[i];
		long count = sqltext_count_placeholders(t, strlen(t));
		json_t *params = json_array();
		struct buf out = { 0 };

		if (sqltext_firewall(t, strlen(t), why, sizeof why) != SQLTEXT_ALLOW || count < 1)
			abort();
		for (long k = 0; k < count; k++) {
			/* the whole input, or its two halves */
			size_t from = count == 1 ? 0 : (size_t)k * (size / 2);
			size_t len = count == 1 ? size : k == 0 ? size / 2 : size - size / 2;
			json_array_append_new(params, json_stringn_nocheck((const char *)data + from, len));
		}
		if (!sqltext_bind(t, strlen(t), params, sqltext_escape_backslash, NULL, &out, why, sizeof why)) {
			fprintf(stderr, "'%s' with strings: %s\n", t, why);
			abort();
		}
		if (sqltext_count_placeholders(out.data, out.len) != 0)
			abort();
		if (sqltext_firewall(out.data, out.len, why, sizeof why) != SQLTEXT_ALLOW) {
			fprintf(stderr, "'%s' with strings is refused: %s\n", t, why);
			abort();
		}
		if (i == 0)
			fuzz_sqltext_unescape_select(&out, data, size);
		json_decref(params);
		buf_free(&out);
	}
}

/* sql is allowed: the daemon's cut (sqltext_statement_length). */
static void
fuzz_sqltext_check_cut(const char *sql, size_t size)
{
	static const char next[] = "SELECT 1";
	char why[512], want[64];
	size_t n = sqltext_statement_length(sql, size);
	unsigned effects = sqltext_session_effects(sql, size);
	char *piece = malloc(n + 2 + sizeof next);

	if (piece == NULL)
		abort();
	if (n > size || (n < size && sql[n] != ';'))
		abort();
	memcpy(piece, sql, n);
	if (sqltext_firewall(piece, n, why, sizeof why) != SQLTEXT_ALLOW) {
		fprintf(stderr, "allowed text cut at %zu is refused: %s\n", n, why);
		abort();
	}
	if (sqltext_statement_length(piece, n) != n || sqltext_session_effects(piece, n) != effects)
		abort();
	size_t at = 0, piece_at = 0;
	bool is_do = sqltext_leading_do(sql, size, &at);
	if (sqltext_leading_do(piece, n, &piece_at) != is_do || piece_at != at ||
	    sqltext_may_return_rows(piece, n) != sqltext_may_return_rows(sql, size))
		abort();
	fuzz_sqltext_check_do(piece, n, effects);
	memcpy(piece + n, "\n;", 2);
	if (sqltext_firewall(piece, n + 2, why, sizeof why) != SQLTEXT_ALLOW) {
		fprintf(stderr, "the daemon's piece of text cut at %zu is refused: %s\n", n, why);
		abort();
	}
	if (sqltext_statement_length(piece, n + 2) != n + 1 || sqltext_session_effects(piece, n + 2) != effects)
		abort();
	memcpy(piece + n + 2, next, sizeof next - 1);
	snprintf(want, sizeof want, "text follows the ';' at offset %zu", n + 1);
	if (sqltext_firewall(piece, n + 2 + sizeof next - 1, why, sizeof why) != SQLTEXT_DENY ||
	    strstr(why, want) == NULL) {
		fprintf(stderr, "the daemon's batch after text cut at %zu: %s\n", n, why);
		abort();
	}
	free(piece);
}

/* sql[0..n) is allowed and cut where the daemon cuts it: the daemon's
 * DO -> SELECT rewrite (lease_append_statements) keeps it allowed. */
static void
fuzz_sqltext_check_do(const char *sql, size_t n, unsigned effects)
{
	char why[512];
	size_t at, ignored;
	char *select;

	if (!sqltext_leading_do(sql, n, &at))
		return;
	select = malloc(n + 4);
	if (select == NULL)
		abort();
	memcpy(select, sql, at);
	memcpy(select + at, "SELECT", 6);
	memcpy(select + at + 6, sql + at + 2, n - at - 2);
	if (sqltext_firewall(select, n + 4, why, sizeof why) != SQLTEXT_ALLOW) {
		fprintf(stderr, "DO at %zu sent as SELECT is refused: %s\n", at, why);
		abort();
	}
	if (sqltext_statement_length(select, n + 4) != n + 4 ||
	    sqltext_session_effects(select, n + 4) != effects ||
	    sqltext_leading_do(select, n + 4, &ignored) || !sqltext_may_return_rows(select, n + 4))
		abort();
	free(select);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *sql = (const char *)data;
	char why[512], bound_why[512];
	struct buf out = { 0 };

	memset(why, 0x55, sizeof why);
	fuzz_sqltext_check_strings(data, size);

	long count = sqltext_count_placeholders(sql, size);
	if (count < -1)
		abort();

	enum sqltext_verdict verdict = sqltext_firewall(sql, size, why, sizeof why);
	if (verdict != SQLTEXT_ALLOW && verdict != SQLTEXT_DENY)
		abort();
	if (verdict == SQLTEXT_DENY)
		fuzz_sqltext_check_reason(why, sizeof why, true);
	/* An unterminated text is never allowed. */
	if (count == -1 && verdict == SQLTEXT_ALLOW)
		abort();

	if (sqltext_statement_length(sql, size) > size)
		abort();
	if ((sqltext_session_effects(sql, size) & ~(unsigned)SQLTEXT_EFFECT_ALL) != 0)
		abort();
	size_t do_at = size;
	if (sqltext_leading_do(sql, size, &do_at) &&
	    (do_at + 2 > size || strncasecmp(sql + do_at, "DO", 2) != 0))
		abort();
	(void)sqltext_may_return_rows(sql, size);
	if (verdict == SQLTEXT_ALLOW)
		fuzz_sqltext_check_cut(sql, size);

	if (count < 0 || count > 256)
		return 0;

	/* A wrong number of params always fails and leaves out alone. */
	json_t *wrong = fuzz_sqltext_params(data, size, count + 1);
	if (sqltext_bind(sql, size, wrong, sqltext_escape_backslash, NULL, &out, why, sizeof why))
		abort();
	if (out.len != 0)
		abort();
	fuzz_sqltext_check_reason(why, sizeof why, true);
	json_decref(wrong);
	if (count > 0) {
		wrong = fuzz_sqltext_params(data, size, count - 1);
		if (sqltext_bind(sql, size, wrong, sqltext_escape_backslash, NULL, &out, why, sizeof why))
			abort();
		if (out.len != 0)
			abort();
		fuzz_sqltext_check_reason(why, sizeof why, true);
		json_decref(wrong);
	}

	json_t *params = fuzz_sqltext_params(data, size, count);
	if (sqltext_bind(sql, size, params, sqltext_escape_backslash, NULL, &out, why, sizeof why)) {
		/* Every placeholder was replaced by a literal. */
		if (sqltext_count_placeholders(out.data, out.len) != 0)
			abort();
		/* Binding values never turns an allowed statement into a
		 * refused one, nor (worse) the other way round for text that
		 * the firewall understood as a single allowed statement. */
		enum sqltext_verdict bound = sqltext_firewall(out.data, out.len, bound_why, sizeof bound_why);
		if (verdict == SQLTEXT_ALLOW && bound != SQLTEXT_ALLOW) {
			fprintf(stderr, "template allowed, bound text denied: %s\n", bound_why);
			abort();
		}
	} else {
		fuzz_sqltext_check_reason(why, sizeof why, true);
		/* Placeholders in versioned comments are the only refusal
		 * left once the count matches and the params are scalars. */
		if (strstr(why, "versioned comment") == NULL)
			abort();
	}
	json_decref(params);
	buf_free(&out);
	return 0;
}
