/* Lock manager: who holds which tables, who waits, and what may be granted. */
#ifndef TABLELOCK_LOCKMGR_H
#define TABLELOCK_LOCKMGR_H

#include <stdbool.h>
#include <stddef.h>

/* Pure: no I/O, no clock, no libevent. Semantics:
 * - READ shares with READ; WRITE excludes everything on that table.
 * - A request names several tables and is granted atomically (all or none).
 * - FIFO without overtaking: a waiting request is granted only when it is
 *   compatible with every granted request AND with every request that
 *   waits ahead of it in the queue (so writers do not starve, and a later
 *   request never jumps ahead of an earlier one it conflicts with; one that
 *   conflicts with nobody ahead may be granted past them).
 * - Table keys are compared as exact byte strings ("db.name"). */

enum lockmgr_mode { LOCKMGR_READ, LOCKMGR_WRITE };

struct lockmgr_item {
	const char *table; /* copied by the lock manager */
	enum lockmgr_mode mode;
};

enum lockmgr_result {
	LOCKMGR_GRANTED,		/* held now */
	LOCKMGR_QUEUED,			/* waiting; the grant callback fires later */
	LOCKMGR_WOULD_BLOCK,		/* try_only and not grantable now: nothing queued */
	LOCKMGR_TOO_MANY_WAITERS	/* the queue is full: nothing queued */
};

struct lockmgr;
struct lockmgr_req;

/* Called once for each queued request when it becomes granted, with the
 * owner given to lockmgr_acquire. It runs after the lock manager's state is
 * consistent, and may call lockmgr_acquire and lockmgr_release (also on
 * the request being granted). */
typedef void lockmgr_grant_fn(struct lockmgr_req *req, void *owner, void *arg);

/* max_waiters 0 means unlimited. */
struct lockmgr *lockmgr_new(size_t max_waiters, lockmgr_grant_fn *grant, void *arg);
/* Frees every request still held or queued (no callbacks). */
void lockmgr_free(struct lockmgr *lm);
void lockmgr_set_max_waiters(struct lockmgr *lm, size_t max_waiters);

/* Requests all items at once. Duplicate tables in items are merged (WRITE
 * wins). n must be at least 1. *out is set for GRANTED and QUEUED; the
 * request then belongs to the lock manager until lockmgr_release. */
enum lockmgr_result lockmgr_acquire(struct lockmgr *lm, const struct lockmgr_item *items,
				    size_t n, bool try_only, void *owner,
				    struct lockmgr_req **out);

/* Ends a request, granted or still waiting, and grants whatever may now be
 * granted (calling the grant callback for each). req is freed. */
void lockmgr_release(struct lockmgr *lm, struct lockmgr_req *req);

bool lockmgr_is_granted(const struct lockmgr_req *req);
size_t lockmgr_count_waiting(const struct lockmgr *lm);
size_t lockmgr_count_granted(const struct lockmgr *lm);

/* Visits waiting requests in queue order (first = next in line). The
 * visitor must not call lockmgr_acquire/lockmgr_release. */
typedef void lockmgr_visit_fn(struct lockmgr_req *req, void *owner, void *arg);
void lockmgr_foreach_waiting(struct lockmgr *lm, lockmgr_visit_fn *fn, void *arg);

#endif
