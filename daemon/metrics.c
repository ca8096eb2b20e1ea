/* Metrics: counters and histograms, served to Prometheus over HTTP. */
#include "daemon/metrics.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/lease.h"
#include "daemon/log.h"
#include "daemon/pool.h"
#include "daemon/server.h"
#include "daemon/session.h"
#include "util/buf.h"
#include "util/hostport.h"
#include "util/monotime.h"
#include "util/xmalloc.h"

struct metrics metrics;

/* Upper bounds in seconds: from a local round trip to a long wait. */
static const double metrics_bounds[METRICS_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60,
};

static struct evhttp *metrics_http;
static char *metrics_address;

static void metrics_histogram_write(struct buf *b, const char *name, const char *help,
				    const struct metrics_histogram *h);
static void metrics_render(struct buf *b);
static void metrics_handle(struct evhttp_request *req, void *arg);
static void metrics_health(struct evhttp_request *req, void *arg);

void
metrics_observe(struct metrics_histogram *h, double seconds)
{
	for (int i = 0; i < METRICS_BUCKETS; i++) {
		if (seconds <= metrics_bounds[i]) {
			h->counts[i]++;
			break;
		}
	}
	h->count++;
	h->sum += seconds;
}

static void
metrics_histogram_write(struct buf *b, const char *name, const char *help,
			const struct metrics_histogram *h)
{
	uint64_t cumulative = 0;

	buf_appendf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < METRICS_BUCKETS; i++) {
		cumulative += h->counts[i];
		buf_appendf(b, "%s_bucket{le=\"%g\"} %llu\n", name, metrics_bounds[i],
			    (unsigned long long)cumulative);
	}
	buf_appendf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
		    (unsigned long long)h->count, name, h->sum, name,
		    (unsigned long long)h->count);
}

#define METRICS_HEAD(b, name, type, help)                                                          \
	buf_appendf(b, "# HELP " name " " help "\n# TYPE " name " " type "\n")

static void
metrics_render(struct buf *b)
{
	const struct server_totals *t = &server.totals;
	struct server_census census;
	json_t *pool = pool_status(server.pool);
	const char *key;
	json_t *value;

	server_census(&census);
	METRICS_HEAD(b, "tablelockd_leases_held", "gauge", "Leases holding their tables now.");
	buf_appendf(b, "tablelockd_leases_held{mode=\"read\"} %u\n", census.held - census.held_write);
	buf_appendf(b, "tablelockd_leases_held{mode=\"write\"} %u\n", census.held_write);
	METRICS_HEAD(b, "tablelockd_leases_waiting", "gauge",
		     "Acquires waiting in the queue or in MySQL's LOCK TABLES.");
	buf_appendf(b, "tablelockd_leases_waiting{mode=\"read\"} %u\n",
		    census.waiting + census.locking - census.waiting_write);
	buf_appendf(b, "tablelockd_leases_waiting{mode=\"write\"} %u\n", census.waiting_write);
	METRICS_HEAD(b, "tablelockd_lease_oldest_held_seconds", "gauge",
		     "How long the oldest held lease has held its tables.");
	buf_appendf(b, "tablelockd_lease_oldest_held_seconds %.3f\n",
		    (double)census.oldest_held_us / 1e6);

	METRICS_HEAD(b, "tablelockd_leases_ended_total", "counter", "Leases ended, by outcome.");
	/* server.totals counts; a lease that ended without a reason
	 * (LEASE_END_NONE) counts as failed. */
	for (int i = LEASE_END_NONE + 1; i < LEASE_END__COUNT; i++) {
		uint64_t n = t->ended[i];
		if (i == LEASE_END_FAILED)
			n += t->ended[LEASE_END_NONE];
		buf_appendf(b, "tablelockd_leases_ended_total{outcome=\"%s\"} %llu\n",
			    lease_end_outcome((enum lease_end)i), (unsigned long long)n);
	}
	METRICS_HEAD(b, "tablelockd_lock_timeouts_total", "counter",
		     "Acquires that ran out of wait_ms.");
	buf_appendf(b, "tablelockd_lock_timeouts_total %llu\n",
		    (unsigned long long)t->ended[LEASE_END_LOCK_TIMEOUT]);
	METRICS_HEAD(b, "tablelockd_leases_blocked", "gauge",
		     "Leases whose LOCK TABLES has waited in MySQL over 100 ms: held up by a "
		     "lock taken outside the daemon's queue (status says by whom).");
	buf_appendf(b, "tablelockd_leases_blocked %u\n", census.blocked);
	metrics_histogram_write(b, "tablelockd_lock_wait_seconds",
				"Time from acquire to LOCK TABLES held.", &metrics.lock_wait);
	metrics_histogram_write(b, "tablelockd_locking_seconds",
				"Time leases spent in locking: LOCK TABLES waiting in MySQL.",
				&metrics.locking);
	metrics_histogram_write(b, "tablelockd_lease_hold_seconds",
				"Time leases held their tables.", &metrics.hold);

	METRICS_HEAD(b, "tablelockd_statements_total", "counter", "Statements run on leases.");
	buf_appendf(b, "tablelockd_statements_total %llu\n", (unsigned long long)metrics.statements);
	METRICS_HEAD(b, "tablelockd_statement_errors_total", "counter",
		     "Statements that failed (MySQL errors, timeouts, results too large).");
	buf_appendf(b, "tablelockd_statement_errors_total %llu\n",
		    (unsigned long long)metrics.statement_errors);
	METRICS_HEAD(b, "tablelockd_firewall_refusals_total", "counter",
		     "Statements refused by the statement firewall.");
	buf_appendf(b, "tablelockd_firewall_refusals_total %llu\n",
		    (unsigned long long)metrics.firewall_refusals);

	METRICS_HEAD(b, "tablelockd_pool_sessions", "gauge", "MySQL sessions by state.");
	json_object_foreach(pool, key, value)
	{
		if (strcmp(key, "size") != 0)
			buf_appendf(b, "tablelockd_pool_sessions{state=\"%s\"} %lld\n", key,
				    (long long)json_integer_value(value));
	}
	json_decref(pool);
	METRICS_HEAD(b, "tablelockd_pool_waiters", "gauge",
		     "Acquires waiting for a MySQL session because none is idle.");
	buf_appendf(b, "tablelockd_pool_waiters %u\n", pool_waiting(server.pool));
	METRICS_HEAD(b, "tablelockd_mysql_up", "gauge",
		     "1 while the pool reaches MySQL, 0 when it cannot connect (as /healthz).");
	buf_appendf(b, "tablelockd_mysql_up %d\n", pool_available(server.pool) ? 1 : 0);
	METRICS_HEAD(b, "tablelockd_mysql_reconnects_total", "counter",
		     "MySQL sessions connected again after a failure or loss.");
	buf_appendf(b, "tablelockd_mysql_reconnects_total %llu\n",
		    (unsigned long long)metrics.mysql_reconnects);
	METRICS_HEAD(b, "tablelockd_session_resets_total", "counter",
		     "MySQL sessions reset after a lease that left session state behind.");
	buf_appendf(b, "tablelockd_session_resets_total %llu\n",
		    (unsigned long long)metrics.session_resets);

	METRICS_HEAD(b, "tablelockd_client_connections", "gauge", "Client connections open now.");
	buf_appendf(b, "tablelockd_client_connections %u\n", server.nclients);
	METRICS_HEAD(b, "tablelockd_client_connections_total", "counter",
		     "Client connections accepted.");
	buf_appendf(b, "tablelockd_client_connections_total %llu\n",
		    (unsigned long long)metrics.client_connections);
	METRICS_HEAD(b, "tablelockd_requests_total", "counter", "Requests, by op.");
	for (int i = 0; i < PROTO_OP__COUNT; i++)
		buf_appendf(b, "tablelockd_requests_total{op=\"%s\"} %llu\n",
			    proto_op_name((enum proto_op)i), (unsigned long long)metrics.requests[i]);
	METRICS_HEAD(b, "tablelockd_bad_requests_total", "counter",
		     "Requests refused before their op ran (malformed, invalid).");
	buf_appendf(b, "tablelockd_bad_requests_total %llu\n",
		    (unsigned long long)metrics.bad_requests);
}

static void
metrics_handle(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out;
	struct buf b = {0};

	(void)arg;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, 405, "only GET");
		return;
	}
	metrics_render(&b);
	out = evbuffer_new();
	evbuffer_add(out, b.data, b.len);
	buf_free(&b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

/* 200 while MySQL is reachable, 503 when the pool cannot connect. */
static void
metrics_health(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out = evbuffer_new();
	bool ok = pool_available(server.pool) && !server.shutting_down;

	(void)arg;
	evbuffer_add_printf(out, "%s\n",
			    server.shutting_down ? "shutting down"
			    : ok		 ? "ok"
						 : "MySQL unreachable");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; charset=utf-8");
	evhttp_send_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", out);
	evbuffer_free(out);
}

int
metrics_listen(const char *listen, char *err, size_t errsize)
{
	struct hostport hp;
	char why[128];

	if (listen != NULL && metrics_address != NULL && strcmp(listen, metrics_address) == 0)
		return 0;
	metrics_stop();
	if (listen == NULL)
		return 0;
	if (!hostport_parse(listen, "", &hp, why, sizeof(why))) {
		snprintf(err, errsize, "[metrics] listen %s: %s", listen, why);
		return -1;
	}
	metrics_http = evhttp_new(server.base);
	if (evhttp_bind_socket(metrics_http, hp.host, (ev_uint16_t)hp.port_number) != 0) {
		snprintf(err, errsize, "[metrics] listen %s: cannot bind", listen);
		evhttp_free(metrics_http);
		metrics_http = NULL;
		return -1;
	}
	evhttp_set_allowed_methods(metrics_http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_cb(metrics_http, "/metrics", metrics_handle, NULL);
	evhttp_set_cb(metrics_http, "/healthz", metrics_health, NULL);
	metrics_address = xstrdup(listen);
	log_info("metrics on http://%s/metrics", listen);
	return 0;
}

void
metrics_stop(void)
{
	if (metrics_http != NULL)
		evhttp_free(metrics_http);
	metrics_http = NULL;
	free(metrics_address);
	metrics_address = NULL;
}
