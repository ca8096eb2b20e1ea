/* Metrics: counters and histograms, served to Prometheus over HTTP. */
#ifndef TABLELOCK_METRICS_H
#define TABLELOCK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto_request.h"

#define METRICS_BUCKETS 14

/* A Prometheus histogram in seconds, with fixed buckets (metrics.c). */
struct metrics_histogram {
	uint64_t counts[METRICS_BUCKETS]; /* per bucket, not cumulative */
	uint64_t count;
	double sum;
};

/* Everything counted as it happens; gauges are read at scrape time, and
 * lease counts come from server.totals, shared with status. */
struct metrics {
	uint64_t statements;
	uint64_t statement_errors;
	uint64_t firewall_refusals;
	uint64_t mysql_reconnects;
	uint64_t session_resets;	/* mysql_reset_connection after a lease */
	uint64_t client_connections;
	uint64_t requests[PROTO_OP__COUNT];
	uint64_t bad_requests;
	struct metrics_histogram lock_wait;
	struct metrics_histogram locking;	/* LOCK TABLES sent to answered */
	struct metrics_histogram hold;
};

extern struct metrics metrics;

void metrics_observe(struct metrics_histogram *h, double seconds);
/* Starts (or, on reload, moves or stops) the HTTP endpoint. listen is
 * "host:port" or NULL for none. Returns 0, or -1 with a reason in err. */
int metrics_listen(const char *listen, char *err, size_t errsize);
void metrics_stop(void);

#endif
