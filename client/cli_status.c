/* tablelock status: every lease at a glance, the pool and the totals. */
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/cli.h"
#include "util/buf.h"
#include "util/plural.h"
#include "util/xmalloc.h"

#define STATUS_NCOLUMNS 9
#define STATUS_DEFAULT_WATCH_MS 2000

const char cli_status_usage[] =
    "usage: tablelock status [-s SOCKET] [-t MS] [--json] [--watch [SECONDS]]\n"
    "\n"
    "Shows every lease at a glance: held leases first, then the ones waiting, in\n"
    "queue order; then the MySQL session pool and the daemon's totals.\n"
    "\n"
    "  --json             print the daemon's status answer (JSON) instead\n"
    "  --watch [SECONDS]  refresh in place every SECONDS (default 2) until Ctrl-C\n"
    "\n"
    "Columns: LEASE id (also a fencing token); CLIENT the name the client gave;\n"
    "PEER uid and pid (Unix socket) or address (TCP); TABLES the lock mode and\n"
    "tables; STATE held, locking (granted by the daemon, LOCK TABLES waiting in\n"
    "MySQL for a lock taken outside the daemon) or waiting (in the daemon's\n"
    "queue); FOR how long held, or waited so far; EXPIRES time left unless renewed;\n"
    "THREAD the MySQL connection id holding the locks (as in SHOW PROCESSLIST);\n"
    "FENCE the number MySQL minted when it granted the locks (strictly increasing\n"
    "along each table's holders, across daemons on that server).\n"
    "Under a lease in locking, a line names each MySQL session outside the daemon\n"
    "that holds it up, its lock, and the KILL that would end that session.\n"
    "Without the admin right, other clients' leases show only their tables, state\n"
    "and age (the other columns show -).\n";

static volatile sig_atomic_t status_stop;

struct status_row {
	char *cell[STATUS_NCOLUMNS];
};

/* A lease and its place in the daemon's list, for a stable sort. */
struct status_sorted {
	const struct tablelock_lease_status *lease;
	size_t index;
};

static void status_on_signal(int sig);
static int status_rank(const struct tablelock_lease_status *l);
static int status_compare(const void *a, const void *b);
static void status_tables(struct buf *b, const struct tablelock_lease_status *l);
static void status_render(struct buf *out, const struct tablelock_status *s);
static void status_blockers(struct buf *out, const struct tablelock_lease_status *l);
static void status_json(struct buf *out, const struct tablelock *tl);
static int status_fetch(struct tablelock **tl, struct buf *out, bool json);
static int status_watch(int interval_ms, bool json);

static void
status_on_signal(int sig)
{
	(void)sig;
	status_stop = 1;
}

/* Held first, then granted but locking in MySQL, then waiting. */
static int
status_rank(const struct tablelock_lease_status *l)
{
	if (strcmp(l->state, "held") == 0)
		return 0;
	if (strcmp(l->state, "locking") == 0)
		return 1;
	if (strcmp(l->state, "waiting") == 0)
		return 2;
	return 3;
}

/* Within a rank, the daemon's order is queue order (leases are listed in
 * arrival order; ids, when shown, agree). */
static int
status_compare(const void *a, const void *b)
{
	const struct status_sorted *x = a, *y = b;
	int rx = status_rank(x->lease), ry = status_rank(y->lease);

	if (rx != ry)
		return rx - ry;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* "WRITE app.t1, app.t3; READ app.t2" */
static void
status_tables(struct buf *b, const struct tablelock_lease_status *l)
{
	for (size_t i = 0; i < l->nwrite; i++)
		buf_appendf(b, "%s%s", i == 0 ? "WRITE " : ", ", l->write[i]);
	for (size_t i = 0; i < l->nread; i++)
		buf_appendf(b, "%s%s", i == 0 ? (l->nwrite > 0 ? "; READ " : "READ ") : ", ",
		            l->read[i]);
}

/* Under a lease in locking, a line per MySQL session holding it up, with
 * the statement an operator would run to end that session's hold:
 *       blocked by MySQL thread 42 (app@10.0.0.7, db shop): Query 12s "ALTER
 *       TABLE …", holds SHARED_UPGRADABLE on shop.orders; KILL 42 */
static void
status_blockers(struct buf *out, const struct tablelock_lease_status *l)
{
	if (l->blockers_unavailable != NULL)
		buf_appendf(out, "      blockers unknown: %s\n", l->blockers_unavailable);
	for (size_t i = 0; i < l->nblocked_by; i++) {
		const struct tablelock_blocker *b = &l->blocked_by[i];
		buf_appendf(out, "      blocked by MySQL thread %lld (%s@%s", (long long)b->mysql_thread,
		            b->user != NULL ? b->user : "?", b->host != NULL ? b->host : "?");
		if (b->db != NULL)
			buf_appendf(out, ", db %s", b->db);
		buf_appendf(out, "): %s", b->command != NULL ? b->command : "?");
		if (b->time_s >= 0)
			buf_appendf(out, " %llds", (long long)b->time_s);
		if (b->info != NULL)
			buf_appendf(out, " \"%.60s%s\"", b->info, strlen(b->info) > 60 ? "..." : "");
		buf_appendf(out, ", %s %s on %s; KILL %lld\n", b->pending ? "waits ahead for" : "holds",
		            b->lock_type != NULL ? b->lock_type : "?",
		            b->lock_table != NULL ? b->lock_table : "every table (backup lock)",
		            (long long)b->mysql_thread);
	}
}

static void
status_render(struct buf *out, const struct tablelock_status *s)
{
	static const char *const head[STATUS_NCOLUMNS] = {"LEASE", "CLIENT", "PEER",    "TABLES",
	                                                  "STATE", "FOR",    "EXPIRES", "THREAD",
	                                                  "FENCE"};
	static const bool right[STATUS_NCOLUMNS] = {true,  false, false, false, false,
	                                            true,  true,  true,  true};
	struct status_sorted *sorted;
	struct status_row *rows;
	size_t width[STATUS_NCOLUMNS], held = 0, locking = 0, waiting = 0;
	char up[32], tmp[64];

	sorted = xcalloc(s->nleases, sizeof(*sorted));
	for (size_t i = 0; i < s->nleases; i++)
		sorted[i] = (struct status_sorted){&s->leases[i], i};
	qsort(sorted, s->nleases, sizeof(*sorted), status_compare);
	rows = xcalloc(s->nleases, sizeof(*rows));
	for (size_t c = 0; c < STATUS_NCOLUMNS; c++)
		width[c] = strlen(head[c]);

	for (size_t i = 0; i < s->nleases; i++) {
		const struct tablelock_lease_status *l = sorted[i].lease;
		struct buf b = {0};
		char **cell = rows[i].cell;
		bool is_held = strcmp(l->state, "held") == 0;

		held += is_held;
		locking += strcmp(l->state, "locking") == 0;
		waiting += strcmp(l->state, "waiting") == 0;
		if (l->lease > 0)
			snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)l->lease);
		else
			snprintf(tmp, sizeof(tmp), "-");
		cell[0] = xstrdup(tmp);
		cell[1] = xstrdup(l->client != NULL ? l->client : "-");
		if (l->uid >= 0)
			buf_appendf(&b, "uid %ld pid %ld", l->uid, l->pid);
		else
			buf_append_str(&b, l->address != NULL ? l->address : "-");
		cell[2] = xstrdup(b.data);
		buf_reset(&b);
		status_tables(&b, l);
		cell[3] = xstrdup(b.len > 0 ? b.data : "-");
		buf_free(&b);
		cell[4] =
		    xstrdup(l->transact ? (is_held ? "held (transact)" : l->state) : l->state);
		cli_format_duration(tmp, sizeof(tmp),
		                    is_held && l->held_ms >= 0 ? l->held_ms : l->age_ms);
		cell[5] = xstrdup(tmp);
		cli_format_duration(tmp, sizeof(tmp), l->expires_in_ms);
		cell[6] = xstrdup(tmp);
		if (l->mysql_thread >= 0)
			snprintf(tmp, sizeof(tmp), "%lld", (long long)l->mysql_thread);
		else
			snprintf(tmp, sizeof(tmp), "-");
		cell[7] = xstrdup(tmp);
		if (l->fence > 0)
			snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)l->fence);
		else
			snprintf(tmp, sizeof(tmp), "-");
		cell[8] = xstrdup(tmp);
		for (size_t c = 0; c < STATUS_NCOLUMNS; c++)
			if (strlen(cell[c]) > width[c])
				width[c] = strlen(cell[c]);
	}

	cli_format_duration(up, sizeof(up), s->uptime_ms);
	buf_appendf(out,
	            "%zu lease%s: %zu held, %zu locking, %zu waiting; %lld client%s; up %s\n\n",
	            s->nleases, plural_s(s->nleases), held, locking, waiting,
	            (long long)s->clients, plural_s(s->clients), up);
	for (size_t i = 0; i <= s->nleases; i++) {
		const char *const *cell = i == 0 ? head : (const char *const *)rows[i - 1].cell;
		for (size_t c = 0; c < STATUS_NCOLUMNS; c++) {
			bool last = c == STATUS_NCOLUMNS - 1;
			int pad = (int)(width[c] - strlen(cell[c]));
			if (right[c])
				buf_appendf(out, "%*s%s", pad, "", cell[c]);
			else
				buf_appendf(out, "%s%*s", cell[c], last ? 0 : pad, "");
			buf_append_str(out, last ? "\n" : "  ");
		}
		if (i > 0)
			status_blockers(out, sorted[i - 1].lease);
	}
	if (s->nleases == 0)
		buf_append_str(out, "(no leases)\n");
	buf_appendf(out,
	            "\npool:   %lld session%s: %lld busy, %lld idle, %lld connecting, %lld broken\n",
	            (long long)s->pool.size, plural_s(s->pool.size),
	            (long long)s->pool.busy, (long long)s->pool.idle,
	            (long long)s->pool.connecting, (long long)s->pool.broken);
	buf_appendf(out,
	            "totals: %lld acquired, %lld committed, %lld rolled back, %lld expired, "
	            "%lld released on disconnect,\n        %lld lock timeout%s, %lld revoked, "
	            "%lld lost, %lld ended by shutdown\n",
	            (long long)s->totals.acquired, (long long)s->totals.committed,
	            (long long)s->totals.rolled_back, (long long)s->totals.expired,
	            (long long)s->totals.released_on_disconnect, (long long)s->totals.lock_timeouts,
	            plural_s(s->totals.lock_timeouts),
	            (long long)s->totals.revoked, (long long)s->totals.lost,
	            (long long)s->totals.shutdown);

	for (size_t i = 0; i < s->nleases; i++)
		for (size_t c = 0; c < STATUS_NCOLUMNS; c++)
			free(rows[i].cell[c]);
	free(rows);
	free(sorted);
}

/* The daemon's answer as it came, without the request id. */
static void
status_json(struct buf *out, const struct tablelock *tl)
{
	json_t *resp = json_loads(tablelock_last_response(tl), 0, NULL);
	char *text;

	json_object_del(resp, "id");
	text = json_dumps(resp, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text != NULL) {
		buf_appendf(out, "%s\n", text);
		free(text);
	}
	json_decref(resp);
}

/* One status into out; (re)connects when *tl is NULL. Returns an exit
 * status; on failure the connection is dropped and the error printed. */
static int
status_fetch(struct tablelock **tl, struct buf *out, bool json)
{
	struct tablelock_status *s;
	int rc;

	if (*tl == NULL && (*tl = cli_connect("tablelock status", &rc)) == NULL)
		return rc;
	if (tablelock_status(*tl, &s, cli_timeout()) != 0) {
		rc = cli_report(tablelock_last_error(*tl), "status");
		tablelock_close(*tl);
		*tl = NULL;
		return rc;
	}
	if (json)
		status_json(out, *tl);
	else
		status_render(out, s);
	tablelock_status_free(s);
	return CLI_EXIT_OK;
}

/* Like top: redraw in place on a terminal; elsewhere, one screen after
 * another. The connection is kept, and made again if it fails. */
static int
status_watch(int interval_ms, bool json)
{
	struct tablelock *tl = NULL;
	struct buf out = {0};
	bool tty = isatty(STDOUT_FILENO);
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = status_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!status_stop) {
		char now[32];
		time_t t = time(NULL);

		strftime(now, sizeof(now), "%H:%M:%S", localtime(&t));
		buf_reset(&out);
		if (tty)
			buf_append_str(&out, "\033[H\033[2J");
		if (!json)
			buf_appendf(&out, "tablelockd at %s, every %.3gs, %s\n", cli_address(),
			            interval_ms / 1000.0, now);
		fflush(stderr);
		if (status_fetch(&tl, &out, json) != CLI_EXIT_OK)
			buf_append_str(&out, "(no status: see the error above; retrying)\n");
		if (!tty && !json)
			buf_append_char(&out, '\n');
		fwrite(out.data, 1, out.len, stdout);
		fflush(stdout);
		/* poll() as a sleep that a signal cuts short. */
		for (int64_t left = interval_ms; left > 0 && !status_stop; left -= 100)
			poll(NULL, 0, left < 100 ? (int)left : 100);
	}
	buf_free(&out);
	tablelock_close(tl);
	return CLI_EXIT_OK;
}

int
cli_status_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'}, {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},         {"json", no_argument, NULL, 'j'},
	    {"watch", optional_argument, NULL, 'W'},  {NULL, 0, NULL, 0},
	};
	struct tablelock *tl = NULL;
	struct buf out = {0};
	bool json = false;
	int64_t watch_ms = -1;
	const char *arg;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'W':
			/* "--watch 5" as well as "--watch=5". */
			arg = optarg;
			if (arg == NULL && optind < argc && argv[optind][0] >= '0' &&
			    argv[optind][0] <= '9')
				arg = argv[optind++];
			watch_ms = STATUS_DEFAULT_WATCH_MS;
			if (arg != NULL) {
				char spec[64];
				snprintf(spec, sizeof(spec), "%ss", arg);
				watch_ms = cli_parse_ms(spec);
				if (watch_ms < 100)
					return cli_usage_error("status",
					                       "--watch %s: expected seconds "
					                       "(at least 0.1)",
					                       arg);
			}
			break;
		default:
			if (!cli_common_option(opt, optarg, "status")) {
				fputs(cli_status_usage, stderr);
				return CLI_EXIT_USAGE;
			}
		}
	}
	if (optind < argc)
		return cli_usage_error("status", "unexpected argument \"%s\"", argv[optind]);
	if (watch_ms > 0)
		return status_watch((int)watch_ms, json);
	rc = status_fetch(&tl, &out, json);
	if (rc == CLI_EXIT_OK)
		fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	tablelock_close(tl);
	return rc;
}
