/* Direct MariaDB access for the baselines: connect and run one statement. */
#ifndef TABLELOCK_BENCH_DIRECT_H
#define TABLELOCK_BENCH_DIRECT_H

#include <mysql.h>
#include <stddef.h>

#include "bench.h"

/* A blocking connection over opt->mysql_socket, or NULL with the reason in
 * err. Auto-reconnect stays off: a reconnected session has lost its locks. */
MYSQL *direct_connect(const struct bench_options *opt, char *err, size_t errlen);
/* The same with client flags, e.g. CLIENT_MULTI_STATEMENTS. */
MYSQL *direct_connect_flags(const struct bench_options *opt, unsigned long flags, char *err,
                            size_t errlen);

/* Runs one statement and discards any result. 0, or -1 with the server's
 * message in err. */
int direct_exec(MYSQL *mysql, const char *sql, char *err, size_t errlen);

/* Runs several statements separated by ';' in one round trip (the
 * connection needs CLIENT_MULTI_STATEMENTS) and reads every result. 0, or
 * -1 with the first failing statement's message in err. */
int direct_exec_multi(MYSQL *mysql, const char *sql, char *err, size_t errlen);

/* Runs a query whose first row's first column is an integer and stores it
 * in *value. 0, or -1 (no row, NULL, or an error) with the reason in err. */
int direct_query_int(MYSQL *mysql, const char *sql, long long *value, char *err, size_t errlen);

/* Sends a statement without waiting for its result (mysql_send_query);
 * direct_finish then waits for it. Both 0 or -1. */
int direct_send(MYSQL *mysql, const char *sql, char *err, size_t errlen);
int direct_finish(MYSQL *mysql, char *err, size_t errlen);

#endif
