/* Server: the daemon's shared state, startup and shutdown. */
#ifndef TABLELOCK_SERVER_H
#define TABLELOCK_SERVER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "conf/conf.h"
#include "proto/proto_request.h"

struct client;
struct lease;

/* Counters shown by status. */
struct server_totals {
	uint64_t acquired;
	uint64_t committed;
	uint64_t rolled_back;
	uint64_t expired;
	uint64_t released_on_disconnect;
	uint64_t lock_timeouts;
	uint64_t revoked;
	uint64_t lost;
	uint64_t shutdown;
	uint64_t failed;
};

TAILQ_HEAD(client_list, client);
TAILQ_HEAD(lease_list, lease);

struct server {
	struct event_base *base;
	struct conf conf;
	const char *conf_path;
	struct lockmgr *lockmgr;
	struct access *access;		/* compiled [access] rules */
	struct pool *pool;
	struct proto_parse_options parse_options;
	struct client_list clients;
	unsigned int nclients;
	struct lease_list leases;	/* every live lease, in id order */
	unsigned int nleases;
	struct server_totals totals;
	bool shutting_down;
	bool finishing;
	int verbosity;		/* -v (1) or -q (-1) override log_level */
	uid_t uid;
	uint64_t started_us;
};

extern struct server server;

/* Starts the shutdown: listeners close, leases not yet held end, held ones
 * may finish within drain_timeout_ms (unless now), then every lease left
 * is rolled back and the loop exits once all are released. Called again,
 * it stops waiting. */
void server_shutdown(const char *why, bool now);
/* SIGHUP: reads the configuration again (see server.c). */
void server_reload(void);
/* Derives parse options from the configuration. */
void server_apply_options(void);
/* A client is gone; finishes a shutdown waiting for its last answers. */
void server_client_closed(void);
/* The pool connected its first session, or found MySQL unreachable. */
void server_pool_settled(bool reachable);
/* Called by lease.c when a lease is gone; finishes a pending shutdown. */
void server_lease_freed(void);

#endif
