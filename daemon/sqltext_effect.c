/* SQL text: the session state a statement may leave behind unreported. */
#include "daemon/sqltext.h"
#include "daemon/sqltext_private.h"

#include <string.h>
#include <strings.h>

static bool sqltext_effect_name_is(const char *sql, const struct sqltext_token *tok,
                                   const char *word);
static bool sqltext_effect_reading(void *arg, uint32_t mask, unsigned *versioned_seen);

/* A name that leaves session state behind, bare or in backticks. */
struct sqltext_effect_word {
	const char *word;
	const char *second; /* a word that must follow, or NULL */
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
    {"GET_LOCK", NULL, SQLTEXT_EFFECT_USER_LOCK},
    {"RELEASE_LOCK", NULL, SQLTEXT_EFFECT_USER_LOCK},
    {"RELEASE_ALL_LOCKS", NULL, SQLTEXT_EFFECT_USER_LOCK},
    {"LAST_INSERT_ID", NULL, SQLTEXT_EFFECT_LAST_INSERT_ID},
    /* An INSERT that generates an AUTO_INCREMENT value sets
     * LAST_INSERT_ID() too: the daemon sees that exactly, in the OK
     * packet's insert id (lease.c), so INSERT is not flagged here. */
    {"NEXTVAL", NULL, SQLTEXT_EFFECT_SEQUENCE},
    {"LASTVAL", NULL, SQLTEXT_EFFECT_SEQUENCE},
    {"SETVAL", NULL, SQLTEXT_EFFECT_SEQUENCE},
    {"CURRVAL", NULL, SQLTEXT_EFFECT_SEQUENCE},
    {"NEXT", "VALUE", SQLTEXT_EFFECT_SEQUENCE},
    {"PREVIOUS", "VALUE", SQLTEXT_EFFECT_SEQUENCE},
};

/* tok is word, as a bare word or a `quoted name`, in any case. */
static bool
sqltext_effect_name_is(const char *sql, const struct sqltext_token *tok, const char *word)
{
	size_t n = strlen(word);

	if (tok->kind == SQLTEXT_TOKEN_QUOTED_NAME)
		return tok->end - tok->start == n + 2 &&
		       strncasecmp(sql + tok->start + 1, word, n) == 0;
	return sqltext_lexer_is_keyword(sql, tok, word);
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
	while ((kind = sqltext_lexer_next(&lx, &tok)) != SQLTEXT_TOKEN_END &&
	       kind != SQLTEXT_TOKEN_ERROR) {
		if (sqltext_lexer_is_punct(r->sql, &tok, '@')) {
			if (sqltext_lexer_peek(&lx, &next) == SQLTEXT_TOKEN_PUNCT &&
			    sqltext_lexer_is_punct(r->sql, &next, '@') && next.start == tok.end)
				sqltext_lexer_next(&lx, &next); /* @@system_variable: a read */
			else
				r->effects |= SQLTEXT_EFFECT_USER_VARIABLE;
			continue;
		}
		if (kind != SQLTEXT_TOKEN_WORD && kind != SQLTEXT_TOKEN_QUOTED_NAME)
			continue;
		sqltext_lexer_peek(&lx, &next);
		for (size_t i = 0; i < SQLTEXT_ARRAY_SIZE(sqltext_effect_words); i++) {
			const struct sqltext_effect_word *word = &sqltext_effect_words[i];
			if (sqltext_effect_name_is(r->sql, &tok, word->word) &&
			    (word->second == NULL ||
			     sqltext_effect_name_is(r->sql, &next, word->second)))
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
	struct sqltext_effect_reading reading = {sql, len, 0};

	if (sql == NULL)
		return 0;
	sqltext_lexer_each_reading(sqltext_effect_reading, &reading);
	return reading.effects;
}
