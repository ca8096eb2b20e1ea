/* Dispatch: a request line to the handler of its op. */
#include "daemon/dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/tablelock.h" /* TABLELOCK_VERSION, TABLELOCK_PROTOCOL: one source for all */
#include "daemon/blockers.h"
#include "daemon/client.h"
#include "daemon/lease.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/server.h"
#include "daemon/status.h"
#include "proto/proto_request.h"
#include "proto/proto_response.h"
#include "util/xmalloc.h"

typedef void dispatch_fn(struct client *c, struct proto_request *req);

static dispatch_fn dispatch_ping, dispatch_hello, dispatch_lease_start, dispatch_on_lease,
	dispatch_status, dispatch_revoke;

/* One row per op: the handler, and whether it needs the client's lease. */
static dispatch_fn *const dispatch_table[PROTO_OP__COUNT] = {
	[PROTO_OP_PING] = dispatch_ping,
	[PROTO_OP_HELLO] = dispatch_hello,
	[PROTO_OP_ACQUIRE] = dispatch_lease_start,
	[PROTO_OP_TRANSACT] = dispatch_lease_start,
	[PROTO_OP_QUERY] = dispatch_on_lease,
	[PROTO_OP_COMMIT] = dispatch_on_lease,
	[PROTO_OP_ROLLBACK] = dispatch_on_lease,
	[PROTO_OP_RENEW] = dispatch_on_lease,
	[PROTO_OP_STATUS] = dispatch_status,
	[PROTO_OP_REVOKE] = dispatch_revoke,
};

void
dispatch_parse(const char *line, size_t len, struct dispatch_entry *e)
{
	memset(&e->req, 0, sizeof(e->req));
	e->code = proto_request_parse(line, len, &server.parse_options, &e->req, e->msg,
				      sizeof(e->msg));
}

void
dispatch_run(struct client *c, struct dispatch_entry *e)
{
	struct proto_request *req = &e->req;

	json_decref(c->request_id);
	c->request_id = req->id != NULL ? json_incref(req->id) : NULL;
	if (e->code != PROTO_OK) {
		metrics.bad_requests++;
		log_debug("client %llu: %s: %s", (unsigned long long)c->id,
			  proto_error_name(e->code), e->msg);
		client_respond_error(c, e->code, "%s", e->msg);
	} else if (!c->identity.authenticated && req->op != PROTO_OP_HELLO &&
		   req->op != PROTO_OP_PING) {
		metrics.requests[req->op]++;
		client_respond_error(c, PROTO_ERR_UNAUTHENTICATED,
				     "authenticate first: {\"op\":\"hello\",\"token\":\"…\"}");
	} else {
		metrics.requests[req->op]++;
		dispatch_table[req->op](c, req);
	}
	proto_request_free(req);
}

static void
dispatch_ping(struct client *c, struct proto_request *req)
{
	(void)req;
	client_respond(c, client_ok(c));
}

static void
dispatch_hello(struct client *c, struct proto_request *req)
{
	json_t *resp;

	if (req->token != NULL && !client_authenticate(c, req->token)) {
		client_delay_respond(c, client_error(c, PROTO_ERR_UNAUTHENTICATED,
						     "authentication failed"));
		return;
	}
	if (req->client != NULL) {
		free(c->name);
		c->name = xstrdup(req->client);
	}
	resp = client_ok(c);
	json_object_set_new(resp, "identity", json_string(c->identity.label));
	json_object_set_new(resp, "server", json_string("tablelockd"));
	json_object_set_new(resp, "version", json_string(TABLELOCK_VERSION));
	json_object_set_new(resp, "protocol", json_integer(TABLELOCK_PROTOCOL));
	client_respond(c, resp);
}

static void
dispatch_lease_start(struct client *c, struct proto_request *req)
{
	lease_start(c, req);
}

static void
dispatch_on_lease(struct client *c, struct proto_request *req)
{
	lease_request(c, req);
}

/* A status answer, once what it shows is known. */
static void
dispatch_status_ready(void *arg)
{
	struct client *c = arg;
	json_t *resp = client_ok(c);

	status_fill(resp, c);
	client_respond(c, resp);
}

static void
dispatch_status(struct client *c, struct proto_request *req)
{
	(void)req;
	/* A lease in locking: who blocks it is asked of MySQL first (at most
	 * once a second, shared by every status meanwhile). */
	if (blockers_stale())
		blockers_refresh(dispatch_status_ready, c);
	else
		dispatch_status_ready(c);
}

static void
dispatch_revoke(struct client *c, struct proto_request *req)
{
	struct lease *l;
	json_t *resp;

	if (!client_is_admin(c)) {
		client_respond_error(c, PROTO_ERR_FORBIDDEN, "revoke needs the admin right (%s has not)",
				     c->identity.label);
		return;
	}
	l = lease_find((uint64_t)req->lease);
	if (l == NULL || lease_get_phase(l) == LEASE_PHASE_ENDING) {
		client_respond_error(c, PROTO_ERR_NO_LEASE, "no live lease %lld",
				     (long long)req->lease);
		return;
	}
	log_info("lease %llu: revoked by %s", (unsigned long long)req->lease, client_label(c));
	/* End first: the lease may be the asker's own (HELD, as the asker is
	 * not busy), which gets its event before this answer. */
	lease_end(l, LEASE_END_REVOKED);
	resp = client_ok(c);
	json_object_set_new(resp, "lease", json_integer(req->lease));
	client_respond(c, resp);
}
