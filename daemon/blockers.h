/* Outside blockers: who, outside the pool, holds up a lease in `locking`. */
#ifndef TABLELOCK_BLOCKERS_H
#define TABLELOCK_BLOCKERS_H

#include <jansson.h>
#include <stdbool.h>

struct lease;

/* Must MySQL be asked before a status answer: is some lease in `locking`
 * while the last answer is older than a second, or does not cover its
 * tables? */
bool blockers_stale(void);
/* Asks MySQL (one query on the control session; several askers share it)
 * and calls ready(arg) once the answer is in, or MySQL did not answer
 * within a second: never from inside this call. */
void blockers_refresh(void (*ready)(void *arg), void *arg);
/* arg (a closing client) no longer wants its ready call. */
void blockers_forget(void *arg);
/* For a lease in `locking`, from the last answer: adds "blocked_by" (an
 * array, maybe empty) to its status entry o, or "blockers_unavailable"
 * (why, and what would enable it). */
void blockers_annotate(json_t *o, const struct lease *l);
void blockers_free(void);

#endif
