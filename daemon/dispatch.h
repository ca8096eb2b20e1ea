/* Dispatch: a request line to the handler of its op. */
#ifndef TABLELOCK_DISPATCH_H
#define TABLELOCK_DISPATCH_H

#include <stddef.h>

#include "proto/proto_error.h"
#include "proto/proto_request.h"

struct client;

/* A request line, parsed: the request, or why it is not one. */
struct dispatch_entry {
	struct proto_request req;
	enum proto_error code;	/* PROTO_OK, or the answer's error code */
	char msg[256];
};

/* Parses one line into e (free it with proto_request_free(&e->req)). */
void dispatch_parse(const char *line, size_t len, struct dispatch_entry *e);
/* Runs e as the request in flight and frees its request. The client is
 * BUSY; the handler answers now or later through client_respond(). */
void dispatch_run(struct client *c, struct dispatch_entry *e);

#endif
