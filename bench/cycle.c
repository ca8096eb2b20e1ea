/* One benchmark cycle (lock a table, UPDATE one row, commit, unlock) in each
 * mode, behind one interface: open, run a cycle, close. */
#include "cycle.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "direct.h"

/* Long enough that 64 clients queued on one table never time out. */
#define CYCLE_WAIT_MS 10000
#define CYCLE_TTL_MS 30000
#define CYCLE_IO_TIMEOUT_MS 30000

static int cycle_run_statements(struct cycle_client *cc, MYSQL *mysql, int64_t *wait_ns);
static int cycle_run_direct(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_run_connect(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_run_daemon(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_run_transact(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_daemon_call(struct cycle_client *cc, const char *request, const char *what);

int
cycle_open(struct cycle_client *cc, const struct bench_options *opt, int table)
{
	memset(cc, 0, sizeof(*cc));
	cc->opt = opt;
	cc->mode = opt->mode;
	cc->line.fd = -1;
	/* The same statements in every mode; the daemon quotes names itself. */
	snprintf(cc->lock_sql, sizeof(cc->lock_sql), "LOCK TABLES `t%d` WRITE", table);
	snprintf(cc->update_sql, sizeof(cc->update_sql), "UPDATE t%d SET v=v+1 WHERE id=1", table);
	snprintf(cc->acquire_request, sizeof(cc->acquire_request),
	         "{\"op\":\"acquire\",\"write\":[\"t%d\"],\"wait_ms\":%d,\"ttl_ms\":%d}\n", table,
	         CYCLE_WAIT_MS, CYCLE_TTL_MS);
	snprintf(cc->query_request, sizeof(cc->query_request),
	         "{\"op\":\"query\",\"sql\":\"%s\"}\n", cc->update_sql);
	snprintf(cc->transact_request, sizeof(cc->transact_request),
	         "{\"op\":\"transact\",\"write\":[\"t%d\"],\"wait_ms\":%d,\"ttl_ms\":%d,"
	         "\"statements\":[{\"sql\":\"%s\"}]}\n",
	         table, CYCLE_WAIT_MS, CYCLE_TTL_MS, cc->update_sql);

	switch (cc->mode) {
	case BENCH_MODE_DIRECT:
		cc->mysql = direct_connect(opt, cc->error, sizeof(cc->error));
		if (cc->mysql == NULL)
			return -1;
		/* Once per connection, as the manual's LOCK TABLES recipe for
		 * InnoDB says (MariaDB KB, "LOCK TABLES"). */
		return direct_exec(cc->mysql, "SET autocommit=0", cc->error, sizeof(cc->error));
	case BENCH_MODE_CONNECT:
		return 0;
	case BENCH_MODE_DAEMON:
	case BENCH_MODE_TRANSACT:
		if (lineclient_connect(&cc->line, opt->socket, false, CYCLE_IO_TIMEOUT_MS) != 0) {
			snprintf(cc->error, sizeof(cc->error), "connect %s: %s", opt->socket,
			         strerror(errno));
			return -1;
		}
		return 0;
	case BENCH_MODE__COUNT:
		break;
	}
	snprintf(cc->error, sizeof(cc->error), "bad mode");
	return -1;
}

void
cycle_close(struct cycle_client *cc)
{
	if (cc->mysql != NULL)
		mysql_close(cc->mysql);
	cc->mysql = NULL;
	if (cc->line.fd >= 0)
		lineclient_close(&cc->line);
}

/* LOCK TABLES, UPDATE, COMMIT, UNLOCK TABLES on a session with autocommit
 * off: what a service does without tablelockd. */
static int
cycle_run_statements(struct cycle_client *cc, MYSQL *mysql, int64_t *wait_ns)
{
	int64_t start = bench_now_ns();
	if (direct_exec(mysql, cc->lock_sql, cc->error, sizeof(cc->error)) != 0)
		return -2;
	*wait_ns = bench_now_ns() - start;
	if (direct_exec(mysql, cc->update_sql, cc->error, sizeof(cc->error)) != 0 ||
	    direct_exec(mysql, "COMMIT", cc->error, sizeof(cc->error)) != 0 ||
	    direct_exec(mysql, "UNLOCK TABLES", cc->error, sizeof(cc->error)) != 0)
		return -2;
	return 0;
}

static int
cycle_run_direct(struct cycle_client *cc, int64_t *wait_ns)
{
	return cycle_run_statements(cc, cc->mysql, wait_ns);
}

static int
cycle_run_connect(struct cycle_client *cc, int64_t *wait_ns)
{
	MYSQL *mysql = direct_connect(cc->opt, cc->error, sizeof(cc->error));
	if (mysql == NULL)
		return -1;
	int rc = direct_exec(mysql, "SET autocommit=0", cc->error, sizeof(cc->error));
	if (rc == 0)
		rc = cycle_run_statements(cc, mysql, wait_ns) == 0 ? 0 : -1;
	mysql_close(mysql);
	return rc == 0 ? 0 : -1;
}

/* One request, one response. Returns 0 for ok, -1 for an error response,
 * -2 for a broken connection. */
static int
cycle_daemon_call(struct cycle_client *cc, const char *request, const char *what)
{
	char *response = NULL;
	int kind = lineclient_call(&cc->line, request, strlen(request), &response);
	if (kind == LINE_OK)
		return 0;
	if (kind < 0) {
		snprintf(cc->error, sizeof(cc->error), "%s: connection to the daemon %s", what,
		         errno ? strerror(errno) : "closed");
		return -2;
	}
	snprintf(cc->error, sizeof(cc->error), "%s: %.400s", what, response);
	return -1;
}

static int
cycle_run_daemon(struct cycle_client *cc, int64_t *wait_ns)
{
	int64_t start = bench_now_ns();
	int rc = cycle_daemon_call(cc, cc->acquire_request, "acquire");
	if (rc != 0)
		return rc;
	*wait_ns = bench_now_ns() - start;
	if ((rc = cycle_daemon_call(cc, cc->query_request, "query")) != 0) {
		if (rc == -1) {
			char keep[sizeof(cc->error)];
			memcpy(keep, cc->error, sizeof(keep));
			if (cycle_daemon_call(cc, "{\"op\":\"rollback\"}\n", "rollback") == -2)
				rc = -2;
			memcpy(cc->error, keep, sizeof(keep));
		}
		return rc;
	}
	return cycle_daemon_call(cc, "{\"op\":\"commit\"}\n", "commit");
}

static int
cycle_run_transact(struct cycle_client *cc, int64_t *wait_ns)
{
	*wait_ns = -1;
	return cycle_daemon_call(cc, cc->transact_request, "transact");
}

int
cycle_run(struct cycle_client *cc, int64_t *wait_ns)
{
	static int (*const runners[BENCH_MODE__COUNT])(struct cycle_client *, int64_t *) = {
	    [BENCH_MODE_DIRECT] = cycle_run_direct,
	    [BENCH_MODE_CONNECT] = cycle_run_connect,
	    [BENCH_MODE_DAEMON] = cycle_run_daemon,
	    [BENCH_MODE_TRANSACT] = cycle_run_transact,
	};
	*wait_ns = -1;
	errno = 0;
	return runners[cc->mode](cc, wait_ns);
}
