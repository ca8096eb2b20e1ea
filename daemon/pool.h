/* Session pool: lends connected MySQL sessions to leases, keeps them alive. */
#ifndef TABLELOCK_POOL_H
#define TABLELOCK_POOL_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/queue.h>

#include "daemon/session.h"

struct conf;

/* A lease waiting for a session. ready(w, s) hands over a LENT session, or
 * s == NULL when MySQL is unreachable (the lease answers "unavailable"). */
struct pool_waiter {
	TAILQ_ENTRY(pool_waiter) entry;
	void (*ready)(struct pool_waiter *w, struct session *s);
	bool queued;
};

struct pool;

struct pool *pool_new(struct event_base *base, const struct conf *conf);
/* Starts connecting every session and the control session. */
void pool_start(struct pool *p);
/* Resizes for a reload: new sessions connect; surplus ones close once
 * idle (a lent one finishes its lease first). */
void pool_resize(struct pool *p, unsigned int size);
/* A reload may have changed the per-lease settings (timeout_ms, sql_mode,
 * max_ttl_ms): every session takes them with its next statement. */
void pool_settings_changed(struct pool *p);
/* Returns a LENT session at once, or queues w (FIFO) and returns NULL. */
struct session *pool_take(struct pool *p, struct pool_waiter *w);
void pool_cancel(struct pool *p, struct pool_waiter *w);
/* False once connecting has failed and no session is usable: acquire then
 * answers "unavailable" at once instead of queueing. */
bool pool_available(const struct pool *p);
/* Leases queued for a session because none is idle (metrics). */
unsigned int pool_waiting(const struct pool *p);
/* Interrupts the statement running on target (KILL QUERY on the control
 * session); the target sends nothing new until the kill is done. */
void pool_kill_query(struct pool *p, struct session *target);
/* Runs sql (nstatements) on the control session once no kill waits, and
 * calls done with its results (lost ones when the control session died).
 * One at a time: a second call replaces a query not started yet. */
void pool_control_query(struct pool *p, const char *sql, size_t len, size_t nstatements,
			session_done_fn *done, void *arg);
/* The query will not be answered (started or not). */
void pool_control_cancel(struct pool *p);
/* Is thread_id (a MySQL connection id) one of this pool's sessions? */
bool pool_owns_thread(const struct pool *p, unsigned long thread_id);
/* {"size":…,"idle":…,"busy":…,"connecting":…,"broken":…} */
json_t *pool_status(const struct pool *p);
/* Closes every session (shutdown). */
void pool_close(struct pool *p);
void pool_free(struct pool *p);

/* For session.c. */
struct event_base *pool_base(const struct pool *p);
const struct conf *pool_conf(const struct pool *p);
void pool_session_idle(struct pool *p, struct session *s);
/* connect_failed: an attempt to connect failed (MySQL may be down);
 * otherwise a working connection was lost. */
void pool_session_down(struct pool *p, struct session *s, bool connect_failed, const char *why);
void pool_session_up(struct pool *p, struct session *s);

#endif
