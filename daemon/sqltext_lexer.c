/* SQL text: the MariaDB-faithful lexer, and the readings of versioned comments. */
#include "daemon/sqltext_private.h"

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

/* The reason for one versioned comment too many. (clang-format cannot lay
 * out literals joined around a stringified macro.) */
/* clang-format off */
#define SQLTEXT_LEXER_STRING_(x) #x
#define SQLTEXT_LEXER_STRING(x) SQLTEXT_LEXER_STRING_(x)
#define SQLTEXT_LEXER_TOO_MANY_VERSIONED \
	"more than " SQLTEXT_LEXER_STRING(SQLTEXT_VERSIONED_MAX) " versioned comments " \
	"(/*!NNNNN ... */), which run or not depending on the server version: the next one starts"
/* clang-format on */

static unsigned char sqltext_lexer_at(const struct sqltext_lexer *lx, size_t i);
static bool sqltext_lexer_is_space(unsigned char c);
static bool sqltext_lexer_is_digit(unsigned char c);
static bool sqltext_lexer_is_hex_digit(unsigned char c);
static bool sqltext_lexer_ends_dashes(unsigned char c);
static enum sqltext_token_kind sqltext_lexer_emit(struct sqltext_lexer *lx,
                                                  struct sqltext_token *tok,
                                                  enum sqltext_token_kind kind, size_t start,
                                                  size_t end);
static enum sqltext_token_kind sqltext_lexer_odd(struct sqltext_lexer *lx,
                                                 struct sqltext_token *tok, size_t start,
                                                 size_t end, const char *what);
static enum sqltext_token_kind sqltext_lexer_fail(struct sqltext_lexer *lx,
                                                  struct sqltext_token *tok, const char *error,
                                                  size_t offset);
static bool sqltext_lexer_skip_ignored(struct sqltext_lexer *lx, size_t start, size_t from);
static bool sqltext_lexer_slash_star(struct sqltext_lexer *lx);
static enum sqltext_token_kind sqltext_lexer_quoted(struct sqltext_lexer *lx,
                                                    struct sqltext_token *tok, size_t start);
static enum sqltext_token_kind sqltext_lexer_word(struct sqltext_lexer *lx,
                                                  struct sqltext_token *tok, size_t start);
static size_t sqltext_lexer_exponent(const struct sqltext_lexer *lx, size_t i);
static enum sqltext_token_kind
sqltext_lexer_fraction(struct sqltext_lexer *lx, struct sqltext_token *tok, size_t start, size_t i);
static enum sqltext_token_kind sqltext_lexer_number(struct sqltext_lexer *lx,
                                                    struct sqltext_token *tok, size_t start);
static enum sqltext_token_kind sqltext_lexer_token(struct sqltext_lexer *lx,
                                                   struct sqltext_token *tok, size_t start);

/* The byte at i, or NUL past the end: the server's query buffer is
 * NUL-terminated and its lexer peeks the same way. */
static unsigned char
sqltext_lexer_at(const struct sqltext_lexer *lx, size_t i)
{
	return i < lx->len ? (unsigned char)lx->sql[i] : '\0';
}

/* my_isspace(): the bytes MariaDB skips between tokens. */
static bool
sqltext_lexer_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool
sqltext_lexer_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
sqltext_lexer_is_hex_digit(unsigned char c)
{
	return sqltext_lexer_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ident_map[]: bytes that continue a bare name; every byte of a UTF-8
 * multibyte character counts. */
bool
sqltext_lexer_is_name_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || sqltext_lexer_is_digit(c) ||
	       c == '_' || c == '$' || c >= 0x80;
}

/* "--" starts a comment only before a space or control byte (my_isspace or
 * my_iscntrl) or the end: MariaDB manual, "Comment Syntax". "--1" is
 * minus minus one. */
static bool
sqltext_lexer_ends_dashes(unsigned char c)
{
	return c <= 0x20 || c == 0x7f;
}

void
sqltext_lexer_init(struct sqltext_lexer *lx, const char *sql, size_t len, uint32_t ignore_mask,
                   bool limit_versioned)
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
sqltext_lexer_odd(struct sqltext_lexer *lx, struct sqltext_token *tok, size_t start, size_t end,
                  const char *what)
{
	sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_ODD, start, end);
	tok->odd = what;
	return SQLTEXT_TOKEN_ODD;
}

static enum sqltext_token_kind
sqltext_lexer_fail(struct sqltext_lexer *lx, struct sqltext_token *tok, const char *error,
                   size_t offset)
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
		unsigned char c = sqltext_lexer_at(lx, i), next = sqltext_lexer_at(lx, i + 1);

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

	if (sqltext_lexer_at(lx, p) == '!')
		marker = 1;
	else if (sqltext_lexer_at(lx, p) == 'M' && sqltext_lexer_at(lx, p + 1) == '!')
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
	while (digits < 6 && sqltext_lexer_is_digit(sqltext_lexer_at(lx, p + digits)))
		digits++;
	if (digits < 5)
		digits = 0;
	if (digits > 0) {
		unsigned k = lx->versioned_seen++;
		if (lx->limit_versioned && k >= SQLTEXT_VERSIONED_MAX) {
			lx->error = SQLTEXT_LEXER_TOO_MANY_VERSIONED;
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
			return sqltext_lexer_emit(
			    lx, tok, name ? SQLTEXT_TOKEN_QUOTED_NAME : SQLTEXT_TOKEN_STRING, start,
			    i + 1);
		} else {
			i++;
		}
	}
	return sqltext_lexer_fail(lx, tok,
	                          name ? "unterminated quoted name" : "unterminated string", start);
}

static enum sqltext_token_kind
sqltext_lexer_word(struct sqltext_lexer *lx, struct sqltext_token *tok, size_t start)
{
	size_t i = start;

	while (sqltext_lexer_is_name_byte(sqltext_lexer_at(lx, i)))
		i++;
	return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_WORD, start, i);
}

/* The digits of an exponent after 'e' at i, optionally signed; returns the
 * end, or 0 when no digit follows. */
static size_t
sqltext_lexer_exponent(const struct sqltext_lexer *lx, size_t i)
{
	if (sqltext_lexer_at(lx, i) == '+' || sqltext_lexer_at(lx, i) == '-')
		i++;
	if (!sqltext_lexer_is_digit(sqltext_lexer_at(lx, i)))
		return 0;
	while (sqltext_lexer_is_digit(sqltext_lexer_at(lx, i)))
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
	while (sqltext_lexer_is_digit(sqltext_lexer_at(lx, i)))
		i++;
	unsigned char c = sqltext_lexer_at(lx, i);
	if (c == 'e' || c == 'E') {
		size_t end = sqltext_lexer_exponent(lx, i + 1);
		if (end == 0) {
			end = i + 1;
			if (sqltext_lexer_at(lx, end) == '+' || sqltext_lexer_at(lx, end) == '-')
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

	if (sqltext_lexer_at(lx, i) == '.')
		return sqltext_lexer_fraction(lx, tok, start, i + 1);
	if (sqltext_lexer_at(lx, i) == '0' &&
	    (sqltext_lexer_at(lx, i + 1) == 'x' || sqltext_lexer_at(lx, i + 1) == 'b')) {
		bool hex = sqltext_lexer_at(lx, i + 1) == 'x';
		i += 2;
		while (hex ? sqltext_lexer_is_hex_digit(sqltext_lexer_at(lx, i))
		           : (sqltext_lexer_at(lx, i) == '0' || sqltext_lexer_at(lx, i) == '1'))
			i++;
		if (i - start >= 3 && !sqltext_lexer_is_name_byte(sqltext_lexer_at(lx, i)))
			return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_NUMBER, start, i);
		return sqltext_lexer_word(lx, tok, start);
	}
	while (sqltext_lexer_is_digit(sqltext_lexer_at(lx, i)))
		i++;
	unsigned char c = sqltext_lexer_at(lx, i);
	if (sqltext_lexer_is_name_byte(c)) {
		if (c == 'e' || c == 'E') {
			size_t end = sqltext_lexer_exponent(lx, i + 1);
			if (end != 0)
				return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_NUMBER, start,
				                          end);
		}
		return sqltext_lexer_word(lx, tok, start);
	}
	/* "1..10" is an integer then "..". */
	if (c != '.' || sqltext_lexer_at(lx, i + 1) == '.')
		return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_NUMBER, start, i);
	return sqltext_lexer_fraction(lx, tok, start, i + 1);
}

/* One token that starts at start (not whitespace or a comment). */
static enum sqltext_token_kind
sqltext_lexer_token(struct sqltext_lexer *lx, struct sqltext_token *tok, size_t start)
{
	unsigned char c = sqltext_lexer_at(lx, start), next = sqltext_lexer_at(lx, start + 1);

	if (c == '\'' || c == '"' || c == '`')
		return sqltext_lexer_quoted(lx, tok, start);
	if (c == '?')
		return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_PLACEHOLDER, start, start + 1);
	/* MY_LEX_ESCAPE: "\N" is NULL and ends there ("SELECT \NINTO OUTFILE
	 * '/tmp/x'" writes the file); any other backslash swallows the next
	 * byte and is a syntax error. */
	if (c == '\\') {
		if (next == 'N')
			return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_NULL_ESCAPE, start,
			                          start + 2);
		return sqltext_lexer_odd(lx, tok, start,
		                         start + 1 < lx->len ? start + 2 : start + 1,
		                         "backslash outside a string");
	}
	if (sqltext_lexer_is_digit(c) || (c == '.' && sqltext_lexer_is_digit(next)))
		return sqltext_lexer_number(lx, tok, start);
	if (sqltext_lexer_is_name_byte(c))
		return sqltext_lexer_word(lx, tok, start);
	if (c == '\0')
		return sqltext_lexer_odd(lx, tok, start, start + 1, "NUL byte outside a string");
	return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_PUNCT, start, start + 1);
}

enum sqltext_token_kind
sqltext_lexer_next(struct sqltext_lexer *lx, struct sqltext_token *tok)
{
	for (;;) {
		size_t p = lx->pos;

		if (lx->error != NULL)
			return sqltext_lexer_fail(lx, tok, lx->error, lx->error_offset);
		if (p >= lx->len) {
			if (lx->in_executable)
				return sqltext_lexer_fail(lx, tok,
				                          "unterminated executable comment",
				                          lx->executable_start);
			return sqltext_lexer_emit(lx, tok, SQLTEXT_TOKEN_END, lx->len, lx->len);
		}
		unsigned char c = sqltext_lexer_at(lx, p), next = sqltext_lexer_at(lx, p + 1);
		if (sqltext_lexer_is_space(c)) {
			lx->pos++;
		} else if (c == '#' || (c == '-' && next == '-' &&
		                        sqltext_lexer_ends_dashes(sqltext_lexer_at(lx, p + 2)))) {
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

bool
sqltext_lexer_is_punct(const char *sql, const struct sqltext_token *tok, char c)
{
	return tok->kind == SQLTEXT_TOKEN_PUNCT && sql[tok->start] == c;
}

bool
sqltext_lexer_is_keyword(const char *sql, const struct sqltext_token *tok, const char *word)
{
	size_t n = strlen(word);

	return tok->kind == SQLTEXT_TOKEN_WORD && tok->end - tok->start == n &&
	       strncasecmp(sql + tok->start, word, n) == 0;
}

/* Visits each distinct reading, the all-code one (mask 0) first, until a
 * visit returns false. A mask that differs from its parent (its highest bit
 * cleared) only in a comment the parent's reading never met is the same
 * reading and is skipped, so text without versioned comments is read once. */
bool
sqltext_lexer_each_reading(sqltext_lexer_reading_fn *visit, void *arg)
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

enum sqltext_token_kind
sqltext_lexer_peek(const struct sqltext_lexer *lx, struct sqltext_token *tok)
{
	struct sqltext_lexer copy = *lx;

	return sqltext_lexer_next(&copy, tok);
}
