/* SQL text: what the lexer, binder, firewall and effect scan share (not for other modules). */
#ifndef TABLELOCK_SQLTEXT_PRIVATE_H
#define TABLELOCK_SQLTEXT_PRIVATE_H

/*
 * daemon/sqltext.h is the module's interface; its functions keep the
 * module's prefix (sqltext_bind, sqltext_firewall, …). Everything else is
 * named for its file: sqltext_lexer_* (sqltext_lexer.c, the tokens and the
 * readings of versioned comments), sqltext_reason* (sqltext_reason.c),
 * sqltext_bind_* (sqltext_bind.c), sqltext_firewall_* (sqltext_firewall.c),
 * sqltext_effect_* (sqltext_effect.c) and sqltext_lock_* (sqltext_lock.c).
 * Pure: no I/O anywhere.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sqltext_token_kind {
	SQLTEXT_TOKEN_END,         /* end of text */
	SQLTEXT_TOKEN_ERROR,       /* unterminated string, name or comment */
	SQLTEXT_TOKEN_WORD,        /* keyword or bare name (may start with digits) */
	SQLTEXT_TOKEN_NUMBER,      /* 12, 1.5, .5, 1e5, 0x1F, 0b101 */
	SQLTEXT_TOKEN_STRING,      /* '...' or "..." */
	SQLTEXT_TOKEN_QUOTED_NAME, /* `...` */
	SQLTEXT_TOKEN_PLACEHOLDER, /* ? */
	SQLTEXT_TOKEN_NULL_ESCAPE, /* \N, MariaDB's shorthand for NULL */
	SQLTEXT_TOKEN_ODD,         /* text the server rejects or reads oddly */
	SQLTEXT_TOKEN_PUNCT        /* any other single byte */
};

struct sqltext_token {
	enum sqltext_token_kind kind;
	size_t start;
	size_t end;
	const char *odd; /* SQLTEXT_TOKEN_ODD: what is wrong with it */
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

/* A lexer over one reading of the text; a copy of it is a bookmark. */
struct sqltext_lexer {
	const char *sql;
	size_t len;
	size_t pos;
	bool in_executable; /* between an executable comment's opener and its close */
	size_t executable_start;
	uint32_t ignore_mask;
	bool limit_versioned; /* refuse past SQLTEXT_VERSIONED_MAX */
	unsigned versioned_seen;
	bool ignored_any;
	size_t ignored_offset; /* the first versioned comment read as a comment */
	const char *error;     /* "unterminated string", … ; sticky */
	size_t error_offset;
};

#define SQLTEXT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* sqltext_lexer.c */

/* Starts lexing sql[0..len) (NULL: empty) in the reading ignore_mask; with
 * limit_versioned, more than SQLTEXT_VERSIONED_MAX versioned comments is a
 * lexical error. */
void sqltext_lexer_init(struct sqltext_lexer *lx, const char *sql, size_t len, uint32_t ignore_mask,
                        bool limit_versioned);

/* The next token, skipping whitespace and comments. After END or ERROR it
 * keeps returning the same; on ERROR, lx->error and lx->error_offset say
 * what and where. */
enum sqltext_token_kind sqltext_lexer_next(struct sqltext_lexer *lx, struct sqltext_token *tok);

/* The next token without consuming it. */
enum sqltext_token_kind sqltext_lexer_peek(const struct sqltext_lexer *lx,
                                           struct sqltext_token *tok);

/* tok is the punctuation byte c. */
bool sqltext_lexer_is_punct(const char *sql, const struct sqltext_token *tok, char c);

/* tok is the bare word word (upper case), in any case. */
bool sqltext_lexer_is_keyword(const char *sql, const struct sqltext_token *tok, const char *word);

/* c continues a bare name (MariaDB's ident_map[]; every byte of a UTF-8
 * multibyte character counts). */
bool sqltext_lexer_is_name_byte(unsigned char c);

/* Visits one reading of the versioned comments (bit k of mask set: the
 * k-th one met is a comment) and reports how many it met. */
typedef bool sqltext_lexer_reading_fn(void *arg, uint32_t mask, unsigned *versioned_seen);

/* Visits each distinct reading, the all-code one (mask 0) first, until a
 * visit returns false; returns whether none did. */
bool sqltext_lexer_each_reading(sqltext_lexer_reading_fn *visit, void *arg);

/* sqltext_reason.c */

/* Longest piece of client text quoted in a reason. */
#define SQLTEXT_REASON_QUOTE_MAX 64

/* Writes a reason into why (when why is not NULL and whysize > 0) and
 * returns false, so a refusal is one line: return sqltext_reason(…). The
 * format must add only ASCII: the reason goes into JSON. */
bool sqltext_reason(char *why, size_t whysize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies client text for a reason: printable ASCII as is, any other byte
 * as \xNN, at most SQLTEXT_REASON_QUOTE_MAX bytes then "...", so the
 * reason is valid UTF-8 whatever the client sent. */
void sqltext_reason_quote(char *dst, size_t size, const char *src, size_t len);

#endif
