/* tablelockd: command line, startup, the event loop, and exit. */
#include <event2/event.h>
#include <getopt.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/tablelock.h" /* TABLELOCK_VERSION: one source for all */
#include "conf/conf.h"
#include "daemon/access.h"
#include "daemon/blockers.h"
#include "daemon/lease.h"
#include "daemon/leaseid.h"
#include "daemon/listener.h"
#include "daemon/lockmgr.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "daemon/pool.h"
#include "daemon/server.h"
#include "daemon/tls.h"
#include "util/monotime.h"
#include "util/plural.h"

#define MAIN_DEFAULT_CONF "/etc/tablelockd/tablelockd.conf"

static void main_usage(FILE *f);
static void main_signal_cb(evutil_socket_t sig, short what, void *arg);

static void
main_usage(FILE *f)
{
	fprintf(f,
		"usage: tablelockd [-c FILE] [-v | -q] [--check-config]\n"
		"       tablelockd --version | --help\n"
		"\n"
		"Lends MySQL sessions holding real LOCK TABLES to clients over a socket.\n"
		"\n"
		"  -c, --config FILE   configuration file (default " MAIN_DEFAULT_CONF ")\n"
		"      --check-config  check the configuration and exit (0 when valid)\n"
		"  -v, --verbose       log at debug level\n"
		"  -q, --quiet         log warnings and errors only\n"
		"      --version       print the version and exit\n"
		"  -h, --help          print this help and exit\n");
}

/* SIGTERM drains (a second one stops waiting); SIGINT does not wait;
 * SIGHUP reloads the configuration. */
static void
main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	if (sig == SIGHUP)
		server_reload();
	else if (sig == SIGINT)
		server_shutdown("SIGINT", true);
	else
		server_shutdown("SIGTERM", false);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *conf_path = MAIN_DEFAULT_CONF;
	bool check_only = false;
	int verbosity = 0;
	char err[1024];
	struct event *sigterm, *sigint, *sighup;
	int ch;

	while ((ch = getopt_long(argc, argv, "c:vqh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'v':
			verbosity = 1;
			break;
		case 'q':
			verbosity = -1;
			break;
		case 'V':
			printf("tablelockd %s\n", TABLELOCK_VERSION);
			return 0;
		case 'h':
			main_usage(stdout);
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		main_usage(stderr);
		return 2;
	}

	if (conf_load(conf_path, &server.conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "tablelockd: %s\n", err);
		return 1;
	}
	if (server.conf.nlisten == 0 && !listener_activated()) {
		fprintf(stderr, "tablelockd: %s: [daemon] listen: no address to listen on\n",
			conf_path);
		conf_free(&server.conf);
		return 1;
	}
	if (check_only) {
		printf("%s: configuration is valid\n", conf_path);
		conf_free(&server.conf);
		return 0;
	}
	if (server.conf.log_level != NULL)
		log_set_level_name(server.conf.log_level);
	server.verbosity = verbosity;
	if (verbosity > 0)
		log_set_level(LOG_LEVEL_DEBUG);
	else if (verbosity < 0)
		log_set_level(LOG_LEVEL_WARN);

	server.conf_path = conf_path;
	server.uid = getuid();
	server.started_us = monotime_us();
	TAILQ_INIT(&server.clients);
	TAILQ_INIT(&server.leases);
	server_apply_options();
	signal(SIGPIPE, SIG_IGN);
	if (mysql_library_init(0, NULL, NULL) != 0) {
		fprintf(stderr, "tablelockd: cannot initialise the MySQL client library\n");
		return 1;
	}
	if (access_compile(&server.conf.access_allow, conf_path, &server.access, err,
			   sizeof(err)) != 0) {
		fprintf(stderr, "tablelockd: %s\n", err);
		return 1;
	}
	if (tls_init(&server.conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "tablelockd: %s\n", err);
		return 1;
	}
	if (leaseid_init(server.conf.state_file, err, sizeof(err)) != 0) {
		fprintf(stderr, "tablelockd: [daemon] state_file %s\n", err);
		return 1;
	}
	/* Precise timers: libevent's default clock here ticks every 4 ms,
	 * which makes TTLs and wait_ms up to 4 ms late. */
	struct event_config *evcfg = event_config_new();
	event_config_set_flag(evcfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	server.base = event_base_new_with_config(evcfg);
	event_config_free(evcfg);
	if (server.base == NULL) {
		fprintf(stderr, "tablelockd: cannot create the event loop\n");
		return 1;
	}
	server.lockmgr = lockmgr_new(server.conf.max_waiters, lease_lockmgr_grant, NULL);
	server.pool = pool_new(server.base, &server.conf);
	if (listener_open_all(&server.conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "tablelockd: %s\n", err);
		return 1;
	}
	if (metrics_listen(server.conf.metrics_listen, err, sizeof(err)) != 0) {
		fprintf(stderr, "tablelockd: %s\n", err);
		listener_close_all();
		return 1;
	}
	sigterm = evsignal_new(server.base, SIGTERM, main_signal_cb, NULL);
	sigint = evsignal_new(server.base, SIGINT, main_signal_cb, NULL);
	sighup = evsignal_new(server.base, SIGHUP, main_signal_cb, NULL);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sighup, NULL);
	notify_start();
	pool_start(server.pool);
	log_info("tablelockd %s started (pool of %u session%s, %s)", TABLELOCK_VERSION,
		 server.conf.pool_size, plural_s(server.conf.pool_size),
		 server.conf.socket != NULL ? server.conf.socket
					    : server.conf.host != NULL ? server.conf.host
								       : "default MySQL socket");

	event_base_dispatch(server.base);

	log_info("tablelockd stopped");
	/* Stopped means exit 0: a SIGTERM now (systemd's, a second one) must
	 * not kill the process on its way out once libevent hands the signals
	 * back to their default action. Blocked first, so there is no gap. */
	sigset_t quiet;
	sigemptyset(&quiet);
	sigaddset(&quiet, SIGTERM);
	sigaddset(&quiet, SIGINT);
	sigaddset(&quiet, SIGHUP);
	sigprocmask(SIG_BLOCK, &quiet, NULL);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	blockers_free();
	pool_free(server.pool);
	lockmgr_free(server.lockmgr);
	access_free(server.access);
	tls_free();
	event_base_free(server.base);
	conf_free(&server.conf);
	mysql_library_end();
	return 0;
}
