/* Observers: how many lock requests are waiting, as the daemon's status and
 * MariaDB's process list report it. Used to start a measurement only once
 * the waiters are really queued. */
#include "observer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "util/monotime.h"

long
observer_daemon_waiting(struct lineclient *c)
{
	static const char request[] = "{\"op\":\"status\"}\n";
	char *line = NULL;

	if (lineclient_call(c, request, sizeof(request) - 1, &line) != LINE_OK)
		return -1;
	json_t *status = json_loads(line, 0, NULL);
	if (status == NULL)
		return -1;
	long waiting = 0;
	json_t *total = json_object_get(status, "waiting");
	if (json_is_integer(total)) {
		waiting = (long)json_integer_value(total);
	} else {
		size_t i;
		json_t *lease;
		json_array_foreach(json_object_get(status, "leases"), i, lease)
		{
			const char *state = json_string_value(json_object_get(lease, "state"));
			waiting += state != NULL && strcmp(state, "waiting") == 0;
		}
	}
	json_decref(status);
	return waiting;
}

long
observer_mysql_waiting(MYSQL *mysql)
{
	/* LOCK TABLES … WRITE on InnoDB waits for the table's metadata lock
	 * ("Waiting for table metadata lock"); MyISAM-style table locks show
	 * "Waiting for table level lock". */
	static const char sql[] = "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
	                          " WHERE STATE LIKE 'Waiting for table%'";
	if (mysql_real_query(mysql, sql, sizeof(sql) - 1) != 0)
		return -1;
	MYSQL_RES *res = mysql_store_result(mysql);
	if (res == NULL)
		return -1;
	MYSQL_ROW row = mysql_fetch_row(res);
	long n = row != NULL && row[0] != NULL ? strtol(row[0], NULL, 10) : -1;
	mysql_free_result(res);
	return n;
}

long
observer_wait_for(long (*count)(void *), void *arg, long want, int64_t timeout_ns)
{
	int64_t deadline = monotime_ns() + timeout_ns;
	for (;;) {
		long n = count(arg);
		if (n < 0 || n >= want || monotime_ns() > deadline)
			return n;
		bench_sleep_ns(2000000);
	}
}
