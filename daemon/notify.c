/* Notify: tells systemd (when it started us) about readiness and state. */
#include "daemon/notify.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon/server.h"
#include "util/monotime.h"
#include "util/plural.h"

/* sd_notify() is a no-op returning 0 when NOTIFY_SOCKET is unset, so all
 * of this costs nothing outside systemd. */

static struct event *notify_watchdog;
static struct event *notify_status_timer;
static bool notify_is_ready;
static char notify_last_status[160];

static void notify_watchdog_cb(evutil_socket_t fd, short what, void *arg);
static void notify_status_cb(evutil_socket_t fd, short what, void *arg);

static void
notify_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sd_notify(0, "WATCHDOG=1");
}

/* "STATUS=3 leases held, 1 waiting, 12 clients", sent when it changes.
 * Waiting includes the leases whose LOCK TABLES waits in MySQL. */
static void
notify_status_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_census census;
	unsigned int waiting;
	char status[160];

	(void)fd;
	(void)what;
	(void)arg;
	if (!notify_is_ready)
		return;
	server_census(&census);
	waiting = census.waiting + census.locking;
	snprintf(status, sizeof(status), "STATUS=%s%u lease%s held, %u waiting, %u client%s",
		 server.shutting_down ? "draining: " : "", census.held, plural_s(census.held),
		 waiting, server.nclients, plural_s(server.nclients));
	if (strcmp(status, notify_last_status) != 0) {
		sd_notify(0, status);
		snprintf(notify_last_status, sizeof(notify_last_status), "%s", status);
	}
}

void
notify_start(void)
{
	uint64_t usec = 0;
	struct timeval tv = {1, 0};

	notify_status_timer = event_new(server.base, -1, EV_PERSIST, notify_status_cb, NULL);
	event_add(notify_status_timer, &tv);
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		/* Ping at half the interval, as sd_watchdog_enabled(3) advises. */
		tv.tv_sec = (time_t)(usec / 2 / 1000000);
		tv.tv_usec = (suseconds_t)(usec / 2 % 1000000);
		notify_watchdog = event_new(server.base, -1, EV_PERSIST, notify_watchdog_cb, NULL);
		event_add(notify_watchdog, &tv);
	}
}

void
notify_ready(const char *status)
{
	if (notify_is_ready)
		return;
	notify_is_ready = true;
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void
notify_reloading(void)
{
	/* systemd.service(5), Type=notify-reload: CLOCK_MONOTONIC. */
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)monotime_us());
}

void
notify_reloaded(void)
{
	sd_notify(0, "READY=1");
}

void
notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
}

void
notify_stop(void)
{
	if (notify_watchdog != NULL)
		event_free(notify_watchdog);
	if (notify_status_timer != NULL)
		event_free(notify_status_timer);
	notify_watchdog = notify_status_timer = NULL;
}
