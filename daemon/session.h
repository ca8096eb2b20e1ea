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
	SESSION_RELEASING,	/* back from a lease: rollback, unlock, reset running */
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
	json_t *columns;		/* result set: array, or NULL when none */
	json_t *rows;			/* array of arrays, or NULL */
	uint64_t affected_rows;
	uint64_t insert_id;
	unsigned int warnings;
};

typedef void session_done_fn(struct session *s, struct session_result *r, void *arg);

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
/* The control session (control = true) runs KILL QUERY statements for the
 * pool: it accepts session_query in IDLE state and returns to IDLE.
 * Runs one statement on a LENT session; done is called exactly once, later
 * (never from inside this call). The result's JSON belongs to the callee of
 * done only for the duration of the call unless it takes references. */
void session_query(struct session *s, const char *sql, size_t len, const struct session_limits *lim,
		   session_done_fn *done, void *arg);
/* Where a release starts: what the lease has already done itself. */
enum session_release_from {
	SESSION_RELEASE_ROLLBACK,	/* ROLLBACK, UNLOCK TABLES, reset */
	SESSION_RELEASE_UNLOCK,		/* UNLOCK TABLES, reset */
	SESSION_RELEASE_RESET,		/* already unlocked: reset only */
};

/* Ends a lease on the session, then calls unlocked (the tables are free in
 * MySQL, or the connection is gone, which frees them too), then resets
 * the session and returns it to the pool. unlocked is called exactly once,
 * later (after the reset when starting from SESSION_RELEASE_RESET). */
void session_release(struct session *s, enum session_release_from from,
		     void (*unlocked)(void *arg), void *arg);
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
