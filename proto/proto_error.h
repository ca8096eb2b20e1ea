/* Error codes of the wire protocol: one table, shared by daemon and clients. */
#ifndef TABLELOCK_PROTO_ERROR_H
#define TABLELOCK_PROTO_ERROR_H

/* Keep in step with proto_error.c's name table and proto/PROTOCOL.md. */
enum proto_error {
	PROTO_OK = 0,
	PROTO_ERR_BAD_REQUEST,		/* malformed, unknown op, bad field; connection stays */
	PROTO_ERR_REQUEST_TOO_LARGE,	/* line over max_request_bytes; connection closes */
	PROTO_ERR_INVALID_TABLE,	/* a table or alias name fails validation */
	PROTO_ERR_UNKNOWN_TABLE,	/* MySQL says the table does not exist */
	PROTO_ERR_LEASE_HELD,		/* acquire while this connection holds a lease */
	PROTO_ERR_NO_LEASE,		/* a lease op without a lease */
	PROTO_ERR_LOCK_TIMEOUT,		/* wait_ms ran out, in our queue or in MySQL */
	PROTO_ERR_TOO_MANY_WAITERS,	/* max_waiters reached */
	PROTO_ERR_UNAVAILABLE,		/* MySQL unreachable */
	PROTO_ERR_MYSQL,		/* MySQL returned an error (mysql_errno, sqlstate) */
	PROTO_ERR_COMMIT_UNKNOWN,	/* session died during COMMIT: outcome unknown */
	PROTO_ERR_INTERNAL,
	PROTO_ERR_STATEMENT_NOT_ALLOWED, /* refused by the statement firewall */
	PROTO_ERR_RESULT_TOO_LARGE,	/* over max_rows or max_result_bytes */
	PROTO_ERR_STATEMENT_TIMEOUT,	/* statement ran over timeout_ms */
	PROTO_ERR_BAD_PARAMS,		/* params do not match the placeholders */
	PROTO_ERR_LEASE_LOST,		/* the lease's MySQL session died */
	PROTO_ERR_LEASE_EXPIRED,	/* the lease's TTL ran out under this request */
	PROTO_ERR_LEASE_REVOKED,	/* an admin revoked the lease under this request */
	PROTO_ERR_UNAUTHENTICATED,	/* TCP connection has not authenticated */
	PROTO_ERR_FORBIDDEN,		/* access rules refuse this */
	PROTO_ERR_TOO_MANY_CLIENTS,	/* max_clients reached; connection closes */
	PROTO_ERR_SHUTTING_DOWN,	/* the daemon is draining */
	PROTO_ERR__COUNT
};

/* "bad_request", …; never NULL for a valid code. */
const char *proto_error_name(enum proto_error code);
/* The code for a name, or PROTO_ERR__COUNT when unknown. */
enum proto_error proto_error_from_name(const char *name);

#endif
