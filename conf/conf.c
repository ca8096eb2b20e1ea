/* Configuration: the key table, its value parsers and the cross-key checks. */
#include "conf/conf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "util/buf.h"
#include "util/hostport.h"
#include "util/xmalloc.h"

/*
 * libinih splits lines and calls conf_handler for each "name = value"; the
 * key table below says what each name means. Two things inih does not give
 * us, and a line reader of our own (conf_read_line) provides:
 *  - the line number of each call, for "file:line: reason" messages and for
 *    "given twice (first on line N)";
 *  - whole lines: Debian's inih 55 reads at most 199 bytes and parses the
 *    rest of a longer line as a new line, which garbles both the values and
 *    the line count, so an overlong line is refused here instead.
 * inih also treats an indented line after a key as a continuation of that
 * key's value and calls the handler again with the same name. That is how
 * listen takes several addresses; for every other key it is refused, so an
 * indented "port = 1" under "host = x" cannot turn into a silent mistake.
 */

#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)
#define CONF_MAX_MS 86400000ULL /* a day */

enum conf_type {
	CONF_STRING,	/* char *, any non-empty text */
	CONF_CHOICE,	/* char *, one of key->choices */
	CONF_UINT,	/* unsigned int or uint64_t, decimal */
	CONF_SIZE,	/* size_t or uint64_t: bytes, or a number with K, M or G */
	CONF_MSEC,	/* int64_t milliseconds, decimal */
	CONF_MODE,	/* unsigned int, octal file mode */
	CONF_LISTEN,	/* char ** plus nlisten: repeatable socket addresses */
	CONF_LIST,	/* struct conf_list: repeatable free text, checked by its user */
	CONF_TYPE__COUNT
};

struct conf_key {
	const char *section;
	const char *name;
	enum conf_type type;
	size_t offset;			/* of the value in struct conf */
	size_t width;			/* its size, for CONF_UINT and CONF_SIZE */
	uint64_t min;			/* numbers only */
	uint64_t max;
	const char *def;		/* the default, as written in the file; NULL = unset */
	const char *const *choices;	/* CONF_CHOICE only, NULL-terminated */
	bool reloadable;		/* SIGHUP may change it without a restart */
	const char *help;
};

#define CONF_FIELD(member) offsetof(struct conf, member), sizeof(((struct conf *)0)->member)

static const char *const conf_log_levels[] = {"error", "warn", "info", "debug", NULL};

/* Every key, with its default. conf/tablelockd.conf, tablelockd.conf(5) and
 * README.md say the same, and tests/integration/test_config_defaults.py
 * holds them to this table (defaults, ranges, reloads). Columns:
 * section, name, type, member, min, max, default, choices, reloadable, help. */
static const struct conf_key conf_keys[] = {
	{"daemon", "listen", CONF_LISTEN, CONF_FIELD(listen), 0, 0, NULL, NULL, false,
	 "where clients connect: unix:PATH or tcp:HOST:PORT (repeatable)"},
	{"daemon", "socket_mode", CONF_MODE, CONF_FIELD(socket_mode), 0, 0777, "0660", NULL, false,
	 "permissions of the unix sockets"},
	{"daemon", "max_request_bytes", CONF_SIZE, CONF_FIELD(max_request_bytes), 1 * KiB, 64 * MiB,
	 "1M", NULL, true, "longest request line; longer ones get request_too_large"},
	{"daemon", "max_clients", CONF_UINT, CONF_FIELD(max_clients), 1, 1000000, "10000", NULL, true,
	 "connections served at once"},
	{"daemon", "state_file", CONF_STRING, CONF_FIELD(state_file), 0, 0,
	 "/var/lib/tablelockd/lease_id", NULL, false,
	 "keeps the lease id high-water mark, so ids stay short and keep growing across "
	 "restarts; under systemd the default is in $STATE_DIRECTORY"},
	{"daemon", "log_level", CONF_CHOICE, CONF_FIELD(log_level), 0, 0, "info", conf_log_levels,
	 true, "error, warn, info or debug"},
	{"daemon", "drain_timeout_ms", CONF_MSEC, CONF_FIELD(drain_timeout_ms), 0, CONF_MAX_MS,
	 "10000", NULL, true, "on SIGTERM, how long held leases may finish; 0 = roll back at once"},
	{"daemon", "request_timeout_ms", CONF_MSEC, CONF_FIELD(request_timeout_ms), 1, CONF_MAX_MS,
	 "10000", NULL, true, "a request line left incomplete this long closes the connection"},
	{"daemon", "idle_timeout_ms", CONF_MSEC, CONF_FIELD(idle_timeout_ms), 0, CONF_MAX_MS, "0",
	 NULL, true, "a connection without a lease idle this long is closed; 0 = never"},
	{"daemon", "socket_owner", CONF_STRING, CONF_FIELD(socket_owner), 0, 0, NULL, NULL, false,
	 "user that owns the unix sockets (the daemon must be root to change it)"},
	{"daemon", "socket_group", CONF_STRING, CONF_FIELD(socket_group), 0, 0, NULL, NULL, false,
	 "group of the unix sockets: who may connect, with socket_mode 0660"},
	{"daemon", "max_connections_per_identity", CONF_UINT,
	 CONF_FIELD(max_connections_per_identity), 0, 1000000, "0", NULL, true,
	 "connections one identity may hold open; 0 = no cap"},
	{"daemon", "max_waiting_per_identity", CONF_UINT, CONF_FIELD(max_waiting_per_identity), 0,
	 10000000, "0", NULL, true, "acquires one identity may have queued; 0 = no cap"},
	{"daemon", "max_output_bytes", CONF_SIZE, CONF_FIELD(max_output_bytes), 64 * KiB, 4 * GiB,
	 "64M", NULL, true, "answers queued for a client that does not read; past it, close"},

	{"mysql", "host", CONF_STRING, CONF_FIELD(host), 0, 0, NULL, NULL, false,
	 "server host; unset means the local socket"},
	{"mysql", "port", CONF_UINT, CONF_FIELD(port), 1, 65535, "3306", NULL, false,
	 "server TCP port"},
	{"mysql", "socket", CONF_STRING, CONF_FIELD(socket), 0, 0, NULL, NULL, false,
	 "server unix socket"},
	{"mysql", "user", CONF_STRING, CONF_FIELD(user), 0, 0, NULL, NULL, false, "user name"},
	{"mysql", "password", CONF_STRING, CONF_FIELD(password), 0, 0, NULL, NULL, false,
	 "password; better kept in option_file"},
	{"mysql", "database", CONF_STRING, CONF_FIELD(database), 0, 0, NULL, NULL, false,
	 "database of table names given without one"},
	{"mysql", "option_file", CONF_STRING, CONF_FIELD(option_file), 0, 0, NULL, NULL, false,
	 "my.cnf-style file read for credentials and client options"},
	{"mysql", "option_group", CONF_STRING, CONF_FIELD(option_group), 0, 0, "client", NULL,
	 false, "group read from option_file"},
	{"mysql", "pool_size", CONF_UINT, CONF_FIELD(pool_size), 1, 1000, "8", NULL, true,
	 "MySQL sessions kept open; at most this many leases are held at once"},
	{"mysql", "sql_mode", CONF_STRING, CONF_FIELD(sql_mode), 0, 0,
	 "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION",
	 NULL, true,
	 "sql_mode of every session (MariaDB's default); modes that change quoting are refused"},
	{"mysql", "connect_timeout_ms", CONF_MSEC, CONF_FIELD(connect_timeout_ms), 1, 600000,
	 "5000", NULL, true, "time allowed to connect a session"},

	{"leases", "default_wait_ms", CONF_MSEC, CONF_FIELD(default_wait_ms), 0, CONF_MAX_MS, "5000",
	 NULL, true, "wait_ms of an acquire that gives none; 0 = try once"},
	{"leases", "default_ttl_ms", CONF_MSEC, CONF_FIELD(default_ttl_ms), 1, CONF_MAX_MS, "30000",
	 NULL, true, "ttl_ms of an acquire that gives none"},
	{"leases", "max_ttl_ms", CONF_MSEC, CONF_FIELD(max_ttl_ms), 1, CONF_MAX_MS, "600000", NULL,
	 true, "largest ttl_ms a client may ask for"},
	{"leases", "max_waiters", CONF_UINT, CONF_FIELD(max_waiters), 0, 10000000, "10000", NULL,
	 true, "acquires queued at once; 0 = no limit"},

	{"statements", "max_rows", CONF_UINT, CONF_FIELD(max_rows), 1, 1000000000, "100000", NULL,
	 true, "rows one query may return"},
	{"statements", "max_result_bytes", CONF_SIZE, CONF_FIELD(max_result_bytes), 1 * KiB,
	 1 * GiB, "16M", NULL, true, "bytes of result one query may return"},
	{"statements", "timeout_ms", CONF_MSEC, CONF_FIELD(timeout_ms), 0, CONF_MAX_MS, "30000",
	 NULL, true, "time one statement may run; 0 = no limit"},

	{"metrics", "listen", CONF_STRING, CONF_FIELD(metrics_listen), 0, 0, NULL, NULL, true,
	 "HOST:PORT of the Prometheus endpoint (GET /metrics, /healthz); unset = off"},

	{"tls", "cert", CONF_STRING, CONF_FIELD(tls_cert), 0, 0, NULL, NULL, false,
	 "PEM certificate (chain) of tls: listeners"},
	{"tls", "key", CONF_STRING, CONF_FIELD(tls_key), 0, 0, NULL, NULL, false,
	 "its PEM private key"},
	{"tls", "client_ca", CONF_STRING, CONF_FIELD(tls_client_ca), 0, 0, NULL, NULL, false,
	 "PEM CA bundle: clients must present a certificate it signed; its CN is the identity"},

	{"access", "allow", CONF_LIST, CONF_FIELD(access_allow), 0, 0, NULL, NULL, true,
	 "IDENTITY [read PATTERN...] [write PATTERN...] [admin] (repeatable)"},
};

#define CONF_NKEYS (sizeof conf_keys / sizeof conf_keys[0])

/* One parser per type: checks value and stores it in *c, or writes why not. */
typedef bool conf_parse_fn(const struct conf_key *k, const char *value, struct conf *c,
			   char *why, size_t whysize);

static conf_parse_fn conf_parse_string;
static conf_parse_fn conf_parse_choice;
static conf_parse_fn conf_parse_number;
static conf_parse_fn conf_parse_mode;
static conf_parse_fn conf_parse_list;
static conf_parse_fn conf_parse_listen;

static conf_parse_fn *const conf_parsers[CONF_TYPE__COUNT] = {
	[CONF_STRING] = conf_parse_string,
	[CONF_CHOICE] = conf_parse_choice,
	[CONF_UINT] = conf_parse_number,
	[CONF_SIZE] = conf_parse_number,
	[CONF_MSEC] = conf_parse_number,
	[CONF_MODE] = conf_parse_mode,
	[CONF_LISTEN] = conf_parse_listen,
	[CONF_LIST] = conf_parse_list,
};

/* What one parse is doing: the text, where inih is in it, the first error. */
struct conf_parse {
	struct conf *c;
	const char *text;
	size_t len;
	size_t pos;
	int line;			/* the line inih is handling now */
	int section_line;		/* line of the last [section] header */
	bool have_key;			/* inih's "previous name": indented lines continue it */
	bool continuation;		/* the current line is such a continuation */
	int seen[CONF_NKEYS];		/* line each key was set on, 0 = not yet */
	int err_line;			/* first error we found, 0 = none */
	char err[256];
};

static void *conf_field(struct conf *c, const struct conf_key *k);
static void conf_state_file_default(struct conf *c);
static void conf_store_uint(void *field, size_t width, uint64_t v);
static bool conf_digits(const char *s, unsigned int base, uint64_t *out, const char **end);
static void conf_format_size(uint64_t v, char *out, size_t outsize);
static const struct conf_key *conf_key_find(const char *section, const char *name);
static bool conf_section_known(const char *section);
static int conf_fail(struct conf_parse *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void conf_classify(struct conf_parse *p, const char *line);
static char *conf_read_line(char *str, int num, void *stream);
static int conf_handler(void *user, const char *section, const char *name, const char *value);
static const char *conf_syntax_reason(const char *text, size_t len, int line);
static int conf_check(const struct conf *c, const int *seen, int *line, char *why,
		      size_t whysize);
static int conf_key_line(const int *seen, const char *section, const char *name);
static int conf_parse_text(const char *name, const char *text, size_t len, struct conf *c,
			   char *err, size_t errsize);

static void *
conf_field(struct conf *c, const struct conf_key *k)
{
	return (char *)c + k->offset;
}

/* Numbers arrive as uint64_t; the struct member may be narrower. */
static void
conf_store_uint(void *field, size_t width, uint64_t v)
{
	if (width == sizeof(uint32_t)) {
		uint32_t u = (uint32_t)v;
		memcpy(field, &u, sizeof u);
	} else {
		memcpy(field, &v, sizeof v);
	}
}

/* Digits only: no sign, no spaces, no 0x; stops at the first non-digit.
 * False on no digits or overflow. */
static bool
conf_digits(const char *s, unsigned int base, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *q = s;
	for (; *q >= '0' && *q < (char)('0' + base); q++) {
		unsigned int d = (unsigned int)(*q - '0');
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	*out = v;
	*end = q;
	return q > s;
}

/* 1048576 -> "1M": limits shown the way they are written. */
static void
conf_format_size(uint64_t v, char *out, size_t outsize)
{
	if (v != 0 && v % GiB == 0)
		snprintf(out, outsize, "%lluG", (unsigned long long)(v / GiB));
	else if (v != 0 && v % MiB == 0)
		snprintf(out, outsize, "%lluM", (unsigned long long)(v / MiB));
	else if (v != 0 && v % KiB == 0)
		snprintf(out, outsize, "%lluK", (unsigned long long)(v / KiB));
	else
		snprintf(out, outsize, "%llu", (unsigned long long)v);
}

static bool
conf_parse_string(const struct conf_key *k, const char *value, struct conf *c, char *why,
		  size_t whysize)
{
	(void)why;
	(void)whysize;
	char **field = conf_field(c, k);
	free(*field); /* the default, if any */
	*field = xstrdup(value);
	return true;
}

static bool
conf_parse_choice(const struct conf_key *k, const char *value, struct conf *c, char *why,
		  size_t whysize)
{
	for (const char *const *choice = k->choices; *choice != NULL; choice++) {
		if (strcmp(value, *choice) == 0)
			return conf_parse_string(k, value, c, why, whysize);
	}
	struct buf list = {0};
	for (const char *const *choice = k->choices; *choice != NULL; choice++)
		buf_appendf(&list, "%s%s", choice == k->choices ? "" : ", ", *choice);
	snprintf(why, whysize, "must be one of %s", list.data);
	buf_free(&list);
	return false;
}

/* CONF_UINT, CONF_MSEC and CONF_SIZE: decimal, and for sizes a K, M or G. */
static bool
conf_parse_number(const struct conf_key *k, const char *value, struct conf *c, char *why,
		  size_t whysize)
{
	static const struct {
		char suffix;
		uint64_t factor;
	} units[] = {{'K', KiB}, {'M', MiB}, {'G', GiB}};
	uint64_t v;
	const char *end;
	bool ok = conf_digits(value, 10, &v, &end);

	if (ok && k->type == CONF_SIZE && *end != '\0') {
		ok = false;
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
			if (toupper((unsigned char)*end) == units[i].suffix && end[1] == '\0' &&
			    v <= UINT64_MAX / units[i].factor) {
				v *= units[i].factor;
				end++;
				ok = true;
				break;
			}
		}
	}
	if (!ok || *end != '\0' || v < k->min || v > k->max) {
		if (k->type == CONF_SIZE) {
			char lo[32], hi[32];
			conf_format_size(k->min, lo, sizeof lo);
			conf_format_size(k->max, hi, sizeof hi);
			snprintf(why, whysize,
				 "must be a size between %s and %s (bytes, or a number "
				 "followed by K, M or G)",
				 lo, hi);
		} else {
			snprintf(why, whysize, "must be an integer between %llu and %llu",
				 (unsigned long long)k->min, (unsigned long long)k->max);
		}
		return false;
	}
	if (k->type == CONF_MSEC) {
		int64_t ms = (int64_t)v;
		memcpy(conf_field(c, k), &ms, sizeof ms);
	} else {
		conf_store_uint(conf_field(c, k), k->width, v);
	}
	return true;
}

static bool
conf_parse_mode(const struct conf_key *k, const char *value, struct conf *c, char *why,
		size_t whysize)
{
	uint64_t v;
	const char *end;
	if (!conf_digits(value, 8, &v, &end) || *end != '\0' || v < k->min || v > k->max) {
		snprintf(why, whysize, "must be an octal mode between %04llo and %04llo",
			 (unsigned long long)k->min, (unsigned long long)k->max);
		return false;
	}
	conf_store_uint(conf_field(c, k), k->width, v);
	return true;
}

/* "unix:PATH" (absolute or relative), or "tcp:" or "tls:" and HOST:PORT
 * (util/hostport.h), IPv6 as "tcp:[::1]:PORT". */
static bool
conf_parse_listen(const struct conf_key *k, const char *value, struct conf *c, char *why,
		  size_t whysize)
{
	(void)k;
	if (strncmp(value, "unix:", 5) == 0) {
		size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
		if (value[5] == '\0') {
			snprintf(why, whysize, "unix: needs a socket path, as unix:/run/x.sock");
			return false;
		}
		if (strlen(value + 5) > max) {
			snprintf(why, whysize, "socket path is longer than %zu bytes", max);
			return false;
		}
	} else if (strncmp(value, "tcp:", 4) == 0 || strncmp(value, "tls:", 4) == 0) {
		struct hostport hp;
		char scheme[5];
		snprintf(scheme, sizeof scheme, "%.4s", value);
		if (!hostport_parse(value + 4, scheme, &hp, why, whysize))
			return false;
	} else {
		snprintf(why, whysize, "must be unix:PATH, tcp:HOST:PORT or tls:HOST:PORT");
		return false;
	}
	for (size_t i = 0; i < c->nlisten; i++) {
		if (strcmp(c->listen[i], value) == 0) {
			snprintf(why, whysize, "%s is listed twice", value);
			return false;
		}
	}
	c->listen = xrealloc(c->listen, (c->nlisten + 1) * sizeof *c->listen);
	c->listen[c->nlisten++] = xstrdup(value);
	return true;
}

/* The line is set by conf_handler right after (it knows it). */
static bool
conf_parse_list(const struct conf_key *k, const char *value, struct conf *c, char *why,
		size_t whysize)
{
	struct conf_list *l = conf_field(c, k);
	(void)why;
	(void)whysize;
	l->items = xrealloc(l->items, (l->n + 1) * sizeof *l->items);
	l->lines = xrealloc(l->lines, (l->n + 1) * sizeof *l->lines);
	l->items[l->n] = xstrdup(value);
	l->lines[l->n] = 0;
	l->n++;
	return true;
}

/* [tokens] has no fixed keys: each is a token name with its SHA-256. */
static bool
conf_parse_token(struct conf *c, const char *name, const char *value, char *why, size_t whysize)
{
	unsigned char digest[32];

	if (strlen(value) != 64) {
		snprintf(why, whysize,
			 "must be the token's SHA-256 as 64 hex digits "
			 "(printf %%s TOKEN | sha256sum), never the token itself");
		return false;
	}
	for (int i = 0; i < 32; i++) {
		unsigned int byte;
		if (!isxdigit((unsigned char)value[2 * i]) ||
		    !isxdigit((unsigned char)value[2 * i + 1]) ||
		    sscanf(value + 2 * i, "%2x", &byte) != 1) {
			snprintf(why, whysize, "must be 64 hex digits (a SHA-256)");
			return false;
		}
		digest[i] = (unsigned char)byte;
	}
	for (size_t i = 0; i < c->ntokens; i++) {
		if (strcmp(c->tokens[i].name, name) == 0) {
			snprintf(why, whysize, "token name given twice");
			return false;
		}
	}
	c->tokens = xrealloc(c->tokens, (c->ntokens + 1) * sizeof *c->tokens);
	c->tokens[c->ntokens].name = xstrdup(name);
	memcpy(c->tokens[c->ntokens].sha256, digest, sizeof(digest));
	c->ntokens++;
	return true;
}

static const struct conf_key *
conf_key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		if (strcmp(conf_keys[i].section, section) == 0 &&
		    strcmp(conf_keys[i].name, name) == 0)
			return &conf_keys[i];
	}
	return NULL;
}

static bool
conf_section_known(const char *section)
{
	if (strcmp(section, "tokens") == 0)
		return true;
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		if (strcmp(conf_keys[i].section, section) == 0)
			return true;
	}
	return false;
}

void
conf_defaults(struct conf *c)
{
	char why[256];
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		/* A millisecond key is stored as int64_t: a narrower member
		 * would be overrun (a bug in the table, caught by every test). */
		if (k->type == CONF_MSEC && k->width != sizeof(int64_t))
			abort();
		if (k->def == NULL)
			continue;
		if (!conf_parsers[k->type](k, k->def, c, why, sizeof why))
			abort(); /* a default that fails its own limits: a bug in the table */
	}
	conf_state_file_default(c);
}

/* systemd tells a service where its StateDirectory= is, in $STATE_DIRECTORY
 * (systemd.exec(5); several are separated by colons): a default file kept
 * in /var/lib/tablelockd moves with it, under the same name. The shipped
 * unit's StateDirectory=tablelockd makes no difference; a drop-in that
 * changes it, or a second instance with its own, moves the file along. */
static void
conf_state_file_default(struct conf *c)
{
	const char *dirs = getenv("STATE_DIRECTORY");
	const char *def = conf_key_find("daemon", "state_file")->def;
	struct buf path = {0};

	if (dirs == NULL || dirs[0] != '/')
		return;
	buf_append(&path, dirs, strcspn(dirs, ":"));
	buf_appendf(&path, "%s", strrchr(def, '/'));
	free(c->state_file);
	c->state_file = xstrdup(path.data);
	buf_free(&path);
}

void
conf_free(struct conf *c)
{
	for (size_t i = 0; i < c->nlisten; i++)
		free(c->listen[i]);
	free(c->listen);
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		if (k->type == CONF_STRING || k->type == CONF_CHOICE)
			free(*(char **)conf_field(c, k));
		if (k->type == CONF_LIST) {
			struct conf_list *l = conf_field(c, k);
			for (size_t j = 0; j < l->n; j++)
				free(l->items[j]);
			free(l->items);
			free(l->lines);
		}
	}
	for (size_t i = 0; i < c->ntokens; i++)
		free(c->tokens[i].name);
	free(c->tokens);
	memset(c, 0, sizeof *c);
}

void
conf_keep_fixed(struct conf *next, const struct conf *cur,
		void (*report)(const char *section, const char *name, void *arg), void *arg)
{
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		void *nf = conf_field(next, k);
		void *cf = conf_field((struct conf *)cur, k);
		bool same = true;

		if (k->reloadable)
			continue;
		switch (k->type) {
		case CONF_STRING:
		case CONF_CHOICE: {
			char **ns = nf, *const *cs = cf;
			same = (*ns == NULL && *cs == NULL) ||
			       (*ns != NULL && *cs != NULL && strcmp(*ns, *cs) == 0);
			if (!same) {
				free(*ns);
				*ns = *cs != NULL ? xstrdup(*cs) : NULL;
			}
			break;
		}
		case CONF_LIST:
			break; /* every list is reloadable */
		case CONF_LISTEN:
			same = next->nlisten == cur->nlisten;
			for (size_t j = 0; same && j < cur->nlisten; j++)
				same = strcmp(next->listen[j], cur->listen[j]) == 0;
			if (!same) {
				for (size_t j = 0; j < next->nlisten; j++)
					free(next->listen[j]);
				free(next->listen);
				next->listen = xcalloc(cur->nlisten, sizeof(char *));
				for (size_t j = 0; j < cur->nlisten; j++)
					next->listen[j] = xstrdup(cur->listen[j]);
				next->nlisten = cur->nlisten;
			}
			break;
		default:
			same = memcmp(nf, cf, k->width) == 0;
			if (!same)
				memcpy(nf, cf, k->width);
			break;
		}
		if (!same)
			report(k->section, k->name, arg);
	}
}

/* Keeps the first error by line (an unknown section is reported at its
 * header, found later than errors below it). Returns 0 for inih. */
static int
conf_fail(struct conf_parse *p, int line, const char *fmt, ...)
{
	if (p->err_line != 0 && p->err_line <= line)
		return 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
	p->err_line = line;
	return 0;
}

/* Follows inih's own reading of a line (ini.c, ini_parse_stream) just far
 * enough to know whether it is a continuation or a [section] header. */
static void
conf_classify(struct conf_parse *p, const char *line)
{
	const char *s = line;
	if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	p->continuation = false;
	if (*s == '\0' || *s == ';' || *s == '#')
		return;
	if (p->have_key && s > line) {
		p->continuation = true;
		return;
	}
	if (*s != '[')
		return;
	/* "]" closes it unless an inline comment (" ;") comes first. */
	bool was_space = false;
	for (const char *q = s + 1; *q != '\0'; q++) {
		if (*q == ']') {
			p->have_key = false;
			p->section_line = p->line;
			return;
		}
		if (was_space && *q == ';')
			return;
		was_space = isspace((unsigned char)*q);
	}
}

/* inih's fgets-like reader over our text, one whole line per call. */
static char *
conf_read_line(char *str, int num, void *stream)
{
	struct conf_parse *p = stream;
	if (p->pos >= p->len || num < 4)
		return NULL;
	const char *start = p->text + p->pos;
	const char *nl = memchr(start, '\n', p->len - p->pos);
	size_t len = nl != NULL ? (size_t)(nl - start) + 1 : p->len - p->pos;
	size_t content = len;
	p->pos += len;
	p->line++;
	if (content > 0 && start[content - 1] == '\n')
		content--;
	if (content > 0 && start[content - 1] == '\r')
		content--;
	/* inih needs room for "\r\n\0" after the text. */
	if (content > (size_t)num - 3) {
		conf_fail(p, p->line, "line is longer than %d characters", num - 3);
		p->continuation = false;
		str[0] = '\n';
		str[1] = '\0';
		return str;
	}
	memcpy(str, start, len);
	str[len] = '\0';
	conf_classify(p, str);
	return str;
}

static int
conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct conf_parse *p = user;
	bool continuation = p->continuation;
	if (!continuation)
		p->have_key = name[0] != '\0';

	if (section[0] == '\0')
		return conf_fail(p, p->line,
				 "%s: key before any section ([daemon], [mysql], [leases] or "
				 "[statements])",
				 name);
	if (!conf_section_known(section))
		return conf_fail(p, p->section_line,
				 "unknown section [%s] (sections are daemon, mysql, leases, "
				 "statements, metrics, tls, access and tokens)",
				 section);
	if (strcmp(section, "tokens") == 0) {
		char twhy[200];
		if (continuation)
			return conf_fail(p, p->line, "[tokens] %s: remove the indentation", name);
		if (!conf_parse_token(p->c, name, value, twhy, sizeof twhy))
			return conf_fail(p, p->line, "[tokens] %s: %s", name, twhy);
		return 1;
	}
	const struct conf_key *k = conf_key_find(section, name);
	if (k == NULL)
		return conf_fail(p, p->line, "[%s] %s: unknown key", section, name);
	size_t i = (size_t)(k - conf_keys);
	bool repeatable = k->type == CONF_LISTEN || k->type == CONF_LIST;
	if (continuation && !repeatable)
		return conf_fail(p, p->line,
				 "[%s] %s: this indented line continues the value of %s, "
				 "which takes one line (remove the indentation)",
				 section, name, name);
	if (p->seen[i] != 0 && !repeatable)
		return conf_fail(p, p->line, "[%s] %s: given twice (first on line %d)", section,
				 name, p->seen[i]);
	p->seen[i] = p->line;
	if (value[0] == '\0')
		return conf_fail(p, p->line, "[%s] %s: must not be empty", section, name);
	char why[200];
	if (!conf_parsers[k->type](k, value, p->c, why, sizeof why))
		return conf_fail(p, p->line, "[%s] %s: %s", section, name, why);
	if (k->type == CONF_LIST) {
		struct conf_list *l = conf_field(p->c, k);
		l->lines[l->n - 1] = p->line;
	}
	return 1;
}

/* Why inih refused a line it did not hand to us. */
static const char *
conf_syntax_reason(const char *text, size_t len, int line)
{
	size_t pos = 0;
	for (int n = 1; n < line && pos < len; n++) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		pos = nl != NULL ? (size_t)(nl - text) + 1 : len;
	}
	while (pos < len && isspace((unsigned char)text[pos]) && text[pos] != '\n')
		pos++;
	if (pos < len && text[pos] == '[')
		return "a section header needs a closing ']'";
	return "expected \"name = value\", a [section] or a comment";
}

/* Modes under which the statement firewall and the parameter escaping
 * would read quotes differently from the server: a bypass. ANSI, DB2,
 * MAXDB, MSSQL, ORACLE and POSTGRESQL include ANSI_QUOTES. */
static const char *const conf_unsafe_modes[] = {
	"NO_BACKSLASH_ESCAPES", "ANSI_QUOTES", "ANSI", "DB2", "MAXDB", "MSSQL", "ORACLE",
	"POSTGRESQL", NULL,
};

static int
conf_check_sql_mode(const char *mode, char *why, size_t whysize)
{
	const char *p = mode;

	for (const char *q = mode; *q != '\0'; q++) {
		if (!(isupper((unsigned char)*q) || isdigit((unsigned char)*q) || *q == '_' ||
		      *q == ',')) {
			snprintf(why, whysize,
				 "[mysql] sql_mode: only mode names (A-Z, 0-9, _) separated by commas");
			return -1;
		}
	}
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		for (size_t i = 0; conf_unsafe_modes[i] != NULL; i++) {
			if (strlen(conf_unsafe_modes[i]) == n && strncmp(p, conf_unsafe_modes[i], n) == 0) {
				snprintf(why, whysize,
					 "[mysql] sql_mode: %s changes how quotes are read, which the "
					 "statement firewall relies on",
					 conf_unsafe_modes[i]);
				return -1;
			}
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* The line a key was set on, 0 when it kept its default. */
static int
conf_key_line(const int *seen, const char *section, const char *name)
{
	const struct conf_key *k = conf_key_find(section, name);
	return k != NULL ? seen[k - conf_keys] : 0;
}

/* Contradictions between keys, each valid on its own. *line is set to the
 * line of the key to change (0 when no single line is to blame). */
static int
conf_check(const struct conf *c, const int *seen, int *line, char *why, size_t whysize)
{
	*line = 0;
	if (c->sql_mode != NULL && conf_check_sql_mode(c->sql_mode, why, whysize) != 0) {
		*line = conf_key_line(seen, "mysql", "sql_mode");
		return -1;
	}
	if (c->nlisten == 1)
		*line = conf_key_line(seen, "daemon", "listen");
	/* Whoever reaches a TCP port can lock tables: a TCP listener must
	 * authenticate its clients, by token or by client certificate. */
	for (size_t i = 0; i < c->nlisten; i++) {
		bool tls = strncmp(c->listen[i], "tls:", 4) == 0;
		if (tls && (c->tls_cert == NULL || c->tls_key == NULL)) {
			snprintf(why, whysize, "[daemon] listen %s needs [tls] cert and key",
				 c->listen[i]);
			return -1;
		}
		if ((tls || strncmp(c->listen[i], "tcp:", 4) == 0) && c->ntokens == 0 &&
		    !(tls && c->tls_client_ca != NULL)) {
			snprintf(why, whysize,
				 "[daemon] listen %s: a TCP listener needs authentication: "
				 "configure [tokens]%s",
				 c->listen[i],
				 tls ? " or [tls] client_ca" : " (or use tls: with [tls] client_ca)");
			return -1;
		}
	}
	*line = 0;
	if (c->default_ttl_ms > c->max_ttl_ms) {
		snprintf(why, whysize, "[leases] default_ttl_ms (%lld) exceeds max_ttl_ms (%lld)",
			 (long long)c->default_ttl_ms, (long long)c->max_ttl_ms);
		*line = conf_key_line(seen, "leases", "default_ttl_ms");
		if (*line == 0)
			*line = conf_key_line(seen, "leases", "max_ttl_ms");
		return -1;
	}
	return 0;
}

static int
conf_parse_text(const char *name, const char *text, size_t len, struct conf *c, char *err,
		size_t errsize)
{
	struct conf_parse *p = xcalloc(1, sizeof *p);
	p->c = c;
	p->text = text;
	p->len = len;
	conf_defaults(c);

	int rc = 0;
	int ini_line = ini_parse_stream(conf_read_line, p, conf_handler, p);
	if (ini_line < 0 && p->err_line == 0) {
		snprintf(err, errsize, "%s: cannot parse (inih error %d)", name, ini_line);
		rc = -1;
	} else if (ini_line > 0 && (p->err_line == 0 || ini_line < p->err_line)) {
		snprintf(err, errsize, "%s:%d: %s", name, ini_line,
			 conf_syntax_reason(text, len, ini_line));
		rc = -1;
	} else if (p->err_line != 0) {
		snprintf(err, errsize, "%s:%d: %s", name, p->err_line, p->err);
		rc = -1;
	} else {
		char why[256];
		int line;
		if (conf_check(c, p->seen, &line, why, sizeof why) != 0) {
			if (line > 0)
				snprintf(err, errsize, "%s:%d: %s", name, line, why);
			else
				snprintf(err, errsize, "%s: %s", name, why);
			rc = -1;
		}
	}
	free(p);
	if (rc != 0)
		conf_free(c);
	return rc;
}

int
conf_load_string(const char *name, const char *text, struct conf *c, char *err, size_t errsize)
{
	return conf_parse_text(name, text, strlen(text), c, err, errsize);
}

int
conf_load(const char *path, struct conf *c, char *err, size_t errsize)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errsize, "%s: cannot open: %s", path, strerror(errno));
		memset(c, 0, sizeof *c);
		return -1;
	}
	struct buf text = {0};
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&text, chunk, n);
	int read_errno = ferror(f) ? errno : 0;
	fclose(f);
	if (read_errno != 0) {
		snprintf(err, errsize, "%s: cannot read: %s", path, strerror(read_errno));
		buf_free(&text);
		memset(c, 0, sizeof *c);
		return -1;
	}
	const char *nul = text.len > 0 ? memchr(text.data, '\0', text.len) : NULL;
	if (nul != NULL) {
		int line = 1;
		for (const char *q = text.data; q < nul; q++)
			line += *q == '\n';
		snprintf(err, errsize, "%s:%d: contains a NUL byte", path, line);
		buf_free(&text);
		memset(c, 0, sizeof *c);
		return -1;
	}
	int rc = conf_parse_text(path, text.len > 0 ? text.data : "", text.len, c, err, errsize);
	buf_free(&text);
	return rc;
}
