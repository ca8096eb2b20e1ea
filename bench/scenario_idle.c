/* Scenario 4: many client connections, most idle, a few taking leases. The
 * daemon's memory per idle connection and acquire latency under that load;
 * direct MariaDB clients need one server connection each, and run out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "direct.h"
#include "lineclient.h"
#include "util/monotime.h"
#include "util/xmalloc.h"

#define IDLE_IO_TIMEOUT_MS 30000

static int idle_run_daemon(const struct bench_options *opt, json_t *result, int nidle);
static int idle_run_direct(const struct bench_options *opt, json_t *result, int nidle);
static int idle_run_active(const struct bench_options *opt, json_t *result);

/* The active clients: opt->active lease takers on tables t1..t<active>,
 * through the cycles scenario; their lock wait is the acquire latency. */
static int
idle_run_active(const struct bench_options *opt, json_t *result)
{
	if (opt->active == 0)
		return 0;
	struct bench_options active = *opt;
	active.clients = opt->active;
	active.tables = opt->active;
	json_t *sub = json_object();
	int rc = scenario_cycles_run(&active, sub);
	static const char *const copied[][2] = {
	    {"wait_p50_us", "acquire_p50_us"},
	    {"wait_p90_us", "acquire_p90_us"},
	    {"wait_p99_us", "acquire_p99_us"},
	    {"wait_max_us", "acquire_max_us"},
	    {"p50_us", "cycle_p50_us"},
	    {"p99_us", "cycle_p99_us"},
	    {"cycles", "cycles"},
	    {"duration_s", "duration_s"},
	    {"throughput", "throughput"},
	    {"errors", "errors"},
	    {"first_error", "first_error"},
	};
	for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
		json_t *v = json_object_get(sub, copied[i][0]);
		if (v != NULL)
			json_object_set(result, copied[i][1], v);
	}
	/* p50/p99 of the run are the acquire's: the quantity this scenario is about. */
	json_object_set(result, "p50_us", json_object_get(sub, "wait_p50_us"));
	json_object_set(result, "p99_us", json_object_get(sub, "wait_p99_us"));
	json_decref(sub);
	return rc;
}

static int
idle_run_daemon(const struct bench_options *opt, json_t *result, int nidle)
{
	static const char ping[] = "{\"op\":\"ping\"}\n";
	struct lineclient *conns = xcalloc((size_t)(nidle ? nidle : 1), sizeof(*conns));
	long rss_before = opt->daemon_pid ? bench_rss_kib(opt->daemon_pid) : -1;
	int opened = 0, refused = 0, rc = 0;
	char first_error[256] = "";

	int64_t start = monotime_ns();
	for (int i = 0; i < nidle; i++) {
		if (lineclient_connect(&conns[opened], opt->socket, false, IDLE_IO_TIMEOUT_MS) !=
		    0) {
			if (first_error[0] == '\0')
				snprintf(first_error, sizeof(first_error), "connect: %s",
				         strerror(errno));
			refused++;
			continue;
		}
		/* One request each, so the daemon has really taken the
		 * connection in (and set up whatever a talking client needs). */
		if (lineclient_send(&conns[opened], ping, sizeof(ping) - 1) != 0) {
			refused++;
			lineclient_close(&conns[opened]);
			continue;
		}
		opened++;
	}
	for (int i = 0; i < opened; i++) {
		char *line = lineclient_read_response(&conns[i]);
		if (line == NULL || lineclient_classify(line) != LINE_OK) {
			refused++;
			if (first_error[0] == '\0')
				snprintf(first_error, sizeof(first_error), "ping: %.200s",
				         line ? line : "connection closed");
		}
		/* Idle clients keep no buffer on our side either. */
		free(conns[i].data);
		conns[i].data = NULL;
		conns[i].cap = conns[i].head = conns[i].tail = conns[i].scan = 0;
	}
	double open_s = (double)(monotime_ns() - start) / 1e9;
	bench_sleep_ns(200000000); /* let the daemon settle before reading its RSS */
	long rss_idle = opt->daemon_pid ? bench_rss_kib(opt->daemon_pid) : -1;

	json_object_set_new(result, "idle_connections", json_integer(opened));
	json_object_set_new(result, "refused", json_integer(refused));
	json_object_set_new(result, "open_s", json_real(open_s));
	if (rss_before > 0 && rss_idle > 0) {
		json_object_set_new(result, "daemon_rss_before_kib", json_integer(rss_before));
		json_object_set_new(result, "daemon_rss_idle_kib", json_integer(rss_idle));
		if (opened > 0)
			json_object_set_new(
			    result, "daemon_bytes_per_connection",
			    json_real((double)(rss_idle - rss_before) * 1024.0 / opened));
	}
	if (refused > 0) {
		json_object_set_new(result, "first_error", json_string(first_error));
		rc = -1;
	}
	if (idle_run_active(opt, result) != 0)
		rc = -1;
	if (opt->daemon_pid)
		json_object_set_new(result, "daemon_rss_after_kib",
		                    json_integer(bench_rss_kib(opt->daemon_pid)));
	for (int i = 0; i < opened; i++)
		lineclient_close(&conns[i]);
	free(conns);
	return rc;
}

static int
idle_run_direct(const struct bench_options *opt, json_t *result, int nidle)
{
	MYSQL **conns = xcalloc((size_t)(nidle ? nidle : 1), sizeof(*conns));
	long rss_before = opt->mysqld_pid ? bench_rss_kib(opt->mysqld_pid) : -1;
	int opened = 0;
	char error[512] = "";

	int64_t start = monotime_ns();
	for (int i = 0; i < nidle; i++) {
		conns[opened] = direct_connect(opt, error, sizeof(error));
		if (conns[opened] == NULL)
			break; /* typically "Too many connections": the comparison */
		opened++;
	}
	double open_s = (double)(monotime_ns() - start) / 1e9;
	bench_sleep_ns(200000000);
	long rss_idle = opt->mysqld_pid ? bench_rss_kib(opt->mysqld_pid) : -1;

	json_object_set_new(result, "idle_connections", json_integer(opened));
	json_object_set_new(result, "refused", json_integer(nidle - opened));
	json_object_set_new(result, "open_s", json_real(open_s));
	if (rss_before > 0 && rss_idle > 0) {
		json_object_set_new(result, "mysqld_rss_before_kib", json_integer(rss_before));
		json_object_set_new(result, "mysqld_rss_idle_kib", json_integer(rss_idle));
		if (opened > 0)
			json_object_set_new(
			    result, "mysqld_bytes_per_connection",
			    json_real((double)(rss_idle - rss_before) * 1024.0 / opened));
	}
	int rc = 0;
	if (opened < nidle) {
		json_object_set_new(result, "first_error", json_string(error));
		json_object_set_new(result, "connections_exhausted", json_true());
	} else {
		rc = idle_run_active(opt, result);
	}
	for (int i = 0; i < opened; i++)
		mysql_close(conns[i]);
	free(conns);
	return rc;
}

int
scenario_idle_run(const struct bench_options *opt, json_t *result)
{
	int nidle = opt->connections - opt->active;
	if (nidle < 0)
		nidle = 0;
	long limit = bench_raise_nofile((long)opt->connections + 256);
	json_object_set_new(result, "clients", json_integer(opt->connections));
	json_object_set_new(result, "active_clients", json_integer(opt->active));
	if (limit < (long)opt->connections + 64) {
		bench_warnx("file limit %ld is too low for %d connections", limit,
		            opt->connections);
		json_object_set_new(result, "first_error", json_string("RLIMIT_NOFILE too low"));
		return -1;
	}
	if (opt->mode == BENCH_MODE_DIRECT)
		return idle_run_direct(opt, result, nidle);
	return idle_run_daemon(opt, result, nidle);
}
