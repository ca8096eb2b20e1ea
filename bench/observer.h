/* Observers: how many lock requests are waiting, as the daemon's status and
 * MariaDB's process list report it. Used to start a measurement only once
 * the waiters are really queued. */
#ifndef TABLELOCK_BENCH_OBSERVER_H
#define TABLELOCK_BENCH_OBSERVER_H

#include <mysql.h>
#include <stdint.h>

#include "lineclient.h"

/* Leases waiting in the daemon's queue (status op), or -1. */
long observer_daemon_waiting(struct lineclient *c);

/* Sessions waiting for a table lock in MariaDB, or -1. */
long observer_mysql_waiting(MYSQL *mysql);

/* Polls count(arg) every few milliseconds until it reaches want. Returns the
 * last count, which is below want on timeout. */
long observer_wait_for(long (*count)(void *), void *arg, long want, int64_t timeout_ns);

#endif
