/* tablelock shell: hold a lease and run SQL from a terminal or a pipe. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "client/cli.h"
#include "proto/proto_frame.h"
#include "util/monotime.h"
#include "util/xmalloc.h"

/* Renew when a third of the TTL is left unused, and never more often. */
#define SHELL_RENEW_FRACTION 3
#define SHELL_RENEW_MIN_MS 50

const char cli_shell_usage[] =
    "usage: tablelock shell [-s SOCKET] [-t MS] (--write TABLE | --read TABLE)...\n"
    "                       [--wait MS] [--ttl MS] [--json]\n"
    "\n"
    "Takes a lease on the tables, then runs SQL read from the terminal or a pipe,\n"
    "one statement per line, printing each result, until a line says commit or\n"
    "rollback. End of input (Ctrl-D, or the end of a pipe) rolls back. While it\n"
    "waits for input the lease is renewed, so it lasts as long as the shell.\n"
    "\n"
    "On a terminal a failed statement leaves the lease held: correct it and go\n"
    "on. From a pipe or file the first failure rolls back and ends the shell,\n"
    "as the mysql client does in batch mode.\n"
    "\n"
    "  -w, --write TABLE  lock TABLE for writing (repeatable; \"db.t\", \"t AS a\")\n"
    "  -r, --read TABLE   lock TABLE for reading (repeatable)\n"
    "      --wait MS      longest wait for the tables (default: the daemon's)\n"
    "      --ttl MS       lease lifetime between renewals (default: the daemon's)\n"
    "      --json         one JSON line per result instead of tables\n"
    "\n"
    "Lines: SQL (a trailing ';' is dropped); commit; rollback; quit or exit (as\n"
    "end of input); empty lines and lines starting with -- or # are skipped.\n"
    "\n"
    "Exit status: 0 committed, or rolled back by a typed rollback; 1 rolled back\n"
    "otherwise (input ended, a piped statement failed, or the lease expired, was\n"
    "lost or revoked); 2 bad usage; 3 daemon unreachable; 4 commit outcome unknown.\n";

enum {
	SHELL_OPT_WAIT = 256,
	SHELL_OPT_TTL,
	SHELL_OPT_JSON,
};

/* What a line asked for. */
enum shell_next {
	SHELL_GO_ON,
	SHELL_DONE /* the lease ended; *status is the exit status */
};

struct shell {
	struct tablelock *tl;
	uint64_t lease;
	bool interactive;
	bool json;
	int64_t renew_every_ms;
	int64_t next_renew_ms;
	int status;
};

static char *shell_trim(char *line);
static enum shell_next shell_renew_if_due(struct shell *sh);
static enum shell_next shell_lease_gone(struct shell *sh, const struct tablelock_error *err,
                                        const char *context);
static enum shell_next shell_end(struct shell *sh, bool commit);
static enum shell_next shell_line(struct shell *sh, char *line);
static void shell_prompt(const struct shell *sh);
static void shell_event_error(const struct tablelock_event *ev, struct tablelock_error *err);
static int shell_run(struct shell *sh);

/* Strips blanks around the line and trailing ';'s. */
static char *
shell_trim(char *line)
{
	size_t n;

	while (*line == ' ' || *line == '\t')
		line++;
	n = strlen(line);
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == ';'))
		line[--n] = '\0';
	return line;
}

/* The lease ended under us (or the connection went): say so, and end. */
static enum shell_next
shell_lease_gone(struct shell *sh, const struct tablelock_error *err, const char *context)
{
	sh->status = cli_report(err, context);
	if (sh->status == CLI_EXIT_FAILED)
		fprintf(stderr, "tablelock: lease %llu ended: nothing was committed\n",
		        (unsigned long long)sh->lease);
	return SHELL_DONE;
}

static enum shell_next
shell_renew_if_due(struct shell *sh)
{
	if (monotime_ms() < sh->next_renew_ms)
		return SHELL_GO_ON;
	if (tablelock_renew(sh->tl, TABLELOCK_DEFAULT, cli_timeout()) != 0)
		return shell_lease_gone(sh, tablelock_last_error(sh->tl), "renew");
	sh->next_renew_ms = monotime_ms() + sh->renew_every_ms;
	return SHELL_GO_ON;
}

static enum shell_next
shell_end(struct shell *sh, bool commit)
{
	int rc = commit ? tablelock_commit(sh->tl, cli_lock_timeout(0))
	                : tablelock_rollback(sh->tl, cli_timeout());

	if (rc != 0)
		return shell_lease_gone(sh, tablelock_last_error(sh->tl),
		                        commit ? "commit" : "rollback");
	if (sh->interactive)
		fprintf(stderr, "lease %llu %s\n", (unsigned long long)sh->lease,
		        commit ? "committed" : "rolled back");
	sh->status = CLI_EXIT_OK;
	return SHELL_DONE;
}

static enum shell_next
shell_line(struct shell *sh, char *line)
{
	struct tablelock_result *r;
	const struct tablelock_error *err;

	line = shell_trim(line);
	if (line[0] == '\0' || line[0] == '#' || strncmp(line, "--", 2) == 0)
		return SHELL_GO_ON;
	if (strcasecmp(line, "commit") == 0)
		return shell_end(sh, true);
	if (strcasecmp(line, "rollback") == 0)
		return shell_end(sh, false);
	if (strcasecmp(line, "quit") == 0 || strcasecmp(line, "exit") == 0 ||
	    strcmp(line, "\\q") == 0) {
		if (shell_end(sh, false) == SHELL_DONE && sh->status == CLI_EXIT_OK) {
			fprintf(stderr, "tablelock: %s without commit: lease %llu rolled back\n",
			        line, (unsigned long long)sh->lease);
			sh->status = CLI_EXIT_FAILED;
		}
		return SHELL_DONE;
	}
	if (shell_renew_if_due(sh) == SHELL_DONE)
		return SHELL_DONE;

	if (tablelock_query(sh->tl, line, NULL, 0, &r, cli_lock_timeout(0)) == 0) {
		if (sh->json)
			cli_print_result_json(stdout, sh->tl, -1);
		else
			cli_print_result(stdout, r);
		fflush(stdout);
		tablelock_result_free(r);
		return SHELL_GO_ON;
	}
	err = tablelock_last_error(sh->tl);
	if (tablelock_lease(sh->tl) == 0 || err->code >= TABLELOCK_ERR_CONNECT)
		return shell_lease_gone(sh, err, "query");
	cli_report(err, "query");
	if (sh->interactive)
		return SHELL_GO_ON; /* the lease is still held: try again */
	/* Batch: do not go on to commit after a statement failed. */
	if (tablelock_rollback(sh->tl, cli_timeout()) != 0)
		return shell_lease_gone(sh, tablelock_last_error(sh->tl), "rollback");
	fprintf(stderr, "tablelock: a statement failed: lease %llu rolled back\n",
	        (unsigned long long)sh->lease);
	sh->status = CLI_EXIT_FAILED;
	return SHELL_DONE;
}

/* An event seen while waiting for input, worded as an error. */
static void
shell_event_error(const struct tablelock_event *ev, struct tablelock_error *err)
{
	const char *what =
	    ev->code == TABLELOCK_ERR_LEASE_EXPIRED   ? "expired (its TTL ran out)"
	    : ev->code == TABLELOCK_ERR_LEASE_LOST    ? "was lost (its MySQL session died)"
	    : ev->code == TABLELOCK_ERR_LEASE_REVOKED ? "was revoked by an administrator"
	                                              : "ended";

	memset(err, 0, sizeof(*err));
	err->code = ev->code;
	err->statement = -1;
	err->lease = ev->lease;
	snprintf(err->code_name, sizeof(err->code_name), "%s", ev->name);
	snprintf(err->message, sizeof(err->message), "lease %llu %s%s%s",
	         (unsigned long long)ev->lease, what, ev->reason[0] != '\0' ? ": " : "",
	         ev->reason);
}

static void
shell_prompt(const struct shell *sh)
{
	if (sh->interactive) {
		fprintf(stderr, "tablelock[%llu]> ", (unsigned long long)sh->lease);
		fflush(stderr);
	}
}

/* Reads lines until the lease ends, renewing it while input is awaited and
 * watching for the daemon's events. */
static int
shell_run(struct shell *sh)
{
	struct proto_frame in;
	char chunk[65536];
	bool eof = false;
	const char *line;
	size_t len;

	proto_frame_init(&in, 0);
	shell_prompt(sh);
	for (;;) {
		while (proto_frame_next(&in, &line, &len) == PROTO_FRAME_LINE) {
			char *copy = xstrndup(line, len);
			enum shell_next next = shell_line(sh, copy);
			free(copy);
			if (next == SHELL_DONE)
				goto done;
			if (!eof)
				shell_prompt(sh);
		}
		if (eof) {
			if (sh->interactive)
				fputc('\n', stderr);
			if (shell_end(sh, false) == SHELL_DONE && sh->status == CLI_EXIT_OK) {
				fprintf(stderr,
				        "tablelock: input ended without commit: lease %llu "
				        "rolled back\n",
				        (unsigned long long)sh->lease);
				sh->status = CLI_EXIT_FAILED;
			}
			goto done;
		}

		struct pollfd pfd[2] = {
		    {.fd = STDIN_FILENO, .events = POLLIN},
		    {.fd = tablelock_fd(sh->tl), .events = POLLIN},
		};
		int64_t wait = sh->next_renew_ms - monotime_ms();
		int n = poll(pfd, 2, wait < 0 ? 0 : (int)wait);
		if (n < 0 && errno != EINTR) {
			perror("tablelock: poll");
			sh->status = CLI_EXIT_FAILED;
			goto done;
		}
		if (n > 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			struct tablelock_event ev;
			int got = tablelock_poll(sh->tl, &ev, 0);
			if (got > 0) {
				struct tablelock_error err;
				shell_event_error(&ev, &err);
				shell_lease_gone(sh, &err, NULL);
				goto done;
			}
			if (got < 0) {
				shell_lease_gone(sh, tablelock_last_error(sh->tl), NULL);
				goto done;
			}
		}
		if (shell_renew_if_due(sh) == SHELL_DONE)
			goto done;
		if (n > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t got = read(STDIN_FILENO, chunk, sizeof(chunk));
			if (got < 0 && errno != EINTR && errno != EAGAIN) {
				perror("tablelock: reading input");
				eof = true;
			} else if (got == 0) {
				/* A last line without its '\n' still counts. */
				eof = true;
				if (proto_frame_pending(&in) > 0)
					proto_frame_feed(&in, "\n", 1);
			} else if (got > 0) {
				proto_frame_feed(&in, chunk, (size_t)got);
			}
		}
	}
done:
	proto_frame_free(&in);
	return sh->status;
}

int
cli_shell_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {"write", required_argument, NULL, 'w'},
	    {"read", required_argument, NULL, 'r'},
	    {"wait", required_argument, NULL, SHELL_OPT_WAIT},
	    {"ttl", required_argument, NULL, SHELL_OPT_TTL},
	    {"json", no_argument, NULL, SHELL_OPT_JSON},
	    {NULL, 0, NULL, 0},
	};
	struct cli_tables tables = {0};
	struct tablelock_lock lock = {NULL, 0, TABLELOCK_DEFAULT, TABLELOCK_DEFAULT};
	struct shell sh;
	char what[512];
	int opt, rc = -1;
	int64_t ttl;

	memset(&sh, 0, sizeof(sh));
	while (rc < 0 &&
	       (opt = getopt_long(argc, argv, CLI_COMMON_SHORT "w:r:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'w':
		case 'r':
			cli_tables_add(&tables, optarg, opt == 'w');
			break;
		case SHELL_OPT_WAIT:
		case SHELL_OPT_TTL:
			if (cli_parse_ms(optarg) < 0) {
				rc = cli_usage_error(
				    "shell", "--%s %s: expected milliseconds (or 5s, 2m)",
				    opt == SHELL_OPT_WAIT ? "wait" : "ttl", optarg);
				break;
			}
			if (opt == SHELL_OPT_WAIT)
				lock.wait_ms = cli_parse_ms(optarg);
			else
				lock.ttl_ms = cli_parse_ms(optarg);
			break;
		case SHELL_OPT_JSON:
			sh.json = true;
			break;
		default:
			if (!cli_common_option(opt, optarg, "shell")) {
				fputs(cli_shell_usage, stderr);
				rc = CLI_EXIT_USAGE;
			}
		}
	}
	if (rc < 0 && optind < argc)
		rc = cli_usage_error("shell", "unexpected argument \"%s\" (SQL is read from input)",
		                     argv[optind]);
	if (rc < 0 && tables.n == 0)
		rc = cli_usage_error("shell",
		                     "no tables: lock some with --write TABLE or --read TABLE");
	if (rc >= 0)
		goto out;

	if ((sh.tl = cli_connect("tablelock shell", &rc)) == NULL)
		goto out;
	lock.tables = tables.tables;
	lock.ntables = tables.n;
	if (tablelock_acquire(sh.tl, &lock, &sh.lease, cli_lock_timeout(lock.wait_ms)) != 0) {
		rc = cli_report(tablelock_last_error(sh.tl), "acquire");
		goto out;
	}
	sh.interactive = isatty(STDIN_FILENO);
	ttl = tablelock_lease_ttl(sh.tl) > 0 ? tablelock_lease_ttl(sh.tl) : 30000;
	sh.renew_every_ms = ttl / SHELL_RENEW_FRACTION;
	if (sh.renew_every_ms < SHELL_RENEW_MIN_MS)
		sh.renew_every_ms = SHELL_RENEW_MIN_MS;
	sh.next_renew_ms = monotime_ms() + sh.renew_every_ms;
	if (sh.interactive) {
		cli_tables_describe(&tables, what, sizeof(what));
		fprintf(
		    stderr,
		    "lease %llu held: %s (TTL %lld ms, renewed while you type).\n"
		    "One statement per line; commit or rollback to finish, Ctrl-D rolls back.\n",
		    (unsigned long long)sh.lease, what, (long long)ttl);
	}
	rc = shell_run(&sh);
out:
	tablelock_close(sh.tl);
	cli_tables_free(&tables);
	return rc;
}
