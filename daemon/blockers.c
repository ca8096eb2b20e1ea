/* Outside blockers: who, outside the pool, holds up a lease in `locking`.
 *
 * A lease in `locking` waits inside MySQL for a metadata lock that a
 * session outside the daemon's queue holds, or waits for ahead of it: a
 * migration, a backup, a person at a mysql prompt, another tablelockd.
 * MySQL shows metadata locks in information_schema.METADATA_LOCK_INFO (the
 * metadata_lock_info plugin: granted locks only) or in
 * performance_schema.metadata_locks (granted and pending, when the
 * performance schema runs with the wait/lock/metadata/sql/mdl instrument),
 * and who the sessions are in information_schema.PROCESSLIST (all of them
 * only with the PROCESS privilege).
 *
 * Cost: nothing on the lease path. A status that finds a lease in
 * `locking` and no answer younger than a second (or none that covers the
 * lease's tables) asks MySQL once on the control session, behind any kill;
 * every status asking meanwhile shares that query, and its answer serves
 * for a second. The first time, and while no source is usable, a probe
 * runs first in the same round trip. */
#include "daemon/blockers.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "daemon/lease.h"
#include "daemon/log.h"
#include "daemon/mdl.h"
#include "daemon/pool.h"
#include "daemon/server.h"
#include "daemon/session.h"
#include "proto/proto_table.h"
#include "util/buf.h"
#include "util/monotime.h"
#include "util/xmalloc.h"

/* How long an answer serves, and how long a status waits for one. */
#define BLOCKERS_FRESH_US 1000000
#define BLOCKERS_WAIT_MS 1000
/* The statement shown for a blocker, in characters. */
#define BLOCKERS_INFO_CHARS 200

enum blockers_source {
	BLOCKERS_SOURCE_NONE,	/* nothing usable: see blockers.unavailable */
	BLOCKERS_SOURCE_MLI,	/* information_schema.METADATA_LOCK_INFO */
	BLOCKERS_SOURCE_PFS,	/* performance_schema.metadata_locks */
};

/* One lock of one session, as MySQL showed it. */
struct blockers_row {
	unsigned long thread;
	json_t *who;		/* user, host, db, command, time_s, state, info */
	char *type;		/* without "MDL_": "SHARED_WRITE", "BACKUP_FTWRL1" */
	bool backup;		/* the backup namespace (no table) */
	char *db, *table;
	bool pending;
};

struct blockers_waiter {
	TAILQ_ENTRY(blockers_waiter) entry;
	void (*ready)(void *arg);
	void *arg;
};

static struct {
	bool probed;			/* source is known */
	enum blockers_source source;
	char unavailable[1024];		/* why there is no answer, for status */
	struct blockers_row *rows;
	size_t nrows;
	uint64_t fetched_us;		/* 0: no answer yet */
	struct buf covered;		/* "db\0table\0" of every table asked about */
	bool running;			/* a query is out on the control session */
	bool probing;			/* it starts with the probe */
	TAILQ_HEAD(, blockers_waiter) waiters;
	bool waiters_init;
	struct event *timer;		/* BLOCKERS_WAIT_MS, and the deferred ready calls */
} blockers;

static void blockers_rows_clear(void);
static void blockers_done(struct session *s, struct session_result *r, size_t n, void *arg);
static void blockers_timer_cb(evutil_socket_t fd, short what, void *arg);
static void blockers_wake(void);
static bool blockers_covers(const char *db, const char *table);
static void blockers_hex(struct buf *b, const char *s);
static void blockers_compose(struct buf *sql, size_t *nstatements);
static void blockers_take_probe(const struct session_result *r, size_t n);
static void blockers_take_rows(const struct session_result *r);
static const char *blockers_text(json_t *v);

bool
blockers_stale(void)
{
	uint64_t now = monotime_us();
	bool locking = false;

	for (struct lease *l = lease_first(); l != NULL; l = lease_next(l)) {
		size_t n;
		const struct proto_table *t;

		if (lease_get_phase(l) != LEASE_PHASE_LOCKING)
			continue;
		locking = true;
		t = lease_tables(l, &n);
		for (size_t i = 0; i < n; i++)
			if (!blockers_covers(t[i].db, t[i].name))
				return true;
	}
	return locking && (blockers.fetched_us == 0 || now - blockers.fetched_us > BLOCKERS_FRESH_US);
}

void
blockers_refresh(void (*ready)(void *arg), void *arg)
{
	struct blockers_waiter *w = xcalloc(1, sizeof(*w));
	struct buf sql = {0};
	size_t n = 0;

	if (!blockers.waiters_init) {
		TAILQ_INIT(&blockers.waiters);
		blockers.waiters_init = true;
		blockers.timer = evtimer_new(server.base, blockers_timer_cb, NULL);
	}
	w->ready = ready;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&blockers.waiters, w, entry);
	if (!evtimer_pending(blockers.timer, NULL)) {
		struct timeval tv = {BLOCKERS_WAIT_MS / 1000, (BLOCKERS_WAIT_MS % 1000) * 1000};
		evtimer_add(blockers.timer, &tv);
	}
	if (blockers.running)
		return; /* the query out answers this one too */
	blockers_compose(&sql, &n);
	blockers.running = true;
	pool_control_query(server.pool, sql.data, sql.len, n, blockers_done, NULL);
	buf_free(&sql);
}

void
blockers_forget(void *arg)
{
	struct blockers_waiter *w, *next;

	if (!blockers.waiters_init)
		return;
	for (w = TAILQ_FIRST(&blockers.waiters); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		if (w->arg == arg) {
			TAILQ_REMOVE(&blockers.waiters, w, entry);
			free(w);
		}
	}
}

/* The query: [the probe;] the locks on the tables of every lease in
 * `locking`, and the backup locks, of every session but this one. Names
 * travel as hex literals: no quoting, whatever the server's sql_mode. */
static void
blockers_compose(struct buf *sql, size_t *nstatements)
{
	bool first = true;

	*nstatements = 0;
	blockers.probing = !blockers.probed || blockers.source == BLOCKERS_SOURCE_NONE;
	if (blockers.probing) {
		/* A failing statement ends a batch: the one that needs
		 * performance_schema privileges goes last. */
		buf_append_str(sql,
			       "SELECT (SELECT COUNT(*) FROM information_schema.PLUGINS "
			       "WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS = "
			       "'ACTIVE'), (SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES "
			       "WHERE PRIVILEGE_TYPE = 'PROCESS'), @@GLOBAL.performance_schema;"
			       "SELECT COUNT(*) FROM performance_schema.setup_instruments "
			       "WHERE NAME = 'wait/lock/metadata/sql/mdl' AND ENABLED = 'YES'");
		*nstatements = 2;
		return; /* the locks follow once the source is known */
	}
	buf_reset(&blockers.covered);
	if (blockers.source == BLOCKERS_SOURCE_MLI)
		buf_appendf(sql,
			    "SELECT m.THREAD_ID, m.LOCK_MODE, m.LOCK_TYPE = 'Backup lock', "
			    "m.TABLE_SCHEMA, m.TABLE_NAME, 0, p.USER, p.HOST, p.DB, p.COMMAND, "
			    "p.TIME, p.STATE, LEFT(p.INFO, %d) "
			    "FROM information_schema.METADATA_LOCK_INFO m "
			    "JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID "
			    "WHERE m.THREAD_ID <> CONNECTION_ID() AND (m.LOCK_TYPE = 'Backup lock' "
			    "OR (m.LOCK_TYPE = 'Table metadata lock' AND (m.TABLE_SCHEMA, "
			    "m.TABLE_NAME) IN (",
			    BLOCKERS_INFO_CHARS);
	else
		buf_appendf(sql,
			    "SELECT t.PROCESSLIST_ID, m.LOCK_TYPE, m.OBJECT_TYPE = 'BACKUP', "
			    "m.OBJECT_SCHEMA, m.OBJECT_NAME, m.LOCK_STATUS = 'PENDING', p.USER, "
			    "p.HOST, p.DB, p.COMMAND, p.TIME, p.STATE, LEFT(p.INFO, %d) "
			    "FROM performance_schema.metadata_locks m "
			    "JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID "
			    "JOIN information_schema.PROCESSLIST p ON p.ID = t.PROCESSLIST_ID "
			    "WHERE t.PROCESSLIST_ID <> CONNECTION_ID() AND (m.OBJECT_TYPE = "
			    "'BACKUP' OR (m.OBJECT_TYPE = 'TABLE' AND (m.OBJECT_SCHEMA, "
			    "m.OBJECT_NAME) IN (",
			    BLOCKERS_INFO_CHARS);
	for (struct lease *l = lease_first(); l != NULL; l = lease_next(l)) {
		size_t n;
		const struct proto_table *t;

		if (lease_get_phase(l) != LEASE_PHASE_LOCKING)
			continue;
		t = lease_tables(l, &n);
		for (size_t i = 0; i < n; i++) {
			if (blockers_covers(t[i].db, t[i].name))
				continue;
			buf_append_str(sql, first ? "(" : ", (");
			blockers_hex(sql, t[i].db);
			buf_append_str(sql, ", ");
			blockers_hex(sql, t[i].name);
			buf_append_str(sql, ")");
			buf_append(&blockers.covered, t[i].db, strlen(t[i].db) + 1);
			buf_append(&blockers.covered, t[i].name, strlen(t[i].name) + 1);
			first = false;
		}
	}
	if (first) /* no lease is locking any more: an empty list is not SQL */
		buf_append_str(sql, "(NULL, NULL)");
	buf_append_str(sql, ")))");
	*nstatements = 1;
}

/* CONVERT(X'…' USING utf8mb4): the name as a string, with no quoting. */
static void
blockers_hex(struct buf *b, const char *s)
{
	buf_append_str(b, "CONVERT(X'");
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		buf_appendf(b, "%02x", *p);
	buf_append_str(b, "' USING utf8mb4)");
}

static bool
blockers_covers(const char *db, const char *table)
{
	const char *p = blockers.covered.data, *end = p + blockers.covered.len;

	while (p != NULL && p < end) {
		const char *name = p + strlen(p) + 1;
		if (strcmp(p, db) == 0 && strcmp(name, table) == 0)
			return true;
		p = name + strlen(name) + 1;
	}
	return false;
}

static void
blockers_done(struct session *s, struct session_result *r, size_t n, void *arg)
{
	(void)s;
	(void)arg;
	blockers.running = false;
	if (blockers.probing) {
		blockers_take_probe(r, n);
		if (blockers.source != BLOCKERS_SOURCE_NONE) {
			/* Now the locks themselves (the waiters wait on). */
			struct buf sql = {0};
			size_t count;
			blockers_compose(&sql, &count);
			blockers.running = true;
			pool_control_query(server.pool, sql.data, sql.len, count, blockers_done,
					   NULL);
			buf_free(&sql);
			return;
		}
		blockers_rows_clear();
		blockers.fetched_us = monotime_us();
	} else if (r[n - 1].code != 0) {
		snprintf(blockers.unavailable, sizeof(blockers.unavailable),
			 "MySQL refused the query for metadata locks: %s", r[n - 1].message);
		log_warnx("outside blockers: %s", blockers.unavailable);
		blockers_rows_clear();
		blockers.probed = false; /* probe again next time */
		blockers.source = BLOCKERS_SOURCE_NONE;
		blockers.fetched_us = monotime_us();
	} else {
		blockers_take_rows(&r[0]);
		blockers.unavailable[0] = '\0';
		blockers.fetched_us = monotime_us();
	}
	blockers_wake();
}

/* r: the probe's results. Prefers performance_schema, which also shows
 * the locks sessions wait for. */
static void
blockers_take_probe(const struct session_result *r, size_t n)
{
	json_t *row = r[0].code == 0 ? json_array_get(r[0].rows, 0) : NULL;
	bool mli = json_integer_value(json_array_get(row, 0)) > 0;
	bool process = json_integer_value(json_array_get(row, 1)) > 0;
	bool pfs = json_integer_value(json_array_get(row, 2)) > 0 && n >= 2 && r[1].code == 0 &&
		   json_integer_value(json_array_get(json_array_get(r[1].rows, 0), 0)) > 0;

	blockers.probed = r[0].code == 0;
	blockers.source = BLOCKERS_SOURCE_NONE;
	if (r[0].code != 0) {
		snprintf(blockers.unavailable, sizeof(blockers.unavailable),
			 "MySQL did not say which lock views it has: %s", r[0].message);
	} else if (!process) {
		snprintf(blockers.unavailable, sizeof(blockers.unavailable),
			 "the daemon's MySQL user lacks the PROCESS privilege, without which "
			 "MySQL shows it no other session (GRANT PROCESS ON *.* TO it)");
	} else if (pfs) {
		blockers.source = BLOCKERS_SOURCE_PFS;
	} else if (mli) {
		blockers.source = BLOCKERS_SOURCE_MLI;
	} else {
		snprintf(blockers.unavailable, sizeof(blockers.unavailable),
			 "MySQL shows no metadata locks: load the metadata_lock_info plugin "
			 "(plugin_load_add = metadata_lock_info, or INSTALL SONAME "
			 "'metadata_lock_info'), or run with performance_schema = ON and "
			 "performance_schema_instrument = 'wait/lock/metadata/sql/mdl=ON' "
			 "(then the daemon's user needs SELECT on performance_schema)");
	}
	if (blockers.source != BLOCKERS_SOURCE_NONE)
		log_info("outside blockers: from %s",
			 blockers.source == BLOCKERS_SOURCE_PFS ? "performance_schema.metadata_locks"
								: "information_schema.METADATA_LOCK_INFO");
}

static void
blockers_take_rows(const struct session_result *r)
{
	size_t n = json_array_size(r->rows);

	blockers_rows_clear();
	blockers.rows = xcalloc(n > 0 ? n : 1, sizeof(*blockers.rows));
	for (size_t i = 0; i < n; i++) {
		json_t *row = json_array_get(r->rows, i);
		struct blockers_row *b = &blockers.rows[blockers.nrows];
		const char *type = blockers_text(json_array_get(row, 1));
		json_t *time = json_array_get(row, 10);

		if (!json_is_integer(json_array_get(row, 0)) || type == NULL)
			continue;
		b->thread = (unsigned long)json_integer_value(json_array_get(row, 0));
		b->type = xstrdup(strncmp(type, "MDL_", 4) == 0 ? type + 4 : type);
		b->backup = json_integer_value(json_array_get(row, 2)) != 0;
		b->db = blockers_text(json_array_get(row, 3)) != NULL
			    ? xstrdup(blockers_text(json_array_get(row, 3)))
			    : NULL;
		b->table = blockers_text(json_array_get(row, 4)) != NULL
			       ? xstrdup(blockers_text(json_array_get(row, 4)))
			       : NULL;
		b->pending = json_integer_value(json_array_get(row, 5)) != 0;
		b->who = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "user", json_array_get(row, 6),
				   "host", json_array_get(row, 7), "db", json_array_get(row, 8),
				   "command", json_array_get(row, 9), "time_s",
				   json_is_integer(time) ? time : json_null(), "state",
				   json_array_get(row, 11), "info", json_array_get(row, 12));
		if (b->who == NULL) { /* a column MySQL did not send */
			free(b->type);
			free(b->db);
			free(b->table);
			memset(b, 0, sizeof(*b));
			continue;
		}
		blockers.nrows++;
	}
}

/* A string column's text, NULL for SQL NULL (or anything else). */
static const char *
blockers_text(json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : NULL;
}

void
blockers_annotate(json_t *o, const struct lease *l)
{
	json_t *by;
	size_t n;
	const struct proto_table *t = lease_tables(l, &n);
	bool write = false, covered = blockers.fetched_us != 0;

	for (size_t i = 0; i < n && covered; i++)
		covered = blockers_covers(t[i].db, t[i].name);
	if (blockers.source == BLOCKERS_SOURCE_NONE && blockers.unavailable[0] != '\0') {
		json_object_set_new(o, "blockers_unavailable", json_string(blockers.unavailable));
		return;
	}
	if (!covered) {
		json_object_set_new(o, "blockers_unavailable",
				    json_string("MySQL did not answer in time"));
		return;
	}
	by = json_array();
	for (size_t i = 0; i < n; i++)
		write |= t[i].write;
	for (size_t k = 0; k < blockers.nrows; k++) {
		const struct blockers_row *b = &blockers.rows[k];
		const struct proto_table *on = NULL;
		json_t *entry, *lock;

		if (pool_owns_thread(server.pool, b->thread))
			continue; /* the daemon's own queue orders its leases */
		if (b->backup) {
			if (!mdl_blocks_lock_tables(write, true, b->type))
				continue;
		} else {
			for (size_t i = 0; i < n && on == NULL; i++)
				if (b->db != NULL && b->table != NULL && strcmp(t[i].db, b->db) == 0 &&
				    strcmp(t[i].name, b->table) == 0 &&
				    mdl_blocks_lock_tables(t[i].write, false, b->type))
					on = &t[i];
			if (on == NULL)
				continue;
		}
		lock = json_pack("{s:s,s:s}", "type", b->type, "status",
				 b->pending ? "pending" : "granted");
		if (on != NULL) {
			struct buf name = {0};
			buf_appendf(&name, "%s.%s", on->db, on->name);
			json_object_set_new(lock, "table", json_string(name.data));
			buf_free(&name);
		} else {
			json_object_set_new(lock, "table", json_null());
		}
		entry = json_pack("{s:I}", "mysql_thread", (json_int_t)b->thread);
		json_object_update(entry, b->who);
		json_object_set_new(entry, "lock", lock);
		json_array_append_new(by, entry);
	}
	json_object_set_new(o, "blocked_by", by);
}

/* MySQL did not answer within BLOCKERS_WAIT_MS: the statuses go out
 * without blockers (the query, when it comes back, still fills the cache). */
static void
blockers_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (blockers.running)
		log_warnx("outside blockers: MySQL did not answer within %d ms", BLOCKERS_WAIT_MS);
	blockers_wake();
}

/* Every waiter gets its ready call; a ready call may start a refresh. */
static void
blockers_wake(void)
{
	struct blockers_waiter *w;
	TAILQ_HEAD(, blockers_waiter) ready = TAILQ_HEAD_INITIALIZER(ready);

	evtimer_del(blockers.timer);
	TAILQ_CONCAT(&ready, &blockers.waiters, entry);
	while ((w = TAILQ_FIRST(&ready)) != NULL) {
		TAILQ_REMOVE(&ready, w, entry);
		w->ready(w->arg);
		free(w);
	}
}

static void
blockers_rows_clear(void)
{
	for (size_t i = 0; i < blockers.nrows; i++) {
		json_decref(blockers.rows[i].who);
		free(blockers.rows[i].type);
		free(blockers.rows[i].db);
		free(blockers.rows[i].table);
	}
	free(blockers.rows);
	blockers.rows = NULL;
	blockers.nrows = 0;
}

void
blockers_free(void)
{
	struct blockers_waiter *w;

	if (blockers.running)
		pool_control_cancel(server.pool);
	if (blockers.waiters_init) {
		while ((w = TAILQ_FIRST(&blockers.waiters)) != NULL) {
			TAILQ_REMOVE(&blockers.waiters, w, entry);
			free(w);
		}
		event_free(blockers.timer);
	}
	blockers_rows_clear();
	buf_free(&blockers.covered);
	memset(&blockers, 0, sizeof(blockers));
}
