/* tablelock exec: statements under one lease, committed together (transact). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "util/xmalloc.h"

const char cli_exec_usage[] =
    "usage: tablelock exec [-s SOCKET] [-t MS] (--write TABLE | --read TABLE)...\n"
    "                      (-e SQL [--param VALUE]...)... [--wait MS] [--ttl MS] [--json]\n"
    "\n"
    "Runs the statements in order under one lease on the tables and commits them\n"
    "together (one transact request): all or nothing. Prints each result: rows as\n"
    "an aligned table, else \"OK, N rows affected\".\n"
    "\n"
    "  -w, --write TABLE   lock TABLE for writing (repeatable): \"t\", \"db.t\" or\n"
    "                      \"t AS alias\" (lock an alias to use it, e.g. self-joins)\n"
    "  -r, --read TABLE    lock TABLE for reading (repeatable)\n"
    "  -e, --execute SQL   a statement (repeatable, run in order); its ? take the\n"
    "                      values given after it, in order:\n"
    "  -p, --param VALUE   an integer when VALUE is one (42, -7), else a string\n"
    "      --string VALUE  a string, always (\"007\")\n"
    "      --null          NULL\n"
    "      --wait MS       longest wait for the tables (default: the daemon's;\n"
    "                      0 tries once)\n"
    "      --ttl MS        lease lifetime (default: the daemon's)\n"
    "      --json          one JSON line per statement result instead of tables\n"
    "\n"
    "Values are bound by the daemon, never spliced into the SQL text. Times are\n"
    "milliseconds, or with a unit: 500ms, 5s, 2m.\n"
    "\n"
    "Exit status: 0 committed. Otherwise nothing was committed and the error is\n"
    "on stderr: 1 refused or failed, 2 bad usage, 3 daemon unreachable; except 4:\n"
    "the connection died during COMMIT, and whether it committed is unknown.\n"
    "\n"
    "Example:\n"
    "  tablelock exec --write accounts \\\n"
    "      -e \"UPDATE accounts SET balance = balance - ? WHERE id = ?\" -p 10 -p 7\n";

enum {
	EXEC_OPT_STRING = 256,
	EXEC_OPT_NULL,
	EXEC_OPT_WAIT,
	EXEC_OPT_TTL,
	EXEC_OPT_JSON,
};

/* Statements with their parameters, as the command line gives them. */
struct exec_plan {
	struct tablelock_statement *statements;
	size_t nstatements;
	struct tablelock_param **params; /* params[i] for statements[i] */
};

static void exec_add_statement(struct exec_plan *p, const char *sql);
static int exec_add_param(struct exec_plan *p, struct tablelock_param v, const char *arg);
static struct tablelock_param exec_param_value(const char *arg);
static void exec_plan_free(struct exec_plan *p);
static void exec_excerpt(char *out, size_t size, const char *sql);

static void
exec_add_statement(struct exec_plan *p, const char *sql)
{
	p->statements = xrealloc(p->statements, (p->nstatements + 1) * sizeof(*p->statements));
	p->params = xrealloc(p->params, (p->nstatements + 1) * sizeof(*p->params));
	p->statements[p->nstatements] = (struct tablelock_statement){sql, NULL, 0};
	p->params[p->nstatements] = NULL;
	p->nstatements++;
}

static int
exec_add_param(struct exec_plan *p, struct tablelock_param v, const char *arg)
{
	struct tablelock_statement *st;
	size_t i;

	if (p->nstatements == 0)
		return cli_usage_error("exec",
		                       "a value (%s) before any -e SQL: give the "
		                       "statement first",
		                       arg);
	i = p->nstatements - 1;
	st = &p->statements[i];
	p->params[i] = xrealloc(p->params[i], (st->nparams + 1) * sizeof(*p->params[i]));
	p->params[i][st->nparams++] = v;
	st->params = p->params[i];
	return -1;
}

/* An integer when the text is exactly one (no sign games, no leading
 * zeros, fits int64): "42" binds as 42, "007" and "4e2" stay strings. */
static struct tablelock_param
exec_param_value(const char *arg)
{
	const char *digits = arg[0] == '-' ? arg + 1 : arg;
	char *end;
	long long v;

	if (digits[0] >= '1' && digits[0] <= '9' &&
	    strspn(digits, "0123456789") == strlen(digits)) {
		errno = 0;
		v = strtoll(arg, &end, 10);
		if (errno == 0 && *end == '\0')
			return tablelock_int(v);
	}
	if (strcmp(arg, "0") == 0)
		return tablelock_int(0);
	return tablelock_str(arg);
}

static void
exec_plan_free(struct exec_plan *p)
{
	for (size_t i = 0; i < p->nstatements; i++)
		free(p->params[i]);
	free(p->params);
	free(p->statements);
}

/* The statement's start, on one line, for error messages. */
static void
exec_excerpt(char *out, size_t size, const char *sql)
{
	size_t n = 0, keep = size > 4 ? size - 4 : 0;
	const char *s;

	for (s = sql; *s != '\0' && n < keep; s++)
		out[n++] = (*s == '\n' || *s == '\t' || *s == '\r') ? ' ' : *s;
	if (*s != '\0' && n >= 3)
		memcpy(out + n - 3, "...", 3);
	out[n] = '\0';
}

int
cli_exec_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {"write", required_argument, NULL, 'w'},
	    {"read", required_argument, NULL, 'r'},
	    {"execute", required_argument, NULL, 'e'},
	    {"param", required_argument, NULL, 'p'},
	    {"string", required_argument, NULL, EXEC_OPT_STRING},
	    {"null", no_argument, NULL, EXEC_OPT_NULL},
	    {"wait", required_argument, NULL, EXEC_OPT_WAIT},
	    {"ttl", required_argument, NULL, EXEC_OPT_TTL},
	    {"json", no_argument, NULL, EXEC_OPT_JSON},
	    {NULL, 0, NULL, 0},
	};
	struct cli_tables tables = {0};
	struct exec_plan plan = {0};
	struct tablelock_lock lock = {NULL, 0, TABLELOCK_DEFAULT, TABLELOCK_DEFAULT};
	struct tablelock_result **results = NULL;
	struct tablelock *tl = NULL;
	bool json = false;
	uint64_t lease = 0;
	int opt, rc = -1;

	while (rc < 0 &&
	       (opt = getopt_long(argc, argv, CLI_COMMON_SHORT "w:r:e:p:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'w':
		case 'r':
			cli_tables_add(&tables, optarg, opt == 'w');
			break;
		case 'e':
			exec_add_statement(&plan, optarg);
			break;
		case 'p':
			rc = exec_add_param(&plan, exec_param_value(optarg), optarg);
			break;
		case EXEC_OPT_STRING:
			rc = exec_add_param(&plan, tablelock_str(optarg), optarg);
			break;
		case EXEC_OPT_NULL:
			rc = exec_add_param(&plan, tablelock_null(), "--null");
			break;
		case EXEC_OPT_WAIT:
		case EXEC_OPT_TTL:
			if (cli_parse_ms(optarg) < 0) {
				rc = cli_usage_error("exec",
				                     "--%s %s: expected milliseconds (or 5s, 2m)",
				                     opt == EXEC_OPT_WAIT ? "wait" : "ttl", optarg);
				break;
			}
			if (opt == EXEC_OPT_WAIT)
				lock.wait_ms = cli_parse_ms(optarg);
			else
				lock.ttl_ms = cli_parse_ms(optarg);
			break;
		case EXEC_OPT_JSON:
			json = true;
			break;
		default:
			if (!cli_common_option(opt, optarg, "exec")) {
				fputs(cli_exec_usage, stderr);
				rc = CLI_EXIT_USAGE;
			}
		}
	}
	if (rc < 0 && optind < argc)
		rc = cli_usage_error("exec", "unexpected argument \"%s\" (SQL goes after -e)",
		                     argv[optind]);
	if (rc < 0 && tables.n == 0)
		rc = cli_usage_error("exec",
		                     "no tables: lock some with --write TABLE or --read TABLE");
	if (rc < 0 && plan.nstatements == 0)
		rc = cli_usage_error("exec", "no statements: give them with -e SQL");
	if (rc >= 0)
		goto out;

	if ((tl = cli_connect("tablelock exec", &rc)) == NULL)
		goto out;
	lock.tables = tables.tables;
	lock.ntables = tables.n;
	results = xcalloc(plan.nstatements, sizeof(*results));
	if (tablelock_transact(tl, &lock, plan.statements, plan.nstatements, results, &lease,
	                       cli_lock_timeout(lock.wait_ms)) != 0) {
		const struct tablelock_error *err = tablelock_last_error(tl);
		char context[128], excerpt[64];

		if (err->statement >= 0 && (size_t)err->statement < plan.nstatements) {
			exec_excerpt(excerpt, sizeof(excerpt), plan.statements[err->statement].sql);
			snprintf(context, sizeof(context), "statement %ld of %zu (%s)",
			         err->statement + 1, plan.nstatements, excerpt);
		} else {
			snprintf(context, sizeof(context), "exec");
		}
		rc = cli_report(err, context);
		if (rc == CLI_EXIT_FAILED)
			fputs("tablelock: nothing was committed\n", stderr);
		goto out;
	}
	for (size_t i = 0; i < plan.nstatements; i++) {
		if (json) {
			cli_print_result_json(stdout, tl, (long)i);
			continue;
		}
		if (i > 0)
			putchar('\n');
		cli_print_result(stdout, results[i]);
	}
	rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
out:
	for (size_t i = 0; results != NULL && i < plan.nstatements; i++)
		tablelock_result_free(results[i]);
	free(results);
	tablelock_close(tl);
	exec_plan_free(&plan);
	cli_tables_free(&tables);
	return rc;
}
