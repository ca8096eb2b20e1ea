/* Status: every lease, the pool and the totals, as one JSON answer. */
#ifndef TABLELOCK_STATUS_H
#define TABLELOCK_STATUS_H

#include <jansson.h>
#include <stdbool.h>

struct client;

/* Fills resp (an ok answer) with "leases", "pool" and "totals". */
void status_fill(json_t *resp, const struct client *asker);
/* May this client see everything and revoke? */
bool status_is_admin(const struct client *c);

#endif
