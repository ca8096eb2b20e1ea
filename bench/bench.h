/* tablelock-bench: options, scenario entry points and small shared helpers. */
#ifndef TABLELOCK_BENCH_H
#define TABLELOCK_BENCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* How one cycle (lock, UPDATE, commit, unlock) reaches MariaDB. */
enum bench_mode {
	BENCH_MODE_DIRECT,     /* warm MariaDB connection, SET autocommit=0 once;
	                        * LOCK, UPDATE, COMMIT, UNLOCK: 4 round trips */
	BENCH_MODE_CONNECT,    /* the same, connecting for each cycle */
	BENCH_MODE_DAEMON,     /* tablelockd acquire, query, commit, one at a time */
	BENCH_MODE_TRANSACT,   /* tablelockd transact */
	BENCH_MODE_PIPELINED,  /* acquire, query, commit in one write(), 3 answers */
	BENCH_MODE_FLOOR,      /* direct, LOCK;UPDATE;UNLOCK as one multi-statement */
	BENCH_MODE_DIRECT_RDW, /* direct read, decide, write: LOCK, SELECT, UPDATE,
	                        * UNLOCK (which commits): 4 round trips */
	BENCH_MODE_DAEMON_RDW, /* acquire with a SELECT, commit with the UPDATE */
	BENCH_MODE__COUNT
};

/* True for the modes that talk to tablelockd, false for direct MariaDB. */
bool bench_mode_uses_daemon(enum bench_mode mode);

struct bench_options {
	const char *scenario; /* name written to the result ("s1-latency", …) */
	enum bench_mode mode;
	const char *socket; /* the daemon's Unix socket */
	const char *mysql_socket;
	const char *user;
	const char *password;
	const char *database;
	pid_t daemon_pid; /* for VmRSS; 0 when unknown */
	pid_t mysqld_pid;
	int clients;         /* concurrent clients (cycles, ping: connections) */
	int tables;          /* clients use t1..t<tables>, client i on t(1 + i % tables) */
	int active;          /* idle scenario: clients taking leases */
	int connections;     /* idle and waiters scenarios: connections opened */
	int depth;           /* ping: requests in flight per connection */
	int rounds;          /* release and expiry scenarios */
	int ttl_ms;          /* expiry scenario */
	long cycles;         /* cycles: stop after this many in all (0: run for duration_s) */
	const char *metrics; /* the daemon's metrics endpoint, "host:port", or NULL */
	double duration_s;   /* measured window */
	double warmup_s;     /* unmeasured run before the window */
};

/* What a scenario returns when the daemon does not know a feature it needs
 * (it answered bad_request): the run reports status "unsupported". */
#define BENCH_UNSUPPORTED 1

/* A scenario runs with the options and adds its fields to result.
 * Returns 0, BENCH_UNSUPPORTED, or -1 after printing why to stderr. */
typedef int bench_scenario_fn(const struct bench_options *opt, json_t *result);

bench_scenario_fn scenario_cycles_run;
bench_scenario_fn scenario_idle_run;
bench_scenario_fn scenario_waiters_run;
bench_scenario_fn scenario_release_run;
bench_scenario_fn scenario_expiry_run;
bench_scenario_fn scenario_ping_run;

const char *bench_mode_name(enum bench_mode mode);

void bench_sleep_ns(int64_t ns);

/* VmRSS of pid in KiB, or -1. */
long bench_rss_kib(pid_t pid);

/* CPU time (user + system) used so far by pid, or by this process when pid
 * is 0, in microseconds; -1 when unknown. /proc counts in clock ticks (10 ms),
 * so compare it over seconds, not milliseconds. */
int64_t bench_cpu_us(pid_t pid);

/* Voluntary context switches of every thread of pid (how often it slept
 * and was woken), or -1 when unknown. */
int64_t bench_voluntary_switches(pid_t pid);

/* Raises RLIMIT_NOFILE to at least want (up to the hard limit, which root may
 * raise). Returns the resulting soft limit. */
long bench_raise_nofile(long want);

/* Prints "tablelock-bench: " fmt to stderr. */
void bench_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
