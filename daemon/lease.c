/* Leases: a client's hold on tables, from the queue to the final unlock. */
#include "daemon/lease.h"

#include <event2/event.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#include "proto/buf.h"
#include "proto/proto_response.h"
#include "proto/proto_table.h"

struct lease {
	TAILQ_ENTRY(lease) entry;
	uint64_t id;
	enum lease_state state;
	enum lease_end end;
	struct client *client;	/* to answer and notify; NULL once gone */
	bool transact;

	struct proto_table *tables;
	size_t ntables;
	json_t *request_root;	/* keeps transact statements alive */
	struct proto_statement *statements;
	size_t nstatements;
	size_t next_statement;
	json_t *results;

	struct lockmgr_req *lock;
	struct pool_waiter waiter;
	struct session *session;
	struct event *timer;	/* the wait deadline, then the TTL */
	struct event *statement_timer;
	int64_t wait_ms;
	int64_t ttl_ms;
	uint64_t created_us;
	uint64_t held_us;	/* LOCK TABLES succeeded */
	uint64_t expires_us;

	bool lock_timed_out;	/* wait_ms ran out while LOCK TABLES ran */
	bool statement_timed_out;
	bool killing;		/* a KILL QUERY was sent for the running statement */
	bool committing;	/* LEASE_ENDING commits (else rolls back) */
	bool rolled_back;	/* LEASE_ENDING: ROLLBACK done, UNLOCK TABLES next */
	bool accounted;		/* counted in totals and metrics */
	json_t *pending_error;	/* a transact's error, sent once rolled back */
	bool renewing;		/* LEASE_RUNNING runs a renew's keep-alive */
	struct identity_count *waiting_count; /* counted as waiting for its identity */
	struct buf sql;
};

static const char *const lease_state_names[LEASE__STATE_COUNT] = {
	[LEASE_WAITING] = "waiting",
	[LEASE_LOCKING] = "locking",
	[LEASE_HELD] = "held",
	[LEASE_RUNNING] = "running",
	[LEASE_ENDING] = "ending",
	[LEASE_RELEASING] = "releasing",
};

static const char *const lease_end_names[LEASE_END__COUNT] = {
	[LEASE_END_NONE] = "none",
	[LEASE_END_COMMIT] = "committed",
	[LEASE_END_ROLLBACK] = "rolled back",
	[LEASE_END_EXPIRED] = "expired",
	[LEASE_END_DISCONNECT] = "client disconnected",
	[LEASE_END_SHUTDOWN] = "daemon shutdown",
	[LEASE_END_REVOKED] = "revoked",
	[LEASE_END_LOST] = "MySQL session lost",
	[LEASE_END_LOCK_TIMEOUT] = "lock timeout",
	[LEASE_END_FAILED] = "not acquired",
};

static void lease_enter_state(struct lease *l, enum lease_state state);
static void lease_account(struct lease *l);
static void lease_granted(struct lease *l);
static void lease_uncount_waiting(struct lease *l);
static void lease_session_ready(struct pool_waiter *w, struct session *s);
static void lease_locked(struct session *s, struct session_result *r, void *arg);
static void lease_timer_cb(evutil_socket_t fd, short what, void *arg);
static void lease_statement_timer_cb(evutil_socket_t fd, short what, void *arg);
static void lease_run_statement(struct lease *l, const struct proto_statement *st);
static void lease_statement_done(struct session *s, struct session_result *r, void *arg);
static void lease_finish_op_done(struct session *s, struct session_result *r, void *arg);
static void lease_commit(struct lease *l);
static void lease_session_lost(void *arg, const char *reason);
static void lease_release(struct lease *l, bool rollback);
static void lease_unlocked(void *arg);
static void lease_finish(struct lease *l);
static void lease_detach(struct lease *l);
static void lease_arm(struct event *ev, int64_t ms);
static void lease_respond_result_error(struct lease *l, const struct session_result *r,
				       long statement);
static json_t *lease_result_json(const struct session_result *r);
static void lease_push(struct lease *l, const char *event, const char *reason);
static enum proto_error lease_end_error(enum lease_end end);
static bool lease_prepare_statement(struct client *c, const struct proto_statement *st,
				    long index, struct session *s, struct buf *out);
static void lease_run_bound(struct lease *l);

const char *
lease_state_name(enum lease_state state)
{
	return (unsigned)state < LEASE__STATE_COUNT ? lease_state_names[state] : "?";
}

const char *
lease_end_name(enum lease_end end)
{
	return (unsigned)end < LEASE_END__COUNT ? lease_end_names[end] : "?";
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

/* Counts how the lease ended (once): totals and metrics. */
static void
lease_account(struct lease *l)
{
	struct server_totals *t = &server.totals;
	uint64_t now = server_now_us();

	if (l->accounted)
		return;
	l->accounted = true;
	switch (l->end) {
	case LEASE_END_COMMIT:
		t->committed++;
		break;
	case LEASE_END_ROLLBACK:
		t->rolled_back++;
		break;
	case LEASE_END_EXPIRED:
		t->expired++;
		break;
	case LEASE_END_DISCONNECT:
		t->released_on_disconnect++;
		break;
	case LEASE_END_LOCK_TIMEOUT:
		t->lock_timeouts++;
		break;
	case LEASE_END_REVOKED:
		t->revoked++;
		break;
	case LEASE_END_LOST:
		t->lost++;
		break;
	case LEASE_END_SHUTDOWN:
		t->shutdown++;
		break;
	case LEASE_END_FAILED:
	case LEASE_END_NONE:
	case LEASE_END__COUNT:
		t->failed++;
		break;
	}
	metrics.leases_ended[l->end]++;
	if (l->held_us != 0)
		metrics_observe(&metrics.hold, (double)(now - l->held_us) / 1e6);
}

static void
lease_enter_state(struct lease *l, enum lease_state state)
{
	if (l->state == state)
		return;
	log_debug("lease %llu: %s -> %s", (unsigned long long)l->id, lease_state_name(l->state),
		  lease_state_name(state));
	l->state = state;
	/* From here on the lease is over for everyone but MySQL's cleanup:
	 * count it now, so status right after an answer agrees with it. */
	if (state == LEASE_RELEASING)
		lease_account(l);
}

static void
lease_arm(struct event *ev, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	evtimer_add(ev, &tv);
}

/* Escapes like mysql_real_escape_string() does with backslash escapes on:
 * the same size contract, for binding before any session is at hand. The
 * daemon's sessions always run with such an sql_mode (session.c). */
static unsigned long
lease_dry_escape(void *arg, char *out, const char *src, unsigned long len)
{
	unsigned long o = 0;

	(void)arg;
	for (unsigned long i = 0; i < len; i++) {
		char ch = src[i];
		const char *rep = NULL;
		switch (ch) {
		case '\0':
			rep = "\\0";
			break;
		case '\n':
			rep = "\\n";
			break;
		case '\r':
			rep = "\\r";
			break;
		case '\\':
			rep = "\\\\";
			break;
		case '\'':
			rep = "\\'";
			break;
		case '"':
			rep = "\\\"";
			break;
		case '\032':
			rep = "\\Z";
			break;
		}
		if (rep != NULL) {
			out[o++] = rep[0];
			out[o++] = rep[1];
		} else {
			out[o++] = ch;
		}
	}
	out[o] = '\0';
	return o;
}

/* Checks one statement and binds its params into out: the firewall on the
 * client's text, the binding, and the firewall again on the bound text
 * (cheap, and it keeps a binding bug from becoming a bypass). With s NULL
 * (a transact, before anything is locked) the binding is a dry run. On
 * refusal answers the client (with "statement": index when index >= 0). */
static bool
lease_prepare_statement(struct client *c, const struct proto_statement *st, long index,
			struct session *s, struct buf *out)
{
	enum proto_error code = PROTO_OK;
	char why[256];
	json_t *resp;

	buf_reset(out);
	if (sqltext_firewall(st->sql, st->sql_len, why, sizeof(why)) != SQLTEXT_ALLOW)
		code = PROTO_ERR_STATEMENT_NOT_ALLOWED;
	else if (!sqltext_bind(st->sql, st->sql_len, st->params,
			       s != NULL ? session_escape : lease_dry_escape, s, out, why,
			       sizeof(why)))
		code = PROTO_ERR_BAD_PARAMS;
	else if (sqltext_firewall(out->data, out->len, why, sizeof(why)) != SQLTEXT_ALLOW)
		code = PROTO_ERR_STATEMENT_NOT_ALLOWED;
	if (code == PROTO_OK)
		return true;
	if (code == PROTO_ERR_STATEMENT_NOT_ALLOWED)
		metrics.firewall_refusals++;
	resp = client_error(c, code, why);
	if (index >= 0)
		json_object_set_new(resp, "statement", json_integer(index));
	client_respond(c, resp);
	return false;
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
	if (req->op == PROTO_OP_TRANSACT) {
		/* Statements are checked before anything is locked, so a
		 * transact that would be refused never takes a lock. */
		struct buf scratch = {0};
		bool ok = true;
		for (size_t i = 0; ok && i < req->nstatements; i++)
			ok = lease_prepare_statement(c, &req->statements[i], (long)i, NULL, &scratch);
		buf_free(&scratch);
		if (!ok)
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

	l = xcalloc(1, sizeof(*l));
	l->id = leaseid_next();
	l->state = LEASE_WAITING;
	l->client = c;
	l->transact = req->op == PROTO_OP_TRANSACT;
	l->tables = req->tables;
	l->ntables = req->ntables;
	req->tables = NULL;
	req->ntables = 0;
	if (l->transact) {
		l->request_root = json_incref(req->root);
		l->statements = req->statements;
		l->nstatements = req->nstatements;
		req->statements = NULL;
		req->nstatements = 0;
		l->results = json_array();
	}
	l->wait_ms = req->wait_ms >= 0 ? req->wait_ms : conf->default_wait_ms;
	l->ttl_ms = req->ttl_ms >= 0 ? req->ttl_ms : conf->default_ttl_ms;
	if (l->ttl_ms > conf->max_ttl_ms)
		l->ttl_ms = conf->max_ttl_ms;
	l->created_us = server_now_us();
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
				l->end = LEASE_END_FAILED;
				client_respond_error(c, PROTO_ERR_TOO_MANY_WAITERS,
						     "%s already has max_waiting_per_identity (%u) "
						     "acquires waiting",
						     c->identity.label,
						     server.conf.max_waiting_per_identity);
				lease_detach(l);
				lease_finish(l);
				break;
			}
			(*identity_count_waiting(e))++;
			l->waiting_count = e;
		}
		break;
	case LOCKMGR_WOULD_BLOCK:
		l->lock = NULL;
		l->end = LEASE_END_LOCK_TIMEOUT;
		client_respond_error(c, PROTO_ERR_LOCK_TIMEOUT,
				     "tables are locked by another lease (wait_ms 0)");
		lease_finish(l);
		break;
	case LOCKMGR_TOO_MANY_WAITERS:
		l->lock = NULL;
		l->end = LEASE_END_FAILED;
		client_respond_error(c, PROTO_ERR_TOO_MANY_WAITERS,
				     "max_waiters (%u) requests are already waiting",
				     server.conf.max_waiters);
		lease_finish(l);
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

/* The daemon's queue let us through: get a MySQL session for LOCK TABLES. */
static void
lease_uncount_waiting(struct lease *l)
{
	if (l->waiting_count == NULL)
		return;
	(*identity_count_waiting(l->waiting_count))--;
	identity_unhold(l->waiting_count);
	l->waiting_count = NULL;
}

static void
lease_granted(struct lease *l)
{
	lease_uncount_waiting(l);
	struct session *s = pool_take(server.pool, &l->waiter);
	if (s != NULL)
		lease_session_ready(&l->waiter, s);
}

static void
lease_session_ready(struct pool_waiter *w, struct session *s)
{
	struct lease *l = (struct lease *)((char *)w - offsetof(struct lease, waiter));

	if (s == NULL) {
		l->end = LEASE_END_FAILED;
		if (l->client != NULL)
			client_respond_error(l->client, PROTO_ERR_UNAVAILABLE,
					     "MySQL is unreachable");
		lease_detach(l);
		lease_finish(l);
		return;
	}
	l->session = s;
	buf_reset(&l->sql);
	proto_table_lock_sql(&l->sql, l->tables, l->ntables);
	if (l->wait_ms == 0) {
		/* A try-lock must not wait in MySQL either (MariaDB KB
		 * "WAIT and NOWAIT"); ER_LOCK_WAIT_TIMEOUT answers at once. */
		buf_append_str(&l->sql, " NOWAIT");
	}
	lease_enter_state(l, LEASE_LOCKING);
	session_query(s, l->sql.data, l->sql.len, NULL, lease_locked, l);
}

static void
lease_locked(struct session *s, struct session_result *r, void *arg)
{
	struct lease *l = arg;
	struct client *c = l->client;
	json_t *resp;

	l->killing = false;
	if (r->lost) {
		l->session = NULL;
		if (l->end == LEASE_END_NONE) {
			l->end = LEASE_END_FAILED;
			if (c != NULL)
				client_respond_error(c, PROTO_ERR_UNAVAILABLE,
						     "MySQL session lost during LOCK TABLES: %s",
						     r->message);
		}
		lease_detach(l);
		lease_finish(l);
		return;
	}
	if (l->end != LEASE_END_NONE) {
		/* Ended while LOCK TABLES ran (client gone, shutdown, revoke). */
		if (c != NULL)
			client_respond_error(c, lease_end_error(l->end), "lease %llu %s",
					     (unsigned long long)l->id, lease_end_name(l->end));
		lease_detach(l);
		lease_release(l, true);
		return;
	}
	if (r->code != 0 || l->lock_timed_out) {
		/* A LOCK TABLES that failed holds nothing in MySQL: free the
		 * tables in the daemon before answering, so a client told
		 * "lock_timeout" that tries again is not refused by its own
		 * failed attempt. */
		if (r->code != 0 && l->lock != NULL) {
			lockmgr_release(server.lockmgr, l->lock); /* may grant others */
			l->lock = NULL;
		}
		if (l->lock_timed_out || r->mysql_errno == ER_LOCK_WAIT_TIMEOUT) {
			l->end = LEASE_END_LOCK_TIMEOUT;
			client_respond_error(c, PROTO_ERR_LOCK_TIMEOUT,
					     "tables are locked in MySQL by another session "
					     "(waited %lld ms)",
					     (long long)((server_now_us() - l->created_us) / 1000));
		} else if (r->mysql_errno == ER_NO_SUCH_TABLE) {
			l->end = LEASE_END_FAILED;
			resp = client_error(c, PROTO_ERR_UNKNOWN_TABLE, r->message);
			proto_response_add_mysql(resp, r->mysql_errno, r->sqlstate);
			client_respond(c, resp);
		} else {
			l->end = LEASE_END_FAILED;
			lease_respond_result_error(l, r, -1);
		}
		lease_detach(l);
		lease_release(l, true);
		return;
	}
	(void)s;
	evtimer_del(l->timer);
	l->held_us = server_now_us();
	l->expires_us = l->held_us + (uint64_t)l->ttl_ms * 1000;
	lease_arm(l->timer, l->ttl_ms);
	session_set_owner(l->session, lease_session_lost, l);
	lease_enter_state(l, LEASE_HELD);
	server.totals.acquired++;
	metrics_observe(&metrics.lock_wait, (double)(l->held_us - l->created_us) / 1e6);
	log_info("lease %llu: held by %s (%zu tables, waited %llu ms, ttl %lld ms)",
		 (unsigned long long)l->id, client_label(c), l->ntables,
		 (unsigned long long)((l->held_us - l->created_us) / 1000), (long long)l->ttl_ms);
	if (l->transact) {
		l->next_statement = 0;
		lease_run_statement(l, &l->statements[0]);
		return;
	}
	resp = client_ok(c);
	json_object_set_new(resp, "lease", json_integer((json_int_t)l->id));
	json_object_set_new(resp, "ttl_ms", json_integer(l->ttl_ms));
	json_object_set_new(resp, "waited_ms",
			    json_integer((json_int_t)((l->held_us - l->created_us) / 1000)));
	client_respond(c, resp);
}

/* The wait deadline (WAITING, LOCKING) or the TTL (HELD onwards). */
static void
lease_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lease *l = arg;

	(void)fd;
	(void)what;
	switch (l->state) {
	case LEASE_WAITING:
		l->end = LEASE_END_LOCK_TIMEOUT;
		if (l->client != NULL)
			client_respond_error(l->client, PROTO_ERR_LOCK_TIMEOUT,
				     "tables are locked by another lease (waited %lld ms)",
				     (long long)l->wait_ms);
		lease_detach(l);
		lease_finish(l);
		break;
	case LEASE_LOCKING:
		/* LOCK TABLES waits in MySQL: interrupt it so nothing of ours
		 * is left waiting there. lease_locked answers. */
		l->lock_timed_out = true;
		if (!l->killing) {
			l->killing = true;
			pool_kill_query(server.pool, l->session);
		}
		break;
	case LEASE_HELD:
	case LEASE_RUNNING:
		lease_end(l, LEASE_END_EXPIRED);
		break;
	case LEASE_ENDING:
	case LEASE_RELEASING:
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
	if (l->state != LEASE_RUNNING || l->killing)
		return;
	l->statement_timed_out = true;
	l->killing = true;
	pool_kill_query(server.pool, l->session);
}

/* Runs the statement already bound into l->sql. */
static void
lease_run_bound(struct lease *l)
{
	struct session_limits lim = {server.conf.max_rows, server.conf.max_result_bytes};

	l->statement_timed_out = false;
	lease_enter_state(l, LEASE_RUNNING);
	if (server.conf.timeout_ms > 0)
		lease_arm(l->statement_timer, server.conf.timeout_ms);
	session_query(l->session, l->sql.data, l->sql.len, &lim, lease_statement_done, l);
}

/* A transact's next statement. Its dry run passed before locking, so a
 * refusal here is not expected; it still rolls everything back. */
static void
lease_run_statement(struct lease *l, const struct proto_statement *st)
{
	if (!lease_prepare_statement(l->client, st, (long)l->next_statement, l->session,
				     &l->sql)) {
		l->end = LEASE_END_ROLLBACK;
		lease_detach(l);
		lease_release(l, true);
		return;
	}
	lease_run_bound(l);
}

void
lease_request(struct lease *l, struct proto_request *req)
{
	static const char rollback[] = "ROLLBACK";
	static const char keepalive[] = "DO 0";
	struct client *c = l->client;

	switch (req->op) {
	case PROTO_OP_QUERY:
		if (lease_prepare_statement(c, &req->query, -1, l->session, &l->sql))
			lease_run_bound(l);
		break;
	case PROTO_OP_COMMIT:
	case PROTO_OP_ROLLBACK:
		l->committing = req->op == PROTO_OP_COMMIT;
		lease_enter_state(l, LEASE_ENDING);
		if (l->committing)
			lease_commit(l);
		else
			session_query(l->session, rollback, sizeof(rollback) - 1, NULL,
				      lease_finish_op_done, l);
		break;
	case PROTO_OP_RENEW:
		if (req->ttl_ms >= 0)
			l->ttl_ms = req->ttl_ms > server.conf.max_ttl_ms ? server.conf.max_ttl_ms
									 : req->ttl_ms;
		evtimer_del(l->timer);
		l->expires_us = server_now_us() + (uint64_t)l->ttl_ms * 1000;
		lease_arm(l->timer, l->ttl_ms);
		/* A statement keeps MySQL's wait_timeout from dropping a
		 * session that a client keeps renewing without using. */
		l->renewing = true;
		lease_enter_state(l, LEASE_RUNNING);
		session_query(l->session, keepalive, sizeof(keepalive) - 1, NULL,
			      lease_statement_done, l);
		break;
	default:
		client_respond_error(c, PROTO_ERR_INTERNAL, "op not handled by the lease");
		break;
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
	return o;
}

/* Answers a failed statement: MySQL's own errno, SQLSTATE and message. */
static void
lease_respond_result_error(struct lease *l, const struct session_result *r, long statement)
{
	json_t *resp;

	if (l->client == NULL)
		return;
	resp = client_error(l->client, (enum proto_error)r->code, r->message);
	if (r->code == PROTO_ERR_MYSQL)
		proto_response_add_mysql(resp, r->mysql_errno, r->sqlstate);
	if (statement >= 0)
		json_object_set_new(resp, "statement", json_integer(statement));
	client_respond(l->client, resp);
}

static void
lease_statement_done(struct session *s, struct session_result *r, void *arg)
{
	struct lease *l = arg;
	struct client *c = l->client;
	bool renewing = l->renewing;
	json_t *resp;

	(void)s;
	evtimer_del(l->statement_timer);
	l->killing = false;
	l->renewing = false;
	if (!renewing) {
		metrics.statements++;
		if (r->code != 0 || l->statement_timed_out)
			metrics.statement_errors++;
	}
	if (r->lost) {
		l->session = NULL;
		if (l->end == LEASE_END_NONE)
			l->end = LEASE_END_LOST;
		lease_push(l, "lease_lost", r->message);
		if (c != NULL)
			client_respond_error(c, PROTO_ERR_LEASE_LOST,
					     "lease %llu lost its MySQL session: %s",
					     (unsigned long long)l->id, r->message);
		lease_detach(l);
		lease_finish(l);
		return;
	}
	if (l->end != LEASE_END_NONE) {
		/* Expired, revoked or shut down while the statement ran: it was
		 * interrupted (or finished) and is rolled back now. */
		if (c != NULL)
			client_respond_error(c, lease_end_error(l->end), "lease %llu %s",
					     (unsigned long long)l->id, lease_end_name(l->end));
		lease_detach(l);
		lease_release(l, true);
		return;
	}
	lease_enter_state(l, LEASE_HELD);
	if (r->code != 0 || l->statement_timed_out) {
		json_t *err;
		/* A statement interrupted by the timeout may still end
		 * "successfully" (SLEEP() returns 1 when killed): the timeout
		 * is the answer either way. */
		if (l->statement_timed_out) {
			err = client_error(c, PROTO_ERR_STATEMENT_TIMEOUT, "");
			json_object_set_new(json_object_get(err, "error"), "message",
					    json_sprintf("statement ran over timeout_ms (%lld ms) "
							 "and was interrupted",
							 (long long)server.conf.timeout_ms));
		} else {
			err = client_error(c, (enum proto_error)r->code, r->message);
			if (r->code == PROTO_ERR_MYSQL)
				proto_response_add_mysql(err, r->mysql_errno, r->sqlstate);
		}
		if (l->transact) {
			/* The first failing statement rolls everything back; the
			 * error goes out once the tables are free, like a
			 * rollback's answer. */
			json_object_set_new(err, "statement",
					    json_integer((json_int_t)l->next_statement));
			l->pending_error = err;
			l->committing = false;
			lease_enter_state(l, LEASE_ENDING);
			session_query(l->session, "ROLLBACK", 8, NULL, lease_finish_op_done, l);
			return;
		}
		client_respond(c, err);
		return;
	}
	if (l->transact) {
		json_array_append_new(l->results, lease_result_json(r));
		if (++l->next_statement < l->nstatements) {
			lease_run_statement(l, &l->statements[l->next_statement]);
			return;
		}
		l->committing = true;
		lease_enter_state(l, LEASE_ENDING);
		lease_commit(l);
		return;
	}
	if (renewing) {
		resp = client_ok(c);
		json_object_set_new(resp, "lease", json_integer((json_int_t)l->id));
		json_object_set_new(resp, "ttl_ms", json_integer(l->ttl_ms));
		client_respond(c, resp);
		return;
	}
	json_t *result = lease_result_json(r);
	resp = client_ok(c);
	json_object_update(resp, result);
	json_decref(result);
	client_respond(c, resp);
}

/* Commits and unlocks in one round trip: UNLOCK TABLES commits the open
 * transaction when LOCK TABLES took the locks (MariaDB KB "LOCK TABLES":
 * "UNLOCK TABLES implicitly commits any active transaction, but only if
 * LOCK TABLES has been used to acquire table locks"), and reports a failed
 * commit as its own error. So the answer to commit is sent with the tables
 * already free: a client told "committed" can lock them again at once. */
static void
lease_commit(struct lease *l)
{
	static const char unlock[] = "UNLOCK TABLES";
	session_query(l->session, unlock, sizeof(unlock) - 1, NULL, lease_finish_op_done, l);
}

/* The client's commit (or a transact's), or its ROLLBACK followed by
 * UNLOCK TABLES, ended. The tables are free in MySQL: free them in the
 * daemon, answer, and reset the session off the client's critical path. */
static void
lease_finish_op_done(struct session *s, struct session_result *r, void *arg)
{
	static const char unlock[] = "UNLOCK TABLES";
	struct lease *l = arg;
	struct client *c = l->client;
	json_t *resp;

	(void)s;
	if (l->pending_error != NULL && (r->lost || r->code != 0)) {
		/* A failed transact whose rollback failed too: MySQL rolls
		 * back a lost or reset session anyway; the statement's error
		 * is the answer that matters. */
		if (c != NULL)
			client_respond(c, l->pending_error);
		else
			json_decref(l->pending_error);
		l->pending_error = NULL;
		c = NULL;
	}
	if (r->lost) {
		l->session = NULL;
		l->end = LEASE_END_LOST;
		if (c != NULL) {
			if (l->committing)
				client_respond_error(c, PROTO_ERR_COMMIT_UNKNOWN,
						     "the MySQL session died during the commit; whether "
						     "lease %llu's transaction committed is unknown: %s",
						     (unsigned long long)l->id, r->message);
			else
				client_respond_error(c, PROTO_ERR_LEASE_LOST,
						     "lease %llu lost its MySQL session (MySQL rolled "
						     "it back): %s",
						     (unsigned long long)l->id, r->message);
		}
		lease_detach(l);
		lease_finish(l);
		return;
	}
	if (r->code != 0) {
		/* The commit failed: nothing committed; roll back and end. */
		l->end = LEASE_END_ROLLBACK;
		if (c != NULL)
			lease_respond_result_error(l, r, -1);
		lease_detach(l);
		lease_release(l, true);
		return;
	}
	if (!l->committing && !l->rolled_back) {
		l->rolled_back = true;
		session_query(l->session, unlock, sizeof(unlock) - 1, NULL, lease_finish_op_done, l);
		return;
	}
	l->end = l->committing ? LEASE_END_COMMIT : LEASE_END_ROLLBACK;
	if (l->lock != NULL) {
		lockmgr_release(server.lockmgr, l->lock); /* may grant others */
		l->lock = NULL;
	}
	if (c != NULL && l->pending_error != NULL) {
		client_respond(c, l->pending_error);
		l->pending_error = NULL;
	} else if (c != NULL) {
		resp = client_ok(c);
		json_object_set_new(resp, "lease", json_integer((json_int_t)l->id));
		if (l->transact)
			json_object_set(resp, "results", l->results);
		client_respond(c, resp);
	}
	lease_detach(l);
	evtimer_del(l->timer);
	evtimer_del(l->statement_timer);
	lease_enter_state(l, LEASE_RELEASING);
	session_release(l->session, SESSION_RELEASE_RESET, lease_unlocked, l);
}

/* The session died while the lease held it idle. MySQL has rolled back
 * and unlocked already; tell the client at once. */
static void
lease_session_lost(void *arg, const char *reason)
{
	struct lease *l = arg;

	l->session = NULL;
	if (l->end == LEASE_END_NONE)
		l->end = LEASE_END_LOST;
	lease_push(l, "lease_lost", reason);
	if (l->client != NULL)
		l->client->lost_lease = l->id;
	lease_detach(l);
	lease_finish(l);
}

void
lease_end(struct lease *l, enum lease_end why)
{
	if (why == LEASE_END_DISCONNECT) {
		if (l->client != NULL && l->client->lease == l)
			l->client->lease = NULL;
		l->client = NULL;
	}
	if (l->end == LEASE_END_NONE && l->state != LEASE_ENDING && l->state != LEASE_RELEASING)
		l->end = why;
	switch (l->state) {
	case LEASE_WAITING:
		if (l->client != NULL)
			client_respond_error(l->client, lease_end_error(why), "lease %llu %s",
					     (unsigned long long)l->id, lease_end_name(why));
		lease_detach(l);
		lease_finish(l);
		break;
	case LEASE_LOCKING:
		if (!l->killing) {
			l->killing = true;
			pool_kill_query(server.pool, l->session);
		}
		break;
	case LEASE_HELD:
		if (why == LEASE_END_EXPIRED)
			lease_push(l, "lease_expired", NULL);
		else if (why == LEASE_END_REVOKED)
			lease_push(l, "lease_revoked", NULL);
		lease_detach(l);
		lease_release(l, true);
		break;
	case LEASE_RUNNING:
		if (why == LEASE_END_EXPIRED)
			lease_push(l, "lease_expired", NULL);
		else if (why == LEASE_END_REVOKED)
			lease_push(l, "lease_revoked", NULL);
		if (!l->killing) {
			l->killing = true;
			pool_kill_query(server.pool, l->session);
		}
		break;
	case LEASE_ENDING:
	case LEASE_RELEASING:
	case LEASE__STATE_COUNT:
		/* COMMIT/ROLLBACK decides; the release is already under way. */
		break;
	}
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
	default:
		return PROTO_ERR_INTERNAL;
	}
}

static void
lease_push(struct lease *l, const char *event, const char *reason)
{
	json_t *ev;

	if (l->client == NULL)
		return;
	ev = proto_event(event, l->id);
	if (reason != NULL)
		json_object_set_new(ev, "reason", json_string(reason));
	client_push(l->client, ev);
}

/* The client is done with this lease: its requests no longer go here and
 * the lease will not write to it again. Invariant: l->client != NULL
 * exactly while l->client->lease == l. */
static void
lease_detach(struct lease *l)
{
	if (l->client == NULL)
		return;
	if (l->client->lease == l) {
		l->client->lease = NULL;
		client_lease_gone(l->client);
	}
	l->client = NULL;
}

static void
lease_release(struct lease *l, bool rollback)
{
	evtimer_del(l->timer);
	evtimer_del(l->statement_timer);
	lease_enter_state(l, LEASE_RELEASING);
	session_release(l->session, rollback ? SESSION_RELEASE_ROLLBACK : SESSION_RELEASE_UNLOCK,
			lease_unlocked, l);
}

static void
lease_unlocked(void *arg)
{
	struct lease *l = arg;

	l->session = NULL; /* it resets and returns to the pool by itself */
	lease_finish(l);
}

/* The one way out: the tables are free in MySQL (or were never locked
 * there); free them in the daemon, count, log, and free the lease. */
static void
lease_finish(struct lease *l)
{
	uint64_t now = server_now_us();

	pool_cancel(server.pool, &l->waiter);
	evtimer_del(l->timer);
	evtimer_del(l->statement_timer);
	lease_detach(l);
	lease_uncount_waiting(l);
	TAILQ_REMOVE(&server.leases, l, entry);
	server.nleases--;

	lease_account(l);
	if (l->held_us != 0)
		log_info("lease %llu: ended: %s after %llu ms held", (unsigned long long)l->id,
			 lease_end_name(l->end), (unsigned long long)((now - l->held_us) / 1000));
	else
		log_info("lease %llu: ended before it was held: %s", (unsigned long long)l->id,
			 lease_end_name(l->end));

	if (l->lock != NULL)
		lockmgr_release(server.lockmgr, l->lock); /* may grant others */
	event_free(l->timer);
	event_free(l->statement_timer);
	proto_table_free_array(l->tables, l->ntables);
	free(l->statements);
	json_decref(l->request_root);
	json_decref(l->results);
	json_decref(l->pending_error);
	buf_free(&l->sql);
	free(l);
	server_lease_freed();
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

json_t *
lease_status(const struct lease *l, bool full)
{
	uint64_t now = server_now_us();
	const char *state;
	json_t *o;

	switch (l->state) {
	case LEASE_WAITING:
		state = "waiting";
		break;
	case LEASE_LOCKING:
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
	json_object_set_new(o, "transact", json_boolean(l->transact));
	return o;
}
