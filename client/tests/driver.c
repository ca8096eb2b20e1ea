/* Test driver: every libtablelock call, run one JSON command per input line. */
/*
 * The integration tests (tests/integration/test_client_lib.py) start this
 * program and send it commands such as
 *   {"cmd":"acquire","write":["t1"],"wait":1000,"ttl":5000,"timeout":5000}
 * It answers each with one JSON line: {"ok":true,…} or {"ok":false,"code":…}
 * carrying everything tablelock_last_error() said. Results are dumped
 * through the typed accessors, so the tests check those too.
 */
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/tablelock.h"
#include "util/buf.h"
#include "util/xmalloc.h"

static struct tablelock *driver_tl;

typedef json_t *driver_fn(const json_t *cmd);

static int driver_timeout(const json_t *cmd);
static json_t *driver_error(const struct tablelock_error *err);
static json_t *driver_fail(void);
static json_t *driver_ok(void);
static bool driver_lock(const json_t *cmd, struct tablelock_lock *lock, struct buf *store);
static struct tablelock_param *driver_params(const json_t *a, size_t *n);
static json_t *driver_result(const struct tablelock_result *r);
static struct tablelock_statement *driver_statements(const json_t *cmd, size_t *n);
static void driver_statements_free(struct tablelock_statement *st, size_t n);
static json_t *driver_results(struct tablelock_result **results, size_t n);

static int
driver_timeout(const json_t *cmd)
{
	json_t *t = json_object_get(cmd, "timeout");
	return json_is_integer(t) ? (int)json_integer_value(t) : 10000;
}

static json_t *
driver_error(const struct tablelock_error *err)
{
	return json_pack("{s:b,s:s,s:i,s:s,s:i,s:s,s:i,s:I,s:i}", "ok", 0, "code", err->code_name,
	                 "code_num", (int)err->code, "message", err->message, "mysql_errno",
	                 (int)err->mysql_errno, "sqlstate", err->sqlstate, "statement",
	                 (int)err->statement, "lease", (json_int_t)err->lease, "sys_errno",
	                 err->sys_errno);
}

/* "held": the lease the handle holds after the call (tablelock_lease). */
static json_t *
driver_fail(void)
{
	json_t *resp = driver_error(tablelock_last_error(driver_tl));
	json_object_set_new(resp, "held", json_integer((json_int_t)tablelock_lease(driver_tl)));
	return resp;
}

static json_t *
driver_ok(void)
{
	return json_pack("{s:b,s:I}", "ok", 1, "held", (json_int_t)tablelock_lease(driver_tl));
}

/* "write"/"read" lists (strings, or {"table","as"}), "wait", "ttl". Names
 * are borrowed from cmd; the table array is kept in store. */
static bool
driver_lock(const json_t *cmd, struct tablelock_lock *lock, struct buf *store)
{
	static const char *const lists[2] = {"write", "read"};
	struct tablelock_table *t;
	json_t *v;
	size_t n = 0;

	buf_reset(store);
	for (int l = 0; l < 2; l++) {
		size_t i;
		json_array_foreach(json_object_get(cmd, lists[l]), i, v)
		{
			struct tablelock_table e = {NULL, NULL, l == 0};
			if (json_is_object(v)) {
				e.name = json_string_value(json_object_get(v, "table"));
				e.alias = json_string_value(json_object_get(v, "as"));
			} else {
				e.name = json_string_value(v);
			}
			buf_append(store, &e, sizeof(e));
			n++;
		}
	}
	t = (struct tablelock_table *)store->data;
	lock->tables = t;
	lock->ntables = n;
	v = json_object_get(cmd, "wait");
	lock->wait_ms = json_is_integer(v) ? json_integer_value(v) : TABLELOCK_DEFAULT;
	v = json_object_get(cmd, "ttl");
	lock->ttl_ms = json_is_integer(v) ? json_integer_value(v) : TABLELOCK_DEFAULT;
	return true;
}

/* JSON values to typed params: integers, reals, strings, booleans, null,
 * and {"uint":"…"} for unsigned 64-bit, {"binary":"…"} to test refusal. */
static struct tablelock_param *
driver_params(const json_t *a, size_t *n)
{
	struct tablelock_param *p;
	json_t *v;
	size_t i;

	*n = json_array_size(a);
	p = xcalloc(*n ? *n : 1, sizeof(*p));
	json_array_foreach(a, i, v)
	{
		if (json_is_integer(v))
			p[i] = tablelock_int(json_integer_value(v));
		else if (json_is_real(v))
			p[i] = tablelock_double(json_real_value(v));
		else if (json_is_string(v))
			p[i] = tablelock_strn(json_string_value(v), json_string_length(v));
		else if (json_is_boolean(v))
			p[i] = tablelock_bool(json_is_true(v));
		else if (json_is_object(v) && json_object_get(v, "uint") != NULL)
			p[i] = tablelock_uint(
			    strtoull(json_string_value(json_object_get(v, "uint")), NULL, 10));
		else if (json_is_object(v) && json_object_get(v, "binary") != NULL)
			p[i] = (struct tablelock_param){.type = TABLELOCK_BINARY};
		else
			p[i] = tablelock_null();
	}
	return p;
}

/* "statements": [{"sql","params"}]: the params arrays are owned by the
 * statements (driver_statements_free). */
static struct tablelock_statement *
driver_statements(const json_t *cmd, size_t *n)
{
	const json_t *list = json_object_get(cmd, "statements");
	struct tablelock_statement *st;

	*n = json_array_size(list);
	st = xcalloc(*n ? *n : 1, sizeof(*st));
	for (size_t i = 0; i < *n; i++) {
		const json_t *s = json_array_get(list, i);
		st[i].sql = json_string_value(json_object_get(s, "sql"));
		st[i].params = driver_params(json_object_get(s, "params"), &st[i].nparams);
	}
	return st;
}

static void
driver_statements_free(struct tablelock_statement *st, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((void *)st[i].params);
	free(st);
}

/* The results array, each freed; a NULL slot is JSON null. */
static json_t *
driver_results(struct tablelock_result **results, size_t n)
{
	json_t *rs = json_array();

	for (size_t i = 0; i < n; i++) {
		json_array_append_new(rs,
		                      results[i] != NULL ? driver_result(results[i]) : json_null());
		tablelock_result_free(results[i]);
		results[i] = NULL;
	}
	return rs;
}

static json_t *
driver_result(const struct tablelock_result *r)
{
	static const char *const types[] = {"null",   "bool",   "int",   "uint",
	                                    "double", "string", "binary"};
	json_t *o = json_object(), *cols = json_array(), *rows = json_array();
	size_t nc = tablelock_result_ncolumns(r), nr = tablelock_result_nrows(r);

	for (size_t c = 0; c < nc; c++)
		json_array_append_new(cols, json_pack("{s:s,s:s}", "name",
		                                      tablelock_result_column_name(r, c), "type",
		                                      tablelock_result_column_type(r, c)));
	for (size_t i = 0; i < nr; i++) {
		json_t *row = json_array();
		for (size_t c = 0; c < nc; c++) {
			json_t *cell = json_object();
			size_t len;
			const char *text = tablelock_result_text(r, i, c, &len);
			int64_t iv;
			uint64_t uv;
			double dv;

			json_object_set_new(cell, "type",
			                    json_string(types[tablelock_result_type(r, i, c)]));
			json_object_set_new(cell, "null",
			                    json_boolean(tablelock_result_is_null(r, i, c)));
			if (text != NULL && tablelock_result_type(r, i, c) == TABLELOCK_BINARY) {
				struct buf hex = {0};
				for (size_t k = 0; k < len; k++)
					buf_appendf(&hex, "%02x", (unsigned char)text[k]);
				json_object_set_new(cell, "hex",
				                    json_string(hex.data ? hex.data : ""));
				buf_free(&hex);
			} else if (text != NULL) {
				json_object_set_new(cell, "text", json_stringn(text, len));
			}
			if (tablelock_result_int64(r, i, c, &iv) == 0)
				json_object_set_new(cell, "int64", json_integer(iv));
			if (tablelock_result_uint64(r, i, c, &uv) == 0)
				json_object_set_new(cell, "uint64",
				                    json_sprintf("%llu", (unsigned long long)uv));
			if (tablelock_result_double(r, i, c, &dv) == 0)
				json_object_set_new(cell, "double", json_real(dv));
			json_array_append_new(row, cell);
		}
		json_array_append_new(rows, row);
	}
	json_object_set_new(o, "columns", cols);
	json_object_set_new(o, "rows", rows);
	json_object_set_new(o, "affected_rows",
	                    json_integer((json_int_t)tablelock_result_affected_rows(r)));
	json_object_set_new(o, "insert_id",
	                    json_integer((json_int_t)tablelock_result_insert_id(r)));
	json_object_set_new(o, "warnings", json_integer(tablelock_result_warnings(r)));
	if (tablelock_result_error(r) != NULL)
		json_object_set_new(o, "error", driver_error(tablelock_result_error(r)));
	/* Out of range reads as NULL, never a crash. */
	json_object_set_new(o, "out_of_range_is_null",
	                    json_boolean(tablelock_result_text(r, nr, 0, NULL) == NULL &&
	                                 tablelock_result_is_null(r, 0, nc) &&
	                                 tablelock_result_column_name(r, nc) == NULL));
	return o;
}

static json_t *
driver_connect(const json_t *cmd)
{
	struct tablelock_error err;
	const char *address = json_string_value(json_object_get(cmd, "address"));

	tablelock_close(driver_tl);
	driver_tl = tablelock_connect(address, driver_timeout(cmd), &err);
	if (driver_tl == NULL)
		return driver_error(&err);
	return json_pack("{s:b,s:s,s:i}", "ok", 1, "address", tablelock_address(driver_tl), "fd",
	                 tablelock_fd(driver_tl));
}

static json_t *
driver_close(const json_t *cmd)
{
	(void)cmd;
	tablelock_close(driver_tl);
	driver_tl = NULL;
	return json_pack("{s:b}", "ok", 1);
}

static json_t *
driver_ping(const json_t *cmd)
{
	return tablelock_ping(driver_tl, driver_timeout(cmd)) == 0 ? driver_ok() : driver_fail();
}

static json_t *
driver_hello(const json_t *cmd)
{
	json_t *resp;

	if (tablelock_hello(driver_tl, json_string_value(json_object_get(cmd, "client")),
	                    json_string_value(json_object_get(cmd, "token")),
	                    driver_timeout(cmd)) != 0)
		return driver_fail();
	resp = driver_ok();
	json_object_set_new(resp, "server_version",
	                    json_string(tablelock_server_version(driver_tl)));
	return resp;
}

/* With "statements", tablelock_acquire_with(); else tablelock_acquire(). */
static json_t *
driver_acquire(const json_t *cmd)
{
	struct tablelock_lock lock;
	struct buf store = {0};
	uint64_t lease = 0;
	size_t n;
	struct tablelock_statement *st = driver_statements(cmd, &n);
	struct tablelock_result **results = xcalloc(n ? n : 1, sizeof(*results));
	bool with = json_object_get(cmd, "statements") != NULL;
	json_t *resp;
	int rc;

	driver_lock(cmd, &lock, &store);
	if (with)
		rc = tablelock_acquire_with(driver_tl, &lock, st, n, results, &lease,
		                            driver_timeout(cmd));
	else
		rc = tablelock_acquire(driver_tl, &lock, &lease, driver_timeout(cmd));
	buf_free(&store);
	if (rc != 0) {
		resp = driver_fail();
		json_object_set_new(resp, "results_null",
		                    json_boolean(n == 0 || results[0] == NULL));
	} else {
		resp = driver_ok();
		json_object_set_new(resp, "acquired", json_integer((json_int_t)lease));
		json_object_set_new(resp, "ttl", json_integer(tablelock_lease_ttl(driver_tl)));
		json_object_set_new(resp, "fence", json_integer((json_int_t)tablelock_fence(driver_tl)));
		if (with)
			json_object_set_new(resp, "results", driver_results(results, n));
	}
	free(results);
	driver_statements_free(st, n);
	return resp;
}

static json_t *
driver_query(const json_t *cmd)
{
	struct tablelock_result *r = NULL;
	struct tablelock_param *p;
	size_t n;
	json_t *resp;
	int rc;

	p = driver_params(json_object_get(cmd, "params"), &n);
	rc = tablelock_query(driver_tl, json_string_value(json_object_get(cmd, "sql")), p, n,
	                     json_is_true(json_object_get(cmd, "discard")) ? NULL : &r,
	                     driver_timeout(cmd));
	free(p);
	if (rc != 0)
		return driver_fail();
	resp = driver_ok();
	if (r != NULL)
		json_object_set_new(resp, "result", driver_result(r));
	tablelock_result_free(r);
	return resp;
}

/* With "statements", tablelock_commit_with(); else tablelock_commit(). */
static json_t *
driver_commit(const json_t *cmd)
{
	size_t n;
	struct tablelock_statement *st = driver_statements(cmd, &n);
	struct tablelock_result **results = xcalloc(n ? n : 1, sizeof(*results));
	bool with = json_object_get(cmd, "statements") != NULL;
	json_t *resp;
	int rc;

	if (with)
		rc = tablelock_commit_with(driver_tl, st, n, results, driver_timeout(cmd));
	else
		rc = tablelock_commit(driver_tl, driver_timeout(cmd));
	if (rc != 0) {
		resp = driver_fail();
		json_object_set_new(resp, "results_null",
		                    json_boolean(n == 0 || results[0] == NULL));
	} else {
		resp = driver_ok();
		if (with)
			json_object_set_new(resp, "results", driver_results(results, n));
	}
	free(results);
	driver_statements_free(st, n);
	return resp;
}

static json_t *
driver_rollback(const json_t *cmd)
{
	return tablelock_rollback(driver_tl, driver_timeout(cmd)) == 0 ? driver_ok()
	                                                               : driver_fail();
}

static json_t *
driver_renew(const json_t *cmd)
{
	json_t *ttl = json_object_get(cmd, "ttl"), *resp;

	if (tablelock_renew(driver_tl, json_is_integer(ttl) ? json_integer_value(ttl) : -1,
	                    driver_timeout(cmd)) != 0)
		return driver_fail();
	resp = driver_ok();
	json_object_set_new(resp, "ttl", json_integer(tablelock_lease_ttl(driver_tl)));
	return resp;
}

static json_t *
driver_transact(const json_t *cmd)
{
	size_t n;
	struct tablelock_statement *st = driver_statements(cmd, &n);
	struct tablelock_result **results = xcalloc(n ? n : 1, sizeof(*results));
	struct tablelock_lock lock;
	struct buf store = {0};
	uint64_t lease = 0;
	json_t *resp;
	int rc;

	driver_lock(cmd, &lock, &store);
	rc = tablelock_transact(driver_tl, &lock, st, n, results, &lease, driver_timeout(cmd));
	if (rc != 0) {
		resp = driver_fail();
		json_object_set_new(resp, "results_null",
		                    json_boolean(n == 0 || results[0] == NULL));
	} else {
		resp = driver_ok();
		json_object_set_new(resp, "transacted", json_integer((json_int_t)lease));
		json_object_set_new(resp, "fence", json_integer((json_int_t)tablelock_fence(driver_tl)));
		json_object_set_new(resp, "results", driver_results(results, n));
	}
	free(results);
	driver_statements_free(st, n);
	buf_free(&store);
	return resp;
}

/* Pipelining: {"cmd":"queue","op":"acquire"|"query"|"commit"|"rollback"|
 * "transact", …the fields of that command…}. Answers the pending count. */
static json_t *
driver_queue(const json_t *cmd)
{
	const char *op = json_string_value(json_object_get(cmd, "op"));
	struct tablelock_lock lock;
	struct buf store = {0};
	size_t n;
	struct tablelock_statement *st = driver_statements(cmd, &n);
	json_t *resp;
	int rc = -1;

	driver_lock(cmd, &lock, &store);
	if (op == NULL) {
		rc = -2;
	} else if (strcmp(op, "acquire") == 0) {
		rc = tablelock_queue_acquire(driver_tl, &lock, st, n);
	} else if (strcmp(op, "query") == 0) {
		size_t np;
		struct tablelock_param *p = driver_params(json_object_get(cmd, "params"), &np);
		rc = tablelock_queue_query(driver_tl,
		                           json_string_value(json_object_get(cmd, "sql")), p, np);
		free(p);
	} else if (strcmp(op, "commit") == 0) {
		rc = tablelock_queue_commit(driver_tl, st, n);
	} else if (strcmp(op, "rollback") == 0) {
		rc = tablelock_queue_rollback(driver_tl);
	} else if (strcmp(op, "transact") == 0) {
		rc = tablelock_queue_transact(driver_tl, &lock, st, n);
	} else {
		rc = -2;
	}
	/* The arguments are gone before the requests are written. */
	driver_statements_free(st, n);
	buf_free(&store);
	if (rc == -2)
		return json_pack("{s:b,s:s}", "ok", 0, "code", "driver_unknown_op");
	resp = rc == 0 ? driver_ok() : driver_fail();
	json_object_set_new(resp, "pending",
	                    json_integer((json_int_t)tablelock_pending(driver_tl)));
	return resp;
}

static json_t *
driver_flush(const json_t *cmd)
{
	json_t *resp =
	    tablelock_flush(driver_tl, driver_timeout(cmd)) == 0 ? driver_ok() : driver_fail();

	json_object_set_new(resp, "pending",
	                    json_integer((json_int_t)tablelock_pending(driver_tl)));
	return resp;
}

/* {"cmd":"receive","n":slots}: the oldest answer, its results and lease. */
static json_t *
driver_receive(const json_t *cmd)
{
	json_t *nv = json_object_get(cmd, "n");
	size_t n = json_is_integer(nv) ? (size_t)json_integer_value(nv) : 0;
	struct tablelock_result **results = xcalloc(n ? n : 1, sizeof(*results));
	uint64_t lease = 7; /* must be overwritten */
	json_t *resp;

	if (tablelock_receive(driver_tl, n ? results : NULL, n, &lease, driver_timeout(cmd)) != 0)
		resp = driver_fail();
	else
		resp = driver_ok();
	json_object_set_new(resp, "answer_lease", json_integer((json_int_t)lease));
	json_object_set_new(resp, "results", driver_results(results, n));
	json_object_set_new(resp, "pending",
	                    json_integer((json_int_t)tablelock_pending(driver_tl)));
	free(results);
	return resp;
}

static json_t *
driver_status(const json_t *cmd)
{
	struct tablelock_status *s;
	json_t *resp, *leases;

	if (tablelock_status(driver_tl, &s, driver_timeout(cmd)) != 0)
		return driver_fail();
	resp = driver_ok();
	leases = json_array();
	for (size_t i = 0; i < s->nleases; i++) {
		const struct tablelock_lease_status *l = &s->leases[i];
		json_t *o =
		    json_pack("{s:I,s:s?,s:i,s:i,s:s?,s:s,s:I,s:I,s:I,s:I,s:b}", "lease",
		              (json_int_t)l->lease, "client", l->client, "uid", (int)l->uid, "pid",
		              (int)l->pid, "address", l->address, "state", l->state, "age_ms",
		              (json_int_t)l->age_ms, "held_ms", (json_int_t)l->held_ms,
		              "expires_in_ms", (json_int_t)l->expires_in_ms, "mysql_thread",
		              (json_int_t)l->mysql_thread, "transact", l->transact);
		json_object_set_new(o, "fence", json_integer((json_int_t)l->fence));
		json_t *r = json_array(), *w = json_array();
		for (size_t k = 0; k < l->nread; k++)
			json_array_append_new(r, json_string(l->read[k]));
		for (size_t k = 0; k < l->nwrite; k++)
			json_array_append_new(w, json_string(l->write[k]));
		json_object_set_new(o, "read", r);
		json_object_set_new(o, "write", w);
		json_array_append_new(leases, o);
	}
	json_object_set_new(resp, "leases", leases);
	json_object_set_new(
	    resp, "pool",
	    json_pack("{s:I,s:I,s:I,s:I,s:I}", "size", (json_int_t)s->pool.size, "idle",
	              (json_int_t)s->pool.idle, "busy", (json_int_t)s->pool.busy, "connecting",
	              (json_int_t)s->pool.connecting, "broken", (json_int_t)s->pool.broken));
	json_object_set_new(
	    resp, "totals",
	    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "acquired",
	              (json_int_t)s->totals.acquired, "committed", (json_int_t)s->totals.committed,
	              "rolled_back", (json_int_t)s->totals.rolled_back, "expired",
	              (json_int_t)s->totals.expired, "released_on_disconnect",
	              (json_int_t)s->totals.released_on_disconnect, "lock_timeouts",
	              (json_int_t)s->totals.lock_timeouts, "revoked", (json_int_t)s->totals.revoked,
	              "lost", (json_int_t)s->totals.lost, "shutdown",
	              (json_int_t)s->totals.shutdown));
	json_object_set_new(resp, "clients", json_integer(s->clients));
	tablelock_status_free(s);
	return resp;
}

static json_t *
driver_revoke(const json_t *cmd)
{
	json_t *lease = json_object_get(cmd, "lease");

	return tablelock_revoke(driver_tl, (uint64_t)json_integer_value(lease),
	                        driver_timeout(cmd)) == 0
	           ? driver_ok()
	           : driver_fail();
}

static json_t *
driver_poll(const json_t *cmd)
{
	struct tablelock_event ev;
	json_t *resp;
	int rc = tablelock_poll(driver_tl, &ev, driver_timeout(cmd));

	if (rc < 0)
		return driver_fail();
	resp = driver_ok();
	if (rc == 0)
		json_object_set_new(resp, "event", json_null());
	else
		json_object_set_new(resp, "event",
		                    json_pack("{s:s,s:i,s:I,s:s}", "name", ev.name, "code",
		                              (int)ev.code, "lease", (json_int_t)ev.lease, "reason",
		                              ev.reason));
	return resp;
}

/* Waits until the daemon sent something (an event), without reading it:
 * what a caller's own poll loop does with tablelock_fd(). */
static json_t *
driver_wait_readable(const json_t *cmd)
{
	struct pollfd pfd = {.fd = tablelock_fd(driver_tl), .events = POLLIN};
	int n = poll(&pfd, 1, driver_timeout(cmd));

	return json_pack("{s:b,s:b}", "ok", 1, "readable", n > 0);
}

static json_t *
driver_last_response(const json_t *cmd)
{
	const char *raw = tablelock_last_response(driver_tl);

	(void)cmd;
	return json_pack("{s:b,s:s?}", "ok", 1, "raw", raw);
}

static json_t *
driver_sleep(const json_t *cmd)
{
	int64_t ms = json_integer_value(json_object_get(cmd, "ms"));
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
	return json_pack("{s:b}", "ok", 1);
}

static json_t *
driver_codes(const json_t *cmd)
{
	json_t *names = json_object();

	(void)cmd;
	for (int c = 0; c <= TABLELOCK_ERR_UNKNOWN; c++)
		if (c < 30 || c >= TABLELOCK_ERR_CONNECT)
			json_object_set_new(names, tablelock_code_name((enum tablelock_code)c),
			                    json_integer(c));
	return json_pack("{s:b,s:o,s:s}", "ok", 1, "codes", names, "version", tablelock_version());
}

static const struct {
	const char *name;
	driver_fn *fn;
	bool needs_handle;
} driver_commands[] = {
    {"connect", driver_connect, false},
    {"close", driver_close, false},
    {"ping", driver_ping, true},
    {"hello", driver_hello, true},
    {"acquire", driver_acquire, true},
    {"query", driver_query, true},
    {"commit", driver_commit, true},
    {"rollback", driver_rollback, true},
    {"renew", driver_renew, true},
    {"transact", driver_transact, true},
    {"queue", driver_queue, true},
    {"flush", driver_flush, true},
    {"receive", driver_receive, true},
    {"status", driver_status, true},
    {"revoke", driver_revoke, true},
    {"poll", driver_poll, true},
    {"wait_readable", driver_wait_readable, true},
    {"last_response", driver_last_response, true},
    {"sleep", driver_sleep, false},
    {"codes", driver_codes, false},
};

int
main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	while ((len = getline(&line, &cap, stdin)) > 0) {
		json_t *cmd = json_loadb(line, (size_t)len, 0, NULL), *resp = NULL;
		const char *name = json_string_value(json_object_get(cmd, "cmd"));
		char *out;

		for (size_t i = 0;
		     name != NULL && i < sizeof(driver_commands) / sizeof(driver_commands[0]);
		     i++) {
			if (strcmp(driver_commands[i].name, name) != 0)
				continue;
			if (driver_commands[i].needs_handle && driver_tl == NULL)
				resp = json_pack("{s:b,s:s}", "ok", 0, "code", "no_handle");
			else
				resp = driver_commands[i].fn(cmd);
		}
		if (resp == NULL)
			resp = json_pack("{s:b,s:s}", "ok", 0, "code", "driver_unknown_command");
		out = json_dumps(resp, JSON_COMPACT);
		printf("%s\n", out);
		fflush(stdout);
		free(out);
		json_decref(resp);
		json_decref(cmd);
	}
	free(line);
	tablelock_close(driver_tl);
	return 0;
}
