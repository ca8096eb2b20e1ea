/* Configuration: the INI file's keys, defaults and validation. */
#ifndef TABLELOCK_CONF_H
#define TABLELOCK_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A repeatable key's values, with the line each came from. */
struct conf_list {
	char **items;
	int *lines;
	size_t n;
};

/* [tokens]: name = SHA-256 of the token, in hex (never the token). */
struct conf_token {
	char *name;
	unsigned char sha256[32];
};

/* Pure apart from reading the file: no logging, no side effects. Every key
 * is an entry in conf.c's key table (section, name, type, default, limits,
 * whether it can change on reload); the struct below holds the values. */
struct conf {
	/* [daemon] */
	char **listen;			/* "unix:/path" or "tcp:host:port"; repeatable */
	size_t nlisten;
	unsigned int socket_mode;	/* octal in the file, default 0660 */
	size_t max_request_bytes;	/* default 1 MiB */
	unsigned int max_clients;	/* default 10000 */
	char *state_file;		/* lease id high-water mark (leaseid.c) */
	char *log_level;		/* error, warn, info, debug; default info */
	int64_t drain_timeout_ms;	/* SIGTERM waits this long for held leases */
	int64_t request_timeout_ms;	/* an incomplete request line may take this long */
	int64_t idle_timeout_ms;	/* a connection without lease idle this long closes; 0 = never */
	size_t max_output_bytes;	/* answers queued to one slow reader before closing it */
	char *socket_owner;		/* user owning the unix sockets; NULL = the daemon's */
	char *socket_group;		/* their group; NULL = the daemon's */
	unsigned int max_connections_per_identity; /* 0 = no cap */
	unsigned int max_waiting_per_identity;	/* queued acquires per identity; 0 = no cap */

	/* [mysql] */
	char *host;			/* NULL = local socket */
	unsigned int port;		/* default 3306 */
	char *socket;
	char *user;
	char *password;			/* never logged */
	char *database;			/* default database for unqualified names */
	char *option_file;		/* my.cnf read via MYSQL_READ_DEFAULT_FILE */
	char *option_group;		/* its group, default "client" */
	unsigned int pool_size;		/* default 8 */
	int64_t connect_timeout_ms;	/* default 5000 */
	char *sql_mode;			/* set on every session; see conf.c */

	/* [leases] */
	int64_t default_wait_ms;	/* default 5000 */
	int64_t default_ttl_ms;		/* default 30000 */
	int64_t max_ttl_ms;		/* default 600000 */
	unsigned int max_waiters;	/* default 10000 */

	/* [statements] */
	uint64_t max_rows;		/* default 100000 */
	uint64_t max_result_bytes;	/* default 16 MiB */
	int64_t timeout_ms;		/* default 30000; 0 = none */

	/* [metrics] */
	char *metrics_listen;		/* host:port of the HTTP endpoint; NULL = off */

	/* [tls]: for tls: listeners */
	char *tls_cert;
	char *tls_key;
	char *tls_client_ca;		/* set: clients must present a certificate */

	/* [access]: allow = IDENTITY [read PATTERNS] [write PATTERNS] [admin] */
	struct conf_list access_allow;

	/* [tokens] */
	struct conf_token *tokens;
	size_t ntokens;
};

/* Fills every key with its default (listen: none). */
void conf_defaults(struct conf *c);

/* Reads path over the defaults into *c. Returns 0, or -1 with
 * "path:line: reason" (or "path: reason") in err. Unknown sections and
 * keys, bad values and cross-key contradictions (default_ttl_ms above
 * max_ttl_ms, …) are errors. On error *c is left freed. */
int conf_load(const char *path, struct conf *c, char *err, size_t errsize);

/* Same, from a string (for tests); name is used in messages. */
int conf_load_string(const char *name, const char *text, struct conf *c, char *err, size_t errsize);

void conf_free(struct conf *c);

/* For a reload: for every key that cannot change while running and differs
 * between cur and next, calls report(section, name) and puts cur's value
 * back into next, so next can replace cur as a whole. */
void conf_keep_fixed(struct conf *next, const struct conf *cur,
		     void (*report)(const char *section, const char *name, void *arg), void *arg);

#endif
