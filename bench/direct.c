/* Direct MariaDB access for the baselines: connect and run one statement. */
#include "direct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int direct_fail(MYSQL *mysql, const char *what, char *err, size_t errlen);

static int
direct_fail(MYSQL *mysql, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: (%u) %s", what, mysql_errno(mysql), mysql_error(mysql));
	return -1;
}

MYSQL *
direct_connect(const struct bench_options *opt, char *err, size_t errlen)
{
	return direct_connect_flags(opt, 0, err, errlen);
}

MYSQL *
direct_connect_flags(const struct bench_options *opt, unsigned long flags, char *err, size_t errlen)
{
	MYSQL *mysql = mysql_init(NULL);
	if (mysql == NULL) {
		snprintf(err, errlen, "mysql_init: out of memory");
		return NULL;
	}
	my_bool off = 0;
	unsigned int timeout = 30;
	mysql_options(mysql, MYSQL_OPT_RECONNECT, &off);
	mysql_options(mysql, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_options(mysql, MYSQL_OPT_READ_TIMEOUT, &timeout);
	mysql_options(mysql, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
	if (mysql_real_connect(mysql, NULL, opt->user, opt->password, opt->database, 0,
	                       opt->mysql_socket, flags) == NULL) {
		direct_fail(mysql, "connect", err, errlen);
		mysql_close(mysql);
		return NULL;
	}
	return mysql;
}

int
direct_exec(MYSQL *mysql, const char *sql, char *err, size_t errlen)
{
	if (mysql_real_query(mysql, sql, (unsigned long)strlen(sql)) != 0)
		return direct_fail(mysql, sql, err, errlen);
	if (mysql_field_count(mysql) > 0) {
		MYSQL_RES *res = mysql_store_result(mysql);
		if (res == NULL)
			return direct_fail(mysql, sql, err, errlen);
		mysql_free_result(res);
	}
	return 0;
}

int
direct_send(MYSQL *mysql, const char *sql, char *err, size_t errlen)
{
	if (mysql_send_query(mysql, sql, (unsigned long)strlen(sql)) != 0)
		return direct_fail(mysql, sql, err, errlen);
	return 0;
}

int
direct_finish(MYSQL *mysql, char *err, size_t errlen)
{
	if (mysql_read_query_result(mysql) != 0)
		return direct_fail(mysql, "read result", err, errlen);
	if (mysql_field_count(mysql) > 0) {
		MYSQL_RES *res = mysql_store_result(mysql);
		if (res != NULL)
			mysql_free_result(res);
	}
	return 0;
}

int
direct_exec_multi(MYSQL *mysql, const char *sql, char *err, size_t errlen)
{
	if (mysql_real_query(mysql, sql, (unsigned long)strlen(sql)) != 0)
		return direct_fail(mysql, sql, err, errlen);
	for (;;) {
		if (mysql_field_count(mysql) > 0) {
			MYSQL_RES *res = mysql_store_result(mysql);
			if (res == NULL)
				return direct_fail(mysql, sql, err, errlen);
			mysql_free_result(res);
		}
		int more = mysql_next_result(mysql);
		if (more < 0)
			return 0;
		if (more > 0)
			return direct_fail(mysql, sql, err, errlen);
	}
}

int
direct_query_int(MYSQL *mysql, const char *sql, long long *value, char *err, size_t errlen)
{
	if (mysql_real_query(mysql, sql, (unsigned long)strlen(sql)) != 0)
		return direct_fail(mysql, sql, err, errlen);
	MYSQL_RES *res = mysql_store_result(mysql);
	if (res == NULL)
		return direct_fail(mysql, sql, err, errlen);
	MYSQL_ROW row = mysql_fetch_row(res);
	int rc = 0;
	if (row == NULL || row[0] == NULL) {
		snprintf(err, errlen, "%s: no value", sql);
		rc = -1;
	} else {
		*value = strtoll(row[0], NULL, 10);
	}
	mysql_free_result(res);
	return rc;
}
