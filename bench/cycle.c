/* One benchmark cycle (lock a table, UPDATE one row, commit, unlock) in each
 * mode, behind one interface: open, run a cycle, close. */
#include "cycle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "direct.h"
#include "util/monotime.h"

/* Long enough that 64 clients queued on one table never time out. */
#define CYCLE_WAIT_MS 10000
#define CYCLE_TTL_MS 30000
#define CYCLE_IO_TIMEOUT_MS 30000

static int cycle_run_statements(struct cycle_client *cc, MYSQL *mysql, int64_t *wait_ns);
static int cycle_run_direct(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_run_connect(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_run_daemon(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_run_transact(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_run_pipelined(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_run_floor(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_run_direct_rdw(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_run_daemon_rdw(struct cycle_client *cc, int64_t *wait_ns);
static int cycle_daemon_call(struct cycle_client *cc, const char *request, const char *what);
static int cycle_daemon_answer(struct cycle_client *cc, const char *what, char **response);
static bool cycle_refused_as_unknown(const char *response);
static int cycle_first_row_int(const char *response, long long *value);

int
cycle_open(struct cycle_client *cc, const struct bench_options *opt, int table)
{
	memset(cc, 0, sizeof(*cc));
	cc->opt = opt;
	cc->table = table;
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
	/* UNLOCK TABLES commits the transaction LOCK TABLES began (MariaDB KB,
	 * "LOCK TABLES"): the same MySQL work as the daemon's commit op. */
	snprintf(cc->floor_sql, sizeof(cc->floor_sql), "%s;%s;UNLOCK TABLES", cc->lock_sql,
	         cc->update_sql);
	snprintf(cc->select_sql, sizeof(cc->select_sql), "SELECT v FROM t%d WHERE id=1", table);
	snprintf(cc->pipelined_request, sizeof(cc->pipelined_request), "%s%s{\"op\":\"commit\"}\n",
	         cc->acquire_request, cc->query_request);
	snprintf(cc->rdw_acquire_request, sizeof(cc->rdw_acquire_request),
	         "{\"op\":\"acquire\",\"write\":[\"t%d\"],\"wait_ms\":%d,\"ttl_ms\":%d,"
	         "\"statements\":[{\"sql\":\"SELECT v FROM t%d WHERE id=?\",\"params\":[1]}]}\n",
	         table, CYCLE_WAIT_MS, CYCLE_TTL_MS, table);

	switch (cc->mode) {
	case BENCH_MODE_FLOOR:
		cc->mysql = direct_connect_flags(opt, CLIENT_MULTI_STATEMENTS, cc->error,
		                                 sizeof(cc->error));
		if (cc->mysql == NULL)
			return -1;
		return direct_exec(cc->mysql, "SET autocommit=0", cc->error, sizeof(cc->error));
	case BENCH_MODE_DIRECT:
	case BENCH_MODE_DIRECT_RDW:
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
	case BENCH_MODE_PIPELINED:
	case BENCH_MODE_DAEMON_RDW:
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
	int64_t start = monotime_ns();
	if (direct_exec(mysql, cc->lock_sql, cc->error, sizeof(cc->error)) != 0)
		return -2;
	*wait_ns = monotime_ns() - start;
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

/* Reads the next response. Returns 0 for ok, -1 for an error response
 * (cc->error gets it), -2 for a broken connection; *response (if not NULL)
 * gets the line, valid until the next read. */
static int
cycle_daemon_answer(struct cycle_client *cc, const char *what, char **response)
{
	char *line = lineclient_read_response(&cc->line);
	if (response != NULL)
		*response = line;
	if (line == NULL) {
		snprintf(cc->error, sizeof(cc->error), "%s: connection to the daemon %s", what,
		         errno ? strerror(errno) : "closed");
		return -2;
	}
	if (lineclient_classify(line) == LINE_OK)
		return 0;
	snprintf(cc->error, sizeof(cc->error), "%s: %.400s", what, line);
	return -1;
}

/* One request, one response: as cycle_daemon_answer. */
static int
cycle_daemon_call(struct cycle_client *cc, const char *request, const char *what)
{
	if (lineclient_send(&cc->line, request, strlen(request)) != 0) {
		snprintf(cc->error, sizeof(cc->error), "%s: send: %s", what, strerror(errno));
		return -2;
	}
	return cycle_daemon_answer(cc, what, NULL);
}

/* A daemon that does not know a field refuses it with bad_request. */
static bool
cycle_refused_as_unknown(const char *response)
{
	return response != NULL && strstr(response, "\"code\":\"bad_request\"") != NULL;
}

/* The first value of the first row of the first result in a response
 * carrying "results". 0, or -1 when there is none or it is not an integer. */
static int
cycle_first_row_int(const char *response, long long *value)
{
	const char *results = strstr(response, "\"results\":[");
	const char *rows = results != NULL ? strstr(results, "\"rows\":[[") : NULL;
	if (rows == NULL)
		return -1;
	const char *start = rows + strlen("\"rows\":[[");
	char *end;
	errno = 0;
	*value = strtoll(start, &end, 10);
	return end == start || errno != 0 ? -1 : 0;
}

static int
cycle_run_daemon(struct cycle_client *cc, int64_t *wait_ns)
{
	int64_t start = monotime_ns();
	int rc = cycle_daemon_call(cc, cc->acquire_request, "acquire");
	if (rc != 0)
		return rc;
	*wait_ns = monotime_ns() - start;
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

/* acquire, query, commit written with one write(), then the three answers
 * read in order. A failed acquire makes the other two answer no_lease. */
static int
cycle_run_pipelined(struct cycle_client *cc, int64_t *wait_ns)
{
	static const char *const what[3] = {"acquire", "query", "commit"};
	int64_t start = monotime_ns();
	if (lineclient_send(&cc->line, cc->pipelined_request, strlen(cc->pipelined_request)) != 0) {
		snprintf(cc->error, sizeof(cc->error), "pipelined: send: %s", strerror(errno));
		return CYCLE_BROKEN;
	}
	int rc = 0;
	char first_error[sizeof(cc->error)] = "";
	for (int i = 0; i < 3; i++) {
		int r = cycle_daemon_answer(cc, what[i], NULL);
		if (r == -2)
			return CYCLE_BROKEN;
		if (i == 0)
			*wait_ns = monotime_ns() - start;
		if (r != 0 && rc == 0) {
			rc = CYCLE_FAILED;
			memcpy(first_error, cc->error, sizeof(first_error));
		}
	}
	if (rc != 0)
		memcpy(cc->error, first_error, sizeof(cc->error));
	return rc;
}

/* The floor of any client: the whole cycle in one round trip to MariaDB. */
static int
cycle_run_floor(struct cycle_client *cc, int64_t *wait_ns)
{
	*wait_ns = -1;
	return direct_exec_multi(cc->mysql, cc->floor_sql, cc->error, sizeof(cc->error)) == 0
	           ? 0
	           : CYCLE_BROKEN;
}

/* Read, decide, write without the daemon: LOCK TABLES, SELECT, UPDATE with
 * the value decided on the client, UNLOCK TABLES (which commits). */
static int
cycle_run_direct_rdw(struct cycle_client *cc, int64_t *wait_ns)
{
	char update[128];
	long long v;
	int64_t start = monotime_ns();
	if (direct_exec(cc->mysql, cc->lock_sql, cc->error, sizeof(cc->error)) != 0)
		return CYCLE_BROKEN;
	*wait_ns = monotime_ns() - start;
	if (direct_query_int(cc->mysql, cc->select_sql, &v, cc->error, sizeof(cc->error)) != 0)
		return CYCLE_BROKEN;
	snprintf(update, sizeof(update), "UPDATE t%d SET v=%lld WHERE id=1", cc->table, v + 1);
	if (direct_exec(cc->mysql, update, cc->error, sizeof(cc->error)) != 0 ||
	    direct_exec(cc->mysql, "UNLOCK TABLES", cc->error, sizeof(cc->error)) != 0)
		return CYCLE_BROKEN;
	return 0;
}

/* Read, decide, write through the daemon in 2 round trips: acquire runs the
 * SELECT and answers with its results, commit runs the UPDATE first. A
 * daemon without these fields answers bad_request (or, if it ignores
 * them, an answer without "results"): CYCLE_UNSUPPORTED. */
static int
cycle_run_daemon_rdw(struct cycle_client *cc, int64_t *wait_ns)
{
	char *response;
	char commit[256];
	long long v;
	int64_t start = monotime_ns();
	if (lineclient_send(&cc->line, cc->rdw_acquire_request, strlen(cc->rdw_acquire_request)) !=
	    0) {
		snprintf(cc->error, sizeof(cc->error), "acquire: send: %s", strerror(errno));
		return CYCLE_BROKEN;
	}
	int rc = cycle_daemon_answer(cc, "acquire with statements", &response);
	if (rc == -2)
		return CYCLE_BROKEN;
	if (rc == -1)
		return cycle_refused_as_unknown(response) ? CYCLE_UNSUPPORTED : CYCLE_FAILED;
	*wait_ns = monotime_ns() - start;
	bool has_results = strstr(response, "\"results\":[") != NULL;
	if (!has_results || cycle_first_row_int(response, &v) != 0) {
		snprintf(cc->error, sizeof(cc->error), "acquire with statements: %s: %.300s",
		         has_results ? "no integer in results[0].rows[0][0]"
		                     : "the answer has no \"results\" (statements ignored)",
		         response);
		char keep[sizeof(cc->error)];
		memcpy(keep, cc->error, sizeof(keep));
		rc = cycle_daemon_call(cc, "{\"op\":\"rollback\"}\n", "rollback");
		memcpy(cc->error, keep, sizeof(keep));
		if (rc == -2)
			return CYCLE_BROKEN;
		return has_results ? CYCLE_FAILED : CYCLE_UNSUPPORTED;
	}
	snprintf(commit, sizeof(commit),
	         "{\"op\":\"commit\",\"statements\":[{\"sql\":\"UPDATE t%d SET v=? WHERE id=?\","
	         "\"params\":[%lld,1]}]}\n",
	         cc->table, v + 1);
	if (lineclient_send(&cc->line, commit, strlen(commit)) != 0) {
		snprintf(cc->error, sizeof(cc->error), "commit: send: %s", strerror(errno));
		return CYCLE_BROKEN;
	}
	rc = cycle_daemon_answer(cc, "commit with statements", &response);
	if (rc == -2)
		return CYCLE_BROKEN;
	if (rc == 0 && strstr(response, "\"results\":[") != NULL)
		return 0;
	bool unknown = rc == 0 || cycle_refused_as_unknown(response);
	if (rc == 0)
		snprintf(cc->error, sizeof(cc->error),
		         "commit with statements: the answer has no \"results\" (the UPDATE did "
		         "not run): %.300s",
		         response);
	/* A refused commit may leave the lease held: end it. */
	char keep[sizeof(cc->error)];
	memcpy(keep, cc->error, sizeof(keep));
	if (rc != 0 && cycle_daemon_call(cc, "{\"op\":\"rollback\"}\n", "rollback") == -2) {
		memcpy(cc->error, keep, sizeof(keep));
		return CYCLE_BROKEN;
	}
	memcpy(cc->error, keep, sizeof(keep));
	return unknown ? CYCLE_UNSUPPORTED : CYCLE_FAILED;
}

int
cycle_run(struct cycle_client *cc, int64_t *wait_ns)
{
	static int (*const runners[BENCH_MODE__COUNT])(struct cycle_client *, int64_t *) = {
	    [BENCH_MODE_DIRECT] = cycle_run_direct,
	    [BENCH_MODE_CONNECT] = cycle_run_connect,
	    [BENCH_MODE_DAEMON] = cycle_run_daemon,
	    [BENCH_MODE_TRANSACT] = cycle_run_transact,
	    [BENCH_MODE_PIPELINED] = cycle_run_pipelined,
	    [BENCH_MODE_FLOOR] = cycle_run_floor,
	    [BENCH_MODE_DIRECT_RDW] = cycle_run_direct_rdw,
	    [BENCH_MODE_DAEMON_RDW] = cycle_run_daemon_rdw,
	};
	*wait_ns = -1;
	errno = 0;
	return runners[cc->mode](cc, wait_ns);
}
