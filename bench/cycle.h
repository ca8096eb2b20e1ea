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
	char floor_sql[208]; /* LOCK;UPDATE;UNLOCK as one multi-statement */
	char select_sql[96]; /* direct read, decide, write */
	char acquire_request[160];
	char query_request[160];
	char transact_request[256];
	char pipelined_request[512]; /* acquire, query, commit back to back */
	char rdw_acquire_request[320];
	int table;
	char error[512]; /* why the last cycle failed */
};

/* Opens the client for table t<table>. 0, or -1 with cc->error set. */
int cycle_open(struct cycle_client *cc, const struct bench_options *opt, int table);

/* What cycle_run returns besides 0. */
#define CYCLE_FAILED -1      /* the cycle failed, the client is usable */
#define CYCLE_BROKEN -2      /* the client is broken */
#define CYCLE_UNSUPPORTED -3 /* the daemon refused a feature with bad_request */

/* Runs one cycle. *wait_ns gets the time spent obtaining the lock (LOCK
 * TABLES, or the daemon's acquire), or -1 when the mode has no separate step
 * (transact, floor). Returns 0 or one of the codes above (cc->error says
 * why). */
int cycle_run(struct cycle_client *cc, int64_t *wait_ns);

void cycle_close(struct cycle_client *cc);

#endif
