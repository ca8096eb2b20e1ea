/* The tablelock command-line tool: commands, shared options, error advice. */
#include "client/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "util/monotime.h"
#include "util/xmalloc.h"

#define CLI_DEFAULT_TIMEOUT_MS 10000

struct cli_options cli_options = {NULL, -1};

static int cli_ping_main(int argc, char **argv);
static int cli_version_main(int argc, char **argv);
static int cli_revoke_main(int argc, char **argv);
static int cli_help_main(int argc, char **argv);
static void cli_print_usage(FILE *out);
static const struct cli_command *cli_find(const char *name);
static int cli_simple_options(int argc, char **argv, const char *command);

static const char cli_usage[] =
    "usage: tablelock [-s SOCKET] [-t MS] COMMAND [ARGS]\n"
    "\n"
    "Leases on real MariaDB table locks, from tablelockd.\n"
    "\n"
    "Commands:\n"
    "%s"
    "\n"
    "Options (any command, before or after it):\n"
    "  -s, --socket ADDR  the daemon: unix:/path, /path or tcp:HOST:PORT (default:\n"
    "                     $TABLELOCK_SOCKET, else " TABLELOCK_DEFAULT_SOCKET ")\n"
    "  -t, --timeout MS   longest wait for an answer (default 10000; exec and shell\n"
    "                     statements: no limit, and the wait for tables comes on top)\n"
    "  -h, --help         help (also: tablelock COMMAND --help)\n"
    "\n"
    "Exit status: 0 done; 1 refused or failed (nothing committed); 2 bad usage;\n"
    "3 daemon unreachable or connection lost; 4 commit outcome unknown.\n";

static const char cli_ping_usage[] =
    "usage: tablelock ping [-s SOCKET] [-t MS]\n"
    "\n"
    "Checks that tablelockd answers, and prints its version and the round trip.\n";

static const char cli_version_usage[] =
    "usage: tablelock version [-s SOCKET] [-t MS]\n"
    "\n"
    "Prints this tool's version, and the daemon's when it answers.\n";

static const char cli_revoke_usage[] =
    "usage: tablelock revoke [-s SOCKET] [-t MS] LEASE\n"
    "\n"
    "Ends another client's lease: the daemon rolls its transaction back, unlocks\n"
    "its tables and tells the holder (event lease_revoked). Needs the admin right\n"
    "(without access rules: root or the daemon's own user). Find LEASE with\n"
    "`tablelock status`.\n";

extern const char cli_status_usage[], cli_exec_usage[], cli_shell_usage[];

static const struct cli_command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *usage;
	const char *summary;
} cli_commands[] = {
    {"status", cli_status_main, cli_status_usage,
     "every lease (held, then waiting in queue order), the pool, totals"},
    {"exec", cli_exec_main, cli_exec_usage, "run statements under one lease and commit them"},
    {"shell", cli_shell_main, cli_shell_usage,
     "hold a lease and run SQL typed or piped in, until commit or rollback"},
    {"ping", cli_ping_main, cli_ping_usage, "check that the daemon answers"},
    {"version", cli_version_main, cli_version_usage, "print this tool's and the daemon's versions"},
    {"revoke", cli_revoke_main, cli_revoke_usage, "end another client's lease (admin only)"},
    {"help", cli_help_main, NULL, "help on a command (or: tablelock COMMAND --help)"},
};

#define CLI_NCOMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))

static const struct option cli_global_long[] = {
    {"socket", required_argument, NULL, 's'},
    {"timeout", required_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void
cli_print_usage(FILE *out)
{
	struct buf list = {0};

	for (size_t i = 0; i < CLI_NCOMMANDS; i++)
		buf_appendf(&list, "  %-8s  %s\n", cli_commands[i].name, cli_commands[i].summary);
	fprintf(out, cli_usage, list.data);
	buf_free(&list);
}

static const struct cli_command *
cli_find(const char *name)
{
	for (size_t i = 0; i < CLI_NCOMMANDS; i++)
		if (strcmp(cli_commands[i].name, name) == 0)
			return &cli_commands[i];
	return NULL;
}

int
main(int argc, char **argv)
{
	const struct cli_command *cmd;
	int opt;

	/* '+': stop at the command; its own options are parsed by it. */
	while ((opt = getopt_long(argc, argv, "+" CLI_COMMON_SHORT "V", cli_global_long, NULL)) !=
	       -1) {
		if (opt == 'V')
			return cli_version_main(1, (char *[]){"version", NULL});
		if (opt == 'h') {
			cli_print_usage(stdout);
			return CLI_EXIT_OK;
		}
		if (!cli_common_option(opt, optarg, NULL)) {
			cli_print_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cli_print_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	cmd = cli_find(argv[optind]);
	if (cmd == NULL)
		return cli_usage_error(NULL,
		                       "unknown command \"%s\" (commands: status, exec, "
		                       "shell, ping, version, revoke; see tablelock --help)",
		                       argv[optind]);
	argc -= optind;
	argv += optind;
	optind = 0; /* GNU getopt: start over for the command's options */
	return cmd->main(argc, argv);
}

/* ---------------------------------------------------------------- options */

bool
cli_common_option(int opt, const char *arg, const char *command)
{
	const struct cli_command *cmd;
	int64_t ms;

	switch (opt) {
	case 's':
		cli_options.address = arg;
		return true;
	case 't':
		ms = cli_parse_ms(arg);
		if (ms < 0 || ms > 86400000) {
			cli_usage_error(
			    command, "--timeout %s: expected milliseconds (e.g. 5000 or 5s)", arg);
			exit(CLI_EXIT_USAGE);
		}
		cli_options.timeout_ms = (int)ms;
		return true;
	case 'h':
		cmd = command != NULL ? cli_find(command) : NULL;
		if (cmd != NULL && cmd->usage != NULL)
			fputs(cmd->usage, stdout);
		else
			cli_print_usage(stdout);
		exit(CLI_EXIT_OK);
	default:
		return false;
	}
}

int
cli_timeout(void)
{
	return cli_options.timeout_ms >= 0 ? cli_options.timeout_ms : CLI_DEFAULT_TIMEOUT_MS;
}

int
cli_lock_timeout(int64_t wait_ms)
{
	int64_t t;

	if (cli_options.timeout_ms < 0)
		return TABLELOCK_FOREVER; /* statements: Ctrl-C, or the daemon's timeout_ms */
	/* The daemon's default wait is not known here: allow up to 10 min. */
	t = (int64_t)cli_options.timeout_ms + (wait_ms >= 0 ? wait_ms : 600000);
	return t > 1000000000 ? 1000000000 : (int)t;
}

/* Options of commands that take only the common ones. Returns -1 to go
 * on, else an exit status. */
static int
cli_simple_options(int argc, char **argv, const char *command)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
		if (!cli_common_option(opt, optarg, command)) {
			const struct cli_command *cmd = cli_find(command);
			if (cmd != NULL && cmd->usage != NULL)
				fputs(cmd->usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	return -1;
}

int
cli_usage_error(const char *command, const char *fmt, ...)
{
	va_list ap;

	fputs("tablelock: ", stderr);
	if (command != NULL)
		fprintf(stderr, "%s: ", command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (command != NULL)
		fprintf(stderr, "  (see: tablelock %s --help)\n", command);
	return CLI_EXIT_USAGE;
}

int64_t
cli_parse_ms(const char *s)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0 || v > 1e12)
		return -1;
	if (*end == '\0' || strcmp(end, "ms") == 0)
		;
	else if (strcmp(end, "s") == 0)
		v *= 1000;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		v *= 60000;
	else if (strcmp(end, "h") == 0)
		v *= 3600000;
	else
		return -1;
	return (int64_t)(v + 0.5);
}

/* ---------------------------------------------------------------- errors */

const char *
cli_address(void)
{
	const char *address = cli_options.address;

	if (address == NULL || *address == '\0')
		address = getenv("TABLELOCK_SOCKET");
	if (address == NULL || *address == '\0')
		address = TABLELOCK_DEFAULT_SOCKET;
	return address;
}

struct tablelock *
cli_connect(const char *client, int *status)
{
	struct tablelock_error err;
	struct tablelock *tl;

	tl = tablelock_connect(cli_address(), cli_timeout(), &err);
	if (tl == NULL) {
		*status = cli_report(&err, NULL);
		return NULL;
	}
	/* A token authenticates TCP connections (the daemon's access rules). */
	if (tablelock_hello(tl, client, getenv("TABLELOCK_TOKEN"), cli_timeout()) != 0) {
		*status = cli_report(tablelock_last_error(tl), NULL);
		tablelock_close(tl);
		return NULL;
	}
	return tl;
}

int
cli_report(const struct tablelock_error *err, const char *context)
{
	const char *hint = NULL;
	int status = CLI_EXIT_FAILED;

	fputs("tablelock: ", stderr);
	if (context != NULL)
		fprintf(stderr, "%s: ", context);
	fputs(err->message, stderr);
	if (err->mysql_errno != 0)
		fprintf(stderr, " (MySQL error %u, SQLSTATE %s)", err->mysql_errno,
		        err->sqlstate[0] != '\0' ? err->sqlstate : "?");
	else if (err->code != TABLELOCK_ERR_CONNECT && err->code != TABLELOCK_ERR_TIMEOUT &&
	         err->code != TABLELOCK_ERR_CLOSED && err->code != TABLELOCK_ERR_PROTOCOL)
		fprintf(stderr, " [%s]", err->code_name);
	fputc('\n', stderr);

	switch (err->code) {
	case TABLELOCK_ERR_CONNECT:
		status = CLI_EXIT_UNREACHABLE;
		if (err->sys_errno == EACCES || err->sys_errno == EPERM)
			hint =
			    "this user may not use the daemon's socket: join the group that owns "
			    "it (the daemon's socket_mode), or run as root";
		else
			hint = "is tablelockd running? Start it, or give its socket with -s PATH "
			       "or TABLELOCK_SOCKET";
		break;
	case TABLELOCK_ERR_TIMEOUT:
		status = CLI_EXIT_UNREACHABLE;
		hint = "the daemon did not answer in time: wait longer with -t MS, or check it "
		       "with `tablelock ping`";
		break;
	case TABLELOCK_ERR_CLOSED:
		status = CLI_EXIT_UNREACHABLE;
		hint = "the daemon may have stopped or restarted; see its log";
		break;
	case TABLELOCK_ERR_PROTOCOL:
		/* Mostly a wrong address: the library names what answered. */
		status = CLI_EXIT_UNREACHABLE;
		hint = "give the socket tablelockd listens on, its `listen` setting, with -s PATH "
		       "or TABLELOCK_SOCKET";
		break;
	case TABLELOCK_ERR_USAGE:
		status = CLI_EXIT_USAGE;
		break;
	case TABLELOCK_ERR_COMMIT_UNKNOWN:
		status = CLI_EXIT_UNKNOWN;
		hint = "whether the transaction committed is unknown: check the data before "
		       "running it again";
		break;
	case TABLELOCK_ERR_LOCK_TIMEOUT:
		hint = "the tables stayed locked: see who holds them with `tablelock status`, or "
		       "wait longer with --wait MS";
		break;
	case TABLELOCK_ERR_FORBIDDEN:
		hint = "this needs the admin right: run it as root or as the daemon's user";
		break;
	case TABLELOCK_ERR_UNAUTHENTICATED:
		hint = "set TABLELOCK_TOKEN to the token the daemon's access rules expect";
		break;
	case TABLELOCK_ERR_UNAVAILABLE:
		hint = "the daemon cannot reach MySQL: check the MySQL server and the daemon's log";
		break;
	case TABLELOCK_ERR_TOO_MANY_WAITERS:
	case TABLELOCK_ERR_TOO_MANY_CLIENTS:
		hint = "the daemon is at its limit: try again shortly";
		break;
	case TABLELOCK_ERR_LEASE_EXPIRED:
		hint = "ask for a longer lease with --ttl MS";
		break;
	case TABLELOCK_ERR_STATEMENT_NOT_ALLOWED:
		hint = "statements that end or change the lock or the transaction are refused: "
		       "type commit or rollback instead";
		break;
	default:
		break;
	}
	if (hint != NULL)
		fprintf(stderr, "  (%s)\n", hint);
	return status;
}

/* ---------------------------------------------------------------- tables */

void
cli_tables_add(struct cli_tables *t, const char *spec, bool write)
{
	struct tablelock_table *e;
	const char *as = NULL;
	char *name;

	/* "name AS alias" (any case): the last " as " splits. */
	for (const char *p = spec; (p = strchr(p, ' ')) != NULL; p++)
		if (strncasecmp(p, " as ", 4) == 0)
			as = p;
	t->tables = xrealloc(t->tables, (t->n + 1) * sizeof(*t->tables));
	t->owned = xrealloc(t->owned, (t->nowned + 2) * sizeof(*t->owned));
	e = &t->tables[t->n++];
	memset(e, 0, sizeof(*e));
	e->write = write;
	if (as == NULL) {
		e->name = spec;
		return;
	}
	name = xstrndup(spec, (size_t)(as - spec));
	while (name[0] != '\0' && name[strlen(name) - 1] == ' ')
		name[strlen(name) - 1] = '\0';
	as += 4;
	while (*as == ' ')
		as++;
	t->owned[t->nowned++] = name;
	e->name = name;
	e->alias = as;
}

void
cli_tables_free(struct cli_tables *t)
{
	for (size_t i = 0; i < t->nowned; i++)
		free(t->owned[i]);
	free(t->owned);
	free(t->tables);
	memset(t, 0, sizeof(*t));
}

void
cli_tables_describe(const struct cli_tables *t, char *out, size_t size)
{
	struct buf b = {0};

	/* "WRITE t1, t2; READ t3" */
	for (int pass = 0; pass < 2; pass++) {
		bool write = pass == 0;
		size_t count = 0;
		for (size_t i = 0; i < t->n; i++) {
			if (t->tables[i].write != write)
				continue;
			if (count++ == 0)
				buf_appendf(&b, "%s%s ", b.len > 0 ? "; " : "",
				            write ? "WRITE" : "READ");
			else
				buf_append_str(&b, ", ");
			buf_append_str(&b, t->tables[i].name);
			if (t->tables[i].alias != NULL)
				buf_appendf(&b, " AS %s", t->tables[i].alias);
		}
	}
	snprintf(out, size, "%s", b.data != NULL ? b.data : "");
	buf_free(&b);
}

/* ---------------------------------------------------------------- small commands */

static int
cli_ping_main(int argc, char **argv)
{
	struct tablelock *tl;
	int64_t start;
	int rc;

	if ((rc = cli_simple_options(argc, argv, "ping")) >= 0)
		return rc;
	if (optind < argc)
		return cli_usage_error("ping", "unexpected argument \"%s\"", argv[optind]);
	if ((tl = cli_connect("tablelock ping", &rc)) == NULL)
		return rc;
	start = monotime_ns();
	if (tablelock_ping(tl, cli_timeout()) != 0) {
		rc = cli_report(tablelock_last_error(tl), "ping");
		tablelock_close(tl);
		return rc;
	}
	double ms = (double)(monotime_ns() - start) / 1e6;
	printf("tablelockd %s at %s: ping %.2f ms\n",
	       tablelock_server_version(tl) != NULL ? tablelock_server_version(tl) : "?",
	       tablelock_address(tl), ms);
	tablelock_close(tl);
	return CLI_EXIT_OK;
}

static int
cli_version_main(int argc, char **argv)
{
	struct tablelock_error err;
	struct tablelock *tl;
	int rc;

	if ((rc = cli_simple_options(argc, argv, "version")) >= 0)
		return rc;
	if (optind < argc)
		return cli_usage_error("version", "unexpected argument \"%s\"", argv[optind]);
	printf("tablelock %s (libtablelock %s, protocol %d)\n", TABLELOCK_VERSION,
	       tablelock_version(), TABLELOCK_PROTOCOL);

	/* The daemon's version is a bonus: a daemon that is down is no error. */
	tl = tablelock_connect(cli_address(), cli_options.timeout_ms >= 0 ? cli_timeout() : 2000,
	                       &err);
	if (tl == NULL) {
		fprintf(stderr, "tablelock: no daemon version: %s\n", err.message);
		return CLI_EXIT_OK;
	}
	if (tablelock_hello(tl, "tablelock version", getenv("TABLELOCK_TOKEN"), 2000) == 0)
		printf("tablelockd %s at %s\n",
		       tablelock_server_version(tl) != NULL ? tablelock_server_version(tl) : "?",
		       tablelock_address(tl));
	else
		fprintf(stderr, "tablelock: no daemon version: %s\n",
		        tablelock_last_error(tl)->message);
	tablelock_close(tl);
	return CLI_EXIT_OK;
}

static int
cli_revoke_main(int argc, char **argv)
{
	struct tablelock *tl;
	unsigned long long lease;
	char *end;
	int rc;

	if ((rc = cli_simple_options(argc, argv, "revoke")) >= 0)
		return rc;
	if (optind != argc - 1)
		return cli_usage_error("revoke", "expected one LEASE id");
	errno = 0;
	lease = strtoull(argv[optind], &end, 10);
	if (errno != 0 || *end != '\0' || lease == 0 || argv[optind][0] == '-' ||
	    lease > (unsigned long long)INT64_MAX)
		return cli_usage_error("revoke",
		                       "LEASE must be a lease id (a positive integer), "
		                       "not \"%s\"",
		                       argv[optind]);
	if ((tl = cli_connect("tablelock revoke", &rc)) == NULL)
		return rc;
	if (tablelock_revoke(tl, lease, cli_timeout()) != 0) {
		const struct tablelock_error *err = tablelock_last_error(tl);
		rc = cli_report(err, "revoke");
		if (err->code == TABLELOCK_ERR_NO_LEASE)
			fputs("  (see the live leases with `tablelock status`)\n", stderr);
		tablelock_close(tl);
		return rc;
	}
	printf("lease %llu revoked: rolled back and unlocked; its holder gets lease_revoked\n",
	       lease);
	tablelock_close(tl);
	return CLI_EXIT_OK;
}

static int
cli_help_main(int argc, char **argv)
{
	const struct cli_command *cmd;

	if (argc < 2) {
		cli_print_usage(stdout);
		return CLI_EXIT_OK;
	}
	cmd = cli_find(argv[1]);
	if (cmd == NULL || cmd->usage == NULL) {
		cli_print_usage(cmd == NULL ? stderr : stdout);
		return cmd == NULL ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	fputs(cmd->usage, stdout);
	return CLI_EXIT_OK;
}
