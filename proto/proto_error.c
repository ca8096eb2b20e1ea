/* Names of the protocol's error codes. */
#include "proto/proto_error.h"

#include <string.h>

static const char *const proto_error_names[PROTO_ERR__COUNT] = {
	[PROTO_OK] = "ok",
	[PROTO_ERR_BAD_REQUEST] = "bad_request",
	[PROTO_ERR_REQUEST_TOO_LARGE] = "request_too_large",
	[PROTO_ERR_INVALID_TABLE] = "invalid_table",
	[PROTO_ERR_UNKNOWN_TABLE] = "unknown_table",
	[PROTO_ERR_LEASE_HELD] = "lease_held",
	[PROTO_ERR_NO_LEASE] = "no_lease",
	[PROTO_ERR_LOCK_TIMEOUT] = "lock_timeout",
	[PROTO_ERR_TOO_MANY_WAITERS] = "too_many_waiters",
	[PROTO_ERR_UNAVAILABLE] = "unavailable",
	[PROTO_ERR_MYSQL] = "mysql",
	[PROTO_ERR_COMMIT_UNKNOWN] = "commit_unknown",
	[PROTO_ERR_INTERNAL] = "internal",
	[PROTO_ERR_STATEMENT_NOT_ALLOWED] = "statement_not_allowed",
	[PROTO_ERR_RESULT_TOO_LARGE] = "result_too_large",
	[PROTO_ERR_STATEMENT_TIMEOUT] = "statement_timeout",
	[PROTO_ERR_BAD_PARAMS] = "bad_params",
	[PROTO_ERR_LEASE_LOST] = "lease_lost",
	[PROTO_ERR_LEASE_EXPIRED] = "lease_expired",
	[PROTO_ERR_LEASE_REVOKED] = "lease_revoked",
	[PROTO_ERR_UNAUTHENTICATED] = "unauthenticated",
	[PROTO_ERR_FORBIDDEN] = "forbidden",
	[PROTO_ERR_TOO_MANY_CLIENTS] = "too_many_clients",
	[PROTO_ERR_SHUTTING_DOWN] = "shutting_down",
};

const char *
proto_error_name(enum proto_error code)
{
	if ((unsigned)code >= PROTO_ERR__COUNT)
		return "internal";
	return proto_error_names[code];
}

enum proto_error
proto_error_from_name(const char *name)
{
	for (int i = 0; i < PROTO_ERR__COUNT; i++)
		if (strcmp(proto_error_names[i], name) == 0)
			return (enum proto_error)i;
	return PROTO_ERR__COUNT;
}
