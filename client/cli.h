/* The tablelock command-line tool: what its subcommand files share. */
#ifndef TABLELOCK_CLI_H
#define TABLELOCK_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "client/tablelock.h"

/* Exit statuses, the same for every subcommand (listed in --help). */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILED = 1,      /* the daemon refused or the statement failed */
	CLI_EXIT_USAGE = 2,       /* bad command line */
	CLI_EXIT_UNREACHABLE = 3, /* no daemon, or the connection broke or timed out */
	CLI_EXIT_UNKNOWN = 4      /* commit outcome unknown */
};

/* Options every subcommand takes. */
struct cli_options {
	const char *address; /* -s, TABLELOCK_SOCKET, or the default */
	int timeout_ms;      /* -t: longest wait for the daemon's answer */
};

extern struct cli_options cli_options;

/* -s, else TABLELOCK_SOCKET, else the default socket. */
const char *cli_address(void);
/* -t, or the default for calls that do not wait for tables. */
int cli_timeout(void);
/* For calls that wait for tables and run statements: -t plus wait_ms
 * (-1: the daemon's default), or no limit without -t. */
int cli_lock_timeout(int64_t wait_ms);

/* Long options every subcommand accepts, merged into its own table; and
 * their handling: returns true when opt was one of them. */
#define CLI_COMMON_SHORT "s:t:h"
bool cli_common_option(int opt, const char *arg, const char *command);

/* Connects and says hello as client; on failure prints why (with what to
 * do), sets *status to the exit status it deserves and returns NULL. */
struct tablelock *cli_connect(const char *client, int *status);
/* Prints err the way a person can act on it ("tablelock: …" and a hint)
 * and returns the exit status it deserves. context prefixes the message. */
int cli_report(const struct tablelock_error *err, const char *context);
/* Prints "tablelock: " and the message; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A list of tables from --read/--write, with "name AS alias" split. */
struct cli_tables {
	struct tablelock_table *tables;
	size_t n;
	char **owned; /* strings to free */
	size_t nowned;
};
void cli_tables_add(struct cli_tables *t, const char *spec, bool write);
void cli_tables_free(struct cli_tables *t);
/* "WRITE app.t1, READ app.t2" into out. */
void cli_tables_describe(const struct cli_tables *t, char *out, size_t size);

/* Parses milliseconds ("5000", or "5s", "2m", "250ms"); -1 if malformed. */
int64_t cli_parse_ms(const char *s);

/* cli_print.c: results for people (aligned table) or programs (JSON). */
void cli_print_result(FILE *out, const struct tablelock_result *r);
/* One JSON line for result index (from the raw response of tl's last call:
 * the response itself for query, "results"[index] for transact). */
void cli_print_result_json(FILE *out, const struct tablelock *tl, long index);
/* "850ms", "12.3s", "4m05s", "2h03m" (or "-" when ms < 0). */
void cli_format_duration(char *out, size_t size, int64_t ms);

/* The subcommands: argc/argv start at the subcommand's name. */
int cli_status_main(int argc, char **argv);
int cli_exec_main(int argc, char **argv);
int cli_shell_main(int argc, char **argv);

#endif
