/* Scenario 7: the daemon alone. ping requests per second on one or many
 * connections, each keeping --depth requests in flight (1: strict request,
 * response; more: pipelined). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"
#include "lineclient.h"
#include "samples.h"
#include "util/monotime.h"
#include "util/xmalloc.h"

#define PING_IO_TIMEOUT_MS 10000

struct ping_conn {
	struct lineclient line;
	int64_t *sent; /* ring of send times of the requests in flight */
	int first;     /* oldest in the ring */
	int inflight;
};

struct ping_run {
	const struct bench_options *opt;
	struct ping_conn *conns;
	char *burst; /* depth ping lines back to back */
	int64_t window_start;
	int64_t window_end;
	uint64_t counted;
	uint64_t errors;
	struct samples latency;
	char error[512];
};

static const char ping_line[] = "{\"op\":\"ping\"}\n";
#define PING_LINE_LEN (sizeof(ping_line) - 1)

static int ping_send(struct ping_run *run, struct ping_conn *c, int n);
static int ping_on_readable(struct ping_run *run, struct ping_conn *c);

/* Sends n more pings on c in one write. */
static int
ping_send(struct ping_run *run, struct ping_conn *c, int n)
{
	int depth = run->opt->depth;
	int64_t now = monotime_ns();
	for (int i = 0; i < n; i++)
		c->sent[(c->first + c->inflight + i) % depth] = now;
	c->inflight += n;
	return lineclient_send(&c->line, run->burst, (size_t)n * PING_LINE_LEN);
}

/* Reads what is there, accounts each answer, and refills the pipeline
 * unless the window is over. Returns -1 when the connection failed. */
static int
ping_on_readable(struct ping_run *run, struct ping_conn *c)
{
	long got = lineclient_fill(&c->line);
	if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
		snprintf(run->error, sizeof(run->error), "connection %s",
		         got == 0 ? "closed" : strerror(errno));
		return -1;
	}
	int64_t now = monotime_ns();
	int answered = 0;
	char *line;
	while ((line = lineclient_next_line(&c->line)) != NULL) {
		if (lineclient_classify(line) == LINE_EVENT)
			continue;
		if (lineclient_classify(line) != LINE_OK && run->errors++ == 0)
			snprintf(run->error, sizeof(run->error), "%.400s", line);
		int64_t sent = c->sent[c->first];
		c->first = (c->first + 1) % run->opt->depth;
		c->inflight--;
		answered++;
		if (sent >= run->window_start && now <= run->window_end) {
			run->counted++;
			samples_add(&run->latency, now - sent);
		}
	}
	if (answered > 0 && now < run->window_end)
		return ping_send(run, c, answered);
	return 0;
}

int
scenario_ping_run(const struct bench_options *opt, json_t *result)
{
	struct ping_run run = {.opt = opt};
	int n = opt->clients, depth = opt->depth, opened = 0, rc = -1;
	int epfd = -1;

	samples_init(&run.latency);
	bench_raise_nofile((long)n + 256);
	run.conns = xcalloc((size_t)n, sizeof(*run.conns));
	run.burst = xcalloc((size_t)depth, PING_LINE_LEN);
	for (int i = 0; i < depth; i++)
		memcpy(run.burst + (size_t)i * PING_LINE_LEN, ping_line, PING_LINE_LEN);
	/* One connection waits in read(); many share an epoll set. */
	bool single = n == 1;
	if (!single)
		epfd = epoll_create1(EPOLL_CLOEXEC);
	for (; opened < n; opened++) {
		struct ping_conn *c = &run.conns[opened];
		if (lineclient_connect(&c->line, opt->socket, !single, PING_IO_TIMEOUT_MS) != 0) {
			snprintf(run.error, sizeof(run.error), "connect: %s", strerror(errno));
			goto out;
		}
		c->sent = xcalloc((size_t)depth, sizeof(*c->sent));
		if (!single) {
			struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
			epoll_ctl(epfd, EPOLL_CTL_ADD, c->line.fd, &ev);
		}
	}

	int64_t start = monotime_ns();
	run.window_start = start + (int64_t)(opt->warmup_s * 1e9);
	run.window_end = run.window_start + (int64_t)(opt->duration_s * 1e9);
	for (int i = 0; i < n; i++)
		if (ping_send(&run, &run.conns[i], depth) != 0)
			goto out;
	/* Run until the window ends and every request in flight is answered. */
	int inflight = n * depth;
	while (inflight > 0) {
		if (single) {
			if (ping_on_readable(&run, &run.conns[0]) != 0)
				goto out;
			inflight = run.conns[0].inflight;
			continue;
		}
		struct epoll_event events[128];
		int k = epoll_wait(epfd, events, 128, PING_IO_TIMEOUT_MS);
		if (k == 0) {
			snprintf(run.error, sizeof(run.error), "no answer for %d ms",
			         PING_IO_TIMEOUT_MS);
			goto out;
		}
		for (int e = 0; e < k; e++)
			if (ping_on_readable(&run, events[e].data.ptr) != 0)
				goto out;
		if (monotime_ns() >= run.window_end) {
			inflight = 0;
			for (int i = 0; i < n; i++)
				inflight += run.conns[i].inflight;
		}
	}
	rc = run.errors == 0 ? 0 : -1;
out:;
	double window_s = (double)(run.window_end - run.window_start) / 1e9;
	json_object_set_new(result, "clients", json_integer(n));
	json_object_set_new(result, "depth", json_integer(depth));
	json_object_set_new(result, "cycles", json_integer((json_int_t)run.counted));
	json_object_set_new(result, "duration_s", json_real(window_s));
	json_object_set_new(result, "throughput",
	                    json_real(window_s > 0 ? (double)run.counted / window_s : 0));
	samples_report(&run.latency, "", result);
	json_object_set_new(result, "errors", json_integer((json_int_t)run.errors));
	if (run.error[0] != '\0')
		json_object_set_new(result, "first_error", json_string(run.error));
	for (int i = 0; i < opened; i++) {
		lineclient_close(&run.conns[i].line);
		free(run.conns[i].sent);
	}
	if (epfd >= 0)
		close(epfd);
	free(run.conns);
	free(run.burst);
	samples_free(&run.latency);
	return rc;
}
