/* Status: every lease, the pool and the totals, as one JSON answer. */
#ifndef TABLELOCK_STATUS_H
#define TABLELOCK_STATUS_H

#include <jansson.h>
#include <stdbool.h>

struct client;

/* Fills resp (an ok answer) with "leases", "pool" and "totals". The admin
 * (and each client for its own lease) sees everything; others see leases
 * only as tables, mode, state and age. */
void status_fill(json_t *resp, struct client *asker);

#endif
