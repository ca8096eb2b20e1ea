/* MySQL session: one non-blocking MariaDB connection driven by libevent. */
#ifndef TABLELOCK_SESSION_H
#define TABLELOCK_SESSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pool;
struct session;

/* The session's life. Exactly one function, session_enter_state(), moves a
 * session between these and logs "old -> new" at debug level. */
enum session_state {
	SESSION_DOWN,		/* no connection; a backoff timer will reconnect */
	SESSION_CONNECTING,	/* mysql_real_connect running */
	SESSION_PREPARING,	/* the per-lease settings (autocommit off, …) running */
	SESSION_IDLE,		/* in the pool, ready to lend */
	SESSION_LENT,		/* lent to a lease, nothing running */
	SESSION_RUNNING,	/* lent, a statement running */
	SESSION_RESETTING,	/* back from a lease: mysql_reset_connection running */
	SESSION_CLOSED,		/* shut down for good */
	SESSION__STATE_COUNT
};

const char *session_state_name(enum session_state state);

/* What a statement produced. For an error, code is PROTO_ERR_* (as int to
 * keep this header free of proto/), with the MySQL errno, SQLSTATE and
 * message where MySQL gave them. lost means the connection is gone: the
 * server has rolled back and unlocked everything it held. */
struct session_result {
	int code;			/* 0 on success */
	unsigned int mysql_errno;
	char sqlstate[6];
	char message[512];
	bool lost;
	bool interrupted;		/* ended by KILL QUERY (errno 1317) */
	bool state_changed;		/* SERVER_SESSION_STATE_CHANGED was set */
	json_t *columns;		/* result set: array, or NULL when none */
	json_t *rows;			/* array of arrays, or NULL */
	uint64_t affected_rows;
	uint64_t insert_id;
	unsigned int warnings;
	char info[128];			/* mysql_info(), or "": an UPDATE's rows matched */
};

/* A batch's results, one per statement that ran, in order: all n succeeded
 * (code 0, or result_too_large, after which MySQL goes on) or the last one
 * is the failure that stopped the batch. n >= 1. When the last is lost, the
 * session is already down (reconnecting). */
typedef void session_done_fn(struct session *s, struct session_result *r, size_t n, void *arg);

/* Limits for one statement's result. 0 = unlimited. */
struct session_limits {
	uint64_t max_rows;
	uint64_t max_result_bytes;
};

struct session *session_new(struct pool *pool, unsigned int index, bool control);
/* IDLE -> LENT: the pool hands the session to a lease. */
void session_lend(struct session *s);
/* Starts connecting (now, or after the backoff delay when delay_ms > 0). */
void session_connect(struct session *s, unsigned int delay_ms);
/* Runs sql, one statement or several separated by ';' (the sessions are
 * connected with CLIENT_MULTI_STATEMENTS: only text the firewall allowed,
 * composed by the daemon, is ever sent), on a LENT session, in one round
 * trip. After a reset the per-lease settings go first in the same text; the
 * caller never sees their result. done is called exactly once, later
 * (never from inside this call). The results' JSON belongs to the session:
 * done takes references to keep any.
 * The control session (control = true) runs KILL QUERY statements for the
 * pool: it accepts session_query in IDLE state and returns to IDLE. */
void session_query(struct session *s, const char *sql, size_t len, size_t nstatements,
		   bool head_killable, const struct session_limits *lim, session_done_fn *done,
		   void *arg);
/* May a KILL QUERY be sent at the batch in flight? When it is one
 * statement, or (head_killable) while its first statement has not answered.
 * MariaDB takes a kill that lands between two statements of a batch as the
 * end of the batch without sending anything more: a batch hit by a kill
 * that then stalls is cut off as lost (session.c, session_strand_cb). */
bool session_killable(const struct session *s);
/* Back to the pool from a lease whose tables are already unlocked in
 * MySQL. With reset, mysql_reset_connection() runs first (the lease left
 * session state behind, or might have). */
void session_give_back(struct session *s, bool reset);
/* A reload changed the per-lease settings: they travel again with the
 * session's next statement. */
void session_settings_changed(struct session *s);
/* Drops the connection (MySQL rolls back and unlocks what it held) and
 * reconnects: for a session in a state nobody can vouch for. */
void session_abandon(struct session *s, const char *why);
/* CLOSED -> connecting again (a reload grew the pool). */
void session_reopen(struct session *s);
/* Closes the connection for good (shutdown). MySQL rolls back what it held. */
void session_close(struct session *s);
void session_free(struct session *s);

enum session_state session_get_state(const struct session *s);
/* MySQL's connection id (the thread KILL QUERY targets), 0 when none. */
unsigned long session_thread_id(const struct session *s);
unsigned int session_index(const struct session *s);
/* Escapes for a string literal with the session's charset and SQL mode. */
unsigned long session_escape(void *session, char *out, const char *src, unsigned long len);

/* While lent: who to tell if the connection dies with nothing running
 * (the server killed it, restarted, the network broke). */
void session_set_owner(struct session *s, void (*lost)(void *arg, const char *reason), void *arg);

/* KILL QUERY bookkeeping: while a kill aimed at this session is in flight,
 * the session sends nothing new, so the kill can only hit the statement it
 * was meant for. */
void session_kill_begin(struct session *s);
void session_kill_end(struct session *s);

#endif
