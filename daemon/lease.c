/* Leases: a client's hold on tables, from the queue to the final unlock.
 *
 * One state machine. lease_enter_state() alone moves a lease; it checks
 * lease_legal[] below and starts the MySQL work of the state it enters.
 * Every MySQL result comes back through lease_session_done(), every ending
 * goes through lease_finish().
 *
 *  state         MySQL work started on entry              legal next states
 *  ------------  ---------------------------------------  ---------------------------------
 *  WAITING       none: the daemon's queue, then a session LOCKING ENDED
 *  LOCKING       one batch: [settings;] LOCK TABLES       CANCELLING HELD COMMITTING
 *                [; the request's statements]             ROLLING_BACK RELEASING ENDED
 *                [; queries pipelined behind it]          (COMMITTING: a transact whose
 *                [; UNLOCK TABLES: transact, or a         results are checked before
 *                pipelined commit]                        its commit)
 *  CANCELLING    KILL QUERY at the batch (wait ran out,   ROLLING_BACK RELEASING ENDED
 *                statement timeout, client gone, revoke,  HELD (too late: a pipelined
 *                shutdown)                                commit went through)
 *  HELD          none (the TTL runs)                      RUNNING COMMITTING ROLLING_BACK
 *                                                         RELEASING ENDED
 *  RUNNING       the statement, or renew's DO 0           HELD INTERRUPTING ENDED
 *  INTERRUPTING  KILL QUERY at the statement (timeout,    HELD ROLLING_BACK RELEASING ENDED
 *                expiry, client gone, revoke, shutdown)
 *  COMMITTING    [statements;] UNLOCK TABLES: one batch   ROLLING_BACK RELEASING ENDED
 *  ROLLING_BACK  ROLLBACK; UNLOCK TABLES, answer after    RELEASING ENDED
 *  RELEASING     ROLLBACK; UNLOCK TABLES, client gone     ENDED
 *  ENDED         none: daemon locks freed, session back   (none)
 *                to the pool (reset only if the lease
 *                left session state), lease freed
 *
 * Ending (lease_finish), always in this order: record why (the first reason
 * wins, but a commit that happened is the truth); unlock in MySQL if the lease may hold locks there (ROLLING_BACK
 * when the client awaits an answer, RELEASING when it does not); detach
 * from the client; answer or push the event; return the session; free the
 * tables in the daemon. A client is answered only once its lease's tables
 * are free, and its next request is never run from in here: client.c
 * schedules it (client_respond).
 *
 * In CANCELLING and INTERRUPTING, l->end tells why the kill was sent: a
 * reason to end, or none for a statement timeout. */
#include "daemon/lease.h"

#include <event2/event.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/client.h"
#include "daemon/identity.h"
#include "daemon/leaseid.h"
#include "daemon/lockmgr.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/pool.h"
#include "daemon/server.h"
#include "daemon/session.h"
#include "daemon/sqltext.h"
#include "proto/proto_response.h"
#include "proto/proto_table.h"
#include "util/buf.h"
#include "util/monotime.h"
#include "util/plural.h"
#include "util/xmalloc.h"

/* The client's request on a lease, while it runs. */
enum lease_op { LEASE_OP_NONE, LEASE_OP_QUERY, LEASE_OP_RENEW };

struct lease {
	TAILQ_ENTRY(lease) entry;
	uint64_t id;
	enum lease_state state;
	enum lease_end end;
	struct client *client;	/* to answer and notify; NULL once detached */
	bool transact;

	struct proto_table *tables;
	size_t ntables;
	json_t *request_root;	/* keeps the statements below alive */
	struct proto_statement *statements; /* acquire's or transact's */
	size_t nstatements;

	struct lockmgr_req *lock;
	struct pool_waiter waiter;
	struct session *session;
	struct event *timer;	/* the wait deadline, then the TTL */
	struct event *statement_timer;
	int64_t wait_ms;
	int64_t ttl_ms;		/* the TTL now in force */
	int64_t granted_ttl_ms;	/* the TTL granted: renew without ttl_ms */
	uint64_t created_us;
	uint64_t locking_us;	/* the LOCK TABLES batch was sent */
	uint64_t held_us;	/* LOCK TABLES succeeded */
	uint64_t fence;		/* MySQL's UUID_SHORT() right after LOCK TABLES; 0 before */
	uint64_t expires_us;

	enum lease_op op;	/* RUNNING, INTERRUPTING: what runs */
	size_t batch_user;	/* the request's own statements in the batch in flight */
	size_t riders;		/* queries read ahead and sent along (client_lookahead) */
	bool rider_commit;	/* ... and a commit read ahead: the batch ends with it */
	size_t batch_n;		/* user statements composed into the batch */
	bool *batch_hidden;	/* [batch_n]: a DO sent as SELECT, its row dropped */
	size_t batch_hidden_cap;
	bool batch_reads;	/* a statement in it may return rows */
	json_t *results;	/* results kept for the answer of a commit to come */
	bool batch_commits;	/* the batch in flight ends with UNLOCK TABLES */
	bool dirty;		/* may have left session state: reset after */
	bool accounted;		/* counted in totals and metrics */
	json_t *answer;		/* ROLLING_BACK: sent once the tables are free */
	char lost_reason[512];	/* why the MySQL session was lost, for the event */
	struct identity_count *waiting_count; /* counted as waiting for its identity */
	struct buf sql;
};

static const char *const lease_state_names[LEASE__STATE_COUNT] = {
	[LEASE_WAITING] = "waiting",
	[LEASE_LOCKING] = "locking",
	[LEASE_CANCELLING] = "cancelling",
	[LEASE_HELD] = "held",
	[LEASE_RUNNING] = "running",
	[LEASE_INTERRUPTING] = "interrupting",
	[LEASE_COMMITTING] = "committing",
	[LEASE_ROLLING_BACK] = "rolling back",
	[LEASE_RELEASING] = "releasing",
	[LEASE_ENDED] = "ended",
};

#define TO(s) (1u << (s))
/* lease_legal[from] has a bit for each state a lease may go to. */
static const unsigned lease_legal[LEASE__STATE_COUNT] = {
	[LEASE_WAITING] = TO(LEASE_LOCKING) | TO(LEASE_ENDED),
	[LEASE_LOCKING] = TO(LEASE_CANCELLING) | TO(LEASE_HELD) | TO(LEASE_COMMITTING) |
			  TO(LEASE_ROLLING_BACK) | TO(LEASE_RELEASING) | TO(LEASE_ENDED),
	/* CANCELLING -> HELD: the kill came too late, and a pipelined commit
	 * in the batch went through (lease_locking_done). */
	[LEASE_CANCELLING] = TO(LEASE_HELD) | TO(LEASE_ROLLING_BACK) | TO(LEASE_RELEASING) |
			     TO(LEASE_ENDED),
	[LEASE_HELD] = TO(LEASE_RUNNING) | TO(LEASE_COMMITTING) | TO(LEASE_ROLLING_BACK) |
		       TO(LEASE_RELEASING) | TO(LEASE_ENDED),
	[LEASE_RUNNING] = TO(LEASE_HELD) | TO(LEASE_INTERRUPTING) | TO(LEASE_ENDED),
	[LEASE_INTERRUPTING] = TO(LEASE_HELD) | TO(LEASE_ROLLING_BACK) | TO(LEASE_RELEASING) |
			       TO(LEASE_ENDED),
	[LEASE_COMMITTING] = TO(LEASE_ROLLING_BACK) | TO(LEASE_RELEASING) | TO(LEASE_ENDED),
	[LEASE_ROLLING_BACK] = TO(LEASE_RELEASING) | TO(LEASE_ENDED),
	[LEASE_RELEASING] = TO(LEASE_ENDED),
	[LEASE_ENDED] = 0,
};
#undef TO

/* Each ending's names (lease.h): for the log, the metrics outcome label and
 * the status totals key. */
static const struct {
	const char *log;
	const char *outcome;
	const char *total;
} lease_end_names[LEASE_END__COUNT] = {
	[LEASE_END_NONE] = {"none", "failed", NULL},
	[LEASE_END_COMMIT] = {"committed", "committed", "committed"},
	[LEASE_END_ROLLBACK] = {"rolled back", "rolled_back", "rolled_back"},
	[LEASE_END_EXPIRED] = {"expired", "expired", "expired"},
	[LEASE_END_DISCONNECT] = {"client disconnected", "disconnected", "released_on_disconnect"},
	[LEASE_END_LOCK_TIMEOUT] = {"lock timeout", "lock_timeout", "lock_timeouts"},
	[LEASE_END_REVOKED] = {"revoked", "revoked", "revoked"},
	[LEASE_END_LOST] = {"MySQL session lost", "lost", "lost"},
	[LEASE_END_SHUTDOWN] = {"daemon shutdown", "shutdown", "shutdown"},
	[LEASE_END_FAILED] = {"not acquired", "failed", NULL},
};

/* A LOCK TABLES that may wait longer than timeout_ms (the sessions'
 * max_statement_time, meant for the user's statements) is exempt from it.
 * The commit and the rollback are not prefixed: parsing the exemption costs
 * MySQL more than they do, and a commit interrupted by it is answered
 * commit_unknown (lease_commit_error), never "not committed". */
#define LEASE_OWN "SET STATEMENT max_statement_time=0 FOR "
/* How long after timeout_ms a statement that MySQL did not stop is killed. */
#define LEASE_KILL_GRACE_MS 1000
/* How often a kill is sent again while what it aims at still runs. */
#define LEASE_REKILL_MS 100
static const char lease_rollback_sql[] = "ROLLBACK;UNLOCK TABLES";
static const char lease_unlock_sql[] = "UNLOCK TABLES";
/* The fence: taken in the LOCK TABLES batch, right after the lock is
 * granted, so successive holders of a table get increasing numbers from
 * the one server that orders them (MariaDB KB "UUID_SHORT": (server_id &
 * 255) << 56 | server start time in seconds << 24 | a counter). */
static const char lease_fence_sql[] = "\n;SELECT UUID_SHORT()";
/* The LOCK TABLES batch: r[0] LOCK TABLES, r[1] the fence, then the rest. */
#define LEASE_LOCK_HEAD 2

static void lease_enter_state(struct lease *l, enum lease_state state);
static void lease_finish(struct lease *l, enum lease_end why, json_t *answer, bool unlocked);
static void lease_free(struct lease *l);
static void lease_log_end(const struct lease *l);
static void lease_account(struct lease *l);
static void lease_granted(struct lease *l);
static void lease_uncount_waiting(struct lease *l);
static void lease_session_ready(struct pool_waiter *w, struct session *s);
static void lease_session_done(struct session *s, struct session_result *r, size_t n, void *arg);
static void lease_locking_done(struct lease *l, struct session_result *r, size_t n);
static void lease_running_done(struct lease *l, struct session_result *r);
static void lease_committing_done(struct lease *l, struct session_result *r, size_t n);
static void lease_rollback_done(struct lease *l, struct session_result *r, size_t n);
static void lease_session_lost(void *arg, const char *reason);
static void lease_timer_cb(evutil_socket_t fd, short what, void *arg);
static void lease_statement_timer_cb(evutil_socket_t fd, short what, void *arg);
static void lease_arm(struct event *ev, int64_t ms);
static void lease_detach(struct lease *l);
static void lease_notify(struct lease *l);
static json_t *lease_error(struct lease *l, enum proto_error code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static json_t *lease_result_error(struct lease *l, const struct session_result *r, long statement);
static json_t *lease_end_answer(struct lease *l);
static json_t *lease_end_answer_for(struct lease *l, enum lease_end why);
static json_t *lease_result_json(const struct session_result *r);
static json_t *lease_results_json(const struct lease *l, size_t first, const struct session_result *r,
				  size_t n);
static void lease_note_results(struct lease *l, const struct session_result *r, size_t n);
static bool lease_failed(const struct session_result *r);
static json_t *lease_commit_error(struct lease *l, const struct session_result *r);
static bool lease_limited(void);
static json_t *lease_too_large(struct lease *l, const struct session_result *r, size_t n);
static void lease_commit_after(struct lease *l, enum lease_state from);
static enum proto_error lease_end_error(enum lease_end end);
static bool lease_prepare_statement(struct client *c, const struct proto_statement *st,
				    long index, struct session *s, struct buf *out, json_t **err);
static bool lease_append_statements(struct lease *l, struct buf *out,
				    const struct proto_statement *st, size_t n, bool indexed,
				    json_t **err);
static void lease_batch_begin(struct lease *l);
static void lease_take_riders(struct lease *l, struct buf *out);
static void lease_riders_done(struct lease *l, json_t *answer, struct session_result *r,
			      size_t n);
static void lease_send(struct lease *l, size_t n, const struct session_limits *lim);

const char *
lease_state_name(enum lease_state state)
{
	return (unsigned)state < LEASE__STATE_COUNT ? lease_state_names[state] : "?";
}

const char *
lease_end_name(enum lease_end end)
{
	return (unsigned)end < LEASE_END__COUNT ? lease_end_names[end].log : "?";
}

const char *
lease_end_outcome(enum lease_end end)
{
	return (unsigned)end < LEASE_END__COUNT ? lease_end_names[end].outcome : "failed";
}

const char *
lease_end_total(enum lease_end end)
{
	return (unsigned)end < LEASE_END__COUNT ? lease_end_names[end].total : NULL;
}

uint64_t
lease_id(const struct lease *l)
{
	return l->id;
}

enum lease_state
lease_get_state(const struct lease *l)
{
	return l->state;
}

enum lease_phase
lease_get_phase(const struct lease *l)
{
	switch (l->state) {
	case LEASE_WAITING:
		return LEASE_PHASE_WAITING;
	case LEASE_LOCKING:
	case LEASE_CANCELLING:
		return LEASE_PHASE_LOCKING;
	case LEASE_HELD:
	case LEASE_RUNNING:
	case LEASE_INTERRUPTING:
	case LEASE_COMMITTING:
	case LEASE_ROLLING_BACK:
		return LEASE_PHASE_HELD;
	case LEASE_RELEASING:
	case LEASE_ENDED:
	case LEASE__STATE_COUNT:
		break;
	}
	return LEASE_PHASE_ENDING;
}

struct client *
lease_client(const struct lease *l)
{
	return l->client;
}

bool
lease_is_write(const struct lease *l)
{
	for (size_t i = 0; i < l->ntables; i++)
		if (l->tables[i].write)
			return true;
	return false;
}

uint64_t
lease_held_since_us(const struct lease *l)
{
	return l->held_us;
}

struct lease *
lease_first(void)
{
	return TAILQ_FIRST(&server.leases);
}

struct lease *
lease_next(const struct lease *l)
{
	return TAILQ_NEXT(l, entry);
}

struct lease *
lease_prev(const struct lease *l)
{
	return TAILQ_PREV(l, lease_list, entry);
}

struct lease *
lease_find(uint64_t id)
{
	struct lease *l;
	TAILQ_FOREACH(l, &server.leases, entry)
	{
		if (l->id == id)
			return l;
	}
	return NULL;
}

/* Counts how the lease ended (once), for status and metrics alike. */
static void
lease_account(struct lease *l)
{
	uint64_t now = monotime_us();

	if (l->accounted)
		return;
	l->accounted = true;
	server.totals.ended[l->end]++;
	if (l->held_us != 0)
		metrics_observe(&metrics.hold, (double)(now - l->held_us) / 1e6);
}

/* The only way a lease changes state. An illegal transition is a bug:
 * logged, and fatal unless built with NDEBUG (tests run without it). */
static void
lease_enter_state(struct lease *l, enum lease_state state)
{
	enum lease_state from = l->state;

	if (!(lease_legal[from] & (1u << state))) {
		log_error("lease %llu: illegal transition %s -> %s", (unsigned long long)l->id,
			  lease_state_name(from), lease_state_name(state));
#ifndef NDEBUG
		abort();
#endif
	}
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_debug("lease %llu: %s -> %s", (unsigned long long)l->id,
			  lease_state_name(from), lease_state_name(state));
	l->state = state;
	switch (state) {
	case LEASE_CANCELLING:
	case LEASE_INTERRUPTING:
		/* Only a LOCK TABLES that has not answered, or a lone
		 * statement, is killed (see session_killable); MySQL bounds
		 * the rest itself, each statement with max_statement_time. */
		if (session_killable(l->session)) {
			pool_kill_query(server.pool, l->session);
			/* A kill that reaches MySQL before the statement has
			 * started is lost: send it again until the batch ends. */
			lease_arm(l->statement_timer, LEASE_REKILL_MS);
		}
		break;
	case LEASE_ROLLING_BACK:
	case LEASE_RELEASING:
		if (from != LEASE_ROLLING_BACK) {
			/* From ROLLING_BACK (the client left) it already runs. */
			evtimer_del(l->timer);
			evtimer_del(l->statement_timer);
			l->batch_user = 0;
			l->batch_commits = false;
			session_query(l->session, lease_rollback_sql, sizeof(lease_rollback_sql) - 1,
				      2, false, NULL, lease_session_done, l);
		}
		break;
	case LEASE_ENDED:
		evtimer_del(l->timer);
		evtimer_del(l->statement_timer);
		break;
	case LEASE_WAITING:
	case LEASE_LOCKING:
	case LEASE_HELD:
	case LEASE_RUNNING:
	case LEASE_COMMITTING:
	case LEASE__STATE_COUNT:
		/* Their work needs what the caller composed: lease_send(). */
		break;
	}
}

/* Sends l->sql, composed by the caller (n statements), as the batch of
 * the state just entered (LOCKING, RUNNING, COMMITTING). */
static void
lease_send(struct lease *l, size_t n, const struct session_limits *lim)
{
	/* LOCK TABLES, first in its batch, may wait: a kill may stop it. */
	session_query(l->session, l->sql.data, l->sql.len, n, l->state == LEASE_LOCKING, lim,
		      lease_session_done, l);
}

static void
lease_arm(struct event *ev, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	evtimer_add(ev, &tv);
}

/* Checks one statement and binds its params into out: the firewall on the
 * client's text, the binding, and the firewall again on the bound text
 * (cheap, and it keeps a binding bug from becoming a bypass). With s NULL
 * (before anything is locked) the binding is a dry run. On refusal returns
 * false with the error answer in *err (with "statement": index when
 * index >= 0), or NULL when c is gone. */
static bool
lease_prepare_statement(struct client *c, const struct proto_statement *st, long index,
			struct session *s, struct buf *out, json_t **err)
{
	enum proto_error code = PROTO_OK;
	char why[256];

	buf_reset(out);
	if (sqltext_firewall(st->sql, st->sql_len, why, sizeof(why)) != SQLTEXT_ALLOW)
		code = PROTO_ERR_STATEMENT_NOT_ALLOWED;
	else if (!sqltext_bind(st->sql, st->sql_len, st->params,
			       s != NULL ? session_escape : sqltext_escape_backslash, s, out, why,
			       sizeof(why)))
		code = PROTO_ERR_BAD_PARAMS;
	else if (sqltext_firewall(out->data, out->len, why, sizeof(why)) != SQLTEXT_ALLOW)
		code = PROTO_ERR_STATEMENT_NOT_ALLOWED;
	if (code == PROTO_OK)
		return true;
	if (code == PROTO_ERR_STATEMENT_NOT_ALLOWED)
		metrics.firewall_refusals++;
	*err = NULL;
	if (c == NULL)
		return false;
	*err = client_error(c, code, why);
	if (index >= 0)
		json_object_set_new(*err, "statement", json_integer(index));
	return false;
}

/* Appends n firewalled, bound statements to l->sql, each after a "\n;"
 * (the newline ends a trailing "-- " comment; sqltext_statement_length()
 * drops the statement's own trailing ';'), and notes whether they may leave
 * session state that MySQL's tracker does not report.
 *
 * timeout_ms is MySQL's max_statement_time on the daemon's sessions
 * (session.c), which fails a statement with ER_STATEMENT_TIMEOUT and stops
 * its batch. DO swallows that interruption (an interrupted SLEEP() just
 * returns 1), so DO is sent as SELECT and its row dropped. */
static bool
lease_append_statements(struct lease *l, struct buf *out, const struct proto_statement *st,
			size_t n, bool indexed, json_t **err)
{
	struct buf bound = {0};
	bool ok = true;
	int64_t timeout_ms = server.conf.timeout_ms;

	for (size_t i = 0; ok && i < n; i++) {
		size_t len, at;
		ok = lease_prepare_statement(l->client, &st[i], indexed ? (long)i : -1, l->session,
					     &bound, err);
		if (!ok)
			break;
		if (sqltext_session_effects(bound.data, bound.len) != 0)
			l->dirty = true;
		if (out->len > 0)
			buf_append(out, "\n;", 2);
		len = sqltext_statement_length(bound.data, bound.len);
		if (sqltext_may_return_rows(bound.data, len))
			l->batch_reads = true;
		if (l->batch_n == l->batch_hidden_cap) {
			/* Kept across batches: no allocation per statement. */
			l->batch_hidden_cap = l->batch_hidden_cap ? 2 * l->batch_hidden_cap : 4;
			l->batch_hidden = xrealloc(l->batch_hidden,
						   l->batch_hidden_cap * sizeof(*l->batch_hidden));
		}
		l->batch_hidden[l->batch_n] = false;
		if (timeout_ms > 0 && sqltext_leading_do(bound.data, len, &at)) {
			l->batch_hidden[l->batch_n] = true;
			l->batch_reads = true; /* the SELECT's row */
			buf_append(out, bound.data, at);
			buf_append_str(out, "SELECT");
			buf_append(out, bound.data + at + 2, len - at - 2);
		} else {
			buf_append(out, bound.data, len);
		}
		l->batch_n++;
	}
	buf_free(&bound);
	return ok;
}

/* A new batch: nothing composed yet. */
static void
lease_batch_begin(struct lease *l)
{
	buf_reset(&l->sql);
	l->batch_n = 0;
	l->batch_user = 0;
	l->riders = 0;
	l->rider_commit = false;
	l->batch_reads = false;
	l->batch_commits = false;
}

/* Pipelined requests behind an acquire, sent in its batch: queries, and a
 * commit that ends the batch. Each is answered in order, as if it had run
 * alone; MySQL stops a batch at its first error, and what did not run is
 * then taken in its turn (client_lookahead leaves it queued). A query the
 * firewall refuses, or anything else, ends the look-ahead. */
static void
lease_take_riders(struct lease *l, struct buf *out)
{
	size_t max = server.parse_options.max_statements > 0 ? server.parse_options.max_statements : 64;
	const struct proto_request *r;
	char why[8];

	while (l->riders < max && (r = client_lookahead(l->client, l->riders)) != NULL) {
		json_t *err = NULL;
		if (r->op == PROTO_OP_COMMIT && r->nstatements == 0) {
			l->rider_commit = true;
			if (out->len > 0)
				buf_append(out, "\n;", 2);
			buf_append(out, lease_unlock_sql, sizeof(lease_unlock_sql) - 1);
			return;
		}
		if (r->op != PROTO_OP_QUERY ||
		    sqltext_firewall(r->query.sql, r->query.sql_len, why, sizeof(why)) != SQLTEXT_ALLOW)
			return;
		if (!lease_append_statements(l, out, &r->query, 1, false, &err)) {
			json_decref(err); /* answered in its turn */
			return;
		}
		l->riders++;
	}
}

void
lease_start(struct client *c, struct proto_request *req)
{
	const struct conf *conf = &server.conf;
	struct lockmgr_item *items;
	enum lockmgr_result res;
	struct lease *l;

	if (c->lease != NULL) {
		client_respond_error(c, PROTO_ERR_LEASE_HELD, "this connection holds lease %llu",
				     (unsigned long long)lease_id(c->lease));
		return;
	}
	if (server.shutting_down) {
		client_respond_error(c, PROTO_ERR_SHUTTING_DOWN, "the daemon is shutting down");
		return;
	}
	/* Statements are checked before anything is locked, so a request
	 * that would be refused never takes a lock. */
	struct buf scratch = {0};
	json_t *err = NULL;
	bool ok = true;
	for (size_t i = 0; ok && i < req->nstatements; i++)
		ok = lease_prepare_statement(c, &req->statements[i], (long)i, NULL, &scratch, &err);
	buf_free(&scratch);
	if (!ok) {
		client_respond(c, err);
		return;
	}
	for (size_t i = 0; i < req->ntables; i++) {
		const struct proto_table *t = &req->tables[i];
		if (!client_may_lock(c, t->db, t->name, t->write)) {
			client_respond_error(c, PROTO_ERR_FORBIDDEN, "%s may not %s %s.%s",
					     c->identity.label, t->write ? "write" : "read", t->db,
					     t->name);
			return;
		}
	}
	if (!pool_available(server.pool)) {
		client_respond_error(c, PROTO_ERR_UNAVAILABLE, "MySQL is unreachable");
		return;
	}
	char why[600];
	uint64_t id = leaseid_next(why, sizeof(why));
	if (id == 0) {
		client_respond_error(c, PROTO_ERR_UNAVAILABLE, "%s", why);
		return;
	}

	l = xcalloc(1, sizeof(*l));
	l->id = id;
	l->state = LEASE_WAITING;
	l->client = c;
	l->transact = req->op == PROTO_OP_TRANSACT;
	l->tables = req->tables;
	l->ntables = req->ntables;
	req->tables = NULL;
	req->ntables = 0;
	if (req->nstatements > 0) {
		l->request_root = json_incref(req->root);
		l->statements = req->statements;
		l->nstatements = req->nstatements;
		req->statements = NULL;
		req->nstatements = 0;
	}
	l->wait_ms = req->wait_ms >= 0 ? req->wait_ms : conf->default_wait_ms;
	l->ttl_ms = req->ttl_ms >= 0 ? req->ttl_ms : conf->default_ttl_ms;
	if (l->ttl_ms > conf->max_ttl_ms)
		l->ttl_ms = conf->max_ttl_ms;
	l->granted_ttl_ms = l->ttl_ms;
	l->created_us = monotime_us();
	l->waiter.ready = lease_session_ready;
	l->timer = evtimer_new(server.base, lease_timer_cb, l);
	l->statement_timer = evtimer_new(server.base, lease_statement_timer_cb, l);
	TAILQ_INSERT_TAIL(&server.leases, l, entry);
	server.nleases++;
	c->lease = l;

	/* wait_ms bounds the whole wait: in our queue, for a session, and in
	 * MySQL's LOCK TABLES. A try-lock (0) uses NOWAIT in MySQL instead. */
	if (l->wait_ms > 0)
		lease_arm(l->timer, l->wait_ms);
	items = xcalloc(l->ntables, sizeof(*items));
	for (size_t i = 0; i < l->ntables; i++) {
		items[i].table = proto_table_key(&l->tables[i]);
		items[i].mode = l->tables[i].write ? LOCKMGR_WRITE : LOCKMGR_READ;
	}
	res = lockmgr_acquire(server.lockmgr, items, l->ntables, l->wait_ms == 0, l, &l->lock);
	for (size_t i = 0; i < l->ntables; i++)
		free((char *)items[i].table);
	free(items);

	switch (res) {
	case LOCKMGR_GRANTED:
		lease_granted(l);
		break;
	case LOCKMGR_QUEUED:
		log_debug("lease %llu: queued", (unsigned long long)l->id);
		if (server.conf.max_waiting_per_identity > 0) {
			struct identity_count *e = identity_hold(&c->identity);
			if (*identity_count_waiting(e) >= server.conf.max_waiting_per_identity) {
				identity_unhold(e);
				lease_finish(l, LEASE_END_FAILED,
					     lease_error(l, PROTO_ERR_TOO_MANY_WAITERS,
							 "%s already has max_waiting_per_identity "
							 "(%u) acquires waiting",
							 c->identity.label,
							 server.conf.max_waiting_per_identity),
					     true);
				break;
			}
			(*identity_count_waiting(e))++;
			l->waiting_count = e;
		}
		break;
	case LOCKMGR_WOULD_BLOCK:
		l->lock = NULL;
		lease_finish(l, LEASE_END_LOCK_TIMEOUT,
			     lease_error(l, PROTO_ERR_LOCK_TIMEOUT,
					 "tables are locked by another lease (wait_ms 0)"),
			     true);
		break;
	case LOCKMGR_TOO_MANY_WAITERS:
		l->lock = NULL;
		lease_finish(l, LEASE_END_FAILED,
			     lease_error(l, PROTO_ERR_TOO_MANY_WAITERS,
					 "max_waiters (%u) requests are already waiting",
					 server.conf.max_waiters),
			     true);
		break;
	}
}

void
lease_lockmgr_grant(struct lockmgr_req *req, void *owner, void *arg)
{
	(void)req;
	(void)arg;
	lease_granted(owner);
}

static void
lease_uncount_waiting(struct lease *l)
{
	if (l->waiting_count == NULL)
		return;
	(*identity_count_waiting(l->waiting_count))--;
	identity_unhold(l->waiting_count);
	l->waiting_count = NULL;
}

/* The daemon's queue let us through: get a MySQL session for LOCK TABLES. */
static void
lease_granted(struct lease *l)
{
	lease_uncount_waiting(l);
	struct session *s = pool_take(server.pool, &l->waiter);
	if (s != NULL)
		lease_session_ready(&l->waiter, s);
}

/* A session for LOCK TABLES: one batch takes the locks, runs the
 * statements sent with them and, for a transact, commits and unlocks. */
static void
lease_session_ready(struct pool_waiter *w, struct session *s)
{
	struct lease *l = (struct lease *)((char *)w - offsetof(struct lease, waiter));
	struct session_limits lim = {server.conf.max_rows, server.conf.max_result_bytes};
	json_t *err = NULL;

	if (s == NULL) {
		lease_finish(l, LEASE_END_FAILED,
			     lease_error(l, PROTO_ERR_UNAVAILABLE, "MySQL is unreachable"), true);
		return;
	}
	l->session = s;
	lease_batch_begin(l);
	struct buf tail = {0};
	if (!lease_append_statements(l, &tail, l->statements, l->nstatements, true, &err)) {
		/* The dry run before locking passed: not expected. Nothing was
		 * sent; the session goes back as it came. */
		buf_free(&tail);
		lease_finish(l, LEASE_END_FAILED, err, true);
		return;
	}
	l->batch_user = l->nstatements;
	/* A transact commits in the same round trip, unless a statement may
	 * return rows that the limits could refuse: then the results are
	 * checked before a second round trip commits, so that a refused result
	 * still rolls everything back. */
	l->batch_commits = l->transact && !(l->batch_reads && lease_limited());
	if (l->batch_commits) {
		buf_append(&tail, "\n;", 2);
		buf_append(&tail, lease_unlock_sql, sizeof(lease_unlock_sql) - 1);
	}
	if (!l->transact && l->client != NULL)
		lease_take_riders(l, &tail);
	int64_t wait_s = 0;
	if (l->wait_ms > 0) {
		/* MySQL bounds the wait itself (WAIT takes whole seconds, so the
		 * rest is rounded up); the lease timer also kills LOCK TABLES at
		 * the deadline, to the millisecond, while it has not answered
		 * (session_killable). */
		uint64_t waited_ms = (monotime_us() - l->created_us) / 1000;
		int64_t left_ms = l->wait_ms - (int64_t)waited_ms;
		wait_s = left_ms > 0 ? (left_ms + 999) / 1000 : 1;
	}
	buf_reset(&l->sql);
	/* Only a wait longer than timeout_ms could meet max_statement_time:
	 * the exemption is parsed only then. */
	if (server.conf.timeout_ms > 0 &&
	    (wait_s > 0 ? wait_s * 1000 : l->wait_ms) >= server.conf.timeout_ms)
		buf_append_str(&l->sql, LEASE_OWN);
	sqltext_lock_tables(&l->sql, l->tables, l->ntables);
	if (l->wait_ms == 0) {
		/* A try-lock must not wait in MySQL either (MariaDB KB
		 * "WAIT and NOWAIT"); ER_LOCK_WAIT_TIMEOUT answers at once. */
		buf_append_str(&l->sql, " NOWAIT");
	} else if (wait_s > 0) {
		buf_appendf(&l->sql, " WAIT %lld", (long long)wait_s);
	}
	buf_append(&l->sql, lease_fence_sql, sizeof(lease_fence_sql) - 1);
	if (tail.len > 0) {
		buf_append(&l->sql, "\n;", 2);
		buf_append(&l->sql, tail.data, tail.len);
	}
	buf_free(&tail);
	l->locking_us = monotime_us();
	lease_enter_state(l, LEASE_LOCKING);
	lease_send(l,
		   LEASE_LOCK_HEAD + l->batch_user + l->riders +
			   (l->batch_commits || l->rider_commit ? 1 : 0),
		   &lim);
}

/* Every MySQL result of a lease comes here, by the state that sent it. */
static void
lease_session_done(struct session *s, struct session_result *r, size_t n, void *arg)
{
	struct lease *l = arg;

	(void)s;
	if (r[n - 1].lost) {
		l->session = NULL; /* down and reconnecting: not ours any more */
		snprintf(l->lost_reason, sizeof(l->lost_reason), "%s", r[n - 1].message);
	}
	switch (l->state) {
	case LEASE_LOCKING:
	case LEASE_CANCELLING:
		lease_locking_done(l, r, n);
		break;
	case LEASE_RUNNING:
	case LEASE_INTERRUPTING:
		lease_running_done(l, r);
		break;
	case LEASE_COMMITTING:
		lease_committing_done(l, r, n);
		break;
	case LEASE_ROLLING_BACK:
	case LEASE_RELEASING:
		lease_rollback_done(l, r, n);
		break;
	case LEASE_WAITING:
	case LEASE_HELD:
	case LEASE_ENDED:
	case LEASE__STATE_COUNT:
		log_error("lease %llu: a MySQL result in state %s", (unsigned long long)l->id,
			  lease_state_name(l->state));
#ifndef NDEBUG
		abort();
#endif
		break;
	}
}

/* Are results limited (max_rows, max_result_bytes)? */
static bool
lease_limited(void)
{
	return server.conf.max_rows > 0 || server.conf.max_result_bytes > 0;
}

/* The first result over the limits, as the answer that rolls back, or NULL
 * when every result fits. */
static json_t *
lease_too_large(struct lease *l, const struct session_result *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].code == PROTO_ERR_RESULT_TOO_LARGE)
			return lease_result_error(l, &r[i], (long)i);
	return NULL;
}

/* Sends UNLOCK TABLES, the commit, after statements whose results were
 * kept in l->results. */
static void
lease_commit_after(struct lease *l, enum lease_state from)
{
	buf_reset(&l->sql);
	buf_append(&l->sql, lease_unlock_sql, sizeof(lease_unlock_sql) - 1);
	l->batch_user = 0;
	l->batch_commits = true;
	if (from != LEASE_COMMITTING)
		lease_enter_state(l, LEASE_COMMITTING);
	lease_send(l, 1, NULL);
}

/* A failure that stops a batch (result_too_large is ours: MySQL goes on). */
static bool
lease_failed(const struct session_result *r)
{
	return r->code != 0 && r->code != PROTO_ERR_RESULT_TOO_LARGE;
}

/* Statement counts and what the user's statements left in the session. */
static void
lease_note_results(struct lease *l, const struct session_result *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		metrics.statements++;
		if (r[i].code != 0)
			metrics.statement_errors++;
		/* LAST_INSERT_ID() changes with an auto-increment INSERT, and
		 * MySQL's tracker does not say so. */
		if (r[i].state_changed || r[i].insert_id != 0 || r[i].interrupted || r[i].code != 0)
			l->dirty = true;
	}
}

/* The fence MySQL minted (r: SELECT UUID_SHORT()), 0 if it did not. */
static uint64_t
lease_fence_of(const struct session_result *r)
{
	json_t *row = r->code == 0 ? json_array_get(r->rows, 0) : NULL;
	json_t *v = json_array_get(row, 0);

	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
							       : 0;
}

/* Adds the lease's fence to an answer (acquire, transact). */
static void
lease_answer_fence(const struct lease *l, json_t *answer)
{
	if (l->fence != 0)
		json_object_set_new(answer, "fence", json_integer((json_int_t)l->fence));
}

/* The LOCK TABLES batch: r[0] is LOCK TABLES, r[1] the fence, then the
 * user's statements, then (transact) UNLOCK TABLES, each present only if it
 * ran. */
static void
lease_locking_done(struct lease *l, struct session_result *r, size_t n)
{
	struct session_result *last = &r[n - 1];
	/* r[0] LOCK TABLES; r[1] the fence; then the request's own statements;
	 * then riders; then UNLOCK TABLES for a transact or a commit rider. */
	const size_t head = LEASE_LOCK_HEAD;
	size_t own_end = head + l->batch_user;		/* past the own statements */
	size_t riders_end = own_end + l->riders;	/* past the rider queries */
	size_t full = riders_end + (l->batch_commits || l->rider_commit ? 1 : 0);
	size_t user_ran = n > head ? (n < riders_end ? n : riders_end) - head : 0;
	struct session_result *user = r + head;	/* the own statements' results */
	bool reached_commit = (l->batch_commits || l->rider_commit) && n == full && !last->lost;
	bool committed = reached_commit && !lease_failed(last);
	/* A kill that interrupted the commit itself leaves it unknown: that is
	 * answered as such, never as "not committed". */
	bool commit_in_doubt = reached_commit && lease_failed(last) && last->interrupted;
	json_t *answer;

	evtimer_del(l->statement_timer);
	metrics_observe(&metrics.locking, (double)(monotime_us() - l->locking_us) / 1e6);
	lease_note_results(l, user, user_ran);
	/* A lost session has rolled back and unlocked in MySQL. Only a rider
	 * of a held acquire is answered further down (lease_riders_done). */
	if (last->lost && l->state == LEASE_CANCELLING && l->end != LEASE_END_NONE &&
	    !(n == full && (l->batch_commits || l->rider_commit))) {
		/* Cut off after a kill (session_strand_cb), for a reason of
		 * ours: nothing is held any more. */
		lease_finish(l, l->end, lease_end_answer(l), true);
		return;
	}
	if (last->lost && (n <= own_end || l->transact || l->state == LEASE_CANCELLING)) {
		if (n <= head)
			answer = lease_error(l, PROTO_ERR_UNAVAILABLE,
					     "MySQL session lost during LOCK TABLES: %s", last->message);
		else if (l->transact && n == full)
			answer = lease_error(l, PROTO_ERR_COMMIT_UNKNOWN,
					     "the MySQL session died during the commit; whether lease "
					     "%llu's transaction committed is unknown: %s",
					     (unsigned long long)l->id, last->message);
		else if (n <= own_end)
			answer = lease_result_error(l, last, (long)(n - head) - 1);
		else
			answer = lease_result_error(l, last, -1);
		lease_finish(l, n <= head ? LEASE_END_FAILED : LEASE_END_LOST, answer, true);
		return;
	}
	if (r[0].code != 0) {
		/* LOCK TABLES failed: MySQL holds nothing for us. */
		enum lease_end why = LEASE_END_FAILED;
		if (l->state == LEASE_CANCELLING && l->end != LEASE_END_NONE) {
			why = l->end;
			answer = lease_end_answer(l);
		} else if (l->state == LEASE_CANCELLING ||
			   r[0].mysql_errno == ER_LOCK_WAIT_TIMEOUT) {
			why = LEASE_END_LOCK_TIMEOUT;
			answer = lease_error(l, PROTO_ERR_LOCK_TIMEOUT,
					     "tables are locked in MySQL by another session "
					     "(waited %lld ms)",
					     (long long)((monotime_us() - l->created_us) / 1000));
		} else if (r[0].mysql_errno == ER_NO_SUCH_TABLE) {
			answer = lease_error(l, PROTO_ERR_UNKNOWN_TABLE, "%s", r[0].message);
			if (answer != NULL)
				proto_response_add_mysql(answer, r[0].mysql_errno, r[0].sqlstate);
		} else {
			answer = lease_result_error(l, &r[0], -1);
		}
		lease_finish(l, why, answer, true);
		return;
	}

	/* Held in MySQL. The client has moved on from a lease it lost: only a
	 * lease granted since ends that (PROTOCOL.md §7); a transact, which
	 * leaves no lease, does not. */
	if (l->client != NULL && !l->transact)
		l->client->lost_lease = 0;
	l->held_us = monotime_us();
	if (n >= head)
		l->fence = lease_fence_of(&r[1]);
	server.totals.acquired++;
	metrics_observe(&metrics.lock_wait, (double)(l->held_us - l->created_us) / 1e6);
	log_info("lease %llu: held by %s (%zu table%s, waited %llu ms, ttl %lld ms)",
		 (unsigned long long)l->id, client_label(l->client), l->ntables,
		 plural_s(l->ntables),
		 (unsigned long long)((l->held_us - l->created_us) / 1000), (long long)l->ttl_ms);
	if (committed && l->transact) {
		/* A transact ran to its commit, even if a kill came too late to
		 * stop it: that is the truth to tell. */
		answer = l->client != NULL ? client_ok(l->client) : NULL;
		if (answer != NULL) {
			json_object_set_new(answer, "lease", json_integer((json_int_t)l->id));
			lease_answer_fence(l, answer);
			json_object_set_new(answer, "results",
					    lease_results_json(l, 0, user, user_ran));
		}
		lease_finish(l, LEASE_END_COMMIT, answer, true);
		return;
	}
	if (l->state == LEASE_CANCELLING && !committed && !commit_in_doubt) {
		/* Killed after LOCK TABLES went through: a statement timeout
		 * (end none), or a reason to end. Nothing commits; riders that
		 * ran are rolled back, and answered no_lease in their turn. */
		if (l->end == LEASE_END_NONE && n > head && n <= own_end && lease_failed(last) &&
		    last->interrupted) {
			answer = lease_error(l, PROTO_ERR_STATEMENT_TIMEOUT,
					     "statement ran over timeout_ms (%lld ms) and was "
					     "interrupted",
					     (long long)server.conf.timeout_ms);
			if (answer != NULL)
				json_object_set_new(answer, "statement",
						    json_integer((json_int_t)(n - head - 1)));
			lease_finish(l, LEASE_END_ROLLBACK, answer,
				     false);
			return;
		}
		if (l->end == LEASE_END_NONE)
			l->end = LEASE_END_LOCK_TIMEOUT;
		answer = lease_end_answer(l);
		lease_finish(l, l->end, answer, false);
		return;
	}
	if (n < head || (n == head && lease_failed(last))) {
		/* Locked, but the fence failed: not expected (a kill that came
		 * too late is handled above). Nothing of the user's ran. */
		lease_finish(l, LEASE_END_ROLLBACK, lease_result_error(l, last, -1), false);
		return;
	}
	if (n < own_end || (n == own_end && lease_failed(last) && n > head)) {
		/* One of the request's own statements failed: MySQL ran
		 * nothing after it. */
		answer = lease_result_error(l, last, (long)(n - head) - 1);
		lease_finish(l, LEASE_END_ROLLBACK, answer, false);
		return;
	}
	if (l->batch_commits) {
		/* Only UNLOCK TABLES failed. */
		lease_finish(l, LEASE_END_ROLLBACK, lease_commit_error(l, last), false);
		return;
	}
	if (l->transact) {
		/* Every statement ran; commit unless a result was refused. */
		answer = lease_too_large(l, user, user_ran);
		if (answer != NULL) {
			lease_finish(l, LEASE_END_ROLLBACK, answer, false);
			return;
		}
		json_decref(l->results);
		l->results = lease_results_json(l, 0, user, user_ran);
		lease_commit_after(l, l->state);
		return;
	}
	/* An acquire: held, with the results of the statements sent with it. */
	l->expires_us = l->held_us + (uint64_t)l->ttl_ms * 1000;
	lease_arm(l->timer, l->ttl_ms);
	if (l->session != NULL) /* NULL: lost under a rider, answered below */
		session_set_owner(l->session, lease_session_lost, l);
	lease_enter_state(l, LEASE_HELD);
	answer = NULL;
	if (l->client != NULL) {
		answer = client_ok(l->client);
		json_object_set_new(answer, "lease", json_integer((json_int_t)l->id));
		lease_answer_fence(l, answer);
		json_object_set_new(answer, "ttl_ms", json_integer(l->ttl_ms));
		json_object_set_new(answer, "waited_ms",
				    json_integer((json_int_t)((l->held_us - l->created_us) / 1000)));
		if (l->batch_user > 0)
			json_object_set_new(answer, "results",
					    lease_results_json(l, 0, user, l->batch_user));
	}
	lease_riders_done(l, answer, r + own_end, n - own_end);
}

/* The riders of a batch (lease_take_riders) that MySQL ran: r[0..n), their
 * results in order, the last maybe a commit's UNLOCK TABLES. answer is for
 * the request in flight; each answer goes out in turn, and the request
 * after it becomes the one in flight. The lease is HELD. */
static void
lease_riders_done(struct lease *l, json_t *answer, struct session_result *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool commit = l->rider_commit && i == l->riders;
		if (l->client != NULL)
			client_answer_and_advance(l->client, answer);
		else
			json_decref(answer);
		if (r[i].lost) {
			if (commit)
				answer = lease_error(l, PROTO_ERR_COMMIT_UNKNOWN,
						     "the MySQL session died during the commit; "
						     "whether lease %llu's transaction committed is "
						     "unknown: %s",
						     (unsigned long long)l->id, r[i].message);
			else
				answer = lease_result_error(l, &r[i], -1);
			lease_finish(l, LEASE_END_LOST, answer, true);
			return;
		}
		if (commit) {
			if (lease_failed(&r[i])) {
				lease_finish(l, LEASE_END_ROLLBACK, lease_commit_error(l, &r[i]), false);
				return;
			}
			answer = NULL;
			if (l->client != NULL) {
				answer = client_ok(l->client);
				json_object_set_new(answer, "lease", json_integer((json_int_t)l->id));
			}
			lease_finish(l, LEASE_END_COMMIT, answer, true);
			return;
		}
		if (lease_failed(&r[i])) {
			answer = lease_result_error(l, &r[i], -1);
			break; /* MySQL ran nothing after it */
		}
		answer = NULL;
		if (l->client != NULL) {
			json_t *results = lease_results_json(l, l->batch_user + i, &r[i], 1);
			answer = client_ok(l->client);
			json_object_update(answer, json_array_get(results, 0));
			json_decref(results);
		}
	}
	if (l->client != NULL)
		client_respond(l->client, answer);
	else
		json_decref(answer);
}

/* One statement (query) or renew's keep-alive. */
static void
lease_running_done(struct lease *l, struct session_result *r)
{
	enum lease_op op = l->op;
	json_t *answer;

	evtimer_del(l->statement_timer);
	l->op = LEASE_OP_NONE;
	if (op == LEASE_OP_QUERY)
		lease_note_results(l, r, 1);
	if (r->lost) {
		answer = lease_error(l, PROTO_ERR_LEASE_LOST, "lease %llu lost its MySQL session: %s",
				     (unsigned long long)l->id, r->message);
		lease_finish(l, LEASE_END_LOST, answer, true);
		return;
	}
	if (l->state == LEASE_INTERRUPTING && l->end != LEASE_END_NONE) {
		/* Expired, revoked, shut down or abandoned while it ran. */
		lease_finish(l, l->end, lease_end_answer(l), false);
		return;
	}
	if (l->state == LEASE_INTERRUPTING) {
		/* A statement interrupted by the timeout may still end
		 * "successfully" (SLEEP() returns 1 when killed): the timeout is
		 * the answer either way. */
		l->dirty = true;
		lease_enter_state(l, LEASE_HELD);
		client_respond(l->client, lease_error(l, PROTO_ERR_STATEMENT_TIMEOUT,
						      "statement ran over timeout_ms (%lld ms) and "
						      "was interrupted",
						      (long long)server.conf.timeout_ms));
		return;
	}
	lease_enter_state(l, LEASE_HELD);
	if (r->code != 0) {
		client_respond(l->client, lease_result_error(l, r, -1));
		return;
	}
	answer = client_ok(l->client);
	if (op == LEASE_OP_RENEW) {
		json_object_set_new(answer, "lease", json_integer((json_int_t)l->id));
		json_object_set_new(answer, "ttl_ms", json_integer(l->ttl_ms));
	} else {
		json_t *results = lease_results_json(l, 0, r, 1);
		json_object_update(answer, json_array_get(results, 0));
		json_decref(results);
	}
	client_respond(l->client, answer);
}

/* [statements;] UNLOCK TABLES. UNLOCK TABLES commits the open transaction
 * when LOCK TABLES took the locks (MariaDB KB "LOCK TABLES": "UNLOCK TABLES
 * implicitly commits any active transaction, but only if LOCK TABLES has
 * been used to acquire table locks"), and reports a failed commit as its
 * own error: so the answer to commit goes out with the tables free. */
static void
lease_committing_done(struct lease *l, struct session_result *r, size_t n)
{
	struct session_result *last = &r[n - 1];
	size_t user_ran = n > l->batch_user ? l->batch_user : n;
	json_t *answer;

	lease_note_results(l, r, user_ran);
	if (last->lost) {
		if (l->batch_commits && n == l->batch_user + 1)
			answer = lease_error(l, PROTO_ERR_COMMIT_UNKNOWN,
					     "the MySQL session died during the commit; whether lease "
					     "%llu's transaction committed is unknown: %s",
					     (unsigned long long)l->id, last->message);
		else
			answer = lease_result_error(l, last, (long)n - 1);
		lease_finish(l, LEASE_END_LOST, answer, true);
		return;
	}
	if (!l->batch_commits && n == l->batch_user && !lease_failed(last)) {
		/* The statements ran; commit unless a result was refused. */
		answer = lease_too_large(l, r, n);
		if (answer != NULL) {
			lease_finish(l, LEASE_END_ROLLBACK, answer, false);
			return;
		}
		json_decref(l->results);
		l->results = lease_results_json(l, 0, r, n);
		lease_commit_after(l, l->state);
		return;
	}
	if (l->batch_commits && n == l->batch_user + 1 && !lease_failed(last)) {
		answer = l->client != NULL ? client_ok(l->client) : NULL;
		if (answer != NULL) {
			json_object_set_new(answer, "lease", json_integer((json_int_t)l->id));
			if (l->transact)
				lease_answer_fence(l, answer);
			if (l->batch_user > 0)
				json_object_set_new(answer, "results",
						    lease_results_json(l, 0, r, user_ran));
			else if (l->results != NULL)
				json_object_set(answer, "results", l->results);
		}
		lease_finish(l, LEASE_END_COMMIT, answer, true);
		return;
	}
	/* A statement failed (MySQL ran nothing after it), or the commit
	 * itself did: roll back, then answer. */
	if (n <= l->batch_user)
		answer = lease_result_error(l, last, (long)n - 1);
	else
		answer = lease_commit_error(l, last);
	lease_finish(l, LEASE_END_ROLLBACK, answer, false);
}

/* The answer to a commit (UNLOCK TABLES) that MySQL answered with an
 * error. An ordinary error means nothing was committed. An interruption
 * (a kill, max_statement_time) may have come after InnoDB committed: that
 * is commit_unknown, as when the session dies. The rollback that follows
 * is harmless either way. */
static json_t *
lease_commit_error(struct lease *l, const struct session_result *r)
{
	if (r->interrupted)
		return lease_error(l, PROTO_ERR_COMMIT_UNKNOWN,
				   "the commit of lease %llu was interrupted (%s); whether it "
				   "committed is unknown",
				   (unsigned long long)l->id, r->message);
	return lease_result_error(l, r, -1);
}

/* ROLLBACK; UNLOCK TABLES. */
static void
lease_rollback_done(struct lease *l, struct session_result *r, size_t n)
{
	json_t *answer = l->answer;

	l->answer = NULL;
	if (!r[n - 1].lost && (n < 2 || r[n - 1].code != 0)) {
		/* Nobody can vouch for this session now: drop it. MySQL rolls
		 * back and unlocks what a closed connection held. */
		log_warnx("lease %llu: %s failed: %s (%u); dropping the session",
			  (unsigned long long)l->id, n < 2 ? "ROLLBACK" : "UNLOCK TABLES",
			  r[n - 1].message, r[n - 1].mysql_errno);
		session_abandon(l->session, "ROLLBACK or UNLOCK TABLES failed");
		l->session = NULL;
	}
	lease_finish(l, l->end, answer, true);
}

/* The session died while the lease held it idle. MySQL has rolled back
 * and unlocked already. */
static void
lease_session_lost(void *arg, const char *reason)
{
	struct lease *l = arg;

	log_info("lease %llu: MySQL session lost: %s", (unsigned long long)l->id, reason);
	l->session = NULL;
	snprintf(l->lost_reason, sizeof(l->lost_reason), "%s", reason);
	lease_finish(l, LEASE_END_LOST, NULL, true);
}

/* The client's requests on its lease. Only HELD takes them: in every other
 * state the client is waiting for an answer, or is detached. */
void
lease_request(struct client *c, struct proto_request *req)
{
	static const char keepalive[] = "DO 0";
	struct session_limits lim = {server.conf.max_rows, server.conf.max_result_bytes};
	struct lease *l = c->lease;
	json_t *err = NULL;

	if (l == NULL) {
		if (c->lost_lease != 0) {
			uint64_t id = c->lost_lease;
			c->lost_lease = 0;
			client_respond_error(c, PROTO_ERR_LEASE_LOST,
					     "lease %llu was lost: its MySQL session died and MySQL "
					     "rolled it back",
					     (unsigned long long)id);
			return;
		}
		client_respond_error(c, PROTO_ERR_NO_LEASE, "this connection holds no lease");
		return;
	}
	if (l->state != LEASE_HELD) {
		log_error("lease %llu: %s request in state %s", (unsigned long long)l->id,
			  proto_op_name(req->op), lease_state_name(l->state));
		client_respond_error(c, PROTO_ERR_INTERNAL, "lease %llu is %s",
				     (unsigned long long)l->id, lease_state_name(l->state));
		return;
	}
	switch (req->op) {
	case PROTO_OP_QUERY:
		lease_batch_begin(l);
		if (!lease_append_statements(l, &l->sql, &req->query, 1, false, &err)) {
			client_respond(c, err);
			return;
		}
		l->op = LEASE_OP_QUERY;
		lease_enter_state(l, LEASE_RUNNING);
		/* MySQL's max_statement_time ends it at timeout_ms; the kill is a
		 * backstop for what that cannot interrupt. */
		if (server.conf.timeout_ms > 0)
			lease_arm(l->statement_timer, server.conf.timeout_ms + LEASE_KILL_GRACE_MS);
		lease_send(l, 1, &lim);
		break;
	case PROTO_OP_COMMIT:
		lease_batch_begin(l);
		if (!lease_append_statements(l, &l->sql, req->statements, req->nstatements, true,
					     &err)) {
			/* Refused before anything ran: the lease is as it was. */
			client_respond(c, err);
			return;
		}
		l->batch_user = req->nstatements;
		/* As for transact: results the limits could refuse are seen
		 * before the commit goes out. */
		l->batch_commits = !(l->batch_reads && lease_limited());
		if (l->batch_commits) {
			if (l->sql.len > 0)
				buf_append(&l->sql, "\n;", 2);
			buf_append(&l->sql, lease_unlock_sql, sizeof(lease_unlock_sql) - 1);
		}
		lease_enter_state(l, LEASE_COMMITTING);
		lease_send(l, l->batch_user + (l->batch_commits ? 1 : 0), &lim);
		break;
	case PROTO_OP_ROLLBACK: {
		json_t *ok = client_ok(c);
		json_object_set_new(ok, "lease", json_integer((json_int_t)l->id));
		lease_finish(l, LEASE_END_ROLLBACK, ok, false);
		break;
	}
	case PROTO_OP_RENEW:
		l->ttl_ms = req->ttl_ms >= 0 ? req->ttl_ms : l->granted_ttl_ms;
		if (l->ttl_ms > server.conf.max_ttl_ms)
			l->ttl_ms = server.conf.max_ttl_ms;
		evtimer_del(l->timer);
		l->expires_us = monotime_us() + (uint64_t)l->ttl_ms * 1000;
		lease_arm(l->timer, l->ttl_ms);
		/* A statement keeps MySQL's wait_timeout from dropping a
		 * session that a client keeps renewing without using. */
		l->op = LEASE_OP_RENEW;
		lease_enter_state(l, LEASE_RUNNING);
		buf_reset(&l->sql);
		buf_append(&l->sql, keepalive, sizeof(keepalive) - 1);
		lease_send(l, 1, NULL);
		break;
	default:
		client_respond_error(c, PROTO_ERR_INTERNAL, "op not handled by the lease");
		break;
	}
}

/* A reason to end from outside the client's requests: the wait ran out,
 * the TTL, the client left, revoke, shutdown. MySQL work in flight is
 * interrupted (or, for a commit or rollback, left to finish) and the
 * result handler ends the lease; otherwise it ends here. */
void
lease_end(struct lease *l, enum lease_end why)
{
	if (why == LEASE_END_DISCONNECT)
		lease_detach(l);
	switch (l->state) {
	case LEASE_WAITING:
		lease_finish(l, why, lease_end_answer_for(l, why), true);
		break;
	case LEASE_LOCKING:
		if (l->end == LEASE_END_NONE)
			l->end = why;
		lease_enter_state(l, LEASE_CANCELLING);
		break;
	case LEASE_RUNNING:
		if (l->end == LEASE_END_NONE)
			l->end = why;
		lease_enter_state(l, LEASE_INTERRUPTING);
		break;
	case LEASE_CANCELLING:
	case LEASE_INTERRUPTING:
		/* A kill is on its way already (maybe for a statement timeout:
		 * now it ends the lease too). */
		if (l->end == LEASE_END_NONE)
			l->end = why;
		break;
	case LEASE_HELD:
		lease_finish(l, why, NULL, false);
		break;
	case LEASE_ROLLING_BACK:
		if (why == LEASE_END_DISCONNECT) {
			json_decref(l->answer);
			l->answer = NULL;
			lease_enter_state(l, LEASE_RELEASING);
		}
		break;
	case LEASE_COMMITTING:
	case LEASE_RELEASING:
	case LEASE_ENDED:
	case LEASE__STATE_COUNT:
		/* The commit decides; a release is already under way. */
		break;
	}
}

static void
lease_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lease *l = arg;

	(void)fd;
	(void)what;
	switch (l->state) {
	case LEASE_LOCKING:
		if (!session_killable(l->session))
			break; /* MySQL's WAIT bounds it (lease_session_ready) */
		/* fall through */
	case LEASE_WAITING:
	case LEASE_CANCELLING:
		lease_end(l, LEASE_END_LOCK_TIMEOUT);
		break;
	case LEASE_HELD:
	case LEASE_RUNNING:
	case LEASE_INTERRUPTING:
		lease_end(l, LEASE_END_EXPIRED);
		break;
	case LEASE_COMMITTING:
	case LEASE_ROLLING_BACK:
	case LEASE_RELEASING:
	case LEASE_ENDED:
	case LEASE__STATE_COUNT:
		break;
	}
}

static void
lease_statement_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lease *l = arg;

	(void)fd;
	(void)what;
	/* RUNNING: the backstop behind max_statement_time. CANCELLING,
	 * INTERRUPTING: the kill again, in case the first one came too early. */
	if (l->state == LEASE_RUNNING) {
		lease_enter_state(l, LEASE_INTERRUPTING);
	} else if ((l->state == LEASE_CANCELLING || l->state == LEASE_INTERRUPTING) &&
		   session_killable(l->session)) {
		pool_kill_query(server.pool, l->session);
		lease_arm(l->statement_timer, LEASE_REKILL_MS);
	}
}

/* The one way out (see the top of the file). unlocked: MySQL holds nothing
 * for this lease (never locked, unlocked, or the session is gone).
 * answer: for the request in flight, or NULL. */
static void
lease_finish(struct lease *l, enum lease_end why, json_t *answer, bool unlocked)
{
	struct client *c;
	struct session *s;
	struct lockmgr_req *lock;
	bool reset;

	/* The first reason wins, but a commit that happened is the truth. */
	if (l->end == LEASE_END_NONE || why == LEASE_END_COMMIT)
		l->end = why;
	if (!unlocked) {
		if (answer != NULL && l->client != NULL) {
			json_decref(l->answer);
			l->answer = answer;
			lease_enter_state(l, LEASE_ROLLING_BACK);
			return;
		}
		json_decref(answer);
		lease_notify(l);
		lease_detach(l);
		lease_enter_state(l, LEASE_RELEASING);
		return;
	}
	lease_enter_state(l, LEASE_ENDED);
	lease_log_end(l); /* before the answer: whoever reads it finds the log */
	c = l->client;
	lease_notify(l);
	if (c != NULL && answer == NULL && l->end == LEASE_END_LOST && l->held_us != 0)
		c->lost_lease = l->id; /* its next request on the lease says so */
	lease_detach(l);
	if (c != NULL && answer != NULL)
		client_respond(c, answer);
	else
		json_decref(answer);

	s = l->session;
	lock = l->lock;
	reset = l->dirty;
	l->session = NULL;
	l->lock = NULL;
	lease_free(l);
	if (s != NULL)
		session_give_back(s, reset);
	if (lock != NULL)
		lockmgr_release(server.lockmgr, lock); /* may grant others */
	server_lease_freed();
}

static void
lease_log_end(const struct lease *l)
{
	uint64_t now = monotime_us();

	if (l->held_us != 0)
		log_info("lease %llu: ended: %s after %llu ms held", (unsigned long long)l->id,
			 lease_end_name(l->end), (unsigned long long)((now - l->held_us) / 1000));
	else
		log_info("lease %llu: ended before it was held: %s", (unsigned long long)l->id,
			 lease_end_name(l->end));
}

/* Counts and frees a lease that holds nothing any more. */
static void
lease_free(struct lease *l)
{
	pool_cancel(server.pool, &l->waiter);
	lease_uncount_waiting(l);
	TAILQ_REMOVE(&server.leases, l, entry);
	server.nleases--;
	lease_account(l);
	event_free(l->timer);
	event_free(l->statement_timer);
	proto_table_free_array(l->tables, l->ntables);
	free(l->statements);
	free(l->batch_hidden);
	json_decref(l->results);
	json_decref(l->request_root);
	json_decref(l->answer);
	buf_free(&l->sql);
	free(l);
}

/* The client is done with this lease: its requests no longer go here and
 * the lease will not write to it again. The only writer of the link:
 * l->client != NULL exactly while l->client->lease == l. From here on the
 * lease counts as ended for status and the totals. */
static void
lease_detach(struct lease *l)
{
	struct client *c = l->client;

	if (c == NULL)
		return;
	l->client = NULL;
	if (c->lease == l) {
		c->lease = NULL;
		client_lease_gone(c);
	}
	if (l->end != LEASE_END_NONE)
		lease_account(l);
}

/* The event a held lease's client gets when it ends from outside. */
static void
lease_notify(struct lease *l)
{
	const char *event = NULL;
	json_t *ev;

	if (l->client == NULL || l->held_us == 0)
		return;
	switch (l->end) {
	case LEASE_END_EXPIRED:
		event = "lease_expired";
		break;
	case LEASE_END_REVOKED:
		event = "lease_revoked";
		break;
	case LEASE_END_LOST:
		event = "lease_lost";
		break;
	default:
		return;
	}
	ev = proto_event(event, l->id);
	if (l->end == LEASE_END_LOST)
		json_object_set_new(ev, "reason", json_string(l->lost_reason[0] != '\0'
								      ? l->lost_reason
								      : "MySQL session lost"));
	client_push(l->client, ev);
}

static json_t *
lease_error(struct lease *l, enum proto_error code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (l->client == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return client_error(l->client, code, msg);
}

/* A failed statement's answer: MySQL's own errno, SQLSTATE and message,
 * and the statement's index when >= 0. */
static json_t *
lease_result_error(struct lease *l, const struct session_result *r, long statement)
{
	json_t *resp;

	if (l->client == NULL)
		return NULL;
	if (r->lost)
		resp = client_error(l->client, PROTO_ERR_LEASE_LOST, r->message);
	else if (r->mysql_errno == ER_STATEMENT_TIMEOUT)
		resp = client_error(l->client, PROTO_ERR_STATEMENT_TIMEOUT,
				    "statement ran over timeout_ms and was interrupted");
	else if (r->interrupted && l->end == LEASE_END_NONE &&
		 (l->state == LEASE_CANCELLING || l->state == LEASE_INTERRUPTING))
		resp = client_error(l->client, PROTO_ERR_STATEMENT_TIMEOUT, r->message);
	else
		resp = client_error(l->client, (enum proto_error)r->code, r->message);
	if (r->code == PROTO_ERR_MYSQL && !r->lost)
		proto_response_add_mysql(resp, r->mysql_errno, r->sqlstate);
	if (statement >= 0)
		json_object_set_new(resp, "statement", json_integer(statement));
	return resp;
}

/* The answer to the request in flight when the lease ends for l->end. */
static json_t *
lease_end_answer(struct lease *l)
{
	return lease_end_answer_for(l, l->end);
}

static json_t *
lease_end_answer_for(struct lease *l, enum lease_end why)
{
	if (why == LEASE_END_LOCK_TIMEOUT)
		return lease_error(l, PROTO_ERR_LOCK_TIMEOUT,
				   "tables are locked by another lease or session (waited %lld ms)",
				   (long long)((monotime_us() - l->created_us) / 1000));
	return lease_error(l, lease_end_error(why), "lease %llu %s", (unsigned long long)l->id,
			   lease_end_name(why));
}

static enum proto_error
lease_end_error(enum lease_end end)
{
	switch (end) {
	case LEASE_END_EXPIRED:
		return PROTO_ERR_LEASE_EXPIRED;
	case LEASE_END_REVOKED:
		return PROTO_ERR_LEASE_REVOKED;
	case LEASE_END_SHUTDOWN:
		return PROTO_ERR_SHUTTING_DOWN;
	case LEASE_END_LOST:
		return PROTO_ERR_LEASE_LOST;
	case LEASE_END_LOCK_TIMEOUT:
		return PROTO_ERR_LOCK_TIMEOUT;
	default:
		return PROTO_ERR_INTERNAL;
	}
}

static json_t *
lease_result_json(const struct session_result *r)
{
	json_t *o = json_object();
	if (r->columns != NULL) {
		json_object_set(o, "columns", r->columns);
		json_object_set(o, "rows", r->rows);
	}
	json_object_set_new(o, "affected_rows", json_integer((json_int_t)r->affected_rows));
	json_object_set_new(o, "insert_id", json_integer((json_int_t)r->insert_id));
	json_object_set_new(o, "warnings", json_integer(r->warnings));
	json_t *info = r->info[0] != '\0' ? json_string(r->info) : NULL;
	if (info != NULL)
		json_object_set_new(o, "info", info);
	return o;
}

/* results[] of a batch. A result over max_rows or max_result_bytes cannot
 * stop MySQL's batch: its entry is an error object instead of rows. */
static json_t *
lease_results_json(const struct lease *l, size_t first, const struct session_result *r, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		if (first + i < l->batch_n && l->batch_hidden[first + i] && r[i].code == 0)
			json_array_append_new(a, json_pack("{s:i,s:i,s:i}", "affected_rows", 0,
							   "insert_id", 0, "warnings",
							   (int)r[i].warnings));
		else if (r[i].code == PROTO_ERR_RESULT_TOO_LARGE)
			json_array_append_new(a, json_pack("{s:{s:s,s:s}}", "error", "code",
							   proto_error_name(PROTO_ERR_RESULT_TOO_LARGE),
							   "message", r[i].message));
		else
			json_array_append_new(a, lease_result_json(&r[i]));
	}
	return a;
}

static json_t *
lease_tables_json(const struct lease *l, bool write)
{
	json_t *a = json_array();
	struct buf b = {0};

	for (size_t i = 0; i < l->ntables; i++) {
		const struct proto_table *t = &l->tables[i];
		if (t->write != write)
			continue;
		buf_reset(&b);
		buf_appendf(&b, "%s.%s", t->db, t->name);
		if (t->alias != NULL)
			buf_appendf(&b, " AS %s", t->alias);
		json_array_append_new(a, json_string(b.data));
	}
	buf_free(&b);
	return a;
}

const struct proto_table *
lease_tables(const struct lease *l, size_t *n)
{
	*n = l->ntables;
	return l->tables;
}

unsigned long
lease_mysql_thread(const struct lease *l)
{
	return l->session != NULL ? session_thread_id(l->session) : 0;
}

uint64_t
lease_locking_since_us(const struct lease *l)
{
	return l->locking_us;
}

json_t *
lease_status(const struct lease *l, bool full)
{
	uint64_t now = monotime_us();
	const char *state;
	json_t *o;

	switch (lease_get_phase(l)) {
	case LEASE_PHASE_WAITING:
		state = "waiting";
		break;
	case LEASE_PHASE_LOCKING:
		state = "locking";
		break;
	default:
		state = "held";
		break;
	}
	o = json_object();
	/* Others' leases: tables, mode, state and age only (issue 4). */
	if (full)
		json_object_set_new(o, "lease", json_integer((json_int_t)l->id));
	if (full) {
		json_object_set_new(o, "client", l->client != NULL && l->client->name != NULL
							 ? json_string(l->client->name)
							 : json_null());
		json_object_set_new(o, "peer", l->client != NULL ? client_peer_json(l->client)
								 : json_null());
	}
	json_object_set_new(o, "read", lease_tables_json(l, false));
	json_object_set_new(o, "write", lease_tables_json(l, true));
	json_object_set_new(o, "state", json_string(state));
	json_object_set_new(o, "age_ms", json_integer((json_int_t)((now - l->created_us) / 1000)));
	if (!full)
		return o;
	if (l->held_us != 0) {
		json_object_set_new(o, "held_ms",
				    json_integer((json_int_t)((now - l->held_us) / 1000)));
		json_object_set_new(o, "expires_in_ms",
				    json_integer(l->expires_us > now
							 ? (json_int_t)((l->expires_us - now) / 1000)
							 : 0));
	} else {
		json_object_set_new(o, "expires_in_ms", json_null());
	}
	if (full)
		json_object_set_new(o, "mysql_thread",
				    l->session != NULL
					    ? json_integer((json_int_t)session_thread_id(l->session))
					    : json_null());
	json_object_set_new(o, "fence", l->fence != 0 ? json_integer((json_int_t)l->fence)
						      : json_null());
	json_object_set_new(o, "transact", json_boolean(l->transact));
	return o;
}
