/* MySQL session: one non-blocking MariaDB connection driven by libevent. */
#include "daemon/session.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "conf/conf.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/pool.h"
#include "daemon/result.h"
#include "proto/proto_error.h"
#include "util/buf.h"
#include "util/xmalloc.h"

/* Which non-blocking call is in flight. Each has a _start and a _cont form
 * (MariaDB Connector/C, "Non-blocking API"); session_step() calls the
 * _start form when ready < 0 and the _cont form with the ready events. */
enum session_step {
	STEP_NONE,
	STEP_CONNECT,
	STEP_QUERY,
	STEP_FETCH,
	STEP_FREE,
	STEP_NEXT,
	STEP_RESET,
};

/* The per-lease settings. mysql_reset_connection() restores the server
 * defaults, so autocommit is on again: the manual's recipe for LOCK TABLES
 * with InnoDB wants it off (MariaDB KB "LOCK TABLES", "transactional
 * tables"). session_track_state_change makes MySQL flag every OK packet of
 * a statement that changed session state (SERVER_SESSION_STATE_CHANGED),
 * which tells whether a lease needs a reset afterwards. wait_timeout is a
 * safety net: if the daemon hangs, MySQL drops the session and frees its
 * locks by itself (session_wait_timeout_s; an idle session is refreshed
 * before it runs out, see session_refresh_cb). sql_mode is set explicitly:
 * under NO_BACKSLASH_ESCAPES or ANSI_QUOTES the server would read quotes
 * differently from the statement firewall (conf.c refuses those modes;
 * the value holds only mode names and commas). max_statement_time is
 * timeout_ms: MySQL itself bounds each user statement, also inside a
 * batch, where a KILL QUERY could only stop one statement and let the
 * batch go on (MariaDB KB "Aborting
 * Statements that Exceed a Certain Time to Execute"); the daemon's own
 * statements are exempt (lease.c). */
/* How long a batch hit by a kill may stay silent (session_strand_cb). */
#define SESSION_STRAND_MS 1000

#define SESSION_SETTINGS                                                                  \
	"SET autocommit=0, SESSION session_track_state_change=ON, "                       \
	"SESSION wait_timeout=%lld, SESSION sql_mode='%s', "                              \
	"SESSION max_statement_time=%lld.%03lld"

struct session {
	struct pool *pool;
	unsigned int index;
	bool control;
	enum session_state state;
	MYSQL *mysql;
	unsigned long thread_id;

	struct event io;	/* the socket and MySQL's own timeouts */
	bool io_armed;
	short io_flags;		/* as armed */
	evutil_socket_t io_fd;
	struct event *retry;	/* reconnect backoff */
	struct event *refresh;	/* IDLE: runs the settings again before wait_timeout */
	unsigned int backoff_ms;

	enum session_step step;
	struct buf sql;
	int ret_int;
	MYSQL *ret_mysql;
	MYSQL_ROW ret_row;
	MYSQL_RES *res;
	struct result_builder builder;
	struct session_result result;	/* the statement being read */
	struct session_result *results;	/* a batch's results so far */
	size_t nresults;
	size_t results_cap;
	size_t skip;		/* leading results that are ours (the settings) */
	size_t batch_n;		/* statements in the batch in flight, settings included */
	bool prepared;		/* the settings are in force */
	void (*step_done)(struct session *s); /* what follows the statement */

	session_done_fn *done;	/* the lease's callback for session_query */
	void *done_arg;
	bool starting;		/* inside session_query: done must wait */
	bool finished;		/* the batch ended while starting: deliver it later */
	struct event *deliver;	/* calls done after a batch that ended at once */
	bool deferred;		/* a statement waits for kills to finish */

	void (*lost)(void *arg, const char *reason);
	void *lost_arg;

	unsigned int kills;	/* KILL QUERY statements in flight at us */
	bool head_killable;	/* the batch's first statement may be killed */
	bool killed_in_batch;	/* a kill was sent at a batch of several statements */
	struct event *strand;	/* such a batch stalled: the kill fell between two */
	/* Connection parameters, copied for the whole non-blocking connect:
	 * mysql_real_connect_cont() reuses the pointers given to _start, and
	 * a reload may free the configuration's strings meanwhile. */
	char *c_host, *c_user, *c_password, *c_database, *c_socket;
	bool connected_before;	/* a later connect is a reconnect */
};

static const char *const session_state_names[SESSION__STATE_COUNT] = {
	[SESSION_DOWN] = "down",
	[SESSION_CONNECTING] = "connecting",
	[SESSION_PREPARING] = "preparing",
	[SESSION_IDLE] = "idle",
	[SESSION_LENT] = "lent",
	[SESSION_RUNNING] = "running",
	[SESSION_RESETTING] = "resetting",
	[SESSION_CLOSED] = "closed",
};

static void session_enter_state(struct session *s, enum session_state state);
static void session_step(struct session *s, int ready);
static void session_io_cb(evutil_socket_t fd, short what, void *arg);
static void session_retry_cb(evutil_socket_t fd, short what, void *arg);
static void session_wait(struct session *s, int status);
static void session_watch(struct session *s);
static void session_arm(struct session *s, short what, const struct timeval *tv);
static void session_exec(struct session *s, const char *sql, size_t len,
			 void (*step_done)(struct session *s));
static void session_fail(struct session *s, const char *why);
static void session_prepare(struct session *s);
static void session_prepared(struct session *s);
static void session_refresh_cb(evutil_socket_t fd, short what, void *arg);
static long long session_wait_timeout_s(const struct session *s);
static void session_query_done(struct session *s);
static void session_reset_done(struct session *s);
static void session_deliver_cb(evutil_socket_t fd, short what, void *arg);
static void session_strand_cb(evutil_socket_t fd, short what, void *arg);
static void session_result_clear(struct session_result *r);
static void session_results_clear(struct session *s);
static void session_result_keep(struct session *s);
static void session_result_error(struct session *s);
static void session_disconnect(struct session *s);
static void session_free_params(struct session *s);

const char *
session_state_name(enum session_state state)
{
	if ((unsigned)state >= SESSION__STATE_COUNT)
		return "?";
	return session_state_names[state];
}

struct session *
session_new(struct pool *pool, unsigned int index, bool control)
{
	struct session *s = xcalloc(1, sizeof(*s));
	s->pool = pool;
	s->index = index;
	s->control = control;
	s->state = SESSION_DOWN;
	s->retry = evtimer_new(pool_base(pool), session_retry_cb, s);
	s->refresh = evtimer_new(pool_base(pool), session_refresh_cb, s);
	s->deliver = event_new(pool_base(pool), -1, 0, session_deliver_cb, s);
	s->strand = evtimer_new(pool_base(pool), session_strand_cb, s);
	return s;
}

static void
session_free_params(struct session *s)
{
	free(s->c_host);
	free(s->c_user);
	if (s->c_password != NULL)
		explicit_bzero(s->c_password, strlen(s->c_password));
	free(s->c_password);
	free(s->c_database);
	free(s->c_socket);
	s->c_host = s->c_user = s->c_password = s->c_database = s->c_socket = NULL;
}

void
session_free(struct session *s)
{
	if (s == NULL)
		return;
	session_disconnect(s);
	session_free_params(s);
	event_free(s->retry);
	event_free(s->refresh);
	event_free(s->deliver);
	event_free(s->strand);
	buf_free(&s->sql);
	session_result_clear(&s->result);
	session_results_clear(s);
	free(s->results);
	free(s);
}

enum session_state
session_get_state(const struct session *s)
{
	return s->state;
}

unsigned long
session_thread_id(const struct session *s)
{
	return s->mysql != NULL ? s->thread_id : 0;
}

unsigned int
session_index(const struct session *s)
{
	return s->index;
}

unsigned long
session_escape(void *arg, char *out, const char *src, unsigned long len)
{
	struct session *s = arg;
	/* Honours the connection's charset and NO_BACKSLASH_ESCAPES. */
	return mysql_real_escape_string(s->mysql, out, src, len);
}

void
session_lend(struct session *s)
{
	session_enter_state(s, SESSION_LENT);
}

void
session_set_owner(struct session *s, void (*lost)(void *arg, const char *reason), void *arg)
{
	s->lost = lost;
	s->lost_arg = arg;
}

void
session_kill_begin(struct session *s)
{
	s->kills++;
	if (s->state == SESSION_RUNNING && s->batch_n > 1)
		s->killed_in_batch = true;
}

void
session_kill_end(struct session *s)
{
	if (s->kills > 0)
		s->kills--;
	if (s->kills == 0 && s->deferred) {
		s->deferred = false;
		session_step(s, -1);
	}
}

static void
session_enter_state(struct session *s, enum session_state state)
{
	if (s->state == state)
		return;
	log_debug("session %u%s: %s -> %s", s->index, s->control ? " (control)" : "",
		  session_state_name(s->state), session_state_name(state));
	if (s->state == SESSION_IDLE)
		evtimer_del(s->refresh);
	s->state = state;
	if (state == SESSION_IDLE) {
		/* Idle for half its wait_timeout: refreshed, never closed. */
		struct timeval tv = {(time_t)(session_wait_timeout_s(s) / 2), 0};
		evtimer_add(s->refresh, &tv);
	}
}

/* An idle session is about to reach the wait_timeout it was given (its
 * settings, SESSION_SETTINGS), after which MySQL would close it: a pool
 * that sat unused for ten minutes would lose every session and log each
 * loss as a failure. Running the settings again restarts MySQL's count
 * (and restores them after a reset); PREPARING keeps the session from
 * being lent meanwhile, and session_prepared hands it back to the pool. */
static void
session_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	if (s->state != SESSION_IDLE)
		return;
	log_debug("session %u%s: idle for %llds, refreshing it before MySQL's wait_timeout",
		  s->index, s->control ? " (control)" : "", session_wait_timeout_s(s) / 2);
	session_prepare(s);
}

/* The wait_timeout every session runs with: longer than any lease may go
 * without a statement (max_ttl_ms; renew sends one), so that it only ever
 * fires for a daemon that hangs. */
static long long
session_wait_timeout_s(const struct session *s)
{
	return (long long)(pool_conf(s->pool)->max_ttl_ms / 1000 + 10);
}

static void
session_result_clear(struct session_result *r)
{
	json_decref(r->columns);
	json_decref(r->rows);
	memset(r, 0, sizeof(*r));
}

/* Closes the MySQL handle and stops watching its socket. */
static void
session_disconnect(struct session *s)
{
	if (s->io_armed) {
		event_del(&s->io);
		s->io_armed = false;
	}
	if (s->res != NULL) {
		/* Never drain a dead result: the connection goes with it. */
		s->res = NULL;
	}
	if (s->mysql != NULL) {
		mysql_close(s->mysql);
		s->mysql = NULL;
	}
	result_builder_reset(&s->builder);
	s->thread_id = 0;
	s->step = STEP_NONE;
	s->prepared = false;
}

void
session_connect(struct session *s, unsigned int delay_ms)
{
	const struct conf *c = pool_conf(s->pool);
	unsigned int timeout_s;
	my_bool off = 0;

	if (s->state == SESSION_CLOSED)
		return;
	session_disconnect(s);
	if (delay_ms > 0) {
		struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
		session_enter_state(s, SESSION_DOWN);
		evtimer_add(s->retry, &tv);
		return;
	}
	session_free_params(s);
	s->c_host = c->host != NULL ? xstrdup(c->host) : NULL;
	s->c_user = c->user != NULL ? xstrdup(c->user) : NULL;
	s->c_password = c->password != NULL ? xstrdup(c->password) : NULL;
	s->c_database = c->database != NULL ? xstrdup(c->database) : NULL;
	s->c_socket = c->socket != NULL ? xstrdup(c->socket) : NULL;
	s->mysql = mysql_init(NULL);
	if (s->mysql == NULL) {
		session_fail(s, "mysql_init failed");
		return;
	}
	mysql_options(s->mysql, MYSQL_OPT_NONBLOCK, 0);
	mysql_options(s->mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	/* A silently reconnected session has lost its locks: never reconnect. */
	mysql_options(s->mysql, MYSQL_OPT_RECONNECT, &off);
	mysql_options(s->mysql, MYSQL_OPT_LOCAL_INFILE, &off);
	timeout_s = (unsigned int)((c->connect_timeout_ms + 999) / 1000);
	mysql_options(s->mysql, MYSQL_OPT_CONNECT_TIMEOUT, &timeout_s);
	if (c->option_file != NULL) {
		mysql_options(s->mysql, MYSQL_READ_DEFAULT_FILE, c->option_file);
		mysql_options(s->mysql, MYSQL_READ_DEFAULT_GROUP,
			      c->option_group != NULL ? c->option_group : "client");
	}
	session_enter_state(s, SESSION_CONNECTING);
	s->step = STEP_CONNECT;
	session_step(s, -1);
}

static void
session_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	session_connect(arg, 0);
}

/* A connection attempt failed or a connection died: drop it, tell the
 * pool (and the owner, if lent), and retry with exponential backoff. */
static void
session_fail(struct session *s, const char *why)
{
	enum session_state was = s->state;
	void (*lost)(void *, const char *) = s->lost;
	void *lost_arg = s->lost_arg;
	char reason[600];

	snprintf(reason, sizeof(reason), "%s", why);
	session_disconnect(s);
	s->lost = NULL;
	s->lost_arg = NULL;
	s->kills = 0;
	s->deferred = false;
	if (was == SESSION_CLOSED)
		return;
	if (was == SESSION_CONNECTING)
		s->backoff_ms = s->backoff_ms == 0 ? 100 : s->backoff_ms * 2;
	else
		s->backoff_ms = 0;
	if (s->backoff_ms > 5000)
		s->backoff_ms = 5000;
	session_enter_state(s, SESSION_DOWN);
	pool_session_down(s->pool, s, was == SESSION_CONNECTING, reason);
	if (was == SESSION_LENT && lost != NULL)
		lost(lost_arg, reason);
	if (s->state == SESSION_DOWN)
		session_connect(s, s->backoff_ms);
}

/* Arms the socket event. A plain read wait (the common one: a statement
 * was sent, its answer is awaited) and the idle watch below are the same
 * persistent read event, left armed across statements, so the hot path
 * costs no epoll_ctl; anything else (writes, MySQL's own timeouts) is
 * armed once. */
static void
session_arm(struct session *s, short what, const struct timeval *tv)
{
	evutil_socket_t fd = mysql_get_socket(s->mysql);
	short flags = what;

	if (what == EV_READ && tv == NULL)
		flags |= EV_PERSIST;
	if (s->io_armed && s->io_flags == flags && s->io_fd == fd && tv == NULL)
		return;
	if (s->io_armed)
		event_del(&s->io);
	event_assign(&s->io, pool_base(s->pool), fd, flags, session_io_cb, s);
	event_add(&s->io, tv);
	s->io_armed = true;
	s->io_flags = flags;
	s->io_fd = fd;
}

/* In IDLE and LENT, watches for the socket becoming readable: MySQL sends
 * nothing unasked, so readable means the server killed the connection or
 * went away. */
static void
session_watch(struct session *s)
{
	if (s->mysql == NULL || (s->state != SESSION_IDLE && s->state != SESSION_LENT)) {
		if (s->io_armed)
			event_del(&s->io);
		s->io_armed = false;
		return;
	}
	session_arm(s, EV_READ, NULL);
}

static void
session_wait(struct session *s, int status)
{
	short what = 0;
	struct timeval tv, *tvp = NULL;

	if (status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT))
		what |= EV_READ;
	if (status & MYSQL_WAIT_WRITE)
		what |= EV_WRITE;
	if (status & MYSQL_WAIT_TIMEOUT) {
		unsigned int ms = mysql_get_timeout_value_ms(s->mysql);
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		tvp = &tv;
	}
	session_arm(s, what, tvp);
}

static void
session_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	int ready = 0;

	(void)fd;
	if (!(s->io_flags & EV_PERSIST))
		s->io_armed = false;
	if (s->step == STEP_NONE || s->deferred) {
		/* The idle watch fired: the connection is gone. */
		session_fail(s, s->state == SESSION_LENT ? "MySQL closed the session"
							 : "MySQL closed an idle session");
		return;
	}
	if (what & EV_READ)
		ready |= MYSQL_WAIT_READ;
	if (what & EV_WRITE)
		ready |= MYSQL_WAIT_WRITE;
	if (what & EV_TIMEOUT)
		ready |= MYSQL_WAIT_TIMEOUT;
	session_step(s, ready);
}

/* Advances the non-blocking call in flight; ready < 0 starts it. A batch
 * (several statements in one text) yields one result per statement; each is
 * kept as it completes, and MySQL runs no statement after a failed one, so
 * mysql_more_results() alone decides whether another result follows. */
static void
session_step(struct session *s, int ready)
{
	const struct conf *c = pool_conf(s->pool);
	int status;

	for (;;) {
		switch (s->step) {
		case STEP_NONE:
			return;
		case STEP_CONNECT:
			if (ready < 0)
				status = mysql_real_connect_start(
					&s->ret_mysql, s->mysql, s->c_host, s->c_user, s->c_password,
					s->c_database, c->port, s->c_socket,
					CLIENT_MULTI_STATEMENTS);
			else
				status = mysql_real_connect_cont(&s->ret_mysql, s->mysql, ready);
			if (status != 0)
				goto wait;
			s->step = STEP_NONE;
			if (s->ret_mysql == NULL) {
				char why[600];
				snprintf(why, sizeof(why), "cannot connect to MySQL: %s",
					 mysql_error(s->mysql));
				session_fail(s, why);
				return;
			}
			s->thread_id = mysql_thread_id(s->mysql);
			s->backoff_ms = 0;
			if (s->connected_before)
				metrics.mysql_reconnects++;
			s->connected_before = true;
			pool_session_up(s->pool, s);
			session_prepare(s);
			return;
		case STEP_QUERY:
		case STEP_NEXT:
			if (ready < 0 && s->step == STEP_QUERY) {
				if (s->kills > 0) {
					s->deferred = true;
					return;
				}
				status = mysql_real_query_start(&s->ret_int, s->mysql, s->sql.data,
								s->sql.len);
			} else if (ready < 0) {
				status = mysql_next_result_start(&s->ret_int, s->mysql);
			} else if (s->step == STEP_QUERY) {
				status = mysql_real_query_cont(&s->ret_int, s->mysql, ready);
			} else {
				status = mysql_next_result_cont(&s->ret_int, s->mysql, ready);
			}
			if (status != 0)
				goto wait;
			if (s->ret_int != 0) {
				/* mysql_next_result: -1 is "no more results". */
				if (s->step == STEP_NEXT && s->ret_int < 0)
					goto batch_done;
				session_result_error(s);
				session_result_keep(s);
				goto batch_done;
			}
			if (mysql_field_count(s->mysql) == 0) {
				s->result.affected_rows = mysql_affected_rows(s->mysql);
				s->result.insert_id = mysql_insert_id(s->mysql);
				s->result.warnings = mysql_warning_count(s->mysql);
				/* An UPDATE's "Rows matched: 1  Changed: 0 …": the
				 * rows it found, which affected_rows (changed) is not. */
				const char *info = mysql_info(s->mysql);
				if (info != NULL)
					snprintf(s->result.info, sizeof s->result.info, "%s", info);
				goto result_done;
			}
			/* Rows stream in one at a time (use, not store), so a huge
			 * result is never buffered whole: see result_builder. */
			s->res = mysql_use_result(s->mysql);
			if (s->res == NULL) {
				session_result_error(s);
				session_result_keep(s);
				goto batch_done;
			}
			result_builder_start(&s->builder, s->res);
			s->step = STEP_FETCH;
			ready = -1;
			continue;
		case STEP_FETCH:
			if (ready < 0)
				status = mysql_fetch_row_start(&s->ret_row, s->res);
			else
				status = mysql_fetch_row_cont(&s->ret_row, s->res, ready);
			if (status != 0)
				goto wait;
			if (s->ret_row != NULL) {
				result_builder_add(&s->builder, s->res, s->ret_row);
				ready = -1;
				continue;
			}
			if (mysql_errno(s->mysql) != 0)
				session_result_error(s);
			s->step = STEP_FREE;
			ready = -1;
			continue;
		case STEP_FREE:
			if (ready < 0)
				status = mysql_free_result_start(s->res);
			else
				status = mysql_free_result_cont(s->res, ready);
			if (status != 0)
				goto wait;
			s->res = NULL;
			if (s->result.code == 0) {
				s->result.warnings = mysql_warning_count(s->mysql);
				result_builder_finish(&s->builder, &s->result.columns,
						      &s->result.rows, &s->result.affected_rows);
				if (s->builder.too_large) {
					s->result.code = PROTO_ERR_RESULT_TOO_LARGE;
					snprintf(s->result.message, sizeof(s->result.message),
						 "%s", s->builder.too_large_why);
					json_decref(s->result.rows);
					s->result.rows = NULL;
				}
			}
			result_builder_reset(&s->builder);
			if (s->result.lost) {
				session_result_keep(s);
				goto batch_done;
			}
			goto result_done;
		case STEP_RESET:
			if (ready < 0) {
				if (s->kills > 0) {
					s->deferred = true;
					return;
				}
				status = mysql_reset_connection_start(&s->ret_int, s->mysql);
			} else {
				status = mysql_reset_connection_cont(&s->ret_int, s->mysql, ready);
			}
			if (status != 0)
				goto wait;
			s->step = STEP_NONE;
			if (s->ret_int != 0)
				session_result_error(s);
			s->step_done(s);
			return;
		}
	}
result_done:
	session_result_keep(s);
	/* An error (even a fetch error on a result set) ends the batch: MySQL
	 * sends nothing after it. result_too_large is ours, not MySQL's: the
	 * rest of the batch still comes. */
	if (mysql_more_results(s->mysql) &&
	    (s->results[s->nresults - 1].code == 0 ||
	     s->results[s->nresults - 1].code == PROTO_ERR_RESULT_TOO_LARGE)) {
		if (s->killed_in_batch) {
			/* The kill may have fallen between this statement
			 * and the next: see session_strand_cb. */
			struct timeval tv = {SESSION_STRAND_MS / 1000,
					     (SESSION_STRAND_MS % 1000) * 1000};
			evtimer_add(s->strand, &tv);
		}
		s->step = STEP_NEXT;
		session_step(s, -1);
		return;
	}
batch_done:
	s->step = STEP_NONE;
	s->killed_in_batch = false;
	evtimer_del(s->strand);
	s->step_done(s);
	return;
wait:
	session_wait(s, status);
}

/* Moves the statement just read into the batch's results, with whether it
 * changed session state (MySQL's tracker sets the flag in the OK or EOF
 * packet that ends each statement). */
static void
session_result_keep(struct session *s)
{
	if (s->mysql != NULL && !s->result.lost)
		s->result.state_changed = (s->mysql->server_status & SERVER_SESSION_STATE_CHANGED) != 0;
	if (s->nresults == s->results_cap) {
		s->results_cap = s->results_cap ? s->results_cap * 2 : 4;
		s->results = xrealloc(s->results, s->results_cap * sizeof(*s->results));
	}
	s->results[s->nresults++] = s->result;
	memset(&s->result, 0, sizeof(s->result));
}

static void
session_results_clear(struct session *s)
{
	for (size_t i = 0; i < s->nresults; i++)
		session_result_clear(&s->results[i]);
	s->nresults = 0;
}

/* Records MySQL's error in s->result and decides whether the connection
 * survived it. Client errors (CR_*, 2000-2999) mean the link is gone; so do
 * ER_CONNECTION_KILLED and ER_SERVER_SHUTDOWN. */
static void
session_result_error(struct session *s)
{
	struct session_result *r = &s->result;
	unsigned int err = mysql_errno(s->mysql);

	r->mysql_errno = err;
	snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", mysql_sqlstate(s->mysql));
	snprintf(r->message, sizeof(r->message), "%s", mysql_error(s->mysql));
	r->code = PROTO_ERR_MYSQL;
	if ((err >= 2000 && err < 3000) || err == ER_CONNECTION_KILLED || err == ER_SERVER_SHUTDOWN) {
		r->lost = true;
		r->code = PROTO_ERR_UNAVAILABLE;
	}
	if (err == ER_QUERY_INTERRUPTED || err == ER_STATEMENT_TIMEOUT)
		r->interrupted = true;
}

static void
session_exec(struct session *s, const char *sql, size_t len, void (*step_done)(struct session *s))
{
	session_result_clear(&s->result);
	session_results_clear(s);
	buf_reset(&s->sql);
	buf_append(&s->sql, sql, len);
	s->step_done = step_done;
	s->step = STEP_QUERY;
	session_step(s, -1);
}

/* Appends the per-lease settings (SESSION_SETTINGS) to sql; the control
 * session, which runs only KILL QUERY, takes just the wait_timeout. */
static void
session_settings_sql(const struct session *s, struct buf *sql)
{
	const struct conf *c = pool_conf(s->pool);

	if (s->control) {
		buf_appendf(sql, "SET SESSION wait_timeout=%lld", session_wait_timeout_s(s));
		return;
	}
	buf_appendf(sql, SESSION_SETTINGS, session_wait_timeout_s(s),
		    c->sql_mode != NULL ? c->sql_mode : "", (long long)(c->timeout_ms / 1000),
		    (long long)(c->timeout_ms % 1000));
}

/* A new connection takes the settings at once, so a bad setting shows at
 * startup, not in a client's first lease. After a reset they travel with
 * the next statement instead (session_query). An idle session runs them
 * again now and then (session_refresh_cb). */
static void
session_prepare(struct session *s)
{
	struct buf sql = {0};

	session_enter_state(s, SESSION_PREPARING);
	session_settings_sql(s, &sql);
	session_exec(s, sql.data, sql.len, session_prepared);
	buf_free(&sql);
}

static void
session_prepared(struct session *s)
{
	struct session_result *r = s->nresults > 0 ? &s->results[0] : &s->result;

	if (r->code != 0) {
		char why[600];
		snprintf(why, sizeof(why), "preparing the session failed: %s", r->message);
		session_fail(s, why);
		return;
	}
	session_results_clear(s);
	s->prepared = !s->control;
	session_enter_state(s, SESSION_IDLE);
	session_watch(s);
	pool_session_idle(s->pool, s);
}

bool
session_killable(const struct session *s)
{
	return s->state == SESSION_RUNNING &&
	       (s->batch_n == 1 || (s->head_killable && s->nresults <= s->skip));
}

/* A kill that reaches MariaDB between two statements of a batch ends the
 * batch there without another word (sql_parse.cc's multi-statement loop
 * stops on thd->killed), while the last answer said more would come. A
 * batch hit by a kill that then goes quiet this long is stranded: the
 * connection is cut, and the batch ends as lost (MySQL rolls back and
 * unlocks what it held). The statements after a kill are cheap (the fence
 * of a LOCK TABLES batch), so a wait this long means the kill fell there. */
static void
session_strand_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	if (s->state != SESSION_RUNNING || s->step != STEP_NEXT || s->mysql == NULL)
		return;
	log_warn("MySQL session %u: a KILL QUERY stopped a batch between two statements; "
		 "closing the connection",
		 s->index);
	shutdown(mysql_get_socket(s->mysql), SHUT_RDWR);
}

void
session_query(struct session *s, const char *sql, size_t len, size_t nstatements,
	      bool head_killable, const struct session_limits *lim, session_done_fn *done,
	      void *arg)
{
	s->done = done;
	s->done_arg = arg;
	if (lim != NULL)
		result_builder_limits(&s->builder, lim->max_rows, lim->max_result_bytes);
	else
		result_builder_limits(&s->builder, 0, 0);
	session_enter_state(s, SESSION_RUNNING);
	s->skip = 0;
	s->batch_n = nstatements;
	s->head_killable = head_killable;
	s->killed_in_batch = false;
	s->starting = true;
	s->finished = false;
	if (s->prepared || s->control) {
		session_exec(s, sql, len, session_query_done);
	} else {
		/* Reset after the last lease: the settings go first, in the same
		 * round trip. */
		struct buf batch = {0};
		session_settings_sql(s, &batch);
		buf_append(&batch, ";", 1);
		buf_append(&batch, sql, len);
		s->skip = 1;
		s->batch_n++;
		session_exec(s, batch.data, batch.len, session_query_done);
		buf_free(&batch);
	}
	s->starting = false;
	if (s->finished) {
		/* MySQL answered before the call returned: the caller hears of
		 * it from a fresh turn of the loop, never from inside its own
		 * call (it may not have settled yet). */
		event_active(s->deliver, EV_TIMEOUT, 1);
	}
}

static void
session_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	if (s->finished) {
		s->finished = false;
		session_query_done(s);
	}
}

static void
session_query_done(struct session *s)
{
	if (s->starting) {
		s->finished = true;
		return;
	}
	session_done_fn *done = s->done;
	void *arg = s->done_arg;
	struct session_result *r = s->results;
	size_t n = s->nresults;
	/* Failed or closed while a result waited for delivery: what MySQL had
	 * not committed is gone with the connection. */
	bool down = s->mysql == NULL;

	s->done = NULL;
	s->done_arg = NULL;
	if (down && n > 0 && !r[n - 1].lost) {
		r[n - 1].lost = true;
		snprintf(r[n - 1].message, sizeof(r[n - 1].message), "MySQL session lost");
	}
	if (s->skip > 0 && n > 0 && n <= s->skip && r[n - 1].code != 0 && !r[n - 1].lost) {
		/* Our settings failed: the statement never ran. Treat it as a
		 * broken session, like a failed prepare after connecting. */
		r[n - 1].lost = true;
		r[n - 1].code = PROTO_ERR_UNAVAILABLE;
	}
	if (n > 0 && n <= s->skip && !r[n - 1].lost) {
		/* Cannot happen: MySQL answered our settings and stopped. */
		r[n - 1].lost = true;
		r[n - 1].code = PROTO_ERR_UNAVAILABLE;
		snprintf(r[n - 1].message, sizeof(r[n - 1].message), "the batch stopped early");
	}
	if (n > s->skip) {
		s->prepared = true;
		r += s->skip;
		n -= s->skip;
	} else if (n > 0) {
		r += n - 1;
		n = 1;
	}
	if (n == 0 || r[n - 1].lost) {
		/* The caller learns of the loss through its results (taken out
		 * of the session first); the owner's lost callback must not
		 * fire a second time. */
		struct session_result *copy = xcalloc(n > 0 ? n : 1, sizeof(*copy));
		char why[600];

		if (n == 0) {
			copy[0].lost = true;
			copy[0].code = PROTO_ERR_UNAVAILABLE;
			snprintf(copy[0].message, sizeof(copy[0].message), "no answer from MySQL");
			n = 1;
		} else {
			memcpy(copy, r, n * sizeof(*copy));
		}
		/* The JSON moved to copy: forget it here without freeing. */
		s->nresults = 0;
		snprintf(why, sizeof(why), "MySQL session lost: %s", copy[n - 1].message);
		s->lost = NULL;
		if (!down)
			session_fail(s, why);
		done(s, copy, n, arg);
		for (size_t i = 0; i < n; i++)
			session_result_clear(&copy[i]);
		free(copy);
		return;
	}
	session_enter_state(s, s->control ? SESSION_IDLE : SESSION_LENT);
	session_watch(s);
	done(s, r, n, arg);
}

void
session_give_back(struct session *s, bool reset)
{
	s->lost = NULL;
	s->lost_arg = NULL;
	session_results_clear(s);
	if (s->state == SESSION_DOWN || s->state == SESSION_CLOSED || s->mysql == NULL)
		return; /* it reconnects, or is gone, by itself */
	if (!reset) {
		session_enter_state(s, SESSION_IDLE);
		session_watch(s);
		pool_session_idle(s->pool, s);
		return;
	}
	/* Drops user variables, temporary tables, prepared statements, user
	 * locks and settings, so nothing leaks from one lease to the next; it
	 * also rolls back and unlocks. The settings are then off until the
	 * next statement carries them. */
	metrics.session_resets++;
	session_enter_state(s, SESSION_RESETTING);
	session_result_clear(&s->result);
	s->step_done = session_reset_done;
	s->step = STEP_RESET;
	session_step(s, -1);
}

static void
session_reset_done(struct session *s)
{
	if (s->result.code != 0) {
		char why[600];
		snprintf(why, sizeof(why), "mysql_reset_connection failed: %s", s->result.message);
		session_result_clear(&s->result);
		session_fail(s, why);
		return;
	}
	s->prepared = false;
	session_enter_state(s, SESSION_IDLE);
	session_watch(s);
	pool_session_idle(s->pool, s);
}

void
session_settings_changed(struct session *s)
{
	if (!s->control)
		s->prepared = false;
}

void
session_abandon(struct session *s, const char *why)
{
	s->lost = NULL;
	s->lost_arg = NULL;
	session_fail(s, why);
}

void
session_reopen(struct session *s)
{
	session_enter_state(s, SESSION_DOWN);
	s->backoff_ms = 0;
	session_connect(s, 0);
}

void
session_close(struct session *s)
{
	evtimer_del(s->retry);
	session_disconnect(s);
	s->lost = NULL;
	session_enter_state(s, SESSION_CLOSED);
}
