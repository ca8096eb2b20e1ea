/* One benchmark cycle (lock a table, UPDATE one row, commit, unlock) in each
 * mode, behind one interface: open, run a cycle, close. */
#ifndef TABLELOCK_BENCH_CYCLE_H
#define TABLELOCK_BENCH_CYCLE_H

#include <mysql.h>
#include <stdint.h>

#include "bench.h"
#include "lineclient.h"

struct cycle_client {
	const struct bench_options *opt;
	enum bench_mode mode;
	MYSQL *mysql;           /* direct */
	struct lineclient line; /* daemon, transact */
	char lock_sql[96];
	char update_sql[96];
	char acquire_request[160];
	char query_request[160];
	char transact_request[256];
	char error[512]; /* why the last cycle failed */
};

/* Opens the client for table t<table>. 0, or -1 with cc->error set. */
int cycle_open(struct cycle_client *cc, const struct bench_options *opt, int table);

/* Runs one cycle. *wait_ns gets the time spent obtaining the lock (LOCK
 * TABLES, or the daemon's acquire), or -1 when the mode has no separate step
 * (transact). Returns 0; -1 when the cycle failed but the client is usable;
 * -2 when the client is broken (cc->error says why). */
int cycle_run(struct cycle_client *cc, int64_t *wait_ns);

void cycle_close(struct cycle_client *cc);

#endif
