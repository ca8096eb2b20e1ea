/* Scenarios 1-3: clients doing lock/UPDATE/commit cycles back to back, one
 * thread and one blocking connection each; latency, throughput, the fairness
 * of lock waits, CPU per cycle, and the daemon's session resets per lease. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cycle.h"
#include "samples.h"
#include "scrape.h"
#include "util/monotime.h"
#include "util/xmalloc.h"

enum cycles_phase { CYCLES_WARMUP, CYCLES_MEASURE, CYCLES_STOP };

struct cycles_record {
	int64_t end_ns;
	int64_t cycle_ns;
	int64_t wait_ns; /* -1: no separate lock step */
};

struct cycles_shared {
	const struct bench_options *opt;
	atomic_int phase;
	atomic_long started; /* cycles begun, for --cycles */
	atomic_int finished; /* workers that returned */
	pthread_barrier_t ready;
};

struct cycles_worker {
	pthread_t thread;
	struct cycles_shared *shared;
	int table;
	struct cycles_record *records; /* every cycle finished after warmup */
	size_t nrecords;
	size_t cap;
	uint64_t errors;
	bool broken;
	bool unsupported; /* the daemon refused the mode's request as unknown */
	char error[512];  /* first failure */
};

/* CPU time of everyone involved, to see where a cycle's cost goes. */
struct cycles_cpu {
	int64_t client_us; /* this process: every client thread */
	int64_t daemon_us;
	int64_t mysqld_us;
	int64_t daemon_sleeps; /* voluntary context switches: wake-ups */
};

static void *cycles_worker_main(void *arg);
static void cycles_cpu_read(const struct bench_options *opt, struct cycles_cpu *cpu);
static void cycles_cpu_report(const struct cycles_cpu *start, const struct cycles_cpu *end,
                              size_t cycles, json_t *result);
static void cycles_worker_note(struct cycles_worker *w, const char *error);
static void cycles_sleep(struct cycles_shared *shared, int workers, double seconds);
static int cycles_metrics_read(const struct bench_options *opt, double values[2]);
static void cycles_metrics_report(const double start[2], const double end[2], json_t *result);

/* The daemon's counters read around a run, in this order. */
static const char *const cycles_metric_names[2] = {
    "tablelockd_leases_ended_total",
    "tablelockd_session_resets_total",
};

static void
cycles_worker_note(struct cycles_worker *w, const char *error)
{
	w->errors++;
	if (w->error[0] == '\0')
		snprintf(w->error, sizeof(w->error), "%s", error);
}

static void *
cycles_worker_main(void *arg)
{
	struct cycles_worker *w = arg;
	struct cycle_client cc;
	bool opened = cycle_open(&cc, w->shared->opt, w->table) == 0;

	if (!opened) {
		cycles_worker_note(w, cc.error);
		w->broken = true;
	}
	pthread_barrier_wait(&w->shared->ready);
	long limit = w->shared->opt->cycles;
	while (opened) {
		int phase = atomic_load_explicit(&w->shared->phase, memory_order_acquire);
		if (phase == CYCLES_STOP)
			break;
		if (limit > 0 && atomic_fetch_add(&w->shared->started, 1) >= limit)
			break;
		int64_t wait_ns;
		int64_t start = monotime_ns();
		int rc = cycle_run(&cc, &wait_ns);
		int64_t end = monotime_ns();
		if (rc == CYCLE_UNSUPPORTED) {
			cycles_worker_note(w, cc.error);
			w->unsupported = true;
			break;
		}
		if (rc == CYCLE_BROKEN) {
			cycles_worker_note(w, cc.error);
			w->broken = true;
			break;
		}
		if (rc == CYCLE_FAILED) {
			cycles_worker_note(w, cc.error);
			bench_sleep_ns(1000000);
			continue;
		}
		if (phase == CYCLES_WARMUP)
			continue;
		if (w->nrecords == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 8192;
			w->records = xreallocarray(w->records, w->cap, sizeof(*w->records));
		}
		w->records[w->nrecords++] = (struct cycles_record){end, end - start, wait_ns};
	}
	if (opened)
		cycle_close(&cc);
	atomic_fetch_add(&w->shared->finished, 1);
	return NULL;
}

/* Sleeps for seconds, or less once every worker has returned (a broken or
 * unsupported mode, or --cycles done). */
static void
cycles_sleep(struct cycles_shared *shared, int workers, double seconds)
{
	int64_t deadline = monotime_ns() + (int64_t)(seconds * 1e9);
	for (int64_t now = monotime_ns(); now < deadline; now = monotime_ns()) {
		if (atomic_load(&shared->finished) >= workers)
			return;
		int64_t left = deadline - now;
		bench_sleep_ns(left < 1000000 ? left : 1000000);
	}
}

/* 0 with values read (-1 for a name the daemon lacks), or -1. */
static int
cycles_metrics_read(const struct bench_options *opt, double values[2])
{
	char err[256];
	if (opt->metrics == NULL || !bench_mode_uses_daemon(opt->mode))
		return -1;
	if (scrape_counters(opt->metrics, cycles_metric_names, values, 2, err, sizeof(err)) != 0) {
		bench_warnx("%s", err);
		return -1;
	}
	return 0;
}

/* Adds the leases ended and session resets over the run (warm-up included)
 * and resets per 1,000 leases; a counter the daemon lacks is null. */
static void
cycles_metrics_report(const double start[2], const double end[2], json_t *result)
{
	double leases = start[0] >= 0 && end[0] >= 0 ? end[0] - start[0] : -1;
	double resets = start[1] >= 0 && end[1] >= 0 ? end[1] - start[1] : -1;
	json_object_set_new(result, "metrics_leases_ended",
	                    leases >= 0 ? json_integer((json_int_t)leases) : json_null());
	json_object_set_new(result, "metrics_session_resets",
	                    resets >= 0 ? json_integer((json_int_t)resets) : json_null());
	json_object_set_new(result, "resets_per_1000_leases",
	                    leases > 0 && resets >= 0 ? json_real(1000.0 * resets / leases)
	                                              : json_null());
}

static void
cycles_cpu_read(const struct bench_options *opt, struct cycles_cpu *cpu)
{
	cpu->client_us = bench_cpu_us(0);
	cpu->daemon_us = opt->daemon_pid ? bench_cpu_us(opt->daemon_pid) : -1;
	cpu->mysqld_us = opt->mysqld_pid ? bench_cpu_us(opt->mysqld_pid) : -1;
	cpu->daemon_sleeps = opt->daemon_pid ? bench_voluntary_switches(opt->daemon_pid) : -1;
}

/* Adds cpu_<who>_us_per_cycle: CPU microseconds each process spent per
 * cycle in the window (the daemon's even when it was not used), and
 * daemon_sleeps_per_cycle: the times the daemon blocked and was woken (its
 * voluntary context switches), counted without slowing it down. */
static void
cycles_cpu_report(const struct cycles_cpu *start, const struct cycles_cpu *end, size_t cycles,
                  json_t *result)
{
	static const struct {
		const char *key;
		size_t offset;
	} who[] = {
	    {"cpu_client_us_per_cycle", offsetof(struct cycles_cpu, client_us)},
	    {"cpu_daemon_us_per_cycle", offsetof(struct cycles_cpu, daemon_us)},
	    {"cpu_mysqld_us_per_cycle", offsetof(struct cycles_cpu, mysqld_us)},
	    {"daemon_sleeps_per_cycle", offsetof(struct cycles_cpu, daemon_sleeps)},
	};
	if (cycles == 0)
		return;
	for (size_t i = 0; i < sizeof(who) / sizeof(who[0]); i++) {
		int64_t a = *(const int64_t *)(const void *)((const char *)start + who[i].offset);
		int64_t b = *(const int64_t *)(const void *)((const char *)end + who[i].offset);
		if (a >= 0 && b >= a)
			json_object_set_new(result, who[i].key,
			                    json_real((double)(b - a) / (double)cycles));
	}
}

int
scenario_cycles_run(const struct bench_options *opt, json_t *result)
{
	struct cycles_shared shared = {.opt = opt};
	int n = opt->clients;
	struct cycles_worker *workers = xcalloc((size_t)n, sizeof(*workers));

	atomic_init(&shared.phase, CYCLES_WARMUP);
	atomic_init(&shared.started, 0);
	atomic_init(&shared.finished, 0);
	double metrics_start[2], metrics_end[2];
	bool metrics = cycles_metrics_read(opt, metrics_start) == 0;
	pthread_barrier_init(&shared.ready, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		workers[i].shared = &shared;
		workers[i].table = 1 + i % opt->tables;
		int err = pthread_create(&workers[i].thread, NULL, cycles_worker_main, &workers[i]);
		if (err != 0) {
			bench_warnx("pthread_create: %s", strerror(err));
			exit(1);
		}
	}
	pthread_barrier_wait(&shared.ready);
	cycles_sleep(&shared, n, opt->warmup_s);
	struct cycles_cpu cpu_start, cpu_end;
	cycles_cpu_read(opt, &cpu_start);
	int64_t window_start = monotime_ns();
	atomic_store_explicit(&shared.phase, CYCLES_MEASURE, memory_order_release);
	cycles_sleep(&shared, n, opt->duration_s);
	int64_t window_end = monotime_ns();
	cycles_cpu_read(opt, &cpu_end);
	atomic_store_explicit(&shared.phase, CYCLES_STOP, memory_order_release);

	struct samples cycle, wait;
	samples_init(&cycle);
	samples_init(&wait);
	uint64_t errors = 0, per_client_min = UINT64_MAX, per_client_max = 0;
	int broken = 0, unsupported = 0;
	const char *first_error = NULL;
	for (int i = 0; i < n; i++) {
		struct cycles_worker *w = &workers[i];
		pthread_join(w->thread, NULL);
		uint64_t counted = 0;
		for (size_t k = 0; k < w->nrecords; k++) {
			const struct cycles_record *r = &w->records[k];
			/* Cycles that started and ended inside the window. */
			if (r->end_ns - r->cycle_ns < window_start || r->end_ns > window_end)
				continue;
			counted++;
			samples_add(&cycle, r->cycle_ns);
			if (r->wait_ns >= 0)
				samples_add(&wait, r->wait_ns);
		}
		per_client_min = counted < per_client_min ? counted : per_client_min;
		per_client_max = counted > per_client_max ? counted : per_client_max;
		errors += w->errors;
		broken += w->broken;
		unsupported += w->unsupported;
		if (first_error == NULL && w->error[0] != '\0')
			first_error = w->error;
	}
	double window_s = (double)(window_end - window_start) / 1e9;
	if (metrics && cycles_metrics_read(opt, metrics_end) == 0)
		cycles_metrics_report(metrics_start, metrics_end, result);

	json_object_set_new(result, "clients", json_integer(n));
	json_object_set_new(result, "tables", json_integer(opt->tables));
	json_object_set_new(result, "cycles", json_integer((json_int_t)cycle.len));
	if (opt->cycles > 0) {
		long begun = atomic_load(&shared.started);
		json_object_set_new(result, "cycles_run",
		                    json_integer(begun < opt->cycles ? begun : opt->cycles));
	}
	json_object_set_new(result, "duration_s", json_real(window_s));
	json_object_set_new(result, "throughput", json_real((double)cycle.len / window_s));
	samples_report(&cycle, "", result);
	cycles_cpu_report(&cpu_start, &cpu_end, cycle.len, result);
	if (wait.len > 0) {
		samples_report(&wait, "wait_", result);
		double p50 = samples_percentile_us(&wait, 0.5);
		json_object_set_new(
		    result, "wait_fairness",
		    json_real(p50 > 0 ? samples_percentile_us(&wait, 0.99) / p50 : 0));
	}
	json_object_set_new(result, "client_cycles_min", json_integer((json_int_t)per_client_min));
	json_object_set_new(result, "client_cycles_max", json_integer((json_int_t)per_client_max));
	json_object_set_new(result, "errors", json_integer((json_int_t)errors));
	json_object_set_new(result, "broken_clients", json_integer(broken));
	if (first_error != NULL)
		json_object_set_new(result, "first_error", json_string(first_error));
	if (unsupported > 0)
		json_object_set_new(result, "unsupported", json_true());

	samples_free(&cycle);
	samples_free(&wait);
	for (int i = 0; i < n; i++)
		free(workers[i].records);
	free(workers);
	pthread_barrier_destroy(&shared.ready);
	if (unsupported > 0)
		return BENCH_UNSUPPORTED;
	return broken == n ? -1 : 0;
}
