/* Scenario 5: thousands of acquires queued on one table behind a holder
 * (pool of 16 sessions): the daemon's memory per waiter, and how long the
 * queue takes to drain once the holder commits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"
#include "lineclient.h"
#include "observer.h"
#include "samples.h"
#include "util/monotime.h"
#include "util/xmalloc.h"

#define WAITERS_IO_TIMEOUT_MS 30000
/* Long enough for the whole queue to drain one lease at a time. */
#define WAITERS_WAIT_MS 600000
#define WAITERS_DRAIN_TIMEOUT_NS (300LL * 1000000000)

enum waiter_state {
	WAITER_QUEUED,     /* acquire sent, no answer yet */
	WAITER_COMMITTING, /* holds the lease, commit sent */
	WAITER_DONE,
};

struct waiter {
	struct lineclient line;
	enum waiter_state state;
};

static long waiters_count(void *arg);
static int waiters_drain(struct waiter *w, int n, struct samples *handoff, int *errors, char *error,
                         size_t errlen);

static long
waiters_count(void *arg)
{
	return observer_daemon_waiting(arg);
}

/* Runs the queue down: each waiter commits as soon as it holds. handoff
 * gets the time between one grant and the next. Returns the number of
 * waiters done. */
static int
waiters_drain(struct waiter *w, int n, struct samples *handoff, int *errors, char *error,
              size_t errlen)
{
	int64_t last_grant = monotime_ns();
	static const char commit[] = "{\"op\":\"commit\"}\n";
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	int done = 0;

	for (int i = 0; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		epoll_ctl(epfd, EPOLL_CTL_ADD, w[i].line.fd, &ev);
	}
	int64_t deadline = monotime_ns() + WAITERS_DRAIN_TIMEOUT_NS;
	struct epoll_event events[256];
	while (done < n && monotime_ns() < deadline) {
		int k = epoll_wait(epfd, events, 256, 1000);
		for (int e = 0; e < k; e++) {
			struct waiter *x = &w[events[e].data.u32];
			long got = lineclient_fill(&x->line);
			if (got == 0 || (got < 0 && errno != EAGAIN)) {
				if (x->state != WAITER_DONE) {
					x->state = WAITER_DONE;
					done++;
					if ((*errors)++ == 0)
						snprintf(error, errlen, "connection closed");
				}
				epoll_ctl(epfd, EPOLL_CTL_DEL, x->line.fd, NULL);
				continue;
			}
			char *line;
			while ((line = lineclient_next_line(&x->line)) != NULL) {
				enum lineclient_kind kind = lineclient_classify(line);
				if (kind == LINE_EVENT || x->state == WAITER_DONE)
					continue;
				if (kind == LINE_ERROR && (*errors)++ == 0)
					snprintf(error, errlen, "%.400s", line);
				if (x->state == WAITER_QUEUED && kind == LINE_OK) {
					int64_t now = monotime_ns();
					samples_add(handoff, now - last_grant);
					last_grant = now;
				}
				if (x->state == WAITER_QUEUED && kind == LINE_OK &&
				    lineclient_send(&x->line, commit, sizeof(commit) - 1) == 0) {
					x->state = WAITER_COMMITTING;
					continue;
				}
				x->state = WAITER_DONE;
				done++;
			}
		}
	}
	close(epfd);
	return done;
}

int
scenario_waiters_run(const struct bench_options *opt, json_t *result)
{
	static const char acquire[] =
	    "{\"op\":\"acquire\",\"write\":[\"t1\"],\"wait_ms\":10000,\"ttl_ms\":300000}\n";
	static const char commit[] = "{\"op\":\"commit\"}\n";
	char waiter_acquire[160], error[512] = "";
	int n = opt->connections, errors = 0, rc = -1;
	struct lineclient holder, observer;
	struct waiter *w = xcalloc((size_t)n, sizeof(*w));
	int opened = 0;
	struct samples handoff;

	samples_init(&handoff);
	snprintf(waiter_acquire, sizeof(waiter_acquire),
	         "{\"op\":\"acquire\",\"write\":[\"t1\"],\"wait_ms\":%d}\n", WAITERS_WAIT_MS);
	json_object_set_new(result, "clients", json_integer(n));
	if (bench_raise_nofile((long)n + 256) < (long)n + 64) {
		json_object_set_new(result, "first_error", json_string("RLIMIT_NOFILE too low"));
		free(w);
		return -1;
	}
	if (lineclient_connect(&holder, opt->socket, false, WAITERS_IO_TIMEOUT_MS) != 0 ||
	    lineclient_connect(&observer, opt->socket, false, WAITERS_IO_TIMEOUT_MS) != 0) {
		bench_warnx("connect %s: %s", opt->socket, strerror(errno));
		free(w);
		return -1;
	}
	char *line = NULL;
	if (lineclient_call(&holder, acquire, sizeof(acquire) - 1, &line) != LINE_OK) {
		snprintf(error, sizeof(error), "holder acquire: %.400s", line ? line : "closed");
		goto out;
	}
	long rss_before = opt->daemon_pid ? bench_rss_kib(opt->daemon_pid) : -1;

	int64_t start = monotime_ns();
	for (; opened < n; opened++) {
		if (lineclient_connect(&w[opened].line, opt->socket, false,
		                       WAITERS_IO_TIMEOUT_MS) != 0 ||
		    lineclient_send(&w[opened].line, waiter_acquire, strlen(waiter_acquire)) != 0) {
			snprintf(error, sizeof(error), "waiter %d: %s", opened, strerror(errno));
			break;
		}
		w[opened].state = WAITER_QUEUED;
	}
	long queued = observer_wait_for(waiters_count, &observer, opened, 60LL * 1000000000);
	double enqueue_s = (double)(monotime_ns() - start) / 1e9;
	bench_sleep_ns(200000000);
	long rss_queued = opt->daemon_pid ? bench_rss_kib(opt->daemon_pid) : -1;
	json_object_set_new(result, "waiters", json_integer(opened));
	json_object_set_new(result, "queued_seen", json_integer(queued));
	json_object_set_new(result, "enqueue_s", json_real(enqueue_s));
	if (rss_before > 0 && rss_queued > 0) {
		json_object_set_new(result, "daemon_rss_before_kib", json_integer(rss_before));
		json_object_set_new(result, "daemon_rss_queued_kib", json_integer(rss_queued));
		if (opened > 0)
			json_object_set_new(
			    result, "daemon_bytes_per_waiter",
			    json_real((double)(rss_queued - rss_before) * 1024.0 / opened));
	}
	if (queued < opened) {
		if (error[0] == '\0')
			snprintf(error, sizeof(error), "only %ld of %d waiters seen queued", queued,
			         opened);
		goto out;
	}
	start = monotime_ns();
	if (lineclient_call(&holder, commit, sizeof(commit) - 1, &line) != LINE_OK) {
		snprintf(error, sizeof(error), "holder commit: %.400s", line ? line : "closed");
		goto out;
	}
	int done = waiters_drain(w, opened, &handoff, &errors, error, sizeof(error));
	double drain_s = (double)(monotime_ns() - start) / 1e9;
	json_object_set_new(result, "drained", json_integer(done));
	json_object_set_new(result, "drain_s", json_real(drain_s));
	json_object_set_new(result, "cycles", json_integer(done));
	json_object_set_new(result, "duration_s", json_real(drain_s));
	json_object_set_new(result, "throughput", json_real(drain_s > 0 ? done / drain_s : 0));
	/* p50/p99: from one waiter's grant to the next one's (the first
	 * from the holder's commit). */
	samples_report(&handoff, "", result);
	if (opt->daemon_pid)
		json_object_set_new(result, "daemon_rss_drained_kib",
		                    json_integer(bench_rss_kib(opt->daemon_pid)));
	rc = done == opened && errors == 0 && opened == n ? 0 : -1;
out:
	json_object_set_new(result, "errors", json_integer(errors));
	if (error[0] != '\0')
		json_object_set_new(result, "first_error", json_string(error));
	for (int i = 0; i < opened; i++)
		lineclient_close(&w[i].line);
	lineclient_close(&holder);
	lineclient_close(&observer);
	samples_free(&handoff);
	free(w);
	return rc;
}
