/* tablelock-bench: the load generator. Parses options, runs one scenario in
 * one mode, and prints its result as one JSON object on stdout. */
#include <errno.h>
#include <dirent.h>
#include <getopt.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

struct bench_scenario {
	const char *name;
	bench_scenario_fn *run;
	unsigned modes; /* bit per enum bench_mode the scenario supports */
	const char *help;
};

#define MODE_BIT(m) (1u << (m))

static const struct bench_scenario bench_scenarios[] = {
    {"cycles", scenario_cycles_run,
     MODE_BIT(BENCH_MODE_DIRECT) | MODE_BIT(BENCH_MODE_CONNECT) | MODE_BIT(BENCH_MODE_DAEMON) |
         MODE_BIT(BENCH_MODE_TRANSACT) | MODE_BIT(BENCH_MODE_PIPELINED) |
         MODE_BIT(BENCH_MODE_FLOOR) | MODE_BIT(BENCH_MODE_DIRECT_RDW) |
         MODE_BIT(BENCH_MODE_DAEMON_RDW),
     "clients doing lock/UPDATE/commit cycles (scenarios 1-3, syscalls)"},
    {"idle", scenario_idle_run, MODE_BIT(BENCH_MODE_DAEMON) | MODE_BIT(BENCH_MODE_DIRECT),
     "many idle connections, a few taking leases (scenario 4)"},
    {"waiters", scenario_waiters_run, MODE_BIT(BENCH_MODE_DAEMON),
     "a queue of waiters on one table, then its drain (scenario 5)"},
    {"release", scenario_release_run, MODE_BIT(BENCH_MODE_DAEMON) | MODE_BIT(BENCH_MODE_DIRECT),
     "kill -9 of a holder until the next waiter holds (scenario 6)"},
    {"expiry", scenario_expiry_run, MODE_BIT(BENCH_MODE_DAEMON),
     "lateness of lease_expired after a short TTL (scenario 6)"},
    {"ping", scenario_ping_run, MODE_BIT(BENCH_MODE_DAEMON),
     "ping requests per second (scenario 7)"},
};

static const char *const bench_mode_names[BENCH_MODE__COUNT] = {
    [BENCH_MODE_DIRECT] = "direct",         [BENCH_MODE_CONNECT] = "connect",
    [BENCH_MODE_DAEMON] = "daemon",         [BENCH_MODE_TRANSACT] = "transact",
    [BENCH_MODE_PIPELINED] = "pipelined",   [BENCH_MODE_FLOOR] = "floor",
    [BENCH_MODE_DIRECT_RDW] = "direct-rdw", [BENCH_MODE_DAEMON_RDW] = "daemon-rdw",
};

static void bench_usage(FILE *f);
static int bench_parse_int(const char *name, const char *value, long min, long max);
static double bench_parse_seconds(const char *name, const char *value);

const char *
bench_mode_name(enum bench_mode mode)
{
	return mode < BENCH_MODE__COUNT ? bench_mode_names[mode] : "?";
}

bool
bench_mode_uses_daemon(enum bench_mode mode)
{
	return mode == BENCH_MODE_DAEMON || mode == BENCH_MODE_TRANSACT ||
	       mode == BENCH_MODE_PIPELINED || mode == BENCH_MODE_DAEMON_RDW;
}

void
bench_sleep_ns(int64_t ns)
{
	if (ns <= 0)
		return;
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

long
bench_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int64_t
bench_cpu_us(pid_t pid)
{
	if (pid == 0) {
		struct rusage ru;
		if (getrusage(RUSAGE_SELF, &ru) != 0)
			return -1;
		return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
		       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
	}
	char path[64], text[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	/* Fields after the command name, which may hold spaces: state is the
	 * first, utime the 12th and stime the 13th (proc(5), fields 14 and 15). */
	char *p = strrchr(text, ')');
	unsigned long long utime, stime;
	if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	                        &utime, &stime) != 2)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	return (int64_t)((utime + stime) * 1000000ULL / (unsigned long long)(hz > 0 ? hz : 100));
}

int64_t
bench_voluntary_switches(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	DIR *dir = opendir(path);
	if (dir == NULL)
		return -1;
	int64_t total = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char status[320];
		snprintf(status, sizeof(status), "/proc/%ld/task/%s/status", (long)pid, e->d_name);
		FILE *f = fopen(status, "r");
		if (f == NULL)
			continue; /* the thread is gone */
		long long n;
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "voluntary_ctxt_switches: %lld", &n) == 1)
				total += n;
		fclose(f);
	}
	closedir(dir);
	return total;
}

long
bench_raise_nofile(long want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if ((long)rl.rlim_cur >= want)
		return (long)rl.rlim_cur;
	struct rlimit raised = rl;
	raised.rlim_cur = (rlim_t)want;
	if (raised.rlim_max < raised.rlim_cur)
		raised.rlim_max = raised.rlim_cur; /* root only */
	if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
		raised.rlim_cur = rl.rlim_max;
		raised.rlim_max = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &raised);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	return (long)rl.rlim_cur;
}

void
bench_warnx(const char *fmt, ...)
{
	va_list ap;
	fputs("tablelock-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
bench_usage(FILE *f)
{
	fprintf(f, "usage: tablelock-bench [options] SCENARIO\n\nscenarios:\n");
	for (size_t i = 0; i < sizeof(bench_scenarios) / sizeof(bench_scenarios[0]); i++) {
		fprintf(f, "  %-9s %s (modes:", bench_scenarios[i].name, bench_scenarios[i].help);
		for (int m = 0; m < BENCH_MODE__COUNT; m++)
			if (bench_scenarios[i].modes & MODE_BIT(m))
				fprintf(f, " %s", bench_mode_names[m]);
		fprintf(f, ")\n");
	}
	fprintf(f, "\noptions:\n"
	           "  -m, --mode MODE        one of the modes above (default daemon)\n"
	           "  -n, --name NAME        scenario name written to the result\n"
	           "  -s, --socket PATH      the daemon's Unix socket\n"
	           "  -S, --mysql-socket P   MariaDB's Unix socket (direct and connect modes)\n"
	           "  -u, --user USER        MariaDB user      -p, --password PW\n"
	           "  -D, --database DB      MariaDB database (default app)\n"
	           "      --daemon-pid PID   read the daemon's VmRSS\n"
	           "      --mysqld-pid PID   read MariaDB's VmRSS\n"
	           "  -c, --clients N        concurrent clients / connections (default 1)\n"
	           "  -t, --tables N         tables t1..tN spread over the clients (default 1)\n"
	           "      --connections N    idle, waiters: connections to open\n"
	           "      --active N         idle: clients taking leases among them (default 4)\n"
	           "      --depth N          ping: requests in flight per connection (default 1)\n"
	           "      --rounds N         release, expiry: repetitions (default 50)\n"
	           "      --ttl-ms N         expiry: the lease's TTL (default 50)\n"
	           "      --cycles N         cycles: stop after N cycles in all (for counting)\n"
	           "      --metrics H:P      cycles: read the daemon's counters from\n"
	           "                         http://H:P/metrics before and after\n"
	           "  -d, --duration S       measured seconds (default 3)\n"
	           "  -w, --warmup S         unmeasured seconds first (default 0.3)\n"
	           "\nOne JSON object per run on stdout; exit status 1 if the run failed.\n");
}

static int
bench_parse_int(const char *name, const char *value, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < min || v > max) {
		bench_warnx("%s: expected an integer from %ld to %ld, got '%s'", name, min, max,
		            value);
		exit(2);
	}
	return (int)v;
}

static double
bench_parse_seconds(const char *name, const char *value)
{
	char *end;
	double v = strtod(value, &end);
	if (end == value || *end != '\0' || v < 0 || v > 3600) {
		bench_warnx("%s: expected seconds from 0 to 3600, got '%s'", name, value);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	enum {
		OPT_DAEMON_PID = 256,
		OPT_MYSQLD_PID,
		OPT_CONNECTIONS,
		OPT_ACTIVE,
		OPT_DEPTH,
		OPT_ROUNDS,
		OPT_TTL,
		OPT_CYCLES,
		OPT_METRICS
	};
	static const struct option longopts[] = {
	    {"mode", required_argument, NULL, 'm'},
	    {"name", required_argument, NULL, 'n'},
	    {"socket", required_argument, NULL, 's'},
	    {"mysql-socket", required_argument, NULL, 'S'},
	    {"user", required_argument, NULL, 'u'},
	    {"password", required_argument, NULL, 'p'},
	    {"database", required_argument, NULL, 'D'},
	    {"daemon-pid", required_argument, NULL, OPT_DAEMON_PID},
	    {"mysqld-pid", required_argument, NULL, OPT_MYSQLD_PID},
	    {"clients", required_argument, NULL, 'c'},
	    {"tables", required_argument, NULL, 't'},
	    {"connections", required_argument, NULL, OPT_CONNECTIONS},
	    {"active", required_argument, NULL, OPT_ACTIVE},
	    {"depth", required_argument, NULL, OPT_DEPTH},
	    {"rounds", required_argument, NULL, OPT_ROUNDS},
	    {"ttl-ms", required_argument, NULL, OPT_TTL},
	    {"cycles", required_argument, NULL, OPT_CYCLES},
	    {"metrics", required_argument, NULL, OPT_METRICS},
	    {"duration", required_argument, NULL, 'd'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct bench_options opt = {
	    .mode = BENCH_MODE_DAEMON,
	    .user = "root",
	    .password = "",
	    .database = "app",
	    .clients = 1,
	    .tables = 1,
	    .active = 4,
	    .connections = 10,
	    .depth = 1,
	    .rounds = 50,
	    .ttl_ms = 50,
	    .duration_s = 3,
	    .warmup_s = 0.3,
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "m:n:s:S:u:p:D:c:t:d:w:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm': {
			int m;
			for (m = 0; m < BENCH_MODE__COUNT; m++)
				if (strcmp(optarg, bench_mode_names[m]) == 0)
					break;
			if (m == BENCH_MODE__COUNT) {
				bench_warnx("unknown mode '%s'", optarg);
				return 2;
			}
			opt.mode = (enum bench_mode)m;
			break;
		}
		case 'n':
			opt.scenario = optarg;
			break;
		case 's':
			opt.socket = optarg;
			break;
		case 'S':
			opt.mysql_socket = optarg;
			break;
		case 'u':
			opt.user = optarg;
			break;
		case 'p':
			opt.password = optarg;
			break;
		case 'D':
			opt.database = optarg;
			break;
		case OPT_DAEMON_PID:
			opt.daemon_pid = bench_parse_int("--daemon-pid", optarg, 1, 1 << 30);
			break;
		case OPT_MYSQLD_PID:
			opt.mysqld_pid = bench_parse_int("--mysqld-pid", optarg, 1, 1 << 30);
			break;
		case 'c':
			opt.clients = bench_parse_int("--clients", optarg, 1, 100000);
			break;
		case 't':
			opt.tables = bench_parse_int("--tables", optarg, 1, 100000);
			break;
		case OPT_CONNECTIONS:
			opt.connections = bench_parse_int("--connections", optarg, 1, 1000000);
			break;
		case OPT_ACTIVE:
			opt.active = bench_parse_int("--active", optarg, 0, 10000);
			break;
		case OPT_DEPTH:
			opt.depth = bench_parse_int("--depth", optarg, 1, 100000);
			break;
		case OPT_ROUNDS:
			opt.rounds = bench_parse_int("--rounds", optarg, 1, 1000000);
			break;
		case OPT_TTL:
			opt.ttl_ms = bench_parse_int("--ttl-ms", optarg, 1, 86400000);
			break;
		case OPT_CYCLES:
			opt.cycles = bench_parse_int("--cycles", optarg, 1, 100000000);
			break;
		case OPT_METRICS:
			opt.metrics = optarg;
			break;
		case 'd':
			opt.duration_s = bench_parse_seconds("--duration", optarg);
			break;
		case 'w':
			opt.warmup_s = bench_parse_seconds("--warmup", optarg);
			break;
		case 'h':
			bench_usage(stdout);
			return 0;
		default:
			bench_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		bench_usage(stderr);
		return 2;
	}
	const struct bench_scenario *scenario = NULL;
	for (size_t i = 0; i < sizeof(bench_scenarios) / sizeof(bench_scenarios[0]); i++)
		if (strcmp(argv[optind], bench_scenarios[i].name) == 0)
			scenario = &bench_scenarios[i];
	if (scenario == NULL) {
		bench_warnx("unknown scenario '%s'", argv[optind]);
		return 2;
	}
	if (!(scenario->modes & MODE_BIT(opt.mode))) {
		bench_warnx("scenario %s has no mode %s", scenario->name,
		            bench_mode_name(opt.mode));
		return 2;
	}
	bool needs_daemon = bench_mode_uses_daemon(opt.mode);
	if (needs_daemon ? opt.socket == NULL : opt.mysql_socket == NULL) {
		bench_warnx("mode %s needs %s", bench_mode_name(opt.mode),
		            needs_daemon ? "--socket" : "--mysql-socket");
		return 2;
	}
	if (opt.scenario == NULL)
		opt.scenario = scenario->name;

	/* A peer that goes away must show up as an error, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (mysql_library_init(0, NULL, NULL) != 0) {
		bench_warnx("mysql_library_init failed");
		return 1;
	}

	json_t *result = json_object();
	json_object_set_new(result, "scenario", json_string(opt.scenario));
	json_object_set_new(result, "mode", json_string(bench_mode_name(opt.mode)));
	int rc = scenario->run(&opt, result);
	json_object_set_new(result, "status",
	                    json_string(rc == 0                   ? "ok"
	                                : rc == BENCH_UNSUPPORTED ? "unsupported"
	                                                          : "failed"));
	char *text =
	    json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	if (text != NULL) {
		puts(text);
		free(text);
	}
	fflush(stdout);
	json_decref(result);
	mysql_library_end();
	return rc == 0 || rc == BENCH_UNSUPPORTED ? 0 : 1;
}
