/* Leases: a client's hold on tables, from the queue to the final unlock. */
#ifndef TABLELOCK_LEASE_H
#define TABLELOCK_LEASE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/proto_request.h"

struct client;
struct lease;

/* A lease's life: one value, moved only by lease_enter_state(), which
 * checks the table of legal transitions at the top of lease.c and logs
 * "old -> new". Each state's MySQL work starts on entering it. */
enum lease_state {
	LEASE_WAITING,		/* in the daemon's queue, or waiting for a session */
	LEASE_LOCKING,		/* the LOCK TABLES batch running in MySQL */
	LEASE_CANCELLING,	/* the same, with a KILL QUERY sent at it */
	LEASE_HELD,		/* held, nothing running */
	LEASE_RUNNING,		/* a statement (or renew's keep-alive) running */
	LEASE_INTERRUPTING,	/* the same, with a KILL QUERY sent at it */
	LEASE_COMMITTING,	/* [statements;] UNLOCK TABLES running */
	LEASE_ROLLING_BACK,	/* ROLLBACK; UNLOCK TABLES running, the client awaits the answer */
	LEASE_RELEASING,	/* over for the client; ROLLBACK; UNLOCK TABLES running */
	LEASE_ENDED,		/* the tables are free; freed at once */
	LEASE__STATE_COUNT
};

/* What status, metrics and shutdown see of a lease. */
enum lease_phase {
	LEASE_PHASE_WAITING,	/* WAITING */
	LEASE_PHASE_LOCKING,	/* LOCKING, CANCELLING */
	LEASE_PHASE_HELD,	/* HELD through ROLLING_BACK */
	LEASE_PHASE_ENDING,	/* RELEASING, ENDED */
};

/* How a lease ended (or is ending). Recorded once: the first reason wins.
 * In the order status lists its totals (proto/PROTOCOL.md, status). */
enum lease_end {
	LEASE_END_NONE,
	LEASE_END_COMMIT,
	LEASE_END_ROLLBACK,
	LEASE_END_EXPIRED,
	LEASE_END_DISCONNECT,
	LEASE_END_LOCK_TIMEOUT,
	LEASE_END_REVOKED,
	LEASE_END_LOST,
	LEASE_END_SHUTDOWN,
	LEASE_END_FAILED,	/* never held: LOCK TABLES failed, MySQL down, … */
	LEASE_END__COUNT
};

const char *lease_state_name(enum lease_state state);
/* The names of an ending, all kept in one table in lease.c: for the log
 * ("rolled back"); the outcome label of tablelockd_leases_ended_total
 * ("rolled_back"; NONE counts as "failed"); and the key of status's totals
 * ("rolled_back"; NULL for NONE and FAILED, which status does not list).
 * The last two are wire names (README.md's metrics, proto/PROTOCOL.md). */
const char *lease_end_name(enum lease_end end);
const char *lease_end_outcome(enum lease_end end);
const char *lease_end_total(enum lease_end end);

/* Starts an acquire (req->op ACQUIRE) or a one-shot transact (TRANSACT)
 * for c; the answer is sent to c later (or now, for immediate errors). */
void lease_start(struct client *c, struct proto_request *req);
/* The lock manager's grant callback (owner is the lease). */
struct lockmgr_req;
void lease_lockmgr_grant(struct lockmgr_req *req, void *owner, void *arg);
/* Runs req (query, commit, rollback, renew) on c's lease, or answers
 * no_lease / lease_lost when c holds none. */
void lease_request(struct client *c, struct proto_request *req);
/* Ends the lease for a reason other than the client's own requests:
 * expiry, disconnect, revoke, shutdown. Always rolls back and unlocks. On
 * LEASE_END_DISCONNECT the client is detached before this returns. */
void lease_end(struct lease *l, enum lease_end why);

uint64_t lease_id(const struct lease *l);
enum lease_state lease_get_state(const struct lease *l);
enum lease_phase lease_get_phase(const struct lease *l);
/* One status entry; full = with client name, peer and MySQL thread. */
json_t *lease_status(const struct lease *l, bool full);
struct client *lease_client(const struct lease *l);
/* True when the lease writes any table (its mode in metrics). */
bool lease_is_write(const struct lease *l);
/* Monotonic time LOCK TABLES succeeded, 0 when not held yet. */
uint64_t lease_held_since_us(const struct lease *l);
/* The lease's tables (db filled in), n set to how many. */
const struct proto_table *lease_tables(const struct lease *l, size_t *n);
/* The MySQL connection id of the lease's session, 0 when it has none. */
unsigned long lease_mysql_thread(const struct lease *l);
/* Monotonic time its LOCK TABLES batch was sent, 0 before. */
uint64_t lease_locking_since_us(const struct lease *l);
/* Every live lease in id order (which is arrival order). */
struct lease *lease_first(void);
struct lease *lease_next(const struct lease *l);
struct lease *lease_prev(const struct lease *l);
/* The live lease with this id, or NULL. */
struct lease *lease_find(uint64_t id);

#endif
