/* Scenario 6: how fast a lock comes back. After kill -9 of the process that
 * holds it, how long until the next waiter holds it; after a short TTL, how
 * late the daemon's lease_expired arrives. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "direct.h"
#include "lineclient.h"
#include "observer.h"
#include "samples.h"
#include "util/monotime.h"

#define RELEASE_IO_TIMEOUT_MS 10000
#define RELEASE_QUEUE_TIMEOUT_NS (5LL * 1000000000)

static const char release_acquire[] =
    "{\"op\":\"acquire\",\"write\":[\"t1\"],\"wait_ms\":10000,\"ttl_ms\":60000}\n";

struct release_round {
	const struct bench_options *opt;
	struct lineclient waiter; /* daemon mode */
	struct lineclient observer;
	MYSQL *waiter_mysql; /* direct mode */
	MYSQL *observer_mysql;
	char error[512];
};

static void release_holder_main(const struct bench_options *opt, int ready_fd)
    __attribute__((noreturn));
static pid_t release_spawn_holder(struct release_round *r);
static int release_one(struct release_round *r, int64_t *ns);
static long release_daemon_waiting(void *arg);
static long release_mysql_waiting(void *arg);

/* The child: take the lock, say so on ready_fd, then wait to be killed. */
static void
release_holder_main(const struct bench_options *opt, int ready_fd)
{
	char ok = 'n';
	if (opt->mode == BENCH_MODE_DIRECT) {
		char err[256];
		MYSQL *mysql = direct_connect(opt, err, sizeof(err));
		if (mysql != NULL &&
		    direct_exec(mysql, "SET autocommit=0", err, sizeof(err)) == 0 &&
		    direct_exec(mysql, "LOCK TABLES `t1` WRITE", err, sizeof(err)) == 0)
			ok = 'y';
	} else {
		struct lineclient c;
		if (lineclient_connect(&c, opt->socket, false, RELEASE_IO_TIMEOUT_MS) == 0 &&
		    lineclient_call(&c, release_acquire, sizeof(release_acquire) - 1, NULL) ==
		        LINE_OK)
			ok = 'y';
	}
	if (write(ready_fd, &ok, 1) != 1 || ok != 'y')
		_exit(1);
	for (;;)
		pause();
}

static pid_t
release_spawn_holder(struct release_round *r)
{
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		release_holder_main(r->opt, fds[1]);
	}
	close(fds[1]);
	char ok = 'n';
	if (pid < 0 || read(fds[0], &ok, 1) != 1 || ok != 'y') {
		snprintf(r->error, sizeof(r->error), "holder failed to take the lock");
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		pid = -1;
	}
	close(fds[0]);
	return pid;
}

static long
release_daemon_waiting(void *arg)
{
	return observer_daemon_waiting(arg);
}

static long
release_mysql_waiting(void *arg)
{
	return observer_mysql_waiting(arg);
}

/* One round: a holder, our waiter queued behind it, kill -9, time until our
 * waiter holds. */
static int
release_one(struct release_round *r, int64_t *ns)
{
	bool direct = r->opt->mode == BENCH_MODE_DIRECT;
	pid_t holder = release_spawn_holder(r);
	if (holder < 0)
		return -1;
	int rc = -1;
	if (direct
	        ? direct_send(r->waiter_mysql, "LOCK TABLES `t1` WRITE", r->error,
	                      sizeof(r->error)) != 0
	        : lineclient_send(&r->waiter, release_acquire, sizeof(release_acquire) - 1) != 0) {
		kill(holder, SIGKILL);
		waitpid(holder, NULL, 0);
		return -1;
	}
	long queued = direct ? observer_wait_for(release_mysql_waiting, r->observer_mysql, 1,
	                                         RELEASE_QUEUE_TIMEOUT_NS)
	                     : observer_wait_for(release_daemon_waiting, &r->observer, 1,
	                                         RELEASE_QUEUE_TIMEOUT_NS);
	int64_t start = monotime_ns();
	kill(holder, SIGKILL);
	if (direct) {
		if (direct_finish(r->waiter_mysql, r->error, sizeof(r->error)) == 0) {
			*ns = monotime_ns() - start;
			rc = direct_exec(r->waiter_mysql, "UNLOCK TABLES", r->error,
			                 sizeof(r->error));
		}
	} else {
		char *line = lineclient_read_response(&r->waiter);
		if (line != NULL && lineclient_classify(line) == LINE_OK) {
			*ns = monotime_ns() - start;
			rc = lineclient_call(&r->waiter, "{\"op\":\"commit\"}\n", 16, NULL) ==
			             LINE_OK
			         ? 0
			         : -1;
		} else {
			snprintf(r->error, sizeof(r->error), "waiter acquire: %.400s",
			         line ? line : "closed");
		}
	}
	waitpid(holder, NULL, 0);
	if (rc == 0 && queued < 1) {
		snprintf(r->error, sizeof(r->error), "waiter was not seen queued before the kill");
		rc = -1;
	}
	return rc;
}

int
scenario_release_run(const struct bench_options *opt, json_t *result)
{
	struct release_round r = {.opt = opt};
	struct samples latency;
	char first_error[512] = "";
	int errors = 0;

	samples_init(&latency);
	r.waiter.fd = r.observer.fd = -1;
	if (opt->mode == BENCH_MODE_DIRECT) {
		r.waiter_mysql = direct_connect(opt, r.error, sizeof(r.error));
		r.observer_mysql = direct_connect(opt, r.error, sizeof(r.error));
		if (r.waiter_mysql == NULL || r.observer_mysql == NULL ||
		    direct_exec(r.waiter_mysql, "SET autocommit=0", r.error, sizeof(r.error)) != 0)
			goto out;
	} else if (lineclient_connect(&r.waiter, opt->socket, false, RELEASE_IO_TIMEOUT_MS) != 0 ||
	           lineclient_connect(&r.observer, opt->socket, false, RELEASE_IO_TIMEOUT_MS) !=
	               0) {
		snprintf(r.error, sizeof(r.error), "connect %s: %s", opt->socket, strerror(errno));
		goto out;
	}
	for (int i = 0; i < opt->rounds && errors <= 3; i++) {
		int64_t ns;
		r.error[0] = '\0';
		if (release_one(&r, &ns) == 0) {
			samples_add(&latency, ns);
			continue;
		}
		if (errors++ == 0)
			snprintf(first_error, sizeof(first_error), "%s",
			         r.error[0] != '\0' ? r.error : "round failed");
	}
out:
	json_object_set_new(result, "clients", json_integer(2));
	json_object_set_new(result, "cycles", json_integer((json_int_t)latency.len));
	samples_report(&latency, "", result);
	json_object_set_new(result, "errors", json_integer(errors));
	if (first_error[0] == '\0' && r.error[0] != '\0')
		snprintf(first_error, sizeof(first_error), "%s", r.error);
	if (first_error[0] != '\0')
		json_object_set_new(result, "first_error", json_string(first_error));
	if (r.waiter_mysql != NULL)
		mysql_close(r.waiter_mysql);
	if (r.observer_mysql != NULL)
		mysql_close(r.observer_mysql);
	if (r.waiter.fd >= 0)
		lineclient_close(&r.waiter);
	if (r.observer.fd >= 0)
		lineclient_close(&r.observer);
	int rc = latency.len > 0 && errors == 0 ? 0 : -1;
	samples_free(&latency);
	return rc;
}

int
scenario_expiry_run(const struct bench_options *opt, json_t *result)
{
	struct lineclient c;
	struct samples late, late_from_send;
	char request[160], error[512] = "";
	int errors = 0;

	samples_init(&late);
	samples_init(&late_from_send);
	snprintf(request, sizeof(request),
	         "{\"op\":\"acquire\",\"write\":[\"t1\"],\"wait_ms\":10000,\"ttl_ms\":%d}\n",
	         opt->ttl_ms);
	if (lineclient_connect(&c, opt->socket, false, opt->ttl_ms + RELEASE_IO_TIMEOUT_MS) != 0) {
		bench_warnx("connect %s: %s", opt->socket, strerror(errno));
		return -1;
	}
	int64_t ttl_ns = (int64_t)opt->ttl_ms * 1000000;
	for (int i = 0; i < opt->rounds && errors < 3; i++) {
		char *line;
		int64_t sent = monotime_ns();
		if (lineclient_call(&c, request, strlen(request), &line) != LINE_OK) {
			if (errors++ == 0)
				snprintf(error, sizeof(error), "acquire: %.400s",
				         line ? line : "closed");
			continue;
		}
		int64_t granted = monotime_ns();
		line = lineclient_read_line(&c); /* the event, with nothing else sent */
		int64_t fired = monotime_ns();
		if (line == NULL || lineclient_classify(line) != LINE_EVENT ||
		    strstr(line, "\"lease_expired\"") == NULL) {
			if (errors++ == 0)
				snprintf(error, sizeof(error),
				         "expected lease_expired, got: %.400s",
				         line ? line : "nothing");
			continue;
		}
		/* Lateness against the acquire's answer (the TTL can only have
		 * started before it) and, as an upper bound, against its sending. */
		samples_add(&late, fired - granted - ttl_ns);
		samples_add(&late_from_send, fired - sent - ttl_ns);
	}
	lineclient_close(&c);
	json_object_set_new(result, "clients", json_integer(1));
	json_object_set_new(result, "ttl_ms", json_integer(opt->ttl_ms));
	json_object_set_new(result, "cycles", json_integer((json_int_t)late.len));
	samples_report(&late, "", result);
	samples_report(&late_from_send, "from_send_", result);
	json_object_set_new(result, "errors", json_integer(errors));
	if (error[0] != '\0')
		json_object_set_new(result, "first_error", json_string(error));
	int rc = late.len > 0 && errors == 0 ? 0 : -1;
	samples_free(&late);
	samples_free(&late_from_send);
	return rc;
}
