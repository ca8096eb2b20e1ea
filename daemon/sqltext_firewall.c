/* SQL text: the statement firewall, and how an allowed statement starts and ends. */
#include "daemon/sqltext.h"
#include "daemon/sqltext_private.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

struct sqltext_scan;

static const struct sqltext_rule *sqltext_firewall_rule_find(const struct sqltext_lexer *lx,
                                                             const struct sqltext_token *first);
static bool sqltext_firewall_unknown(const char *sql, const struct sqltext_token *tok, char *why,
                                     size_t whysize);
static bool sqltext_firewall_is_name_part(enum sqltext_token_kind kind);
static void sqltext_firewall_set_name(struct sqltext_lexer *lx, const struct sqltext_token *first,
                                      char *name, size_t size);
static bool sqltext_firewall_system_variable(char *name, char *why, size_t whysize);
static bool sqltext_firewall_at_at(struct sqltext_lexer *lx, const struct sqltext_token *second_at,
                                   char *why, size_t whysize);
static bool sqltext_firewall_set_target(struct sqltext_lexer *lx, const struct sqltext_token *tok,
                                        char *why, size_t whysize);
static bool sqltext_firewall_set_value(struct sqltext_lexer *lx, bool *more, char *why,
                                       size_t whysize);
static bool sqltext_firewall_set(struct sqltext_lexer *lx, char *why, size_t whysize);
static bool sqltext_firewall_classify(const char *sql, size_t len, uint32_t ignore_mask, char *why,
                                      size_t whysize);
static bool sqltext_firewall_once(const char *sql, size_t len, uint32_t ignore_mask,
                                  struct sqltext_scan *scan, char *why, size_t whysize);
static void sqltext_firewall_end_text(const struct sqltext_scan *scan, char *text, size_t size);
static bool sqltext_firewall_reading(void *arg, uint32_t mask, unsigned *versioned_seen);
static bool sqltext_firewall_is_quiet(const struct sqltext_lexer *lx,
                                      const struct sqltext_token *first);
static bool sqltext_firewall_start_reading(void *arg, uint32_t mask, unsigned *versioned_seen);

/* How the firewall names a token that cannot start a statement. */
static const char *const sqltext_firewall_noun[] = {
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

enum sqltext_rule_action {
	SQLTEXT_RULE_ALLOW,
	SQLTEXT_RULE_DENY,
	SQLTEXT_RULE_SET /* allowed when every assignment is to a user variable */
};

struct sqltext_rule {
	const char *keyword; /* first keyword */
	const char *second;  /* second keyword, or NULL for any */
	enum sqltext_rule_action action;
	bool query;         /* returns rows, and may be parenthesised: (SELECT 1) */
	const char *reason; /* why SQLTEXT_RULE_DENY */
};

#define SQLTEXT_IMPLICIT_COMMIT                                                                    \
	"it commits the lease's transaction implicitly (MariaDB manual: SQL statements that "      \
	"cause an implicit commit)"

/*
 * First keyword → verdict; the first row that matches wins, so a row with a
 * second keyword goes before its catch-all. What is not here is refused
 * with the list of allowed keywords.
 */
static const struct sqltext_rule sqltext_rules[] = {
    {"SELECT", NULL, SQLTEXT_RULE_ALLOW, true, NULL},
    {"INSERT", NULL, SQLTEXT_RULE_ALLOW, false, NULL},
    {"UPDATE", NULL, SQLTEXT_RULE_ALLOW, false, NULL},
    {"DELETE", NULL, SQLTEXT_RULE_ALLOW, false, NULL},
    {"REPLACE", NULL, SQLTEXT_RULE_ALLOW, false, NULL},
    {"WITH", NULL, SQLTEXT_RULE_ALLOW, true, NULL},
    {"VALUES", NULL, SQLTEXT_RULE_ALLOW, true, NULL},
    {"TABLE", NULL, SQLTEXT_RULE_ALLOW, true, NULL},
    {"DO", NULL, SQLTEXT_RULE_ALLOW, false, NULL},
    {"SET", NULL, SQLTEXT_RULE_SET, false, NULL},

    /* The lease's lock and transaction. MariaDB manual, LOCK TABLES:
     * starting a transaction or a new LOCK TABLES releases the locks held. */
    {"LOCK", NULL, SQLTEXT_RULE_DENY, false,
     "LOCK is not allowed: the lease already holds its table locks, and LOCK TABLES would release "
     "them"},
    {"UNLOCK", NULL, SQLTEXT_RULE_DENY, false,
     "UNLOCK is not allowed: it would release the lease's table locks; send commit or rollback"},
    {"COMMIT", NULL, SQLTEXT_RULE_DENY, false,
     "COMMIT is not allowed: send the commit op, which also releases the tables"},
    /* Savepoints stay inside the lease's transaction: SAVEPOINT, ROLLBACK
     * TO [SAVEPOINT] and RELEASE SAVEPOINT end neither the transaction nor
     * the table locks (MariaDB KB "SAVEPOINT"; seen on 10.11 under LOCK
     * TABLES with autocommit=0: the locks hold, work from before the
     * savepoint stays uncommitted, and an unknown savepoint is error 1305
     * with the transaction intact). Django's atomic() nests this way. Only
     * ROLLBACK followed by TO is a savepoint; every other ROLLBACK (WORK,
     * AND CHAIN, RELEASE) ends the transaction. */
    {"SAVEPOINT", NULL, SQLTEXT_RULE_ALLOW, false, NULL},
    {"RELEASE", "SAVEPOINT", SQLTEXT_RULE_ALLOW, false, NULL},
    {"ROLLBACK", "TO", SQLTEXT_RULE_ALLOW, false, NULL},
    {"ROLLBACK", NULL, SQLTEXT_RULE_DENY, false,
     "ROLLBACK is not allowed: send the rollback op, which also releases the tables "
     "(ROLLBACK TO SAVEPOINT name is allowed)"},
    {"BEGIN", NULL, SQLTEXT_RULE_DENY, false,
     "BEGIN is not allowed: it commits the lease's transaction and releases its table locks"},
    {"START", "TRANSACTION", SQLTEXT_RULE_DENY, false,
     "START TRANSACTION is not allowed: it commits the lease's transaction and releases its table "
     "locks"},
    {"START", NULL, SQLTEXT_RULE_DENY, false,
     "START is not allowed: START SLAVE and the like control replication "
     "and " SQLTEXT_IMPLICIT_COMMIT},
    {"STOP", NULL, SQLTEXT_RULE_DENY, false,
     "STOP is not allowed: STOP SLAVE and the like control replication "
     "and " SQLTEXT_IMPLICIT_COMMIT},
    {"RELEASE", NULL, SQLTEXT_RULE_DENY, false, "RELEASE is not allowed: only RELEASE SAVEPOINT is"},
    {"XA", NULL, SQLTEXT_RULE_DENY, false, "XA is not allowed: the lease owns the transaction"},

    /* DDL and the rest of the manual's implicit-commit list. */
    {"CREATE", "TEMPORARY", SQLTEXT_RULE_DENY, false,
     "CREATE TEMPORARY TABLE is not allowed: only data statements run under a lease"},
    {"DROP", "TEMPORARY", SQLTEXT_RULE_DENY, false,
     "DROP TEMPORARY TABLE is not allowed: only data statements run under a lease"},
    {"DROP", "PREPARE", SQLTEXT_RULE_DENY, false,
     "DROP PREPARE is not allowed: prepared statements would run text the firewall never saw"},
    {"ALTER", NULL, SQLTEXT_RULE_DENY, false, "ALTER is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"CREATE", NULL, SQLTEXT_RULE_DENY, false, "CREATE is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"DROP", NULL, SQLTEXT_RULE_DENY, false, "DROP is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"RENAME", NULL, SQLTEXT_RULE_DENY, false, "RENAME is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"TRUNCATE", NULL, SQLTEXT_RULE_DENY, false,
     "TRUNCATE is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"ANALYZE", NULL, SQLTEXT_RULE_DENY, false, "ANALYZE is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"CACHE", NULL, SQLTEXT_RULE_DENY, false,
     "CACHE INDEX is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"CHECK", NULL, SQLTEXT_RULE_DENY, false, "CHECK is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"OPTIMIZE", NULL, SQLTEXT_RULE_DENY, false,
     "OPTIMIZE is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"REPAIR", NULL, SQLTEXT_RULE_DENY, false, "REPAIR is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"GRANT", NULL, SQLTEXT_RULE_DENY, false, "GRANT is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"REVOKE", NULL, SQLTEXT_RULE_DENY, false, "REVOKE is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"FLUSH", NULL, SQLTEXT_RULE_DENY, false, "FLUSH is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"RESET", NULL, SQLTEXT_RULE_DENY, false, "RESET is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"CHANGE", NULL, SQLTEXT_RULE_DENY, false,
     "CHANGE MASTER is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"SHUTDOWN", NULL, SQLTEXT_RULE_DENY, false,
     "SHUTDOWN is not allowed: it stops the database server"},
    {"INSTALL", NULL, SQLTEXT_RULE_DENY, false,
     "INSTALL is not allowed: it changes the server's plugins"},
    {"UNINSTALL", NULL, SQLTEXT_RULE_DENY, false,
     "UNINSTALL is not allowed: it changes the server's plugins"},
    {"PURGE", NULL, SQLTEXT_RULE_DENY, false, "PURGE is not allowed: it deletes the server's logs"},
    {"LOAD", "INDEX", SQLTEXT_RULE_DENY, false,
     "LOAD INDEX is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"LOAD", NULL, SQLTEXT_RULE_DENY, false,
     "LOAD DATA and LOAD XML are not allowed: they read files"},

    /* The session, other sessions, and statements the firewall cannot see into. */
    {"KILL", NULL, SQLTEXT_RULE_DENY, false, "KILL is not allowed: it ends statements or sessions"},
    {"HANDLER", NULL, SQLTEXT_RULE_DENY, false,
     "HANDLER is not allowed: only data statements run under a lease"},
    {"CALL", NULL, SQLTEXT_RULE_DENY, false,
     "CALL is not allowed: a stored procedure could end the transaction or change the session"},
    {"PREPARE", NULL, SQLTEXT_RULE_DENY, false,
     "PREPARE is not allowed: prepared statements would run text the firewall never saw"},
    {"EXECUTE", NULL, SQLTEXT_RULE_DENY, false,
     "EXECUTE is not allowed: prepared statements would run text the firewall never saw"},
    {"DEALLOCATE", NULL, SQLTEXT_RULE_DENY, false,
     "DEALLOCATE is not allowed: prepared statements would run text the firewall never saw"},
    {"USE", NULL, SQLTEXT_RULE_DENY, false,
     "USE is not allowed: it changes the session's default database"},
    {"BACKUP", NULL, SQLTEXT_RULE_DENY, false, "BACKUP is not allowed: it takes server-wide locks"},
    {"BINLOG", NULL, SQLTEXT_RULE_DENY, false,
     "BINLOG is not allowed: it replays binary log events"},
};

/* Words that may follow SET and are not system variable names. */
struct sqltext_set_word {
	const char *word;
	const char *second; /* second word, or NULL for any */
	bool scope;         /* GLOBAL, SESSION, …: a system variable follows */
	const char *reason;
};

static const struct sqltext_set_word sqltext_set_words[] = {
    {"GLOBAL", NULL, true, NULL},
    {"SESSION", NULL, true, NULL},
    {"LOCAL", NULL, true, NULL},
    {"PERSIST", NULL, true, NULL},
    {"PERSIST_ONLY", NULL, true, NULL},
    {"STATEMENT", NULL, false,
     "SET STATEMENT ... FOR is not allowed: it sets system variables for the statement"},
    {"NAMES", NULL, false,
     "SET NAMES is not allowed: parameters are escaped for the session's character set"},
    {"CHARACTER", "SET", false,
     "SET CHARACTER SET is not allowed: parameters are escaped for the session's character set"},
    {"CHARSET", NULL, false,
     "SET CHARSET is not allowed: parameters are escaped for the session's character set"},
    {"PASSWORD", NULL, false, "SET PASSWORD is not allowed: " SQLTEXT_IMPLICIT_COMMIT},
    {"ROLE", NULL, false, "SET ROLE is not allowed: it changes the session's privileges"},
    {"DEFAULT", "ROLE", false, "SET DEFAULT ROLE is not allowed: it changes account settings"},
    {"TRANSACTION", NULL, false, "SET TRANSACTION is not allowed: the lease owns the transaction"},
};

static const struct sqltext_rule *
sqltext_firewall_rule_find(const struct sqltext_lexer *lx, const struct sqltext_token *first)
{
	struct sqltext_token second;

	sqltext_lexer_peek(lx, &second);
	for (size_t i = 0; i < SQLTEXT_ARRAY_SIZE(sqltext_rules); i++) {
		const struct sqltext_rule *rule = &sqltext_rules[i];
		if (!sqltext_lexer_is_keyword(lx->sql, first, rule->keyword))
			continue;
		if (rule->second == NULL ||
		    sqltext_lexer_is_keyword(lx->sql, &second, rule->second))
			return rule;
	}
	return NULL;
}

static bool
sqltext_firewall_unknown(const char *sql, const struct sqltext_token *tok, char *why,
                         size_t whysize)
{
	char word[4 * SQLTEXT_REASON_QUOTE_MAX + 8], allowed[256] = "";
	size_t used = 0;

	sqltext_reason_quote(word, sizeof word, sql + tok->start, tok->end - tok->start);
	for (size_t i = 0; i < SQLTEXT_ARRAY_SIZE(sqltext_rules); i++) {
		const struct sqltext_rule *rule = &sqltext_rules[i];
		if (rule->action == SQLTEXT_RULE_DENY || used >= sizeof allowed)
			continue;
		int n = snprintf(allowed + used, sizeof allowed - used, "%s%s%s%s%s",
		                 used > 0 ? ", " : "", rule->keyword, rule->second != NULL ? " " : "",
		                 rule->second != NULL ? rule->second : "",
		                 rule->action == SQLTEXT_RULE_SET ? " @user_variable" : "");
		if (n > 0)
			used += (size_t)n;
	}
	return sqltext_reason(why, whysize, "statement '%s' is not allowed; allowed: %s", word,
	                      allowed);
}

static bool
sqltext_firewall_is_name_part(enum sqltext_token_kind kind)
{
	return kind == SQLTEXT_TOKEN_WORD || kind == SQLTEXT_TOKEN_NUMBER ||
	       kind == SQLTEXT_TOKEN_QUOTED_NAME;
}

/* Reads a dotted name that starts with first (default.key_buffer_size,
 * session.autocommit, `x`) into name for a reason. */
static void
sqltext_firewall_set_name(struct sqltext_lexer *lx, const struct sqltext_token *first, char *name,
                          size_t size)
{
	struct sqltext_token part = *first, dot, next;
	char text[4 * SQLTEXT_REASON_QUOTE_MAX + 8];

	name[0] = '\0';
	for (;;) {
		size_t start = part.start, end = part.end;
		if (part.kind == SQLTEXT_TOKEN_QUOTED_NAME && end - start >= 2) {
			start++;
			end--;
		}
		sqltext_reason_quote(text, sizeof text, lx->sql + start, end - start);
		size_t used = strlen(name);
		snprintf(name + used, size - used, "%s%s", used > 0 ? "." : "", text);

		struct sqltext_lexer after = *lx;
		if (sqltext_lexer_next(&after, &dot) != SQLTEXT_TOKEN_PUNCT ||
		    !sqltext_lexer_is_punct(lx->sql, &dot, '.') || dot.start != part.end)
			return;
		if (!sqltext_firewall_is_name_part(sqltext_lexer_next(&after, &next)) ||
		    next.start != dot.end)
			return;
		*lx = after;
		part = next;
	}
}

static bool
sqltext_firewall_system_variable(char *name, char *why, size_t whysize)
{
	if (name[0] == '\0')
		return sqltext_reason(
		    why, whysize,
		    "SET of a system variable is not allowed; only user variables "
		    "(@name) may be set");
	return sqltext_reason(why, whysize,
	                      "SET of system variable '%s' is not allowed; only user variables "
	                      "(@name) may be set",
	                      name);
}

/* "@@autocommit", "@@session.autocommit", "@@GLOBAL.wait_timeout": the
 * name without its scope. */
static bool
sqltext_firewall_at_at(struct sqltext_lexer *lx, const struct sqltext_token *second_at, char *why,
                       size_t whysize)
{
	static const char *const scopes[] = {"global.", "session.", "local."};
	struct sqltext_token first;
	char name[4 * SQLTEXT_REASON_QUOTE_MAX + 8] = "";

	if (sqltext_firewall_is_name_part(sqltext_lexer_peek(lx, &first)) &&
	    first.start == second_at->end) {
		sqltext_lexer_next(lx, &first);
		sqltext_firewall_set_name(lx, &first, name, sizeof name);
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
sqltext_firewall_set_target(struct sqltext_lexer *lx, const struct sqltext_token *tok, char *why,
                            size_t whysize)
{
	const char *sql = lx->sql;
	struct sqltext_token name, op, eq;
	char var[4 * SQLTEXT_REASON_QUOTE_MAX + 8];

	if (sqltext_lexer_is_punct(sql, tok, '@')) {
		sqltext_lexer_next(lx, &name);
		if (sqltext_lexer_is_punct(sql, &name, '@') && name.start == tok->end)
			return sqltext_firewall_at_at(lx, &name, why, whysize);
		/* The server reads "@ a" and "@/\* *\/a" as errors. */
		if (name.start != tok->end || !(sqltext_firewall_is_name_part(name.kind) ||
		                                name.kind == SQLTEXT_TOKEN_STRING))
			return sqltext_reason(
			    why, whysize,
			    "SET must name a user variable right after '@' (offset %zu)",
			    tok->start);
		/* MY_LEX_HOSTNAME: a bare user variable name runs on through
		 * letters, digits, '.', '_' and '$' ("@a.b$c", "@1e5x"). */
		struct sqltext_token last = name, more;
		while (name.kind != SQLTEXT_TOKEN_STRING &&
		       sqltext_lexer_peek(lx, &more) != SQLTEXT_TOKEN_END &&
		       more.start == last.end &&
		       (more.kind == SQLTEXT_TOKEN_WORD || more.kind == SQLTEXT_TOKEN_NUMBER ||
		        sqltext_lexer_is_punct(sql, &more, '.'))) {
			sqltext_lexer_next(lx, &last);
		}
		sqltext_lexer_next(lx, &op);
		if (sqltext_lexer_is_punct(sql, &op, '='))
			return true;
		if (sqltext_lexer_is_punct(sql, &op, ':') &&
		    sqltext_lexer_next(lx, &eq) == SQLTEXT_TOKEN_PUNCT &&
		    sqltext_lexer_is_punct(sql, &eq, '=') && eq.start == op.end)
			return true;
		return sqltext_reason(
		    why, whysize, "SET of a user variable needs = or := (offset %zu)", tok->start);
	}
	if (tok->kind == SQLTEXT_TOKEN_WORD) {
		struct sqltext_token second;
		sqltext_lexer_peek(lx, &second);
		for (size_t i = 0; i < SQLTEXT_ARRAY_SIZE(sqltext_set_words); i++) {
			const struct sqltext_set_word *word = &sqltext_set_words[i];
			if (!sqltext_lexer_is_keyword(sql, tok, word->word) ||
			    (word->second != NULL &&
			     !sqltext_lexer_is_keyword(sql, &second, word->second)))
				continue;
			if (!word->scope)
				return sqltext_reason(why, whysize, "%s", word->reason);
			struct sqltext_token next;
			if (sqltext_lexer_next(lx, &next) == SQLTEXT_TOKEN_WORD &&
			    sqltext_lexer_is_keyword(sql, &next, "TRANSACTION"))
				return sqltext_firewall_set_target(lx, &next, why, whysize);
			var[0] = '\0';
			if (sqltext_firewall_is_name_part(next.kind))
				sqltext_firewall_set_name(lx, &next, var, sizeof var);
			return sqltext_firewall_system_variable(var, why, whysize);
		}
	}
	if (sqltext_firewall_is_name_part(tok->kind)) {
		sqltext_firewall_set_name(lx, tok, var, sizeof var);
		return sqltext_firewall_system_variable(var, why, whysize);
	}
	if (tok->kind == SQLTEXT_TOKEN_END || sqltext_lexer_is_punct(sql, tok, ';'))
		return sqltext_reason(why, whysize, "SET without an assignment is not allowed");
	return sqltext_reason(why, whysize,
	                      "SET must assign user variables (@name), not %s (offset %zu)",
	                      sqltext_firewall_noun[tok->kind], tok->start);
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
			return sqltext_reason(why, whysize, "%s at offset %zu", lx->error,
			                      lx->error_offset);
		bool last = kind == SQLTEXT_TOKEN_END || sqltext_lexer_is_punct(lx->sql, &tok, ';');
		if (last || (depth == 0 && sqltext_lexer_is_punct(lx->sql, &tok, ','))) {
			if (empty)
				return sqltext_reason(why, whysize,
				                      "SET assignment without a value (offset %zu)",
				                      tok.start);
			if (depth > 0)
				return sqltext_reason(why, whysize, "unbalanced '(' in SET");
			*more = !last;
			return true;
		}
		if (sqltext_lexer_is_punct(lx->sql, &tok, '(')) {
			depth++;
		} else if (sqltext_lexer_is_punct(lx->sql, &tok, ')')) {
			if (depth == 0)
				return sqltext_reason(
				    why, whysize, "unbalanced ')' in SET (offset %zu)", tok.start);
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
sqltext_firewall_classify(const char *sql, size_t len, uint32_t ignore_mask, char *why,
                          size_t whysize)
{
	struct sqltext_lexer lx;
	struct sqltext_token tok;
	size_t parens = 0;

	sqltext_lexer_init(&lx, sql, len, ignore_mask, true);
	sqltext_lexer_next(&lx, &tok);
	if (tok.kind == SQLTEXT_TOKEN_END || sqltext_lexer_is_punct(sql, &tok, ';'))
		return ignore_mask != 0 || sqltext_reason(why, whysize, "empty statement");
	while (sqltext_lexer_is_punct(sql, &tok, '(')) {
		parens++;
		sqltext_lexer_next(&lx, &tok);
	}
	if (tok.kind != SQLTEXT_TOKEN_WORD) {
		if (tok.kind == SQLTEXT_TOKEN_PUNCT) {
			char c[8];
			sqltext_reason_quote(c, sizeof c, sql + tok.start, 1);
			return sqltext_reason(why, whysize,
			                      "a statement must start with a keyword, not '%s'", c);
		}
		return sqltext_reason(why, whysize, "a statement must start with a keyword, not %s",
		                      sqltext_firewall_noun[tok.kind]);
	}
	const struct sqltext_rule *rule = sqltext_firewall_rule_find(&lx, &tok);
	if (rule == NULL)
		return sqltext_firewall_unknown(sql, &tok, why, whysize);
	if (rule->action == SQLTEXT_RULE_DENY)
		return sqltext_reason(why, whysize, "%s", rule->reason);
	if (parens > 0 && !rule->query)
		return sqltext_reason(
		    why, whysize, "only a query (SELECT, WITH, VALUES, TABLE) may start with '('");
	if (rule->action == SQLTEXT_RULE_SET)
		return sqltext_firewall_set(&lx, why, whysize);
	return true;
}

/* What one reading of the text found besides its first keyword. */
struct sqltext_scan {
	unsigned versioned_seen;
	bool ignored_any;
	size_t ignored_offset;
	bool semicolon;      /* the reading has a ';' ... */
	size_t semicolon_at; /* ... here: where the statement ends */
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
	struct sqltext_token tok, prev = {.kind = SQLTEXT_TOKEN_END};
	enum sqltext_token_kind kind;
	bool after_semicolon = false, second = false, file = false, odd = false,
	     semicolon_inside = false;
	size_t semicolon_at = 0, file_at = 0, odd_at = 0, semicolon_inside_at = 0,
	       executable_at = 0;
	const char *odd_what = NULL;

	sqltext_lexer_init(&lx, sql, len, ignore_mask, true);
	while ((kind = sqltext_lexer_next(&lx, &tok)) != SQLTEXT_TOKEN_END &&
	       kind != SQLTEXT_TOKEN_ERROR) {
		if (after_semicolon)
			second = true;
		if (sqltext_lexer_is_punct(sql, &tok, ';') && !after_semicolon) {
			after_semicolon = true;
			semicolon_at = tok.start;
		}
		/* The server ends the statement at a ';' inside an executable
		 * comment ("SELECT 1 /\*!;*\/" fails near '*\/'), and a
		 * versioned one decides per server whether there is a ';' at
		 * all: the daemon's cut (sqltext_statement_length) must be the
		 * same everywhere. */
		if (!semicolon_inside && lx.in_executable &&
		    sqltext_lexer_is_punct(sql, &tok, ';')) {
			semicolon_inside = true;
			semicolon_inside_at = tok.start;
			executable_at = lx.executable_start;
		}
		/* OUTFILE is reserved and DUMPFILE only means a file after INTO;
		 * refusing either word anywhere does not depend on how what
		 * precedes it was split. */
		if (!file && (sqltext_lexer_is_keyword(sql, &tok, "OUTFILE") ||
		              (sqltext_lexer_is_keyword(sql, &tok, "DUMPFILE") &&
		               sqltext_lexer_is_keyword(sql, &prev, "INTO")))) {
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
		return sqltext_reason(why, whysize, "%s at offset %zu", lx.error, lx.error_offset);
	if (!sqltext_firewall_classify(sql, len, ignore_mask, why, whysize))
		return false;
	if (second)
		return sqltext_reason(why, whysize,
		                      "more than one statement: text follows the ';' at offset %zu",
		                      semicolon_at);
	if (semicolon_inside)
		return sqltext_reason(
		    why, whysize,
		    "';' inside an executable comment is not allowed (the ';' at offset "
		    "%zu, in the /*! ... */ at offset %zu): the server would end the "
		    "statement there",
		    semicolon_inside_at, executable_at);
	/* "--" before the ';' is two minus signs here, but a comment once
	 * the daemon cuts the ';' off and adds "\n" (and for the server,
	 * which strips a trailing ';' before it lexes: "SELECT 1 --;"
	 * returns 1): the text would not be what the firewall read. */
	if (after_semicolon && semicolon_at >= 2 && sql[semicolon_at - 2] == '-' &&
	    sql[semicolon_at - 1] == '-')
		return sqltext_reason(
		    why, whysize,
		    "'--' right before the ';' at offset %zu is not allowed: MariaDB "
		    "reads it as a comment or as two minus signs depending on what "
		    "follows",
		    semicolon_at);
	if (file)
		return sqltext_reason(
		    why, whysize,
		    "INTO OUTFILE and INTO DUMPFILE are not allowed: they write files "
		    "on the database server (offset %zu)",
		    file_at);
	if (odd)
		return sqltext_reason(why, whysize, "%s at offset %zu is not allowed", odd_what,
		                      odd_at);
	return true;
}

struct sqltext_firewall_reading {
	const char *sql;
	size_t len;
	char *why;
	size_t whysize;
	struct sqltext_scan code; /* the all-code reading, visited first */
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
			return sqltext_reason(r->why, r->whysize, "%s", reason);
		return sqltext_reason(
		    r->why, r->whysize,
		    "%s (when the server ignores the versioned comment at offset %zu)", reason,
		    scan.ignored_offset);
	}
	*versioned_seen = scan.versioned_seen;
	if (mask == 0) {
		r->code = scan;
		return true;
	}
	/* "SELECT 1 /\*!99999 '*\/ ; -- ' *\/" is one statement where the
	 * comment runs and ends at the ';' where it does not. */
	if (scan.semicolon != r->code.semicolon ||
	    (scan.semicolon && scan.semicolon_at != r->code.semicolon_at)) {
		sqltext_firewall_end_text(&r->code, code_end, sizeof code_end);
		sqltext_firewall_end_text(&scan, end, sizeof end);
		return sqltext_reason(r->why, r->whysize,
		                      "the statement ends %s, but %s when the server ignores the "
		                      "versioned comment at offset %zu: it must end at the same "
		                      "place on every server",
		                      code_end, end, scan.ignored_offset);
	}
	return true;
}

enum sqltext_verdict
sqltext_firewall(const char *sql, size_t len, char *why, size_t whysize)
{
	struct sqltext_firewall_reading reading = {sql, len, why, whysize, {0}};

	if (sql == NULL) {
		reading.sql = "";
		reading.len = 0;
	}
	return sqltext_lexer_each_reading(sqltext_firewall_reading, &reading) ? SQLTEXT_ALLOW
	                                                                      : SQLTEXT_DENY;
}

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
	while ((kind = sqltext_lexer_next(&lx, &tok)) != SQLTEXT_TOKEN_END &&
	       kind != SQLTEXT_TOKEN_ERROR)
		if (sqltext_lexer_is_punct(sql, &tok, ';'))
			return tok.start;
	return len;
}

/* An allowed statement that starts with first returns no rows without
 * RETURNING: every allowed one but the queries (INSERT, UPDATE, DELETE,
 * REPLACE, DO, SET). */
static bool
sqltext_firewall_is_quiet(const struct sqltext_lexer *lx, const struct sqltext_token *first)
{
	const struct sqltext_rule *rule;

	if (first->kind != SQLTEXT_TOKEN_WORD)
		return false;
	rule = sqltext_firewall_rule_find(lx, first);
	return rule != NULL && rule->action != SQLTEXT_RULE_DENY && !rule->query;
}

/* How the statement starts, over every reading of its versioned comments:
 * for sqltext_leading_do and sqltext_may_return_rows. */
struct sqltext_firewall_start {
	const char *sql;
	size_t len;
	struct sqltext_token first; /* the first token of the all-code reading */
	bool same;                  /* every other reading starts with it, or is empty */
	bool rows;                  /* some reading may return rows */
};

/* One reading. A reading that is empty (its whole statement in a skipped
 * versioned comment: nothing, or nothing before the ';') runs nothing: it
 * starts with anything, and returns no rows. Text the lexer cannot read
 * starts with nothing known and may return rows. */
static bool
sqltext_firewall_start_reading(void *arg, uint32_t mask, unsigned *versioned_seen)
{
	struct sqltext_firewall_start *st = arg;
	struct sqltext_lexer lx;
	struct sqltext_token first, tok;
	enum sqltext_token_kind kind;
	bool empty;

	sqltext_lexer_init(&lx, st->sql, st->len, mask, true);
	kind = sqltext_lexer_next(&lx, &first);
	empty = kind == SQLTEXT_TOKEN_END || sqltext_lexer_is_punct(st->sql, &first, ';');
	if (mask == 0)
		st->first = first;
	else if (!empty && (first.kind != st->first.kind || first.start != st->first.start ||
	                    first.end != st->first.end))
		st->same = false;
	if (!empty && !sqltext_firewall_is_quiet(&lx, &first))
		st->rows = true;
	for (tok = first; kind != SQLTEXT_TOKEN_END && kind != SQLTEXT_TOKEN_ERROR;
	     kind = sqltext_lexer_next(&lx, &tok))
		if (sqltext_lexer_is_keyword(st->sql, &tok, "RETURNING"))
			st->rows = true;
	if (kind == SQLTEXT_TOKEN_ERROR) {
		st->same = false;
		st->rows = true;
	}
	*versioned_seen = lx.versioned_seen;
	return kind != SQLTEXT_TOKEN_ERROR;
}

bool
sqltext_leading_do(const char *sql, size_t len, size_t *at)
{
	struct sqltext_firewall_start st = {.sql = sql, .len = len, .same = true};

	if (sql == NULL ||
	    !sqltext_lexer_each_reading(sqltext_firewall_start_reading, &st) || !st.same ||
	    !sqltext_lexer_is_keyword(sql, &st.first, "DO"))
		return false;
	*at = st.first.start;
	return true;
}

bool
sqltext_may_return_rows(const char *sql, size_t len)
{
	struct sqltext_firewall_start st = {.sql = sql, .len = len, .same = true};

	if (sql == NULL)
		return false;
	sqltext_lexer_each_reading(sqltext_firewall_start_reading, &st);
	return st.rows;
}
