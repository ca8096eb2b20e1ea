/* Dispatch: a request line to the handler of its op. */
#ifndef TABLELOCK_DISPATCH_H
#define TABLELOCK_DISPATCH_H

#include <stddef.h>

struct client;

/* Parses one request line from c and runs it. The client is BUSY; the
 * handler answers now or later through client_respond(). */
void dispatch_line(struct client *c, const char *line, size_t len);

#endif
