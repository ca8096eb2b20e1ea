/* SQL text: one MariaDB-faithful lexer behind binding, the firewall, statement ends and session effects. */
#include "daemon/sqltext.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * The firewall and the binder must split text exactly where MariaDB's own
 * lexer (sql/sql_lex.cc) does: a keyword that one of them misses and the
 * server sees is a way around the firewall. Each rule below that looks odd
 * is one the server follows; the comments name the statement that showed it
 * on MariaDB 10.11.
 *
 * The connection must lex the way this file does: sql_mode without
 * NO_BACKSLASH_ESCAPES and ANSI_QUOTES (backslash always escapes in '...'
 * and "...", and "..." is a string), and an ASCII-safe character set such
 * as utf8mb4 (in GBK or SJIS a backslash can be the second byte of a
 * character). So the daemon must set both on its sessions; the firewall
 * refuses every SET a client could use to change them.
 */

enum sqltext_token_kind {
	SQLTEXT_TOKEN_END,		/* end of text */
	SQLTEXT_TOKEN_ERROR,		/* unterminated string, name or comment */
	SQLTEXT_TOKEN_WORD,		/* keyword or bare name (may start with digits) */
	SQLTEXT_TOKEN_NUMBER,		/* 12, 1.5, .5, 1e5, 0x1F, 0b101 */
	SQLTEXT_TOKEN_STRING,		/* '...' or "..." */
	SQLTEXT_TOKEN_QUOTED_NAME,	/* `...` */
	SQLTEXT_TOKEN_PLACEHOLDER,	/* ? */
	SQLTEXT_TOKEN_NULL_ESCAPE,	/* \N, MariaDB's shorthand for NULL */
	SQLTEXT_TOKEN_ODD,		/* text the server rejects or reads oddly */
	SQLTEXT_TOKEN_PUNCT		/* any other single byte */
};

/* How the firewall names a token that cannot start a statement. */
static const char *const sqltext_token_noun[] = {
	[SQLTEXT_TOKEN_END] = "the end of the text",
	[SQLTEXT_TOKEN_ERROR] = "a lexical error",
	[SQLTEXT_TOKEN_WORD] = "a name",
	[SQLTEXT_TOKEN_NUMBER] = "a number",
	[SQLTEXT_TOKEN_STRING] = "a string",
	[SQLTEXT_TOKEN_QUOTED_NAME] = "a quoted name",
	[SQLTEXT_TOKEN_PLACEHOLDER] = "a placeholder",
	[SQLTEXT_TOKEN_NULL_ESCAPE] = "\\N",
	[SQLTEXT_TOKEN_ODD] = "odd text",
	[SQLTEXT_TOKEN_PUNCT] = "punctuation",
};

struct sqltext_token {
	enum sqltext_token_kind kind;
	size_t start;
	size_t end;
	const char *odd;	/* SQLTEXT_TOKEN_ODD: what is wrong with it */
};

/*
 * Whether a versioned comment ("/\*!50100 …" or "/\*M!100100 …") is code or
 * a comment depends on the server's version: MariaDB runs it only when the
 * number is not above its own version, and never runs MySQL 5.7+ numbers
 * (50700-99999) without the M. The firewall cannot know the server, so it
 * lexes every combination (bit k of ignore_mask set: the k-th versioned
 * comment met is read as a comment) and allows only what all of them allow.
 * More than this many versioned comments is refused outright.
 */
#define SQLTEXT_VERSIONED_MAX 4
#define SQLTEXT_STRING_(x) #x
#define SQLTEXT_STRING(x) SQLTEXT_STRING_(x)

struct sqltext_lexer {
	const char *sql;
	size_t len;
	size_t pos;
	bool in_executable;		/* between an executable comment's opener and its close */
	size_t executable_start;
	uint32_t ignore_mask;
	bool limit_versioned;		/* refuse past SQLTEXT_VERSIONED_MAX */
	unsigned versioned_seen;
	bool ignored_any;
	size_t ignored_offset;		/* the first versioned comment read as a comment */
	const char *error;		/* "unterminated string", … ; sticky */
	size_t error_offset;
};

/* Longest piece of client text quoted in a reason. */
#define SQLTEXT_QUOTE_MAX 64

static bool
sqltext_why(char *why, size_t whysize, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes a reason (always ASCII: it goes into JSON) and returns false, so a
 * refusal is one line: return sqltext_why(…). */
static bool
sqltext_why(char *why, size_t whysize, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whysize == 0)
		return false;
	va_start(ap, fmt);
	vsnprintf(why, whysize, fmt, ap);
	va_end(ap);
	return false;
}

/* Copies client text for a reason: printable ASCII as is, any other byte
 * as \xNN, so the reason is valid UTF-8 whatever the client sent. */
static void
sqltext_quote(char *dst, size_t size, const char *src, size_t len)
{
	size_t used = 0;

	if (size == 0)
		return;
	dst[0] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		char piece[8];

		if (i == SQLTEXT_QUOTE_MAX) {
			snprintf(piece, sizeof piece, "...");
		} else if (c >= 0x20 && c < 0x7f) {
			piece[0] = (char)c;
			piece[1] = '\0';
		} else {
			snprintf(piece, sizeof piece, "\\x%02x", c);
		}
		size_t n = strlen(piece);
		if (used + n >= size)
			return;
		memcpy(dst + used, piece, n + 1);
		used += n;
		if (i == SQLTEXT_QUOTE_MAX)
			return;
	}
}

/* The byte at i, or NUL past the end: the server's query buffer is
 * NUL-terminated and its lexer peeks the same way. */
static unsigned char
sqltext_at(const struct sqltext_lexer *lx, size_t i)
{
	return i < lx->len ? (unsigned char)lx->sql[i] : '\0';
}

/* my_isspace(): the bytes MariaDB skips between tokens. */
static bool
sqltext_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool
sqltext_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
sqltext_is_hex_digit(unsigned char c)
{
	return sqltext_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ident_map[]: bytes that continue a bare name; every byte of a UTF-8
 * multibyte character counts. */
static bool
sqltext_is_word(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || sqltext_is_digit(c) ||
	       c == '_' || c == '$' || c >= 0x80;
}

/* "--" starts a comment only before a space or control byte (my_isspace or
 * my_iscntrl) or the end: MariaDB manual, "Comment Syntax". "--1" is
 * minus minus one. */
static bool
sqltext_ends_dashes(unsigned char c)
{
	return c <= 0x20 || c == 0x7f;
}

static void
sqltext_lexer_init(struct sqltext_lexer *lx, const char *sql, size_t len,
		   uint32_t ignore_mask, bool limit_versioned)
{
	memset(lx, 0, sizeof *lx);
	lx->sql = sql;
	lx->len = sql != NULL ? len : 0;
	lx->ignore_mask = ignore_mask;
	lx->limit_versioned = limit_versioned;
}

static enum sqltext_token_kind
sqltext_lexer_emit(struct sqltext_lexer *lx, struct sqltext_token *tok,
		   enum sqltext_token_kind kind, size_t start, size_t end)
{
	tok->kind = kind;
	tok->start = start;
	tok->end = end;
	tok->odd = NULL;
	lx->pos = end;
	return kind;
}

static enum sqltext_token_kind
sqltext_lexer_odd(struct sqltext_lexer *lx, struct sqltext_token *tok,
		  size_t start, size_t end, const char *what)
{
	sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_ODD, start, end);
	tok->odd = what;
	return SQLTEXT_TOKEN_ODD;
}

static enum sqltext_token_kind
sqltext_lexer_fail(struct sqltext_lexer *lx, struct sqltext_token *tok,
		   const char *error, size_t offset)
{
	if (lx->error == NULL) {
		lx->error = error;
		lx->error_offset = offset;
	}
	tok->kind = SQLTEXT_TOKEN_ERROR;
	tok->start = tok->end = lx->error_offset;
	tok->odd = NULL;
	return SQLTEXT_TOKEN_ERROR;
}

/* A versioned comment read as a comment: the server's consume_comment(lip, 1)
 * ends it at the first "*\/" outside one nested C comment, and sees no
 * strings inside. "select 1 /\*!99999 '*\/ + 5 -- ' *\/" returns 6. */
static bool
sqltext_lexer_skip_ignored(struct sqltext_lexer *lx, size_t start, size_t from)
{
	bool nested = false;
	size_t i = from;

	while (i < lx->len) {
		unsigned char c = sqltext_at(lx, i), next = sqltext_at(lx, i + 1);

		if (!nested && c == '/' && next == '*') {
			nested = true;
			i += 2;
		} else if (c == '*' && next == '/') {
			i += 2;
			if (!nested) {
				lx->pos = i;
				return true;
			}
			nested = false;
		} else {
			i++;
		}
	}
	lx->error = "unterminated versioned comment";
	lx->error_offset = start;
	return false;
}

/*
 * At "/\*": an ordinary comment is skipped (it ends at the first "*\/", no
 * nesting); an executable one ("/\*!" or "/\*M!", M upper case only) is
 * entered and its inside lexed as code, with a version of exactly 5 or 6
 * digits skipped (fewer digits are code: "/\*!1 + 1 *\/" is "1 + 1").
 */
static bool
sqltext_lexer_slash_star(struct sqltext_lexer *lx)
{
	size_t start = lx->pos, p = start + 2, marker = 0, digits = 0;

	if (sqltext_at(lx, p) == '!')
		marker = 1;
	else if (sqltext_at(lx, p) == 'M' && sqltext_at(lx, p + 1) == '!')
		marker = 2;
	if (marker == 0) {
		const char *end = p <= lx->len ? memmem(lx->sql + p, lx->len - p, "*/", 2) : NULL;
		if (end == NULL) {
			lx->error = "unterminated comment";
			lx->error_offset = start;
			return false;
		}
		lx->pos = (size_t)(end - lx->sql) + 2;
		return true;
	}
	p += marker;
	while (digits < 6 && sqltext_is_digit(sqltext_at(lx, p + digits)))
		digits++;
	if (digits < 5)
		digits = 0;
	if (digits > 0) {
		unsigned k = lx->versioned_seen++;
		if (lx->limit_versioned && k >= SQLTEXT_VERSIONED_MAX) {
			lx->error = "more than " SQLTEXT_STRING(SQLTEXT_VERSIONED_MAX) " versioned comments "
				    "(/*!NNNNN ... */), which run or not depending on the server version: "
				    "the next one starts";
			lx->error_offset = start;
			return false;
		}
		if (k < 32 && (lx->ignore_mask >> k) & 1u) {
			if (!lx->ignored_any) {
				lx->ignored_any = true;
				lx->ignored_offset = start;
			}
			return sqltext_lexer_skip_ignored(lx, start, p);
		}
	}
	/* One flag, as in the server: a nested opener re-enters, and the
	 * first closer leaves ("/\*!50000 /\*!50000 1 *\/ 2 *\/" is an error). */
	lx->in_executable = true;
	lx->executable_start = start;
	lx->pos = p + digits;
	return true;
}

/* '...' and "..." (backslash escapes, doubled quote) and `...` (doubled
 * backtick only; a NUL byte inside makes the server fail). */
static enum sqltext_token_kind
sqltext_lexer_quoted(struct sqltext_lexer *lx, struct sqltext_token *tok, size_t start)
{
	char quote = lx->sql[start];
	bool name = quote == '`';
	size_t i = start + 1;

	while (i < lx->len) {
		char c = lx->sql[i];

		if (!name && c == '\\') {
			i += 2;
		} else if (name && c == '\0') {
			return sqltext_lexer_fail(lx, tok, "NUL byte in the quoted name", start);
		} else if (c == quote) {
			if (i + 1 < lx->len && lx->sql[i + 1] == quote) {
				i += 2;
				continue;
			}
			return sqltext_lexer_emit(lx, tok,
						  name ? SQLTEXT_TOKEN_QUOTED_NAME : SQLTEXT_TOKEN_STRING,
						  start, i + 1);
		} else {
			i++;
		}
	}
	return sqltext_lexer_fail(lx, tok, name ? "unterminated quoted name" : "unterminated string", start);
}

static enum sqltext_token_kind
sqltext_lexer_word(struct sqltext_lexer *lx, struct sqltext_token *tok, size_t start)
{
	size_t i = start;

	while (sqltext_is_word(sqltext_at(lx, i)))
		i++;
	return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_WORD, start, i);
}

/* The digits of an exponent after 'e' at i, optionally signed; returns the
 * end, or 0 when no digit follows. */
static size_t
sqltext_lexer_exponent(const struct sqltext_lexer *lx, size_t i)
{
	if (sqltext_at(lx, i) == '+' || sqltext_at(lx, i) == '-')
		i++;
	if (!sqltext_is_digit(sqltext_at(lx, i)))
		return 0;
	while (sqltext_is_digit(sqltext_at(lx, i)))
		i++;
	return i;
}

/* The fraction of a number from i (just past the '.'). MY_LEX_REAL: after
 * an 'e' with no digit the server hands the next byte to the parser as a
 * bare character ("select 1.5e(1)" is a syntax error); the firewall refuses
 * such text rather than guess how it splits. */
static enum sqltext_token_kind
sqltext_lexer_fraction(struct sqltext_lexer *lx, struct sqltext_token *tok, size_t start, size_t i)
{
	while (sqltext_is_digit(sqltext_at(lx, i)))
		i++;
	unsigned char c = sqltext_at(lx, i);
	if (c == 'e' || c == 'E') {
		size_t end = sqltext_lexer_exponent(lx, i + 1);
		if (end == 0) {
			end = i + 1;
			if (sqltext_at(lx, end) == '+' || sqltext_at(lx, end) == '-')
				end++;
			return sqltext_lexer_odd(lx, tok, start, end, "malformed number");
		}
		i = end;
	}
	return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_NUMBER, start, i);
}

/*
 * Numbers end where MY_LEX_NUMBER_IDENT ends them, which is not where a
 * name would: "1e5INTO", "1.5INTO", ".5INTO" and "1e+5INTO" are a number
 * then INTO (each of "SELECT 1e5INTO OUTFILE '/tmp/x'" and the others
 * writes the file), while "1INTO", "1ex" and "0x41INTO" are single names.
 */
static enum sqltext_token_kind
sqltext_lexer_number(struct sqltext_lexer *lx, struct sqltext_token *tok, size_t start)
{
	size_t i = start;

	if (sqltext_at(lx, i) == '.')
		return sqltext_lexer_fraction(lx, tok, start, i + 1);
	if (sqltext_at(lx, i) == '0' && (sqltext_at(lx, i + 1) == 'x' || sqltext_at(lx, i + 1) == 'b')) {
		bool hex = sqltext_at(lx, i + 1) == 'x';
		i += 2;
		while (hex ? sqltext_is_hex_digit(sqltext_at(lx, i))
			   : (sqltext_at(lx, i) == '0' || sqltext_at(lx, i) == '1'))
			i++;
		if (i - start >= 3 && !sqltext_is_word(sqltext_at(lx, i)))
			return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_NUMBER, start, i);
		return sqltext_lexer_word(lx, tok, start);
	}
	while (sqltext_is_digit(sqltext_at(lx, i)))
		i++;
	unsigned char c = sqltext_at(lx, i);
	if (sqltext_is_word(c)) {
		if (c == 'e' || c == 'E') {
			size_t end = sqltext_lexer_exponent(lx, i + 1);
			if (end != 0)
				return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_NUMBER, start, end);
		}
		return sqltext_lexer_word(lx, tok, start);
	}
	/* "1..10" is an integer then "..". */
	if (c != '.' || sqltext_at(lx, i + 1) == '.')
		return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_NUMBER, start, i);
	return sqltext_lexer_fraction(lx, tok, start, i + 1);
}

/* One token that starts at start (not whitespace or a comment). */
static enum sqltext_token_kind
sqltext_lexer_token(struct sqltext_lexer *lx, struct sqltext_token *tok, size_t start)
{
	unsigned char c = sqltext_at(lx, start), next = sqltext_at(lx, start + 1);

	if (c == '\'' || c == '"' || c == '`')
		return sqltext_lexer_quoted(lx, tok, start);
	if (c == '?')
		return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_PLACEHOLDER, start, start + 1);
	/* MY_LEX_ESCAPE: "\N" is NULL and ends there ("SELECT \NINTO OUTFILE
	 * '/tmp/x'" writes the file); any other backslash swallows the next
	 * byte and is a syntax error. */
	if (c == '\\') {
		if (next == 'N')
			return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_NULL_ESCAPE, start, start + 2);
		return sqltext_lexer_odd(lx, tok, start, start + 1 < lx->len ? start + 2 : start + 1,
					 "backslash outside a string");
	}
	if (sqltext_is_digit(c) || (c == '.' && sqltext_is_digit(next)))
		return sqltext_lexer_number(lx, tok, start);
	if (sqltext_is_word(c))
		return sqltext_lexer_word(lx, tok, start);
	if (c == '\0')
		return sqltext_lexer_odd(lx, tok, start, start + 1, "NUL byte outside a string");
	return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_PUNCT, start, start + 1);
}

/* The next token, skipping whitespace and comments. After END or ERROR it
 * keeps returning the same. */
static enum sqltext_token_kind
sqltext_lexer_next(struct sqltext_lexer *lx, struct sqltext_token *tok)
{
	for (;;) {
		size_t p = lx->pos;

		if (lx->error != NULL)
			return sqltext_lexer_fail(lx, tok, lx->error, lx->error_offset);
		if (p >= lx->len) {
			if (lx->in_executable)
				return sqltext_lexer_fail(lx, tok, "unterminated executable comment",
							  lx->executable_start);
			return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_END, lx->len, lx->len);
		}
		unsigned char c = sqltext_at(lx, p), next = sqltext_at(lx, p + 1);
		if (sqltext_is_space(c)) {
			lx->pos++;
		} else if (c == '#' || (c == '-' && next == '-' && sqltext_ends_dashes(sqltext_at(lx, p + 2)))) {
			/* MY_LEX_COMMENT stops at a newline or a NUL byte. */
			while (p < lx->len && lx->sql[p] != '\n' && lx->sql[p] != '\0')
				p++;
			lx->pos = p;
		} else if (c == '/' && next == '*') {
			if (!sqltext_lexer_slash_star(lx))
				continue;
		} else if (c == '*' && next == '/' && lx->in_executable) {
			/* Outside an executable comment "*\/" is two characters. */
			lx->in_executable = false;
			lx->pos = p + 2;
		} else {
			return sqltext_lexer_token(lx, tok, p);
		}
	}
}

static bool
sqltext_token_is(const char *sql, const struct sqltext_token *tok, char c)
{
	return tok->kind == SQLTEXT_TOKEN_PUNCT && sql[tok->start] == c;
}

static bool
sqltext_token_is_word(const char *sql, const struct sqltext_token *tok, const char *word)
{
	size_t n = strlen(word);

	return tok->kind == SQLTEXT_TOKEN_WORD && tok->end - tok->start == n &&
	       strncasecmp(sql + tok->start, word, n) == 0;
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

/* Visits one reading of the versioned comments (bit k of mask set: the
 * k-th one met is a comment) and reports how many it met. */
typedef bool sqltext_reading_fn(void *arg, uint32_t mask, unsigned *versioned_seen);

/* Visits each distinct reading, the all-code one (mask 0) first, until a
 * visit returns false. A mask that differs from its parent (its highest bit
 * cleared) only in a comment the parent's reading never met is the same
 * reading and is skipped, so text without versioned comments is read once. */
static bool
sqltext_each_reading(sqltext_reading_fn *visit, void *arg)
{
	unsigned seen[1u << SQLTEXT_VERSIONED_MAX];

	for (uint32_t mask = 0; mask < (1u << SQLTEXT_VERSIONED_MAX); mask++) {
		if (mask != 0) {
			unsigned high = 31u - (unsigned)__builtin_clz(mask);
			uint32_t parent = mask & ~(1u << high);
			if (high >= seen[parent]) {
				seen[mask] = seen[parent];
				continue;
			}
		}
		seen[mask] = 0;
		if (!visit(arg, mask, &seen[mask]))
			return false;
	}
	return true;
}

/*
 * Binding
 */

/* A bound value never touches a name, number, quote, '.', '!' or another
 * value, so it stays one token: "?'x'" bound to 'a' would otherwise read as
 * the single literal 'a''x', and "/\*!?" bound to 50000 as the version
 * marker "/\*!50000", which the server skips. */
static bool
sqltext_bind_needs_space(unsigned char c)
{
	return sqltext_is_word(c) || c == '\'' || c == '"' || c == '`' || c == '?' || c == '.' || c == '!';
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
sqltext_bind_value(struct buf *out, const json_t *value, size_t index,
		   sqltext_escape_fn *escape, void *escape_arg, char *why, size_t whysize)
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
			return sqltext_why(why, whysize, "param %zu could not be formatted (LC_NUMERIC is not C)",
					   index);
		sqltext_bind_number(out, text);
		return true;
	case JSON_STRING: {
		const char *s = json_string_value(value);
		size_t n = json_string_length(value);

		if (escape == NULL)
			return sqltext_why(why, whysize, "param %zu is a string but no escape function was given",
					   index);
		if (n > (SIZE_MAX - 4) / 2 || n > ULONG_MAX / 2)
			return sqltext_why(why, whysize, "param %zu is too long", index);
		buf_append_char(out, '\'');
		buf_reserve(out, 2 * n + 1);
		unsigned long written = escape(escape_arg, out->data + out->len, s, (unsigned long)n);
		if (written > 2 * n)
			return sqltext_why(why, whysize, "param %zu could not be escaped", index);
		out->len += written;
		out->data[out->len] = '\0';
		buf_append_char(out, '\'');
		return true;
	}
	case JSON_OBJECT:
	case JSON_ARRAY:
		break;
	}
	return sqltext_why(why, whysize, "param %zu %s; params must be null, boolean, number or string",
			   index, sqltext_bind_problem(value));
}

/* The next placeholder; false at the end or on an error. */
static bool
sqltext_next_placeholder(struct sqltext_lexer *lx, struct sqltext_token *tok)
{
	enum sqltext_token_kind kind;

	while ((kind = sqltext_lexer_next(lx, tok)) != SQLTEXT_TOKEN_END && kind != SQLTEXT_TOKEN_ERROR)
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
	bool more = sqltext_next_placeholder(&reading, &b);
	while (sqltext_next_placeholder(&code, &a)) {
		index++;
		while (more && b.start < a.start)
			more = sqltext_next_placeholder(&reading, &b);
		if (!more || b.start != a.start) {
			if (reading.error != NULL && reading.error_offset < a.start)
				return sqltext_why(r->why, r->whysize,
						   "placeholder %zu (offset %zu) follows text that not every server "
						   "reads the same way because of a versioned comment (%s at offset %zu)",
						   index, a.start, reading.error, reading.error_offset);
			return sqltext_why(r->why, r->whysize,
					   "placeholder %zu (offset %zu) is hidden by a versioned comment (/*!NNNNN "
					   "... */ at offset %zu) on servers that read it as a comment",
					   index, a.start, reading.ignored_any ? reading.ignored_offset : a.start);
		}
		more = sqltext_next_placeholder(&reading, &b);
	}
	while (more)
		more = sqltext_next_placeholder(&reading, &b);
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
		return sqltext_why(why, whysize, "params must be an array");
	sqltext_lexer_init(&lx, sql, len, 0, false);
	while ((kind = sqltext_lexer_next(&lx, &tok)) != SQLTEXT_TOKEN_END) {
		if (kind == SQLTEXT_TOKEN_ERROR)
			return sqltext_why(why, whysize, "%s at offset %zu", lx.error, lx.error_offset);
		if (kind == SQLTEXT_TOKEN_PLACEHOLDER)
			count++;
	}
	if (count != given)
		return sqltext_why(why, whysize, "statement has %zu placeholder%s but %zu param%s given",
				   count, count == 1 ? "" : "s", given, given == 1 ? "" : "s");
	for (size_t i = 0; i < given; i++) {
		const char *problem = sqltext_bind_problem(json_array_get(params, i));
		if (problem != NULL)
			return sqltext_why(why, whysize,
					   "param %zu %s; params must be null, boolean, number or string",
					   i + 1, problem);
	}
	if (count > 0 && lx.versioned_seen > 0) {
		struct sqltext_bind_reading reading = { sql, len, why, whysize };
		if (!sqltext_each_reading(sqltext_bind_reading, &reading))
			return false;
	}
	return true;
}

bool
sqltext_bind(const char *sql, size_t len, const json_t *params,
	     sqltext_escape_fn *escape, void *escape_arg,
	     struct buf *out, char *why, size_t whysize)
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
		if (out->len > original && sqltext_bind_needs_space((unsigned char)out->data[out->len - 1]))
			buf_append_char(out, ' ');
		if (!sqltext_bind_value(out, json_array_get(params, index), index + 1, escape, escape_arg,
					why, whysize)) {
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

/*
 * Statement firewall
 */

enum sqltext_rule_action {
	SQLTEXT_RULE_ALLOW,
	SQLTEXT_RULE_DENY,
	SQLTEXT_RULE_SET	/* allowed when every assignment is to a user variable */
};

struct sqltext_rule {
	const char *keyword;		/* first keyword */
	const char *second;		/* second keyword, or NULL for any */
	enum sqltext_rule_action action;
	bool query;			/* may also be parenthesised: (SELECT 1) */
	const char *reason;		/* why SQLTEXT_RULE_DENY */
};

#define SQLTEXT_IMPLICIT_COMMIT \
	"it commits the lease's transaction implicitly (MariaDB manual: SQL statements that cause an implicit commit)"

/*
 * First keyword → verdict; the first row that matches wins, so a row with a
 * second keyword goes before its catch-all. What is not here is refused
 * with the list of allowed keywords.
 */
static const struct sqltext_rule sqltext_rules[] = {
	{ "SELECT", NULL, SQLTEXT_RULE_ALLOW, true, NULL },
	{ "INSERT", NULL, SQLTEXT_RULE_ALLOW, false, NULL },
	{ "UPDATE", NULL, SQLTEXT_RULE_ALLOW, false, NULL },
	{ "DELETE", NULL, SQLTEXT_RULE_ALLOW, false, NULL },
	{ "REPLACE", NULL, SQLTEXT_RULE_ALLOW, false, NULL },
	{ "WITH", NULL, SQLTEXT_RULE_ALLOW, true, NULL },
	{ "VALUES", NULL, SQLTEXT_RULE_ALLOW, true, NULL },
	{ "TABLE", NULL, SQLTEXT_RULE_ALLOW, true, NULL },
	{ "DO", NULL, SQLTEXT_RULE_ALLOW, false, NULL },
	{ "SET", NULL, SQLTEXT_RULE_SET, false, NULL },

	/* The lease's lock and transaction. MariaDB manual, LOCK TABLES:
	 * starting a transaction or a new LOCK TABLES releases the locks held. */
	{ "LOCK", NULL, SQLTEXT_RULE_DENY, false,
	  "LOCK is not allowed: the lease already holds its table locks, and LOCK TABLES would release them" },
	{ "UNLOCK", NULL, SQLTEXT_RULE_DENY, false,
	  "UNLOCK is not allowed: it would release the lease's table locks; send commit or rollback" },
	{ "COMMIT", NULL, SQLTEXT_RULE_DENY, false,
	  "COMMIT is not allowed: send the commit op, which also releases the tables" },
	/* Savepoints stay inside the lease's transaction: SAVEPOINT, ROLLBACK
	 * TO [SAVEPOINT] and RELEASE SAVEPOINT end neither the transaction nor
	 * the table locks (MariaDB KB "SAVEPOINT"; seen on 10.11 under LOCK
	 * TABLES with autocommit=0: the locks hold, work from before the
	 * savepoint stays uncommitted, and an unknown savepoint is error 1305
	 * with the transaction intact). Django's atomic() nests this way. Only
	 * ROLLBACK followed by TO is a savepoint; every other ROLLBACK
	 * (WORK, AND CHAIN, RELEASE) ends the transaction. */
	{ "SAVEPOINT", NULL, SQLTEXT_RULE_ALLOW, false, NULL },
	{ "RELEASE", "SAVEPOINT", SQLTEXT_RULE_ALLOW, false, NULL },
	{ "ROLLBACK", "TO", SQLTEXT_RULE_ALLOW, false, NULL },
	{ "ROLLBACK", NULL, SQLTEXT_RULE_DENY, false,
	  "ROLLBACK is not allowed: send the rollback op, which also releases the tables "
	  "(ROLLBACK TO SAVEPOINT name is allowed)" },
	{ "BEGIN", NULL, SQLTEXT_RULE_DENY, false,
	  "BEGIN is not allowed: it commits the lease's transaction and releases its table locks" },
	{ "START", "TRANSACTION", SQLTEXT_RULE_DENY, false,
	  "START TRANSACTION is not allowed: it commits the lease's transaction and releases its table locks" },
	{ "START", NULL, SQLTEXT_RULE_DENY, false,
	  "START is not allowed: START SLAVE and the like control replication and " SQLTEXT_IMPLICIT_COMMIT },
	{ "STOP", NULL, SQLTEXT_RULE_DENY, false,
	  "STOP is not allowed: STOP SLAVE and the like control replication and " SQLTEXT_IMPLICIT_COMMIT },
	{ "RELEASE", NULL, SQLTEXT_RULE_DENY, false,
	  "RELEASE is not allowed: only RELEASE SAVEPOINT is" },
	{ "XA", NULL, SQLTEXT_RULE_DENY, false,
	  "XA is not allowed: the lease owns the transaction" },

	/* DDL and the rest of the manual's implicit-commit list. */
	{ "CREATE", "TEMPORARY", SQLTEXT_RULE_DENY, false,
	  "CREATE TEMPORARY TABLE is not allowed: only data statements run under a lease" },
	{ "DROP", "TEMPORARY", SQLTEXT_RULE_DENY, false,
	  "DROP TEMPORARY TABLE is not allowed: only data statements run under a lease" },
	{ "DROP", "PREPARE", SQLTEXT_RULE_DENY, false,
	  "DROP PREPARE is not allowed: prepared statements would run text the firewall never saw" },
	{ "ALTER", NULL, SQLTEXT_RULE_DENY, false, "ALTER is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "CREATE", NULL, SQLTEXT_RULE_DENY, false, "CREATE is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "DROP", NULL, SQLTEXT_RULE_DENY, false, "DROP is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "RENAME", NULL, SQLTEXT_RULE_DENY, false, "RENAME is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "TRUNCATE", NULL, SQLTEXT_RULE_DENY, false, "TRUNCATE is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "ANALYZE", NULL, SQLTEXT_RULE_DENY, false, "ANALYZE is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "CACHE", NULL, SQLTEXT_RULE_DENY, false, "CACHE INDEX is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "CHECK", NULL, SQLTEXT_RULE_DENY, false, "CHECK is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "OPTIMIZE", NULL, SQLTEXT_RULE_DENY, false, "OPTIMIZE is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "REPAIR", NULL, SQLTEXT_RULE_DENY, false, "REPAIR is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "GRANT", NULL, SQLTEXT_RULE_DENY, false, "GRANT is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "REVOKE", NULL, SQLTEXT_RULE_DENY, false, "REVOKE is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "FLUSH", NULL, SQLTEXT_RULE_DENY, false, "FLUSH is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "RESET", NULL, SQLTEXT_RULE_DENY, false, "RESET is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "CHANGE", NULL, SQLTEXT_RULE_DENY, false, "CHANGE MASTER is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "SHUTDOWN", NULL, SQLTEXT_RULE_DENY, false, "SHUTDOWN is not allowed: it stops the database server" },
	{ "INSTALL", NULL, SQLTEXT_RULE_DENY, false, "INSTALL is not allowed: it changes the server's plugins" },
	{ "UNINSTALL", NULL, SQLTEXT_RULE_DENY, false, "UNINSTALL is not allowed: it changes the server's plugins" },
	{ "PURGE", NULL, SQLTEXT_RULE_DENY, false, "PURGE is not allowed: it deletes the server's logs" },
	{ "LOAD", "INDEX", SQLTEXT_RULE_DENY, false, "LOAD INDEX is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "LOAD", NULL, SQLTEXT_RULE_DENY, false,
	  "LOAD DATA and LOAD XML are not allowed: they read files" },

	/* The session, other sessions, and statements the firewall cannot see into. */
	{ "KILL", NULL, SQLTEXT_RULE_DENY, false, "KILL is not allowed: it ends statements or sessions" },
	{ "HANDLER", NULL, SQLTEXT_RULE_DENY, false,
	  "HANDLER is not allowed: only data statements run under a lease" },
	{ "CALL", NULL, SQLTEXT_RULE_DENY, false,
	  "CALL is not allowed: a stored procedure could end the transaction or change the session" },
	{ "PREPARE", NULL, SQLTEXT_RULE_DENY, false,
	  "PREPARE is not allowed: prepared statements would run text the firewall never saw" },
	{ "EXECUTE", NULL, SQLTEXT_RULE_DENY, false,
	  "EXECUTE is not allowed: prepared statements would run text the firewall never saw" },
	{ "DEALLOCATE", NULL, SQLTEXT_RULE_DENY, false,
	  "DEALLOCATE is not allowed: prepared statements would run text the firewall never saw" },
	{ "USE", NULL, SQLTEXT_RULE_DENY, false,
	  "USE is not allowed: it changes the session's default database" },
	{ "BACKUP", NULL, SQLTEXT_RULE_DENY, false, "BACKUP is not allowed: it takes server-wide locks" },
	{ "BINLOG", NULL, SQLTEXT_RULE_DENY, false, "BINLOG is not allowed: it replays binary log events" },
};

/* Words that may follow SET and are not system variable names. */
struct sqltext_set_word {
	const char *word;
	const char *second;	/* second word, or NULL for any */
	bool scope;		/* GLOBAL, SESSION, …: a system variable follows */
	const char *reason;
};

static const struct sqltext_set_word sqltext_set_words[] = {
	{ "GLOBAL", NULL, true, NULL },
	{ "SESSION", NULL, true, NULL },
	{ "LOCAL", NULL, true, NULL },
	{ "PERSIST", NULL, true, NULL },
	{ "PERSIST_ONLY", NULL, true, NULL },
	{ "STATEMENT", NULL, false,
	  "SET STATEMENT ... FOR is not allowed: it sets system variables for the statement" },
	{ "NAMES", NULL, false,
	  "SET NAMES is not allowed: parameters are escaped for the session's character set" },
	{ "CHARACTER", "SET", false,
	  "SET CHARACTER SET is not allowed: parameters are escaped for the session's character set" },
	{ "CHARSET", NULL, false,
	  "SET CHARSET is not allowed: parameters are escaped for the session's character set" },
	{ "PASSWORD", NULL, false, "SET PASSWORD is not allowed: " SQLTEXT_IMPLICIT_COMMIT },
	{ "ROLE", NULL, false, "SET ROLE is not allowed: it changes the session's privileges" },
	{ "DEFAULT", "ROLE", false, "SET DEFAULT ROLE is not allowed: it changes account settings" },
	{ "TRANSACTION", NULL, false, "SET TRANSACTION is not allowed: the lease owns the transaction" },
};

#define SQLTEXT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The next token without consuming it. */
static enum sqltext_token_kind
sqltext_peek(const struct sqltext_lexer *lx, struct sqltext_token *tok)
{
	struct sqltext_lexer copy = *lx;

	return sqltext_lexer_next(&copy, tok);
}

static const struct sqltext_rule *
sqltext_rule_find(const struct sqltext_lexer *lx, const struct sqltext_token *first)
{
	struct sqltext_token second;

	sqltext_peek(lx, &second);
	for (size_t i = 0; i < SQLTEXT_ARRAY_SIZE(sqltext_rules); i++) {
		const struct sqltext_rule *rule = &sqltext_rules[i];
		if (!sqltext_token_is_word(lx->sql, first, rule->keyword))
			continue;
		if (rule->second == NULL || sqltext_token_is_word(lx->sql, &second, rule->second))
			return rule;
	}
	return NULL;
}

static bool
sqltext_firewall_unknown(const char *sql, const struct sqltext_token *tok, char *why, size_t whysize)
{
	char word[4 * SQLTEXT_QUOTE_MAX + 8], allowed[256] = "";
	size_t used = 0;

	sqltext_quote(word, sizeof word, sql + tok->start, tok->end - tok->start);
	for (size_t i = 0; i < SQLTEXT_ARRAY_SIZE(sqltext_rules); i++) {
		const struct sqltext_rule *rule = &sqltext_rules[i];
		if (rule->action == SQLTEXT_RULE_DENY || used >= sizeof allowed)
			continue;
		int n = snprintf(allowed + used, sizeof allowed - used, "%s%s%s%s%s", used > 0 ? ", " : "",
				 rule->keyword, rule->second != NULL ? " " : "",
				 rule->second != NULL ? rule->second : "",
				 rule->action == SQLTEXT_RULE_SET ? " @user_variable" : "");
		if (n > 0)
			used += (size_t)n;
	}
	return sqltext_why(why, whysize, "statement '%s' is not allowed; allowed: %s", word, allowed);
}

static bool
sqltext_is_name_part(enum sqltext_token_kind kind)
{
	return kind == SQLTEXT_TOKEN_WORD || kind == SQLTEXT_TOKEN_NUMBER || kind == SQLTEXT_TOKEN_QUOTED_NAME;
}

/* Reads a dotted name that starts with first (default.key_buffer_size,
 * session.autocommit, `x`) into name for a reason. */
static void
sqltext_set_name(struct sqltext_lexer *lx, const struct sqltext_token *first, char *name, size_t size)
{
	struct sqltext_token part = *first, dot, next;
	char text[4 * SQLTEXT_QUOTE_MAX + 8];

	name[0] = '\0';
	for (;;) {
		size_t start = part.start, end = part.end;
		if (part.kind == SQLTEXT_TOKEN_QUOTED_NAME && end - start >= 2) {
			start++;
			end--;
		}
		sqltext_quote(text, sizeof text, lx->sql + start, end - start);
		size_t used = strlen(name);
		snprintf(name + used, size - used, "%s%s", used > 0 ? "." : "", text);

		struct sqltext_lexer after = *lx;
		if (sqltext_lexer_next(&after, &dot) != SQLTEXT_TOKEN_PUNCT || !sqltext_token_is(lx->sql, &dot, '.') ||
		    dot.start != part.end)
			return;
		if (!sqltext_is_name_part(sqltext_lexer_next(&after, &next)) || next.start != dot.end)
			return;
		*lx = after;
		part = next;
	}
}

static bool
sqltext_firewall_system_variable(char *name, char *why, size_t whysize)
{
	if (name[0] == '\0')
		return sqltext_why(why, whysize, "SET of a system variable is not allowed; only user variables "
						 "(@name) may be set");
	return sqltext_why(why, whysize, "SET of system variable '%s' is not allowed; only user variables "
					 "(@name) may be set", name);
}

/* "@@autocommit", "@@session.autocommit", "@@GLOBAL.wait_timeout": the
 * name without its scope. */
static bool
sqltext_firewall_at_at(struct sqltext_lexer *lx, const struct sqltext_token *second_at,
		       char *why, size_t whysize)
{
	static const char *const scopes[] = { "global.", "session.", "local." };
	struct sqltext_token first;
	char name[4 * SQLTEXT_QUOTE_MAX + 8] = "";

	if (sqltext_is_name_part(sqltext_peek(lx, &first)) && first.start == second_at->end) {
		sqltext_lexer_next(lx, &first);
		sqltext_set_name(lx, &first, name, sizeof name);
	}
	for (size_t i = 0; i < SQLTEXT_ARRAY_SIZE(scopes); i++) {
		size_t n = strlen(scopes[i]);
		if (strncasecmp(name, scopes[i], n) == 0 && name[n] != '\0') {
			memmove(name, name + n, strlen(name + n) + 1);
			break;
		}
	}
	return sqltext_firewall_system_variable(name, why, whysize);
}

/* One SET target: only "@name" (or @`name`, @'name', @"name") followed by
 * = or := passes; every other target names what it would change. */
static bool
sqltext_firewall_set_target(struct sqltext_lexer *lx, const struct sqltext_token *tok,
			    char *why, size_t whysize)
{
	const char *sql = lx->sql;
	struct sqltext_token name, op, eq;
	char var[4 * SQLTEXT_QUOTE_MAX + 8];

	if (sqltext_token_is(sql, tok, '@')) {
		sqltext_lexer_next(lx, &name);
		if (sqltext_token_is(sql, &name, '@') && name.start == tok->end)
			return sqltext_firewall_at_at(lx, &name, why, whysize);
		/* The server reads "@ a" and "@/\* *\/a" as errors. */
		if (name.start != tok->end ||
		    !(sqltext_is_name_part(name.kind) || name.kind == SQLTEXT_TOKEN_STRING))
			return sqltext_why(why, whysize, "SET must name a user variable right after '@' (offset %zu)",
					   tok->start);
		/* MY_LEX_HOSTNAME: a bare user variable name runs on through
		 * letters, digits, '.', '_' and '$' ("@a.b$c", "@1e5x"). */
		struct sqltext_token last = name, more;
		while (name.kind != SQLTEXT_TOKEN_STRING && sqltext_peek(lx, &more) != SQLTEXT_TOKEN_END &&
		       more.start == last.end &&
		       (more.kind == SQLTEXT_TOKEN_WORD || more.kind == SQLTEXT_TOKEN_NUMBER ||
			sqltext_token_is(sql, &more, '.'))) {
			sqltext_lexer_next(lx, &last);
		}
		sqltext_lexer_next(lx, &op);
		if (sqltext_token_is(sql, &op, '='))
			return true;
		if (sqltext_token_is(sql, &op, ':') && sqltext_lexer_next(lx, &eq) == SQLTEXT_TOKEN_PUNCT &&
		    sqltext_token_is(sql, &eq, '=') && eq.start == op.end)
			return true;
		return sqltext_why(why, whysize, "SET of a user variable needs = or := (offset %zu)", tok->start);
	}
	if (tok->kind == SQLTEXT_TOKEN_WORD) {
		struct sqltext_token second;
		sqltext_peek(lx, &second);
		for (size_t i = 0; i < SQLTEXT_ARRAY_SIZE(sqltext_set_words); i++) {
			const struct sqltext_set_word *word = &sqltext_set_words[i];
			if (!sqltext_token_is_word(sql, tok, word->word) ||
			    (word->second != NULL && !sqltext_token_is_word(sql, &second, word->second)))
				continue;
			if (!word->scope)
				return sqltext_why(why, whysize, "%s", word->reason);
			struct sqltext_token next;
			if (sqltext_lexer_next(lx, &next) == SQLTEXT_TOKEN_WORD &&
			    sqltext_token_is_word(sql, &next, "TRANSACTION"))
				return sqltext_firewall_set_target(lx, &next, why, whysize);
			var[0] = '\0';
			if (sqltext_is_name_part(next.kind))
				sqltext_set_name(lx, &next, var, sizeof var);
			return sqltext_firewall_system_variable(var, why, whysize);
		}
	}
	if (sqltext_is_name_part(tok->kind)) {
		sqltext_set_name(lx, tok, var, sizeof var);
		return sqltext_firewall_system_variable(var, why, whysize);
	}
	if (tok->kind == SQLTEXT_TOKEN_END || sqltext_token_is(sql, tok, ';'))
		return sqltext_why(why, whysize, "SET without an assignment is not allowed");
	return sqltext_why(why, whysize, "SET must assign user variables (@name), not %s (offset %zu)",
			   sqltext_token_noun[tok->kind], tok->start);
}

/* Skips one assigned value: up to a comma outside parentheses (so CONCAT(1,2)
 * stays whole), or the end of the statement. */
static bool
sqltext_firewall_set_value(struct sqltext_lexer *lx, bool *more, char *why, size_t whysize)
{
	struct sqltext_token tok;
	size_t depth = 0;
	bool empty = true;

	for (;;) {
		enum sqltext_token_kind kind = sqltext_lexer_next(lx, &tok);
		if (kind == SQLTEXT_TOKEN_ERROR)
			return sqltext_why(why, whysize, "%s at offset %zu", lx->error, lx->error_offset);
		bool last = kind == SQLTEXT_TOKEN_END || sqltext_token_is(lx->sql, &tok, ';');
		if (last || (depth == 0 && sqltext_token_is(lx->sql, &tok, ','))) {
			if (empty)
				return sqltext_why(why, whysize, "SET assignment without a value (offset %zu)",
						   tok.start);
			if (depth > 0)
				return sqltext_why(why, whysize, "unbalanced '(' in SET");
			*more = !last;
			return true;
		}
		if (sqltext_token_is(lx->sql, &tok, '(')) {
			depth++;
		} else if (sqltext_token_is(lx->sql, &tok, ')')) {
			if (depth == 0)
				return sqltext_why(why, whysize, "unbalanced ')' in SET (offset %zu)", tok.start);
			depth--;
		}
		empty = false;
	}
}

/* SET passes only when every assignment in its list is to a user variable. */
static bool
sqltext_firewall_set(struct sqltext_lexer *lx, char *why, size_t whysize)
{
	struct sqltext_token tok;
	bool more = true;

	while (more) {
		sqltext_lexer_next(lx, &tok);
		if (!sqltext_firewall_set_target(lx, &tok, why, whysize))
			return false;
		if (!sqltext_firewall_set_value(lx, &more, why, whysize))
			return false;
	}
	return true;
}

/* The verdict on the first keyword (and, for SET, the whole list). An
 * empty statement is refused as written, but in another reading of the
 * versioned comments ("/\*!50000 SELECT 1 *\/" on an old server) it runs
 * nothing and may pass. */
static bool
sqltext_firewall_classify(const char *sql, size_t len, uint32_t ignore_mask, char *why, size_t whysize)
{
	struct sqltext_lexer lx;
	struct sqltext_token tok;
	size_t parens = 0;

	sqltext_lexer_init(&lx, sql, len, ignore_mask, true);
	sqltext_lexer_next(&lx, &tok);
	if (tok.kind == SQLTEXT_TOKEN_END || sqltext_token_is(sql, &tok, ';'))
		return ignore_mask != 0 || sqltext_why(why, whysize, "empty statement");
	while (sqltext_token_is(sql, &tok, '(')) {
		parens++;
		sqltext_lexer_next(&lx, &tok);
	}
	if (tok.kind != SQLTEXT_TOKEN_WORD) {
		if (tok.kind == SQLTEXT_TOKEN_PUNCT) {
			char c[8];
			sqltext_quote(c, sizeof c, sql + tok.start, 1);
			return sqltext_why(why, whysize, "a statement must start with a keyword, not '%s'", c);
		}
		return sqltext_why(why, whysize, "a statement must start with a keyword, not %s",
				   sqltext_token_noun[tok.kind]);
	}
	const struct sqltext_rule *rule = sqltext_rule_find(&lx, &tok);
	if (rule == NULL)
		return sqltext_firewall_unknown(sql, &tok, why, whysize);
	if (rule->action == SQLTEXT_RULE_DENY)
		return sqltext_why(why, whysize, "%s", rule->reason);
	if (parens > 0 && !rule->query)
		return sqltext_why(why, whysize, "only a query (SELECT, WITH, VALUES, TABLE) may start with '('");
	if (rule->action == SQLTEXT_RULE_SET)
		return sqltext_firewall_set(&lx, why, whysize);
	return true;
}

/* What one reading of the text found besides its first keyword. */
struct sqltext_scan {
	unsigned versioned_seen;
	bool ignored_any;
	size_t ignored_offset;
	bool semicolon;			/* the reading has a ';' ... */
	size_t semicolon_at;		/* ... here: where the statement ends */
};

/* One reading of the text (one choice of which versioned comments are
 * comments): lexical errors, then the first keyword, then a second
 * statement, a ';' inside an executable comment, file writes and odd text
 * anywhere. */
static bool
sqltext_firewall_once(const char *sql, size_t len, uint32_t ignore_mask, struct sqltext_scan *scan,
		      char *why, size_t whysize)
{
	struct sqltext_lexer lx;
	struct sqltext_token tok, prev = { .kind = SQLTEXT_TOKEN_END };
	enum sqltext_token_kind kind;
	bool after_semicolon = false, second = false, file = false, odd = false, semicolon_inside = false;
	size_t semicolon_at = 0, file_at = 0, odd_at = 0, semicolon_inside_at = 0, executable_at = 0;
	const char *odd_what = NULL;

	sqltext_lexer_init(&lx, sql, len, ignore_mask, true);
	while ((kind = sqltext_lexer_next(&lx, &tok)) != SQLTEXT_TOKEN_END && kind != SQLTEXT_TOKEN_ERROR) {
		if (after_semicolon)
			second = true;
		if (sqltext_token_is(sql, &tok, ';') && !after_semicolon) {
			after_semicolon = true;
			semicolon_at = tok.start;
		}
		/* The server ends the statement at a ';' inside an executable
		 * comment ("SELECT 1 /\*!;*\/" fails near '*\/'), and a
		 * versioned one decides per server whether there is a ';' at
		 * all: the daemon's cut (sqltext_statement_length) must be the
		 * same everywhere. */
		if (!semicolon_inside && lx.in_executable && sqltext_token_is(sql, &tok, ';')) {
			semicolon_inside = true;
			semicolon_inside_at = tok.start;
			executable_at = lx.executable_start;
		}
		/* OUTFILE is reserved and DUMPFILE only means a file after INTO;
		 * refusing either word anywhere does not depend on how what
		 * precedes it was split. */
		if (!file && (sqltext_token_is_word(sql, &tok, "OUTFILE") ||
			      (sqltext_token_is_word(sql, &tok, "DUMPFILE") &&
			       sqltext_token_is_word(sql, &prev, "INTO")))) {
			file = true;
			file_at = tok.start;
		}
		if (!odd && kind == SQLTEXT_TOKEN_ODD) {
			odd = true;
			odd_at = tok.start;
			odd_what = tok.odd;
		}
		prev = tok;
	}
	scan->versioned_seen = lx.versioned_seen;
	scan->ignored_any = lx.ignored_any;
	scan->ignored_offset = lx.ignored_offset;
	scan->semicolon = after_semicolon;
	scan->semicolon_at = semicolon_at;
	if (kind == SQLTEXT_TOKEN_ERROR)
		return sqltext_why(why, whysize, "%s at offset %zu", lx.error, lx.error_offset);
	if (!sqltext_firewall_classify(sql, len, ignore_mask, why, whysize))
		return false;
	if (second)
		return sqltext_why(why, whysize, "more than one statement: text follows the ';' at offset %zu",
				   semicolon_at);
	if (semicolon_inside)
		return sqltext_why(why, whysize, "';' inside an executable comment is not allowed (the ';' at offset "
						 "%zu, in the /*! ... */ at offset %zu): the server would end the "
						 "statement there", semicolon_inside_at, executable_at);
	/* "--" before the ';' is two minus signs here, but a comment once
	 * the daemon cuts the ';' off and adds "\n" (and for the server,
	 * which strips a trailing ';' before it lexes: "SELECT 1 --;"
	 * returns 1): the text would not be what the firewall read. */
	if (after_semicolon && semicolon_at >= 2 && sql[semicolon_at - 2] == '-' && sql[semicolon_at - 1] == '-')
		return sqltext_why(why, whysize, "'--' right before the ';' at offset %zu is not allowed: MariaDB "
						 "reads it as a comment or as two minus signs depending on what "
						 "follows", semicolon_at);
	if (file)
		return sqltext_why(why, whysize, "INTO OUTFILE and INTO DUMPFILE are not allowed: they write files "
						 "on the database server (offset %zu)", file_at);
	if (odd)
		return sqltext_why(why, whysize, "%s at offset %zu is not allowed", odd_what, odd_at);
	return true;
}

struct sqltext_firewall_reading {
	const char *sql;
	size_t len;
	char *why;
	size_t whysize;
	struct sqltext_scan code;	/* the all-code reading, visited first */
};

/* Where the statement ends in a reading, for a reason. */
static void
sqltext_firewall_end_text(const struct sqltext_scan *scan, char *text, size_t size)
{
	if (scan->semicolon)
		snprintf(text, size, "at the ';' at offset %zu", scan->semicolon_at);
	else
		snprintf(text, size, "at the end of the text");
}

static bool
sqltext_firewall_reading(void *arg, uint32_t mask, unsigned *versioned_seen)
{
	struct sqltext_firewall_reading *r = arg;
	struct sqltext_scan scan;
	char reason[512], code_end[64], end[64];

	if (!sqltext_firewall_once(r->sql, r->len, mask, &scan, reason, sizeof reason)) {
		if (mask == 0 || !scan.ignored_any)
			return sqltext_why(r->why, r->whysize, "%s", reason);
		return sqltext_why(r->why, r->whysize,
				   "%s (when the server ignores the versioned comment at offset %zu)",
				   reason, scan.ignored_offset);
	}
	*versioned_seen = scan.versioned_seen;
	if (mask == 0) {
		r->code = scan;
		return true;
	}
	/* "SELECT 1 /\*!99999 '*\/ ; -- ' *\/" is one statement where the
	 * comment runs and ends at the ';' where it does not. */
	if (scan.semicolon != r->code.semicolon || (scan.semicolon && scan.semicolon_at != r->code.semicolon_at)) {
		sqltext_firewall_end_text(&r->code, code_end, sizeof code_end);
		sqltext_firewall_end_text(&scan, end, sizeof end);
		return sqltext_why(r->why, r->whysize,
				   "the statement ends %s, but %s when the server ignores the versioned comment at "
				   "offset %zu: it must end at the same place on every server",
				   code_end, end, scan.ignored_offset);
	}
	return true;
}

enum sqltext_verdict
sqltext_firewall(const char *sql, size_t len, char *why, size_t whysize)
{
	struct sqltext_firewall_reading reading = { sql, len, why, whysize, { 0 } };

	if (sql == NULL) {
		reading.sql = "";
		reading.len = 0;
	}
	return sqltext_each_reading(sqltext_firewall_reading, &reading) ? SQLTEXT_ALLOW : SQLTEXT_DENY;
}

/*
 * Statement ends and session effects
 */

/* The all-code reading is enough: the firewall allows only text whose ';'
 * is at the same offset in every reading (sqltext_firewall_reading). */
size_t
sqltext_statement_length(const char *sql, size_t len)
{
	struct sqltext_lexer lx;
	struct sqltext_token tok;
	enum sqltext_token_kind kind;

	if (sql == NULL)
		return 0;
	sqltext_lexer_init(&lx, sql, len, 0, false);
	while ((kind = sqltext_lexer_next(&lx, &tok)) != SQLTEXT_TOKEN_END && kind != SQLTEXT_TOKEN_ERROR)
		if (sqltext_token_is(sql, &tok, ';'))
			return tok.start;
	return len;
}

/* A name that leaves session state behind, bare or in backticks. */
struct sqltext_effect_word {
	const char *word;
	const char *second;	/* a word that must follow, or NULL */
	unsigned effect;
};

/*
 * Each of these changes session state and leaves
 * SERVER_SESSION_STATE_CHANGED clear on MariaDB 10.11, except LASTVAL,
 * CURRVAL and PREVIOUS VALUE, which only read it and count to be safe.
 * The native functions are found by name whatever the quoting
 * ("SELECT `get_lock`('x', 0)" takes the lock); Oracle mode spells
 * sequences s.NEXTVAL and s.CURRVAL.
 */
static const struct sqltext_effect_word sqltext_effect_words[] = {
	{ "GET_LOCK", NULL, SQLTEXT_EFFECT_USER_LOCK },
	{ "RELEASE_LOCK", NULL, SQLTEXT_EFFECT_USER_LOCK },
	{ "RELEASE_ALL_LOCKS", NULL, SQLTEXT_EFFECT_USER_LOCK },
	{ "LAST_INSERT_ID", NULL, SQLTEXT_EFFECT_LAST_INSERT_ID },
	/* An INSERT that generates an AUTO_INCREMENT value sets
	 * LAST_INSERT_ID() too: the daemon sees that exactly, in the OK
	 * packet's insert id (lease.c), so INSERT is not flagged here. */
	{ "NEXTVAL", NULL, SQLTEXT_EFFECT_SEQUENCE },
	{ "LASTVAL", NULL, SQLTEXT_EFFECT_SEQUENCE },
	{ "SETVAL", NULL, SQLTEXT_EFFECT_SEQUENCE },
	{ "CURRVAL", NULL, SQLTEXT_EFFECT_SEQUENCE },
	{ "NEXT", "VALUE", SQLTEXT_EFFECT_SEQUENCE },
	{ "PREVIOUS", "VALUE", SQLTEXT_EFFECT_SEQUENCE },
};

/* tok is word, as a bare word or a `quoted name`, in any case. */
static bool
sqltext_effect_name_is(const char *sql, const struct sqltext_token *tok, const char *word)
{
	size_t n = strlen(word);

	if (tok->kind == SQLTEXT_TOKEN_QUOTED_NAME)
		return tok->end - tok->start == n + 2 && strncasecmp(sql + tok->start + 1, word, n) == 0;
	return sqltext_token_is_word(sql, tok, word);
}

struct sqltext_effect_reading {
	const char *sql;
	size_t len;
	unsigned effects;
};

/* One reading: '@' not part of "@@" starts a user variable (the server
 * reads "@ a" as an error, so any lone '@' counts), and each word of the
 * table counts wherever it stands. */
static bool
sqltext_effect_reading(void *arg, uint32_t mask, unsigned *versioned_seen)
{
	struct sqltext_effect_reading *r = arg;
	struct sqltext_lexer lx;
	struct sqltext_token tok, next;
	enum sqltext_token_kind kind;

	sqltext_lexer_init(&lx, r->sql, r->len, mask, true);
	while ((kind = sqltext_lexer_next(&lx, &tok)) != SQLTEXT_TOKEN_END && kind != SQLTEXT_TOKEN_ERROR) {
		if (sqltext_token_is(r->sql, &tok, '@')) {
			if (sqltext_peek(&lx, &next) == SQLTEXT_TOKEN_PUNCT && sqltext_token_is(r->sql, &next, '@') &&
			    next.start == tok.end)
				sqltext_lexer_next(&lx, &next);	/* @@system_variable: a read */
			else
				r->effects |= SQLTEXT_EFFECT_USER_VARIABLE;
			continue;
		}
		if (kind != SQLTEXT_TOKEN_WORD && kind != SQLTEXT_TOKEN_QUOTED_NAME)
			continue;
		sqltext_peek(&lx, &next);
		for (size_t i = 0; i < SQLTEXT_ARRAY_SIZE(sqltext_effect_words); i++) {
			const struct sqltext_effect_word *word = &sqltext_effect_words[i];
			if (sqltext_effect_name_is(r->sql, &tok, word->word) &&
			    (word->second == NULL || sqltext_effect_name_is(r->sql, &next, word->second)))
				r->effects |= word->effect;
		}
	}
	/* Unreadable text, or more versioned comments than the readings
	 * cover: assume the worst. */
	if (kind == SQLTEXT_TOKEN_ERROR)
		r->effects = SQLTEXT_EFFECT_ALL;
	*versioned_seen = lx.versioned_seen;
	return kind != SQLTEXT_TOKEN_ERROR;
}

unsigned
sqltext_session_effects(const char *sql, size_t len)
{
	struct sqltext_effect_reading reading = { sql, len, 0 };

	if (sql == NULL)
		return 0;
	sqltext_each_reading(sqltext_effect_reading, &reading);
	return reading.effects;
}
