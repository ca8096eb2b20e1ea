/* SQL text: binding, the statement firewall, how statements start and end, session effects, LOCK TABLES. */
#ifndef TABLELOCK_SQLTEXT_H
#define TABLELOCK_SQLTEXT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto/proto_table.h"
#include "util/buf.h"

/*
 * Pure: no I/O. One lexer (daemon/sqltext_lexer.c) serves the binder
 * (sqltext_bind.c), the firewall (sqltext_firewall.c) and the effect scan
 * (sqltext_effect.c), which share daemon/sqltext_private.h; sqltext_lock.c
 * builds the daemon's own LOCK TABLES. The lexer knows MySQL/MariaDB's
 * lexical rules that matter here: '...' and "..." strings (backslash
 * escapes and doubled quotes), `...` names (doubled backticks), comments
 * "-- " (dash dash + space or control char or end), "#" to end of line,
 * and C comments, except that executable comments (slash-star-bang and
 * slash-star-M-bang, optionally followed by a version number) are code,
 * not comments.
 *
 * The public functions carry the module's prefix, sqltext_; the rest are
 * named for their files (sqltext_private.h).
 */

/* Counts '?' placeholders outside strings, names and comments. Returns the
 * count, or -1 if the text has an unterminated string, name or comment. */
long sqltext_count_placeholders(const char *sql, size_t len);

/* Escapes src into out (without quotes), as mysql_real_escape_string does
 * for the session. Returns bytes written; out has room for 2*len+1. */
typedef unsigned long sqltext_escape_fn(void *arg, char *out, const char *src, unsigned long len);

/*
 * The escape of a connection whose sql_mode lets backslash escape (no
 * NO_BACKSLASH_ESCAPES, which conf.c refuses) in an ASCII-safe character
 * set (utf8mb4, which session.c sets), without a connection: NUL, '\n',
 * '\r', '\\', '\'', '"' and ^Z become \0 \n \r \\ \' \" \Z, and every other
 * byte is copied. Byte for byte what mysql_real_escape_string() writes on
 * such a connection (tests/unit/test_sqltext.c compares the two). Writes at
 * most 2*len bytes and a NUL into out (room for 2*len+1) and returns the
 * count without the NUL; arg is unused. The daemon binds with it before a
 * session is at hand (its dry run); tests and fuzzers bind with it.
 */
sqltext_escape_fn sqltext_escape_backslash;

/* Replaces each placeholder with the matching element of params (a JSON
 * array or NULL for none): null -> NULL, true/false -> TRUE/FALSE,
 * integer -> decimal, real -> shortest round-tripping decimal ("%.17g",
 * non-finite refused), string -> '...' escaped through escape().
 * Returns true and appends the bound text to out; else false with a reason
 * in why (count mismatch, object/array/non-finite value: the daemon answers
 * bad_params). */
bool sqltext_bind(const char *sql, size_t len, const json_t *params, sqltext_escape_fn *escape,
                  void *escape_arg, struct buf *out, char *why, size_t whysize);

/* Statement firewall verdict. */
enum sqltext_verdict { SQLTEXT_ALLOW, SQLTEXT_DENY };

/* Classifies one statement by its first keyword after whitespace and
 * comments (executable comments count as code), case-insensitively.
 * Allowed: SELECT, INSERT, UPDATE, DELETE, REPLACE, WITH, VALUES, TABLE, DO,
 * SET of user variables only (SET @a = …, @b := …; not @@ system
 * variables), and the savepoint statements SAVEPOINT, ROLLBACK TO and
 * RELEASE SAVEPOINT. Refused: everything else, including LOCK/UNLOCK,
 * COMMIT, any other ROLLBACK, BEGIN, START TRANSACTION, XA, any other
 * SET, DDL and other implicit-commit statements, FLUSH, KILL, HANDLER,
 * LOAD DATA, SELECT … INTO OUTFILE/DUMPFILE, and any text with a second
 * statement after a ';'. A trailing ';' followed only by whitespace and
 * comments is allowed; a ';' inside an executable comment is not, nor
 * "--" right before the ';', nor text whose ';' moves when the server
 * skips a versioned comment, so the statement ends at one place on every
 * server (see sqltext_statement_length). On DENY writes a human reason
 * into why. */
enum sqltext_verdict sqltext_firewall(const char *sql, size_t len, char *why, size_t whysize);

/*
 * The length of the statement proper: the offset of the trailing ';' when
 * the text has one, else len. Only meaningful for text the firewall allows
 * (for other text it is the offset of the first ';' the lexer finds, or
 * len, and always <= len).
 *
 * Contract: for any text T that sqltext_firewall allows, with
 * n = sqltext_statement_length(T, len), the daemon may send
 * T[0..n) + "\n;" + the next statement in one multi-statement batch
 * (CLIENT_MULTI_STATEMENTS) and MariaDB ends T's statement exactly at the
 * daemon's ';': T[0..n) holds no ';' in any reading of its versioned
 * comments and ends outside every string, name and comment, except a
 * trailing "-- " or "#" comment, which the "\n" ends. What is cut off is
 * the ';' and the whitespace and comments after it.
 */
size_t sqltext_statement_length(const char *sql, size_t len);

/*
 * How a statement the firewall allowed starts, for the daemon's batch
 * (lease.c), cut at sqltext_statement_length or not. Which versioned
 * comments run depends on the server's version, which this module does
 * not know, so both look at every reading of them, as the firewall does;
 * a reading in which the whole statement sits in a skipped comment (so
 * that nothing, or only the ';', is left) runs nothing, so it starts with
 * anything and returns no rows.
 */

/*
 * Whether the statement is a DO: its first token is the keyword DO in the
 * reading where every versioned comment is code, and in every other
 * reading that same DO or nothing. Then *at is its offset (the keyword is
 * sql[*at .. *at + 2)), and writing SELECT there changes what the
 * statement does, in every reading, only in that it returns its row. False
 * for any other text, text the lexer cannot read included.
 */
bool sqltext_leading_do(const char *sql, size_t len, size_t *at);

/*
 * Whether the statement may return a result set (rows, which max_rows and
 * max_result_bytes can refuse). Conservative: false only when every
 * reading that runs anything starts with a keyword the firewall allows
 * that is not a query (INSERT, UPDATE, DELETE, REPLACE, DO, SET) and none
 * has the keyword RETURNING outside strings, quoted names and comments.
 * True for text the lexer cannot read.
 */
bool sqltext_may_return_rows(const char *sql, size_t len);

/*
 * Session state a statement may leave behind that MariaDB 10.11's
 * session_track_state_change does not report, so that the daemon knows to
 * reset the session after the lease. Measured on 10.11 for each kind:
 * SERVER_SESSION_STATE_CHANGED stays clear, and mysql_reset_connection
 * clears the state.
 */
enum sqltext_effect {
	/* @name, @'name', @"name", @`name` (not @@system reads): set by
	 * SELECT @a := 1 and SELECT 1 INTO @a. */
	SQLTEXT_EFFECT_USER_VARIABLE = 1u << 0,
	/* GET_LOCK, RELEASE_LOCK, RELEASE_ALL_LOCKS: user locks outlive the
	 * transaction and UNLOCK TABLES. */
	SQLTEXT_EFFECT_USER_LOCK = 1u << 1,
	/* LAST_INSERT_ID(expr). An INSERT or REPLACE that generates an
	 * AUTO_INCREMENT value sets it too; the daemon reads that from the
	 * statement's OK packet (its insert id), exactly, not from the text. */
	SQLTEXT_EFFECT_LAST_INSERT_ID = 1u << 2,
	/* NEXTVAL, LASTVAL, SETVAL, CURRVAL, NEXT VALUE FOR, PREVIOUS VALUE
	 * FOR: NEXT VALUE sets the session's last value of the sequence. */
	SQLTEXT_EFFECT_SEQUENCE = 1u << 3,
	SQLTEXT_EFFECT_ALL = (1u << 4) - 1
};

/*
 * The sqltext_effect flags of the statement, or 0 when it leaves none of
 * them. Conservative: a word counts wherever it stands outside strings and
 * comments (a column named nextval counts too), in every reading of
 * versioned comments (the union), and text the lexer cannot read (which
 * the firewall refuses) gets SQLTEXT_EFFECT_ALL.
 * It cannot see into stored functions or triggers, which can do all of
 * the above: the daemon's account must not be able to run any that do.
 */
unsigned sqltext_session_effects(const char *sql, size_t len);

/*
 * The daemon's own LOCK TABLES. Names come from proto_table_split, so they
 * are valid (proto_table_valid_part: no NUL, at most 64 characters), and
 * in backticks with every backtick doubled any of them is one quoted
 * identifier (MariaDB manual, "Identifier Names"; tests/fuzz/fuzz_table.c
 * reads the text back with this module's lexer).
 */

/* Appends `part`, backticks inside doubled. */
void sqltext_lock_quote(struct buf *out, const char *part);

/* Appends `db`.`name` [AS `alias`] (no mode). */
void sqltext_lock_ref(struct buf *out, const struct proto_table *t);

/* Appends "LOCK TABLES `db`.`t` WRITE, `db`.`u` AS `a` READ" for
 * tables[0..n), in their order. */
void sqltext_lock_tables(struct buf *out, const struct proto_table *tables, size_t n);

#endif
