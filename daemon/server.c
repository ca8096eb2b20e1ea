/* Server: the daemon's shared state, startup and shutdown. */
#include "daemon/server.h"

#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "daemon/client.h"
#include "daemon/lease.h"
#include "daemon/listener.h"
#include "daemon/lockmgr.h"
#include "daemon/log.h"
#include "daemon/pool.h"

/* How long shutdown waits for MySQL to confirm every rollback before it
 * closes the sessions anyway (closing makes MySQL roll back too). */
#define SERVER_SHUTDOWN_GRACE_MS 5000

struct server server;

static struct event *server_grace_timer;

static void server_finish(void);
static void server_grace_cb(evutil_socket_t fd, short what, void *arg);

uint64_t
server_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void
server_shutdown(const char *why)
{
	struct lease *l, *prev;
	struct timeval tv = {SERVER_SHUTDOWN_GRACE_MS / 1000, 0};

	if (server.shutting_down) {
		log_info("%s again: not waiting any longer", why);
		server_finish();
		return;
	}
	server.shutting_down = true;
	log_info("%s: shutting down; ending %u leases", why, server.nleases);
	listener_close_all();
	/* From the newest lease back: ending a waiting lease then never
	 * grants one behind it, and no lease before `prev` is freed by
	 * ending `l` (grants only start new work, asynchronously). */
	for (l = lease_first(); l != NULL && lease_next(l) != NULL; l = lease_next(l))
		;
	while (l != NULL) {
		prev = lease_prev(l);
		lease_end(l, LEASE_END_SHUTDOWN);
		l = prev;
	}
	if (server.nleases == 0) {
		server_lease_freed();
		return;
	}
	server_grace_timer = evtimer_new(server.base, server_grace_cb, NULL);
	evtimer_add(server_grace_timer, &tv);
}

static void
server_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_warnx("shutdown: %u leases still releasing after %d ms; closing their sessions",
		  server.nleases, SERVER_SHUTDOWN_GRACE_MS);
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

/* Everything is rolled back and unlocked (or its session is about to be
 * closed, which MySQL treats the same): close and leave the loop. */
static void
server_finish(void)
{
	struct client *c;

	server.finishing = true;
	if (server_grace_timer != NULL) {
		event_free(server_grace_timer);
		server_grace_timer = NULL;
	}
	while ((c = TAILQ_FIRST(&server.clients)) != NULL)
		client_close(c, "daemon shutdown");
	pool_close(server.pool);
	event_base_loopexit(server.base, NULL);
}
