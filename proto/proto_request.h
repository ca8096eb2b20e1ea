/* Request parsing and validation: one JSON line into a typed request. */
#ifndef TABLELOCK_PROTO_REQUEST_H
#define TABLELOCK_PROTO_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto_error.h"
#include "proto/proto_table.h"

enum proto_op {
	PROTO_OP_PING,
	PROTO_OP_HELLO,
	PROTO_OP_ACQUIRE,
	PROTO_OP_QUERY,
	PROTO_OP_COMMIT,
	PROTO_OP_ROLLBACK,
	PROTO_OP_RENEW,
	PROTO_OP_STATUS,
	PROTO_OP_TRANSACT,
	PROTO_OP_REVOKE,
	PROTO_OP__COUNT
};

/* "ping", "hello", …; proto_op_from_name returns PROTO_OP__COUNT if unknown. */
const char *proto_op_name(enum proto_op op);
enum proto_op proto_op_from_name(const char *name);

/* One statement: SQL text and its parameters (a JSON array, or NULL when
 * the request had no "params"). Both point into proto_request.root. */
struct proto_statement {
	const char *sql;
	size_t sql_len;
	json_t *params;
};

/* Caps applied while parsing. A zero cap means "no cap". */
struct proto_parse_options {
	const char *default_db; /* database for names without one; may be NULL */
	size_t max_depth;	/* JSON nesting depth */
	size_t max_tables;	/* entries per lease, after merging */
	size_t max_statements;	/* statements per transact */
	size_t max_params;	/* params per statement */
	size_t max_sql_bytes;	/* SQL length per statement */
};

/* A parsed request. Absent numeric fields are -1. Strings and JSON values
 * are borrowed from root and live as long as the request. */
struct proto_request {
	json_t *root;		/* the whole object (owned) */
	json_t *id;		/* "id" if present (borrowed), else NULL */
	enum proto_op op;

	const char *client;	/* hello: "client" */
	const char *token;	/* hello: "token" */

	/* acquire, transact: merged entries (duplicates in one list merged;
	 * an entry in both lists is bad_request). Owned. */
	struct proto_table *tables;
	size_t ntables;
	int64_t wait_ms;	/* acquire, transact */
	int64_t ttl_ms;		/* acquire, transact, renew */

	struct proto_statement query;	/* query */
	struct proto_statement *statements; /* transact; acquire, commit: optional (owned array) */
	size_t nstatements;

	int64_t lease;		/* revoke: the lease id */
};

/* Parses one request line (without its '\n'). Returns PROTO_OK and fills
 * req, or an error code with a message naming the offending field in msg.
 * On error req->id is still set when the line was a JSON object with an
 * "id", so the error can echo it; call proto_request_free() either way. */
enum proto_error proto_request_parse(const char *line, size_t len,
				     const struct proto_parse_options *opts,
				     struct proto_request *req, char *msg, size_t msgsize);
void proto_request_free(struct proto_request *req);

#endif
