/* Server: the daemon's shared state, reload, drain and shutdown. */
#include "daemon/server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "daemon/access.h"
#include "daemon/client.h"
#include "daemon/lease.h"
#include "daemon/listener.h"
#include "daemon/lockmgr.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "daemon/pool.h"
#include "util/monotime.h"
#include "util/plural.h"

/* How long shutdown waits for MySQL to confirm the last rollbacks before
 * it closes the sessions anyway (closing makes MySQL roll back too). */
#define SERVER_SHUTDOWN_GRACE_MS 5000

struct server server;

static struct event *server_drain_timer;
static struct event *server_grace_timer;
static struct event *server_flush_timer;

/* How long shutdown waits for clients to take their last answers. */
#define SERVER_FLUSH_MS 1000

static void server_exit(void);
static void
server_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	server_exit();
}

static void server_finish(void);
static void server_finish_cb(evutil_socket_t fd, short what, void *arg);
static void server_drain_cb(evutil_socket_t fd, short what, void *arg);
static void server_grace_cb(evutil_socket_t fd, short what, void *arg);
static void server_end_leases(bool held_too);
static void server_report_fixed(const char *section, const char *name, void *arg);

void
server_census(struct server_census *census)
{
	uint64_t now = monotime_us();

	*census = (struct server_census){0};
	for (struct lease *l = lease_first(); l != NULL; l = lease_next(l)) {
		bool write = lease_is_write(l);
		switch (lease_get_phase(l)) {
		case LEASE_PHASE_WAITING:
			census->waiting++;
			census->waiting_write += write;
			break;
		case LEASE_PHASE_LOCKING:
			census->locking++;
			census->waiting_write += write;
			if (now - lease_locking_since_us(l) > SERVER_BLOCKED_US)
				census->blocked++;
			break;
		case LEASE_PHASE_HELD: {
			uint64_t since = lease_held_since_us(l);
			census->held++;
			census->held_write += write;
			if (since != 0 && now - since > census->oldest_held_us)
				census->oldest_held_us = now - since;
			break;
		}
		case LEASE_PHASE_ENDING:
			break;
		}
	}
}

void
server_apply_options(void)
{
	server.parse_options = (struct proto_parse_options){
		.default_db = server.conf.database,
		.max_depth = 32,
		.max_tables = 256,
		.max_statements = 256,
		.max_params = 4096,
		.max_sql_bytes = server.conf.max_request_bytes,
	};
}

static void
server_report_fixed(const char *section, const char *name, void *arg)
{
	(void)arg;
	log_warnx("reload: [%s] %s changed but needs a restart; keeping the running value",
		  section, name);
}

/* SIGHUP: read the file again. A file that does not validate changes
 * nothing; keys that cannot change live keep their running values. Held
 * leases are never touched: new values apply to new requests. */
void
server_reload(void)
{
	struct conf next;
	char err[1024];

	notify_reloading();
	log_info("SIGHUP: reloading %s", server.conf_path);
	if (conf_load(server.conf_path, &next, err, sizeof(err)) != 0) {
		log_error("reload failed, the old configuration stays in force: %s", err);
		notify_reloaded();
		return;
	}
	struct access *rules;
	if (access_compile(&next.access_allow, server.conf_path, &rules, err, sizeof(err)) != 0) {
		log_error("reload failed, the old configuration stays in force: %s", err);
		conf_free(&next);
		notify_reloaded();
		return;
	}
	conf_keep_fixed(&next, &server.conf, server_report_fixed, NULL);
	access_free(server.access);
	server.access = rules;
	if (metrics_listen(next.metrics_listen, err, sizeof(err)) != 0) {
		log_error("reload: %s; metrics endpoint stopped", err);
	}
	conf_free(&server.conf);
	server.conf = next;
	server_apply_options();
	if (server.conf.log_level != NULL && server.verbosity == 0)
		log_set_level_name(server.conf.log_level);
	lockmgr_set_max_waiters(server.lockmgr, server.conf.max_waiters);
	pool_resize(server.pool, server.conf.pool_size);
	pool_settings_changed(server.pool);
	log_info("reload done");
	notify_reloaded();
}

/* Ends the leases the shutdown does not wait for: those not yet holding
 * their tables, or all of them. From the newest back: ending a waiting
 * lease then never grants one behind it, and no lease before `prev` is
 * freed by ending `l` (grants only start new work, asynchronously). */
static void
server_end_leases(bool held_too)
{
	struct lease *l, *prev;

	for (l = lease_first(); l != NULL && lease_next(l) != NULL; l = lease_next(l))
		;
	while (l != NULL) {
		enum lease_phase st = lease_get_phase(l);
		prev = lease_prev(l);
		if (held_too || st == LEASE_PHASE_WAITING || st == LEASE_PHASE_LOCKING)
			lease_end(l, LEASE_END_SHUTDOWN);
		l = prev;
	}
}

void
server_shutdown(const char *why, bool now)
{
	if (server.finishing)
		return;
	if (!server.shutting_down) {
		server.shutting_down = true;
		notify_stopping();
		listener_close_all();
		server_end_leases(false);
		if (!now && server.conf.drain_timeout_ms > 0 && server.nleases > 0) {
			struct timeval tv = {(time_t)(server.conf.drain_timeout_ms / 1000),
					     (suseconds_t)(server.conf.drain_timeout_ms % 1000 * 1000)};
			struct server_census census;
			server_census(&census);
			log_info("%s: draining: %u held lease%s may finish within %lld ms", why,
				 census.held, plural_s(census.held),
				 (long long)server.conf.drain_timeout_ms);
			server_drain_timer = evtimer_new(server.base, server_drain_cb, NULL);
			evtimer_add(server_drain_timer, &tv);
			return;
		}
		log_info("%s: shutting down; rolling back %u lease%s", why, server.nleases,
			 plural_s(server.nleases));
	} else {
		log_info("%s: not waiting any longer; rolling back %u lease%s", why,
			 server.nleases, plural_s(server.nleases));
	}
	if (server_drain_timer != NULL) {
		event_free(server_drain_timer);
		server_drain_timer = NULL;
	}
	server_end_leases(true);
	if (server.nleases == 0) {
		server_lease_freed();
		return;
	}
	if (server_grace_timer == NULL) {
		struct timeval tv = {SERVER_SHUTDOWN_GRACE_MS / 1000, 0};
		server_grace_timer = evtimer_new(server.base, server_grace_cb, NULL);
		evtimer_add(server_grace_timer, &tv);
	}
}

static void
server_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	server_shutdown("drain_timeout_ms ran out", true);
}

static void
server_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_warnx("shutdown: %u lease%s still releasing after %d ms; closing their sessions",
		  server.nleases, plural_s(server.nleases), SERVER_SHUTDOWN_GRACE_MS);
	server_finish();
}

static void
server_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	server_finish();
}

void
server_lease_freed(void)
{
	struct timeval now = {0, 0};

	/* Deferred: the caller is deep inside a session's callback, and
	 * finishing closes every session. */
	if (server.shutting_down && server.nleases == 0 && !server.finishing) {
		server.finishing = true;
		event_base_once(server.base, -1, EV_TIMEOUT, server_finish_cb, NULL, &now);
	}
}

static void
server_exit(void)
{
	struct client *c;

	if (server_flush_timer != NULL) {
		event_free(server_flush_timer);
		server_flush_timer = NULL;
	}
	while ((c = TAILQ_FIRST(&server.clients)) != NULL)
		client_close(c, "daemon shutdown");
	metrics_stop();
	notify_stop();
	pool_close(server.pool);
	event_base_loopexit(server.base, NULL);
}

static void
server_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_warnx("shutdown: %u client%s did not read their last answers; closing",
		  server.nclients, plural_s(server.nclients));
	server_exit();
}

void
server_client_closed(void)
{
	struct timeval now = {0, 0};

	if (server.finishing && server.nclients == 0 && server_flush_timer != NULL) {
		event_free(server_flush_timer);
		server_flush_timer = NULL;
		event_base_once(server.base, -1, EV_TIMEOUT, server_exit_cb, NULL, &now);
	}
}

/* Everything is rolled back and unlocked (or its session is about to be
 * closed, which MySQL treats the same): send the answers already written
 * (a commit made in the drain window must be acknowledged), close, and
 * leave the loop. */
static void
server_finish(void)
{
	struct client *c, *next;
	struct timeval tv = {SERVER_FLUSH_MS / 1000, (SERVER_FLUSH_MS % 1000) * 1000};

	server.finishing = true;
	if (server_grace_timer != NULL) {
		event_free(server_grace_timer);
		server_grace_timer = NULL;
	}
	if (server_drain_timer != NULL) {
		event_free(server_drain_timer);
		server_drain_timer = NULL;
	}
	for (c = TAILQ_FIRST(&server.clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		client_flush_and_close(c);
	}
	if (server.nclients == 0) {
		server_exit();
		return;
	}
	server_flush_timer = evtimer_new(server.base, server_flush_cb, NULL);
	evtimer_add(server_flush_timer, &tv);
}

void
server_pool_settled(bool reachable)
{
	notify_ready(reachable ? "ready" : "ready; MySQL is unreachable, retrying");
}
