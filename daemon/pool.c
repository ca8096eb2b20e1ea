/* Session pool: lends connected MySQL sessions to leases, keeps them alive. */
#include "daemon/pool.h"

#include <stdio.h>
#include <stdlib.h>

#include "conf/conf.h"
#include "daemon/log.h"
#include "daemon/server.h"
#include "daemon/session.h"
#include "util/buf.h"
#include "util/plural.h"
#include "util/xmalloc.h"

/* A KILL QUERY for the control session to send: queued, then running. */
struct pool_kill {
	TAILQ_ENTRY(pool_kill) entry;	/* p->kills, while it waits */
	struct session *target;
	unsigned long thread_id;
};

struct pool {
	struct event_base *base;
	const struct conf *conf;
	struct session **sessions;
	unsigned int size;		/* sessions in use: the first `size` */
	unsigned int nsessions;		/* allocated; beyond size they are closing */
	struct session *control;
	TAILQ_HEAD(, pool_waiter) waiters;
	bool reachable;		/* the last connection attempt succeeded */
	bool closing;

	TAILQ_HEAD(, pool_kill) kills;	/* waiting for the control session, in order */
	struct pool_kill *kill_running;	/* sent, not answered yet; NULL when none */

	/* One other query for the control session (status's outside
	 * blockers), run when no kill is waiting: kills go first. */
	struct buf control_sql;
	size_t control_n;
	session_done_fn *control_done;
	void *control_arg;
	bool control_busy;
};

static void pool_kill_next(struct pool *p);
static void pool_kill_done(struct session *s, struct session_result *r, size_t n, void *arg);
static void pool_control_done(struct session *s, struct session_result *r, size_t n, void *arg);
static bool pool_any_usable(const struct pool *p);

struct pool *
pool_new(struct event_base *base, const struct conf *conf)
{
	struct pool *p = xcalloc(1, sizeof(*p));
	p->base = base;
	p->conf = conf;
	p->size = conf->pool_size;
	p->nsessions = p->size;
	p->sessions = xcalloc(p->size, sizeof(*p->sessions));
	for (unsigned int i = 0; i < p->size; i++)
		p->sessions[i] = session_new(p, i + 1, false);
	p->control = session_new(p, 0, true);
	TAILQ_INIT(&p->waiters);
	TAILQ_INIT(&p->kills);
	p->reachable = true;
	return p;
}

void
pool_start(struct pool *p)
{
	session_connect(p->control, 0);
	for (unsigned int i = 0; i < p->size; i++)
		session_connect(p->sessions[i], 0);
}

struct event_base *
pool_base(const struct pool *p)
{
	return p->base;
}

const struct conf *
pool_conf(const struct pool *p)
{
	return p->conf;
}

struct session *
pool_take(struct pool *p, struct pool_waiter *w)
{
	for (unsigned int i = 0; i < p->size; i++) {
		struct session *s = p->sessions[i];
		if (session_get_state(s) == SESSION_IDLE) {
			session_lend(s);
			return s;
		}
	}
	TAILQ_INSERT_TAIL(&p->waiters, w, entry);
	w->queued = true;
	return NULL;
}

void
pool_cancel(struct pool *p, struct pool_waiter *w)
{
	if (!w->queued)
		return;
	TAILQ_REMOVE(&p->waiters, w, entry);
	w->queued = false;
}

static bool
pool_any_usable(const struct pool *p)
{
	for (unsigned int i = 0; i < p->size; i++) {
		switch (session_get_state(p->sessions[i])) {
		case SESSION_IDLE:
		case SESSION_LENT:
		case SESSION_RUNNING:
		case SESSION_RESETTING:
		case SESSION_PREPARING:
			return true;
		default:
			break;
		}
	}
	return false;
}

bool
pool_available(const struct pool *p)
{
	return p->reachable || pool_any_usable(p);
}

unsigned int
pool_waiting(const struct pool *p)
{
	const struct pool_waiter *w;
	unsigned int n = 0;

	TAILQ_FOREACH(w, &p->waiters, entry)
		n++;
	return n;
}

void
pool_session_up(struct pool *p, struct session *s)
{
	if (!p->reachable)
		log_info("MySQL is reachable again (session %u connected)", session_index(s));
	p->reachable = true;
}

void
pool_session_idle(struct pool *p, struct session *s)
{
	struct pool_waiter *w;

	if (p->closing) {
		session_close(s);
		return;
	}
	if (s == p->control) {
		pool_kill_next(p);
		return;
	}
	if (session_index(s) > p->size) {
		/* Surplus after a reload shrank the pool. */
		session_close(s);
		return;
	}
	server_pool_settled(true);
	w = TAILQ_FIRST(&p->waiters);
	if (w == NULL)
		return;
	TAILQ_REMOVE(&p->waiters, w, entry);
	w->queued = false;
	session_lend(s);
	w->ready(w, s);
}

void
pool_session_down(struct pool *p, struct session *s, bool connect_failed, const char *why)
{
	bool was_reachable = p->reachable;

	if (p->closing)
		return;
	if (s == p->control) {
		log_warnx("control session: %s", why);
		if (p->kill_running != NULL) {
			/* The kill did not go through: it goes first once the
			 * control session is back. */
			TAILQ_INSERT_HEAD(&p->kills, p->kill_running, entry);
			p->kill_running = NULL;
		}
		return;
	}
	if (connect_failed) {
		p->reachable = false;
		server_pool_settled(false);
	}
	if (was_reachable && !pool_available(p))
		log_error("MySQL is unreachable: %s", why);
	else
		log_warnx("session %u: %s", session_index(s), why);
	if (!pool_available(p)) {
		/* Nobody can be served until MySQL is back: tell the waiters
		 * now rather than let them time out. */
		struct pool_waiter *w;
		while ((w = TAILQ_FIRST(&p->waiters)) != NULL) {
			TAILQ_REMOVE(&p->waiters, w, entry);
			w->queued = false;
			w->ready(w, NULL);
		}
	}
}

void
pool_kill_query(struct pool *p, struct session *target)
{
	unsigned long id = session_thread_id(target);
	struct pool_kill *k;

	if (id == 0)
		return;
	session_kill_begin(target);
	k = xcalloc(1, sizeof(*k));
	k->target = target;
	k->thread_id = id;
	TAILQ_INSERT_TAIL(&p->kills, k, entry);
	pool_kill_next(p);
}

static void
pool_kill_next(struct pool *p)
{
	struct pool_kill *k;
	char sql[64];
	int n;

	if (p->kill_running != NULL || p->control_busy ||
	    session_get_state(p->control) != SESSION_IDLE)
		return;
	if ((k = TAILQ_FIRST(&p->kills)) == NULL) {
		if (p->control_done != NULL) {
			p->control_busy = true;
			session_query(p->control, p->control_sql.data, p->control_sql.len,
				      p->control_n, false, NULL, pool_control_done, p);
		}
		return;
	}
	TAILQ_REMOVE(&p->kills, k, entry);
	p->kill_running = k;
	n = snprintf(sql, sizeof(sql), "KILL QUERY %lu", k->thread_id);
	log_debug("session %u: KILL QUERY %lu", session_index(k->target), k->thread_id);
	session_query(p->control, sql, (size_t)n, 1, false, NULL, pool_kill_done, p);
}

static void
pool_kill_done(struct session *s, struct session_result *r, size_t n, void *arg)
{
	struct pool *p = arg;
	struct pool_kill *k = p->kill_running;

	(void)s;
	(void)n;
	if (r->lost)
		return; /* pool_session_down requeued it */
	p->kill_running = NULL;
	/* 1094 (unknown thread): the target's connection is already gone,
	 * which ends its statement just as well. */
	if (r->code != 0 && r->mysql_errno != 1094)
		log_warnx("KILL QUERY %lu failed: %s", k->thread_id, r->message);
	session_kill_end(k->target);
	free(k);
	pool_kill_next(p);
}

void
pool_control_query(struct pool *p, const char *sql, size_t len, size_t nstatements,
		   session_done_fn *done, void *arg)
{
	buf_reset(&p->control_sql);
	buf_append(&p->control_sql, sql, len);
	p->control_n = nstatements;
	p->control_done = done;
	p->control_arg = arg;
	pool_kill_next(p);
}

void
pool_control_cancel(struct pool *p)
{
	/* One in flight finishes; its answer goes nowhere. */
	p->control_done = NULL;
	p->control_arg = NULL;
}

static void
pool_control_done(struct session *s, struct session_result *r, size_t n, void *arg)
{
	struct pool *p = arg;
	session_done_fn *done = p->control_done;
	void *done_arg = p->control_arg;

	p->control_busy = false;
	p->control_done = NULL;
	p->control_arg = NULL;
	if (done != NULL)
		done(s, r, n, done_arg);
	pool_kill_next(p);
}

bool
pool_owns_thread(const struct pool *p, unsigned long thread_id)
{
	if (thread_id == 0)
		return false;
	if (session_thread_id(p->control) == thread_id)
		return true;
	for (unsigned int i = 0; i < p->nsessions; i++)
		if (session_thread_id(p->sessions[i]) == thread_id)
			return true;
	return false;
}

json_t *
pool_status(const struct pool *p)
{
	unsigned int idle = 0, busy = 0, connecting = 0, broken = 0;

	for (unsigned int i = 0; i < p->size; i++) {
		switch (session_get_state(p->sessions[i])) {
		case SESSION_IDLE:
			idle++;
			break;
		case SESSION_LENT:
		case SESSION_RUNNING:
		case SESSION_RESETTING:
			busy++;
			break;
		case SESSION_CONNECTING:
		case SESSION_PREPARING:
			connecting++;
			break;
		case SESSION_DOWN:
		case SESSION_CLOSED:
		case SESSION__STATE_COUNT:
			broken++;
			break;
		}
	}
	return json_pack("{s:i,s:i,s:i,s:i,s:i}", "size", (int)p->size, "idle", (int)idle, "busy",
			 (int)busy, "connecting", (int)connecting, "broken", (int)broken);
}

void
pool_settings_changed(struct pool *p)
{
	for (unsigned int i = 0; i < p->nsessions; i++)
		session_settings_changed(p->sessions[i]);
}

void
pool_resize(struct pool *p, unsigned int size)
{
	unsigned int old = p->size;

	if (size == old)
		return;
	log_info("pool: %u -> %u session%s", old, size, plural_s(size));
	if (size > p->nsessions) {
		p->sessions = xrealloc(p->sessions, size * sizeof(*p->sessions));
		for (unsigned int i = p->nsessions; i < size; i++)
			p->sessions[i] = session_new(p, i + 1, false);
		p->nsessions = size;
	}
	p->size = size;
	for (unsigned int i = 0; i < p->nsessions; i++) {
		struct session *s = p->sessions[i];
		enum session_state st = session_get_state(s);
		if (i < size && (st == SESSION_CLOSED || (i >= old && st == SESSION_DOWN)))
			session_reopen(s);
		else if (i >= size && (st == SESSION_IDLE || st == SESSION_DOWN))
			session_close(s);
	}
}

void
pool_close(struct pool *p)
{
	p->closing = true;
	for (unsigned int i = 0; i < p->nsessions; i++)
		session_close(p->sessions[i]);
	session_close(p->control);
}

void
pool_free(struct pool *p)
{
	struct pool_kill *k;

	if (p == NULL)
		return;
	for (unsigned int i = 0; i < p->nsessions; i++)
		session_free(p->sessions[i]);
	session_free(p->control);
	free(p->sessions);
	while ((k = TAILQ_FIRST(&p->kills)) != NULL) {
		TAILQ_REMOVE(&p->kills, k, entry);
		free(k);
	}
	free(p->kill_running);
	buf_free(&p->control_sql);
	free(p);
}
