/* libtablelock: a synchronous C client for tablelockd's table-lock leases. */
#ifndef TABLELOCK_H
#define TABLELOCK_H

/*
 * A handle is one connection to tablelockd. A connection holds at most one
 * lease at a time: acquire, then query, then commit or rollback (or let
 * transact do all of it in one call). The statements run on the MySQL
 * session that holds the LOCK TABLES, so they see exactly the semantics
 * LOCK TABLES has on the server.
 *
 * Threads: one handle per thread. A handle has no lock of its own (and its
 * lease belongs to its connection, so sharing one makes little sense); the
 * library keeps no global state, so threads with a handle each need no
 * locking at all.
 *
 * Timeouts: every call that talks to the daemon takes timeout_ms, the
 * longest it may block (TABLELOCK_FOREVER: no limit). When it runs out the
 * call fails with TABLELOCK_ERR_TIMEOUT and the handle's connection is
 * closed, which makes the daemon roll back and release any lease it held:
 * a late answer can never leave a lease the caller does not know about.
 * Give acquire and transact a timeout above their wait_ms.
 *
 * Errors: calls return 0 (or a handle) on success, -1 (or NULL) on failure;
 * tablelock_last_error() then says why with a code from the protocol's list
 * (or one of this library's own), the daemon's message and, for MySQL
 * errors, MySQL's errno and SQLSTATE. Nothing here prints or exits, with one
 * exception: memory exhaustion aborts (the allocator is proto/'s, shared
 * with the daemon). SIGPIPE is never raised (writes use MSG_NOSIGNAL).
 *
 * Events: when the daemon ends the lease on its own (lease_expired,
 * lease_lost, lease_revoked), the next call on the handle fails with that
 * event as its error (code TABLELOCK_ERR_LEASE_EXPIRED, …, and .lease set),
 * without sending anything. tablelock_poll() reports them without making a
 * request, for callers that wait for input with the lease held.
 *
 * Round trips: acquire and commit may carry statements (the _with calls),
 * run in the same MySQL round trip as LOCK TABLES or as the commit, so a
 * read, decide, write cycle costs two requests. Requests may also be
 * pipelined (tablelock_queue_*, then tablelock_receive: see there), so
 * that several cost one write and one wait.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the whole project, defined here only: the daemon and the
 * CLI include this header, client/client.mk names the shared library after
 * it, and tests/integration/test_version.py holds the Python client's
 * __version__ (and PROTOCOL, DEFAULT_SOCKET) to it. */
#define TABLELOCK_VERSION "0.1.0"
/* Protocol version this library speaks. */
#define TABLELOCK_PROTOCOL 1
/* Where tablelockd listens unless configured otherwise. */
#define TABLELOCK_DEFAULT_SOCKET "/run/tablelockd/tablelockd.sock"

/* timeout_ms: wait as long as it takes. */
#define TABLELOCK_FOREVER (-1)
/* wait_ms, ttl_ms: use the daemon's configured default. */
#define TABLELOCK_DEFAULT (-1)

/* Error codes. The first group is the protocol's list, sent by the daemon
 * (proto/PROTOCOL.md says when each happens); the second is this library's. */
enum tablelock_code {
	TABLELOCK_OK = 0,
	TABLELOCK_ERR_BAD_REQUEST,       /* malformed request or field */
	TABLELOCK_ERR_REQUEST_TOO_LARGE, /* request over max_request_bytes */
	TABLELOCK_ERR_INVALID_TABLE,     /* a table or alias name is invalid */
	TABLELOCK_ERR_UNKNOWN_TABLE,     /* MySQL has no such table */
	TABLELOCK_ERR_LEASE_HELD,        /* acquire while holding a lease */
	TABLELOCK_ERR_NO_LEASE,          /* query/commit/… without a lease */
	TABLELOCK_ERR_LOCK_TIMEOUT,      /* wait_ms ran out */
	TABLELOCK_ERR_TOO_MANY_WAITERS,  /* the daemon's queue is full */
	TABLELOCK_ERR_UNAVAILABLE,       /* MySQL is unreachable */
	TABLELOCK_ERR_MYSQL,             /* MySQL error: see mysql_errno, sqlstate */
	TABLELOCK_ERR_COMMIT_UNKNOWN,    /* session died in COMMIT: outcome unknown */
	TABLELOCK_ERR_INTERNAL,
	TABLELOCK_ERR_STATEMENT_NOT_ALLOWED, /* refused by the statement firewall */
	TABLELOCK_ERR_RESULT_TOO_LARGE,      /* over max_rows or max_result_bytes */
	TABLELOCK_ERR_STATEMENT_TIMEOUT,     /* statement interrupted after timeout_ms */
	TABLELOCK_ERR_BAD_PARAMS,            /* params do not fit the placeholders */
	TABLELOCK_ERR_LEASE_LOST,            /* the lease's MySQL session died */
	TABLELOCK_ERR_LEASE_EXPIRED,         /* the lease's TTL ran out */
	TABLELOCK_ERR_LEASE_REVOKED,         /* an admin revoked the lease */
	TABLELOCK_ERR_UNAUTHENTICATED,       /* TCP connection not authenticated */
	TABLELOCK_ERR_FORBIDDEN,             /* the access rules refuse this */
	TABLELOCK_ERR_TOO_MANY_CLIENTS,      /* the daemon's max_clients reached */
	TABLELOCK_ERR_SHUTTING_DOWN,         /* the daemon is stopping */

	TABLELOCK_ERR_CONNECT = 100, /* cannot connect: see sys_errno */
	TABLELOCK_ERR_TIMEOUT,       /* timeout_ms ran out; the connection is closed */
	TABLELOCK_ERR_CLOSED,        /* the connection is gone (or was closed) */
	TABLELOCK_ERR_PROTOCOL,      /* the answer made no sense, or the peer is not tablelockd */
	TABLELOCK_ERR_USAGE,         /* a bad argument to this library */
	TABLELOCK_ERR_UNKNOWN        /* a code newer than this library: see code_name */
};

struct tablelock_error {
	enum tablelock_code code;
	char code_name[32]; /* the wire name ("lock_timeout") or the library's ("timeout") */
	char message[1024];
	unsigned int mysql_errno; /* 0 unless a MySQL error */
	char sqlstate[6];         /* "" unless a MySQL error */
	long statement;           /* statements of acquire, commit, transact: the failing
	                             one's index (also for a usage error); else -1 */
	uint64_t lease;           /* for lease_expired, _lost, _revoked: the lease; else 0 */
	int sys_errno;            /* for CONNECT, CLOSED, TIMEOUT: the errno, if any; else 0 */
};

/* An event the daemon pushed: the lease ended without being asked to. */
struct tablelock_event {
	enum tablelock_code code; /* TABLELOCK_ERR_LEASE_EXPIRED, _LOST or _REVOKED */
	char name[32];            /* "lease_expired", "lease_lost", "lease_revoked" */
	uint64_t lease;
	char reason[256]; /* lease_lost: what happened to the session; else "" */
};

/* One table of a lease. */
struct tablelock_table {
	const char *name;  /* "t1" (the daemon's database) or "db.t1" */
	const char *alias; /* NULL, or the alias the statements use (self-joins) */
	bool write;        /* WRITE lock; else READ */
};

/* What to lock, for acquire and transact. */
struct tablelock_lock {
	const struct tablelock_table *tables;
	size_t ntables;
	int64_t wait_ms; /* longest wait for the tables; 0 tries once; TABLELOCK_DEFAULT */
	int64_t ttl_ms;  /* lease lifetime unless renewed; TABLELOCK_DEFAULT */
};

/* Types of parameters and result cells. */
enum tablelock_type {
	TABLELOCK_NULL,
	TABLELOCK_BOOL,
	TABLELOCK_INT,  /* int64 */
	TABLELOCK_UINT, /* parameters only: above INT64_MAX it is sent as a decimal string */
	TABLELOCK_DOUBLE,
	TABLELOCK_STRING, /* UTF-8 text; DECIMAL, dates and big unsigned arrive as this */
	TABLELOCK_BINARY  /* results only: bytes (BLOB, BINARY, …) */
};

/* A value bound to one '?' of a statement, safely (never spliced as SQL). */
struct tablelock_param {
	enum tablelock_type type;
	union {
		bool b;
		int64_t i;
		uint64_t u;
		double d;
		struct {
			const char *ptr; /* valid UTF-8 */
			size_t len;
		} s;
	} v;
};

/* Parameter constructors (plain assignments, so C++ can use them too). */
static inline struct tablelock_param
tablelock_null(void)
{
	struct tablelock_param p;
	memset(&p, 0, sizeof(p));
	p.type = TABLELOCK_NULL;
	return p;
}

static inline struct tablelock_param
tablelock_bool(bool b)
{
	struct tablelock_param p = tablelock_null();
	p.type = TABLELOCK_BOOL;
	p.v.b = b;
	return p;
}

static inline struct tablelock_param
tablelock_int(int64_t i)
{
	struct tablelock_param p = tablelock_null();
	p.type = TABLELOCK_INT;
	p.v.i = i;
	return p;
}

static inline struct tablelock_param
tablelock_uint(uint64_t u)
{
	struct tablelock_param p = tablelock_null();
	p.type = TABLELOCK_UINT;
	p.v.u = u;
	return p;
}

static inline struct tablelock_param
tablelock_double(double d)
{
	struct tablelock_param p = tablelock_null();
	p.type = TABLELOCK_DOUBLE;
	p.v.d = d;
	return p;
}

/* s must stay valid until the call that uses the parameter returns. */
static inline struct tablelock_param
tablelock_strn(const char *s, size_t len)
{
	struct tablelock_param p = tablelock_null();
	p.type = TABLELOCK_STRING;
	p.v.s.ptr = s;
	p.v.s.len = len;
	return p;
}

static inline struct tablelock_param
tablelock_str(const char *s)
{
	return tablelock_strn(s, strlen(s));
}

/* One statement of a transact, or of an acquire or commit (_with). */
struct tablelock_statement {
	const char *sql;
	const struct tablelock_param *params;
	size_t nparams;
};

struct tablelock;
struct tablelock_result;

/* The library's version ("0.1.0"), for checking at run time. */
const char *tablelock_version(void);
/* "lock_timeout", "timeout", …: never NULL. */
const char *tablelock_code_name(enum tablelock_code code);

/* Connects to address: "unix:/path", "/path" (or any name with a '/'),
 * or "tcp:host:port" (IPv6 as tcp:[::1]:7000). NULL means
 * TABLELOCK_DEFAULT_SOCKET. Returns NULL on failure, with *err filled in
 * when err is not NULL (TABLELOCK_ERR_CONNECT and the errno, or USAGE for
 * an address that cannot be parsed). */
struct tablelock *tablelock_connect(const char *address, int timeout_ms,
                                    struct tablelock_error *err);
/* Closes the connection (the daemon rolls back a lease still held) and
 * frees the handle. NULL is allowed. */
void tablelock_close(struct tablelock *tl);

/* Why the last failed call failed. Valid until the next call. */
const struct tablelock_error *tablelock_last_error(const struct tablelock *tl);
/* The last response line as the daemon sent it (JSON, without '\n'), or
 * NULL. Valid until the next call. For logs and for tools that want the
 * raw answer. */
const char *tablelock_last_response(const struct tablelock *tl);
/* The socket, readable when the daemon sent something (an event); for
 * callers with their own poll loop, which then call tablelock_poll(tl, …, 0).
 * -1 once the connection is closed. */
int tablelock_fd(const struct tablelock *tl);
/* The address as given to tablelock_connect (or the default). */
const char *tablelock_address(const struct tablelock *tl);
/* The lease this handle holds, or 0. */
uint64_t tablelock_lease(const struct tablelock *tl);
/* The fence of the last acquire or transact that succeeded, or 0: a number
 * MySQL minted right after granting LOCK TABLES (UUID_SHORT()), in the same
 * round trip. Successive holders of a table get strictly increasing fences,
 * across every daemon on that MySQL server and across restarts; see
 * PROTOCOL.md §7 for its limits. Pass it to what the lease protects, as a
 * fencing token. */
uint64_t tablelock_fence(const struct tablelock *tl);
/* ttl_ms the daemon granted at the last acquire or renew, or 0. */
int64_t tablelock_lease_ttl(const struct tablelock *tl);

/* Returns 1 and fills *ev (when not NULL) if an event is pending or
 * arrives within timeout_ms, 0 if none did, -1 if the connection failed.
 * An event returned here is consumed: no later call reports it. */
int tablelock_poll(struct tablelock *tl, struct tablelock_event *ev, int timeout_ms);

/* ping: the daemon is up and answering. */
int tablelock_ping(struct tablelock *tl, int timeout_ms);
/* Names this client in the daemon's status (client may be NULL), and
 * authenticates with token on TCP (NULL on Unix sockets). */
int tablelock_hello(struct tablelock *tl, const char *client, const char *token, int timeout_ms);
/* The daemon's version from the last hello, or NULL. */
const char *tablelock_server_version(const struct tablelock *tl);

/* Takes a lease on lock's tables, waiting up to lock->wait_ms. On success
 * *lease (when not NULL) is its id: unique and strictly increasing, also
 * across daemon restarts, so usable as a fencing token. */
int tablelock_acquire(struct tablelock *tl, const struct tablelock_lock *lock, uint64_t *lease,
                      int timeout_ms);
/* Runs one statement under the lease. '?' placeholders take params in
 * order. On success *result (when result is not NULL) is a new result for
 * the caller to free; on failure it is NULL. The lease stays held after a
 * statement error (check with tablelock_lease()). */
int tablelock_query(struct tablelock *tl, const char *sql, const struct tablelock_param *params,
                    size_t nparams, struct tablelock_result **result, int timeout_ms);
/* COMMIT, then the lease ends (also when it fails). TABLELOCK_ERR_COMMIT_UNKNOWN:
 * the MySQL session, or the connection to the daemon, died after COMMIT was
 * sent: whether it committed is not known. */
int tablelock_commit(struct tablelock *tl, int timeout_ms);
/* ROLLBACK, then the lease ends. */
int tablelock_rollback(struct tablelock *tl, int timeout_ms);
/* Resets the lease's expiry to ttl_ms from now (TABLELOCK_DEFAULT: keep
 * the lease's current TTL). */
int tablelock_renew(struct tablelock *tl, int64_t ttl_ms, int timeout_ms);
/* Acquire, the statements in order, commit, in one round trip; needs no
 * lease and leaves none. results, when not NULL, has room for nstatements
 * pointers and gets one new result each (free them); all NULL on failure.
 * The first failing statement rolls everything back; its index is in
 * tablelock_last_error()->statement. As with commit, a connection lost after
 * sending gives TABLELOCK_ERR_COMMIT_UNKNOWN. */
int tablelock_transact(struct tablelock *tl, const struct tablelock_lock *lock,
                       const struct tablelock_statement *statements, size_t nstatements,
                       struct tablelock_result **results, uint64_t *lease, int timeout_ms);
/* acquire, then the statements in order, in the same MySQL round trip as
 * LOCK TABLES; the lease stays held (commit or roll back as usual).
 * results, when not NULL, has room for nstatements pointers and gets one
 * new result each (free them); all NULL on failure. A result the daemon
 * would not send (over max_rows or max_result_bytes) is a result whose
 * tablelock_result_error() says so; the statement did run.
 * If a statement fails (MySQL error, statement_timeout, …) nothing is held:
 * everything is rolled back and unlocked, and
 * tablelock_last_error()->statement is its index. A statement refused by
 * the firewall (or bad params) is refused before anything is locked, with
 * its index too. nstatements 0 is tablelock_acquire(). */
int tablelock_acquire_with(struct tablelock *tl, const struct tablelock_lock *lock,
                           const struct tablelock_statement *statements, size_t nstatements,
                           struct tablelock_result **results, uint64_t *lease, int timeout_ms);
/* The statements in order, then the commit and unlock, in one round trip.
 * results as for tablelock_acquire_with. On success the lease is over and
 * everything is committed. If a statement fails, everything is rolled back
 * and the lease is over; .statement is its index. If the daemon refuses a
 * statement before running anything (TABLELOCK_ERR_STATEMENT_NOT_ALLOWED,
 * _BAD_PARAMS, _BAD_REQUEST; or the library's USAGE), nothing ran and the
 * lease is still held: fix it and commit again, or roll back. Check with
 * tablelock_lease(). Commit's unknown outcomes apply as for
 * tablelock_commit(). nstatements 0 is tablelock_commit(). */
int tablelock_commit_with(struct tablelock *tl, const struct tablelock_statement *statements,
                          size_t nstatements, struct tablelock_result **results, int timeout_ms);

/* Ends another connection's lease (rolled back; its holder gets
 * lease_revoked). Needs the admin right, else TABLELOCK_ERR_FORBIDDEN. */
int tablelock_revoke(struct tablelock *tl, uint64_t lease, int timeout_ms);

/* Pipelining: requests queued now, written together, answered in order.
 *
 *   tablelock_queue_acquire(tl, &lock, reads, 2);
 *   tablelock_queue_commit(tl, writes, 1);
 *   tablelock_receive(tl, read_results, 2, &lease, 5000);   (the acquire's)
 *   tablelock_receive(tl, NULL, 0, NULL, 5000);             (the commit's)
 *
 * Contract:
 * - A queue call only encodes the request (its arguments may be freed at
 *   once) and returns -1 only for a usage error, which queues nothing.
 *   Nothing is written until tablelock_flush() or tablelock_receive().
 * - The daemon handles the requests strictly in order, each as if the
 *   previous one had fully completed, and answers in order: each
 *   tablelock_receive() returns the answer to the oldest request not yet
 *   received, as 0 or -1 exactly as the synchronous call would have
 *   (tablelock_last_error(), lease, TTL and events alike). A request that
 *   fails does not stop the ones behind it: an acquire that times out
 *   makes the queries and commit queued after it fail with no_lease.
 * - results (room for nresults pointers, may be NULL) gets the answer's
 *   results: one per statement of an acquire, commit or transact, one for
 *   a query, none for a rollback; the rest of the slots are NULL. *lease
 *   (when not NULL) is the lease the answer names: granted (acquire),
 *   ended (commit, rollback), used (transact); else 0.
 * - Events, as for synchronous calls: when nothing is in flight, a
 *   lease-ending event that arrived since the last answer is reported by
 *   the flush (or the first receive) instead of writing anything, and the
 *   queued requests are dropped unanswered (tablelock_pending() is 0).
 *   Events arriving between answers explain a later no_lease answer.
 * - When the connection fails or a timeout closes it, each request still
 *   pending gets its own failure from tablelock_receive(): CLOSED (or
 *   TIMEOUT for the one waited on), and COMMIT_UNKNOWN for a commit or
 *   transact that may have been written.
 * - While answers are pending, synchronous calls and tablelock_poll()
 *   fail with TABLELOCK_ERR_USAGE and send nothing: receive them first.
 * - Read answers promptly: the daemon closes a connection that leaves more
 *   than its max_output_bytes unread. */
int tablelock_queue_acquire(struct tablelock *tl, const struct tablelock_lock *lock,
                            const struct tablelock_statement *statements, size_t nstatements);
int tablelock_queue_query(struct tablelock *tl, const char *sql,
                          const struct tablelock_param *params, size_t nparams);
int tablelock_queue_commit(struct tablelock *tl, const struct tablelock_statement *statements,
                           size_t nstatements);
int tablelock_queue_rollback(struct tablelock *tl);
int tablelock_queue_transact(struct tablelock *tl, const struct tablelock_lock *lock,
                             const struct tablelock_statement *statements, size_t nstatements);
/* Writes every queued request now (one write when the socket takes it),
 * reading what the daemon answers meanwhile. Optional: tablelock_receive()
 * flushes too. */
int tablelock_flush(struct tablelock *tl, int timeout_ms);
/* The answer to the oldest pending request (see the contract above);
 * TABLELOCK_ERR_USAGE when none is pending. timeout_ms bounds this one
 * answer: give it more than the request's wait_ms. */
int tablelock_receive(struct tablelock *tl, struct tablelock_result **results, size_t nresults,
                      uint64_t *lease, int timeout_ms);
/* Requests queued or written whose answers are not received yet. */
size_t tablelock_pending(const struct tablelock *tl);

/* A query result. Rows and columns count from 0; an index out of range
 * reads as NULL. */
size_t tablelock_result_ncolumns(const struct tablelock_result *r); /* 0: no result set */
const char *tablelock_result_column_name(const struct tablelock_result *r, size_t col);
/* MySQL's type as the daemon names it: "int", "varchar", "decimal", "blob", … */
const char *tablelock_result_column_type(const struct tablelock_result *r, size_t col);
size_t tablelock_result_nrows(const struct tablelock_result *r);
enum tablelock_type tablelock_result_type(const struct tablelock_result *r, size_t row, size_t col);
bool tablelock_result_is_null(const struct tablelock_result *r, size_t row, size_t col);
/* The value as text (integers in decimal; BINARY cells as their raw bytes,
 * so use *len), NUL-terminated; NULL for SQL NULL. len may be NULL. */
const char *tablelock_result_text(const struct tablelock_result *r, size_t row, size_t col,
                                  size_t *len);
/* Typed access: 0 and *out set, or -1 when the cell is NULL or does not
 * hold a value of that type exactly (e.g. "12.5" as an int64). Strings of
 * digits (DECIMAL, big unsigned) convert when they fit. */
int tablelock_result_int64(const struct tablelock_result *r, size_t row, size_t col, int64_t *out);
int tablelock_result_uint64(const struct tablelock_result *r, size_t row, size_t col,
                            uint64_t *out);
int tablelock_result_double(const struct tablelock_result *r, size_t row, size_t col, double *out);
uint64_t tablelock_result_affected_rows(const struct tablelock_result *r);
uint64_t tablelock_result_insert_id(const struct tablelock_result *r);
unsigned int tablelock_result_warnings(const struct tablelock_result *r);
/* NULL for a result; for a results[] entry the daemon could not send (the
 * statement ran, its result was over max_rows or max_result_bytes), the
 * error (TABLELOCK_ERR_RESULT_TOO_LARGE), and the result has no rows. */
const struct tablelock_error *tablelock_result_error(const struct tablelock_result *r);
void tablelock_result_free(struct tablelock_result *r);

/* The daemon's status: every lease (held and waiting), the pool, totals.
 * Numbers the daemon did not send (or sent as null) are -1; strings NULL.
 * Without the admin right, other clients' leases show only their tables,
 * state and age: lease 0, other fields NULL or -1. */
struct tablelock_lease_status {
	uint64_t lease;     /* 0 when hidden */
	const char *client; /* name from hello, or NULL */
	long uid;           /* Unix peer, else -1 */
	long pid;
	const char *address; /* TCP peer "host:port", else NULL */
	const char **read;   /* "db.t" or "db.t AS a" */
	size_t nread;
	const char **write;
	size_t nwrite;
	const char *state; /* "waiting" (daemon's queue), "locking" (in MySQL), "held" */
	int64_t age_ms;    /* since the request arrived */
	int64_t held_ms;   /* since LOCK TABLES succeeded */
	int64_t expires_in_ms;
	int64_t mysql_thread; /* the holding session's connection id */
	bool transact;
	uint64_t fence; /* MySQL's fence for this lease once locked, else 0 */
	/* locking: the sessions outside the daemon's pool that hold it up
	 * (PROTOCOL.md, status), or why MySQL could not say (NULL when it
	 * did, or the lease is not locking, or is someone else's). */
	struct tablelock_blocker *blocked_by;
	size_t nblocked_by;
	const char *blockers_unavailable;
};

/* A MySQL session holding, or queued ahead with, a conflicting lock. */
struct tablelock_blocker {
	int64_t mysql_thread; /* the id KILL takes */
	const char *user, *host, *db, *command, *state; /* NULL when MySQL gave none */
	int64_t time_s;       /* in its current state; -1 unknown */
	const char *info;     /* its statement, first 200 characters, or NULL */
	const char *lock_type;  /* "SHARED_WRITE", "BACKUP_FTWRL2", … */
	const char *lock_table; /* "db.table", or NULL for a backup lock */
	bool pending;           /* queued for the lock, not holding it yet */
};

struct tablelock_status {
	struct tablelock_lease_status *leases; /* in lease id order (= queue order) */
	size_t nleases;
	struct {
		int64_t size, idle, busy, connecting, broken;
	} pool;
	struct {
		int64_t acquired, committed, rolled_back, expired, released_on_disconnect,
		    lock_timeouts, revoked, lost, shutdown;
	} totals;
	int64_t clients;
	int64_t waiting;
	int64_t uptime_ms;
};

int tablelock_status(struct tablelock *tl, struct tablelock_status **status, int timeout_ms);
void tablelock_status_free(struct tablelock_status *status);

#ifdef __cplusplus
}
#endif

#endif
