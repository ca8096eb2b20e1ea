/* Server: the daemon's shared state, startup and shutdown. */
#ifndef TABLELOCK_SERVER_H
#define TABLELOCK_SERVER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "conf/conf.h"
#include "daemon/lease.h"
#include "proto/proto_request.h"

struct client;

/* Leases since the daemon started, each counted once: acquired when it
 * first holds its tables, ended[] by how it ended (lease.c counts both).
 * status's totals and /metrics' tablelockd_leases_ended_total both read
 * them. */
struct server_totals {
	uint64_t acquired;
	uint64_t ended[LEASE_END__COUNT];
};

/* What the live leases are doing now, counted in one pass by
 * server_census() for status, /metrics, sd_notify and the drain. A lease
 * ending with nobody waiting for it (LEASE_PHASE_ENDING) is in none of
 * these: its tables are about to be free. */
/* A LOCK TABLES that has not answered after this long waits in MySQL for
 * a lock taken outside the daemon's queue (it answers in well under a
 * millisecond otherwise). */
#define SERVER_BLOCKED_US 100000

struct server_census {
	unsigned int waiting;		/* in the daemon's queue, or for a session */
	unsigned int locking;		/* granted; LOCK TABLES running in MySQL */
	unsigned int blocked;		/* of locking, those waiting in MySQL over SERVER_BLOCKED_US */
	unsigned int held;		/* holding their tables */
	unsigned int waiting_write;	/* of waiting and locking, those writing a table */
	unsigned int held_write;	/* of held, those writing a table */
	uint64_t oldest_held_us;	/* how long the oldest held lease has held; 0: none */
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

/* Counts the live leases by what they are doing (struct server_census). */
void server_census(struct server_census *census);
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
