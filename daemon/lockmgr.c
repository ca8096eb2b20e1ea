/* Lock manager: table read/write locks granted in FIFO order without overtaking. */
#include "daemon/lockmgr.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "util/xmalloc.h"

/*
 * How it works, and what it costs (k = tables named by one request).
 *
 * Every table anybody holds or waits for has a struct lockmgr_table in a
 * chained hash table: its granted state (reader count, writer flag) and the
 * queue of waiting entries on it, in arrival order. A request carries one
 * entry per table (duplicates merged), all in one allocation, and an
 * arrival number (seq). A request's state is the list it lives on:
 * waiting, granted-but-not-yet-told (notify) or granted. Every list is a
 * <sys/queue.h> one, as in the rest of the daemon.
 *
 * A waiting request may be granted iff, on each of its tables, it is
 * compatible with the granted state and no earlier waiting entry on that
 * table conflicts with it. Since queues are in arrival order, "no earlier
 * conflicting entry" is "I am the head" for a WRITE entry and "no WRITE is
 * ahead of me" for a READ entry; the table keeps a pointer to its first
 * waiting WRITE so that test is O(1). Only the head run of a queue (a WRITE
 * head, or the READs before the first WRITE) can ever be grantable.
 *
 * Granting a waiting request never makes another one grantable (it leaves
 * the queue but now blocks the same requests as a holder), and adding a
 * waiter never does either. Only a release can, and only for requests
 * waiting on the released request's tables, at the head run of those
 * queues. So a release looks at those head runs once, in arrival order,
 * and needs no second pass.
 *
 * Costs, expected (hashing), with c = head-run entries examined:
 *   acquire: O(k) (key hashing and merging duplicates included).
 *   release: O(k + sum of k over the c candidates), plus the first-WRITE
 *     pointer's advance, which is amortised O(1) per entry (it only moves
 *     toward the tail, so it steps over each READ entry at most once).
 *   With single-table requests every candidate examined is granted except
 *   at most one WRITE head, so a release costs O(1 + grants): draining
 *   10,000 waiters on one table is linear. The only re-examination is of
 *   multi-table READ requests at the head of a queue that stay blocked on
 *   another table; they are looked at again on each release there.
 *   Memory: one allocation per request, about 40 bytes plus 40 per table;
 *   one small struct per table in use, freed when nobody holds or waits.
 *
 * Grant callbacks run only after the state is consistent: granted requests
 * are moved to the notify list, and one non-reentrant loop pops each off
 * (into the granted list) before calling back. A callback may acquire and
 * release anything; a release of a request still on the notify list simply
 * removes it, so it is never called back after being freed, and grants
 * made by nested releases are delivered by the outer loop, in order.
 */

enum lockmgr_req_state {
	LOCKMGR_REQ_DETACHED,	/* on no list: being built or being freed */
	LOCKMGR_REQ_WAITING,	/* queued; entries sit in their tables' queues */
	LOCKMGR_REQ_NOTIFY,	/* granted; its grant callback has not run yet */
	LOCKMGR_REQ_GRANTED,	/* granted, and the owner has been told */
	LOCKMGR_REQ__COUNT
};

struct lockmgr_entry {
	struct lockmgr_req *req;
	struct lockmgr_table *table;
	TAILQ_ENTRY(lockmgr_entry) queue;	/* the table's queue, while waiting */
	enum lockmgr_mode mode;
};

struct lockmgr_req {
	TAILQ_ENTRY(lockmgr_req) list;	/* the list of its state */
	void *owner;
	uint64_t seq;			/* arrival order, decides who is ahead */
	enum lockmgr_req_state state;
	unsigned int nentries;
	struct lockmgr_entry entries[];
};

TAILQ_HEAD(lockmgr_entry_queue, lockmgr_entry);

struct lockmgr_list {
	TAILQ_HEAD(, lockmgr_req) reqs;
	size_t count;
};

struct lockmgr_table {
	SLIST_ENTRY(lockmgr_table) chain;	/* its hash bucket */
	uint64_t hash;
	size_t readers;			/* granted READ requests */
	bool writer;			/* a granted WRITE request */
	struct lockmgr_entry_queue queue; /* waiting entries, arrival order */
	struct lockmgr_entry *first_write; /* first WRITE in that queue, or NULL */
	uint64_t mark;			/* the acquire that last saw it, to merge duplicates */
	unsigned int mark_index;	/* its entry in that acquire's request */
	size_t keylen;
	char key[];
};

SLIST_HEAD(lockmgr_bucket, lockmgr_table);

struct lockmgr {
	struct lockmgr_bucket *buckets;
	size_t nbuckets;		/* a power of two */
	size_t ntables;
	struct lockmgr_list lists[LOCKMGR_REQ__COUNT]; /* DETACHED's stays empty */
	uint64_t seq;
	uint64_t mark;
	size_t max_waiters;
	lockmgr_grant_fn *grant;
	void *arg;
	bool notifying;			/* the callback loop is running */
	struct lockmgr_req **scratch;	/* release's candidates */
	size_t scratch_cap;
};

#define LOCKMGR_INITIAL_BUCKETS 64

static uint64_t lockmgr_hash(const char *key, size_t len);
static struct lockmgr_table *lockmgr_table_get(struct lockmgr *lm, const char *key);
static void lockmgr_table_grow(struct lockmgr *lm);
static void lockmgr_table_drop_if_idle(struct lockmgr *lm, struct lockmgr_table *t);
static void lockmgr_req_set_state(struct lockmgr *lm, struct lockmgr_req *req,
				  enum lockmgr_req_state state);
static void lockmgr_entry_enqueue(struct lockmgr_entry *e);
static void lockmgr_entry_dequeue(struct lockmgr_entry *e);
static bool lockmgr_entry_grantable(const struct lockmgr_entry *e, bool queued);
static bool lockmgr_req_grantable(const struct lockmgr_req *req, bool queued);
static void lockmgr_req_hold(struct lockmgr_req *req);
static void lockmgr_req_unhold(struct lockmgr_req *req);
static void lockmgr_collect(struct lockmgr *lm, struct lockmgr_table *t, size_t *n);
static int lockmgr_compare_seq(const void *a, const void *b);
static void lockmgr_notify(struct lockmgr *lm);

/* FNV-1a: short keys, no adversary worth a keyed hash (names are validated). */
static uint64_t
lockmgr_hash(const char *key, size_t len)
{
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ULL;
	}
	return h;
}

struct lockmgr *
lockmgr_new(size_t max_waiters, lockmgr_grant_fn *grant, void *arg)
{
	struct lockmgr *lm = xcalloc(1, sizeof *lm);
	lm->nbuckets = LOCKMGR_INITIAL_BUCKETS;
	lm->buckets = xcalloc(lm->nbuckets, sizeof *lm->buckets); /* all-zero: empty */
	for (int s = 0; s < LOCKMGR_REQ__COUNT; s++)
		TAILQ_INIT(&lm->lists[s].reqs);
	lm->max_waiters = max_waiters;
	lm->grant = grant;
	lm->arg = arg;
	return lm;
}

void
lockmgr_free(struct lockmgr *lm)
{
	if (lm == NULL)
		return;
	assert(!lm->notifying);
	for (int s = 0; s < LOCKMGR_REQ__COUNT; s++) {
		struct lockmgr_req *req;
		while ((req = TAILQ_FIRST(&lm->lists[s].reqs)) != NULL) {
			TAILQ_REMOVE(&lm->lists[s].reqs, req, list);
			free(req);
		}
	}
	for (size_t i = 0; i < lm->nbuckets; i++) {
		struct lockmgr_table *t;
		while ((t = SLIST_FIRST(&lm->buckets[i])) != NULL) {
			SLIST_REMOVE_HEAD(&lm->buckets[i], chain);
			free(t);
		}
	}
	free(lm->buckets);
	free(lm->scratch);
	free(lm);
}

void
lockmgr_set_max_waiters(struct lockmgr *lm, size_t max_waiters)
{
	lm->max_waiters = max_waiters;
}

/* Finds the table for key, creating an idle one if needed. */
static struct lockmgr_table *
lockmgr_table_get(struct lockmgr *lm, const char *key)
{
	size_t len = strlen(key);
	uint64_t h = lockmgr_hash(key, len);
	struct lockmgr_bucket *bucket = &lm->buckets[h & (lm->nbuckets - 1)];
	struct lockmgr_table *t;

	SLIST_FOREACH(t, bucket, chain)
	{
		if (t->hash == h && t->keylen == len && memcmp(t->key, key, len) == 0)
			return t;
	}
	t = xcalloc(1, sizeof *t + len + 1);
	memcpy(t->key, key, len);
	t->keylen = len;
	t->hash = h;
	TAILQ_INIT(&t->queue);
	SLIST_INSERT_HEAD(bucket, t, chain);
	if (++lm->ntables > lm->nbuckets)
		lockmgr_table_grow(lm);
	return t;
}

/* Doubles the bucket array, keeping chains short (load factor at most 1). */
static void
lockmgr_table_grow(struct lockmgr *lm)
{
	size_t n = lm->nbuckets * 2;
	struct lockmgr_bucket *b = xcalloc(n, sizeof *b); /* all-zero: empty */
	for (size_t i = 0; i < lm->nbuckets; i++) {
		struct lockmgr_table *t;
		while ((t = SLIST_FIRST(&lm->buckets[i])) != NULL) {
			SLIST_REMOVE_HEAD(&lm->buckets[i], chain);
			SLIST_INSERT_HEAD(&b[t->hash & (n - 1)], t, chain);
		}
	}
	free(lm->buckets);
	lm->buckets = b;
	lm->nbuckets = n;
}

/* Forgets a table nobody holds or waits for, so memory follows current use. */
static void
lockmgr_table_drop_if_idle(struct lockmgr *lm, struct lockmgr_table *t)
{
	if (t->readers > 0 || t->writer || !TAILQ_EMPTY(&t->queue))
		return;
	SLIST_REMOVE(&lm->buckets[t->hash & (lm->nbuckets - 1)], t, lockmgr_table, chain);
	lm->ntables--;
	free(t);
}

/* The only place a request changes state: it leaves one list for another. */
static void
lockmgr_req_set_state(struct lockmgr *lm, struct lockmgr_req *req, enum lockmgr_req_state state)
{
	if (req->state != LOCKMGR_REQ_DETACHED) {
		TAILQ_REMOVE(&lm->lists[req->state].reqs, req, list);
		lm->lists[req->state].count--;
	}
	req->state = state;
	if (state != LOCKMGR_REQ_DETACHED) {
		TAILQ_INSERT_TAIL(&lm->lists[state].reqs, req, list);
		lm->lists[state].count++;
	}
}

static void
lockmgr_entry_enqueue(struct lockmgr_entry *e)
{
	struct lockmgr_table *t = e->table;
	TAILQ_INSERT_TAIL(&t->queue, e, queue);
	if (e->mode == LOCKMGR_WRITE && t->first_write == NULL)
		t->first_write = e;
}

static void
lockmgr_entry_dequeue(struct lockmgr_entry *e)
{
	struct lockmgr_table *t = e->table;
	if (t->first_write == e) {
		/* Steps only over READs, which then stay ahead of it for good. */
		struct lockmgr_entry *w = TAILQ_NEXT(e, queue);
		while (w != NULL && w->mode != LOCKMGR_WRITE)
			w = TAILQ_NEXT(w, queue);
		t->first_write = w;
	}
	TAILQ_REMOVE(&t->queue, e, queue);
}

/* Compatible with the holders and with every earlier waiter on this table.
 * A request not yet queued counts as being at the tail. */
static bool
lockmgr_entry_grantable(const struct lockmgr_entry *e, bool queued)
{
	const struct lockmgr_table *t = e->table;
	if (t->writer)
		return false;
	if (e->mode == LOCKMGR_WRITE)
		return t->readers == 0 && TAILQ_FIRST(&t->queue) == (queued ? e : NULL);
	return t->first_write == NULL || t->first_write->req->seq > e->req->seq;
}

static bool
lockmgr_req_grantable(const struct lockmgr_req *req, bool queued)
{
	for (unsigned int i = 0; i < req->nentries; i++) {
		if (!lockmgr_entry_grantable(&req->entries[i], queued))
			return false;
	}
	return true;
}

static void
lockmgr_req_hold(struct lockmgr_req *req)
{
	for (unsigned int i = 0; i < req->nentries; i++) {
		struct lockmgr_entry *e = &req->entries[i];
		if (e->mode == LOCKMGR_WRITE)
			e->table->writer = true;
		else
			e->table->readers++;
	}
}

static void
lockmgr_req_unhold(struct lockmgr_req *req)
{
	for (unsigned int i = 0; i < req->nentries; i++) {
		struct lockmgr_entry *e = &req->entries[i];
		if (e->mode == LOCKMGR_WRITE)
			e->table->writer = false;
		else
			e->table->readers--;
	}
}

enum lockmgr_result
lockmgr_acquire(struct lockmgr *lm, const struct lockmgr_item *items, size_t n, bool try_only,
		void *owner, struct lockmgr_req **out)
{
	assert(n >= 1 && n <= UINT32_MAX);
	struct lockmgr_req *req = xmalloc(sizeof *req + n * sizeof req->entries[0]);
	req->owner = owner;
	req->seq = ++lm->seq;
	req->state = LOCKMGR_REQ_DETACHED;
	req->nentries = 0;

	/* Merge duplicates in one pass: the table remembers its entry index. */
	lm->mark++;
	for (size_t i = 0; i < n; i++) {
		assert(items[i].table != NULL);
		assert(items[i].mode == LOCKMGR_READ || items[i].mode == LOCKMGR_WRITE);
		struct lockmgr_table *t = lockmgr_table_get(lm, items[i].table);
		if (t->mark == lm->mark) {
			if (items[i].mode == LOCKMGR_WRITE)
				req->entries[t->mark_index].mode = LOCKMGR_WRITE;
			continue;
		}
		t->mark = lm->mark;
		t->mark_index = req->nentries;
		struct lockmgr_entry *e = &req->entries[req->nentries++];
		e->req = req;
		e->table = t;
		e->mode = items[i].mode;
	}

	if (lockmgr_req_grantable(req, false)) {
		lockmgr_req_hold(req);
		lockmgr_req_set_state(lm, req, LOCKMGR_REQ_GRANTED);
		*out = req;
		return LOCKMGR_GRANTED;
	}

	enum lockmgr_result result = LOCKMGR_QUEUED;
	if (try_only)
		result = LOCKMGR_WOULD_BLOCK;
	else if (lm->max_waiters != 0 && lm->lists[LOCKMGR_REQ_WAITING].count >= lm->max_waiters)
		result = LOCKMGR_TOO_MANY_WAITERS;
	if (result != LOCKMGR_QUEUED) {
		for (unsigned int i = 0; i < req->nentries; i++)
			lockmgr_table_drop_if_idle(lm, req->entries[i].table);
		free(req);
		*out = NULL;
		return result;
	}

	for (unsigned int i = 0; i < req->nentries; i++)
		lockmgr_entry_enqueue(&req->entries[i]);
	lockmgr_req_set_state(lm, req, LOCKMGR_REQ_WAITING);
	*out = req;
	return LOCKMGR_QUEUED;
}

/* Appends to scratch the waiting requests at t's head run that t's granted
 * state would let through: a WRITE head, or the READs before the first WRITE. */
static void
lockmgr_collect(struct lockmgr *lm, struct lockmgr_table *t, size_t *n)
{
	struct lockmgr_entry *head = TAILQ_FIRST(&t->queue), *e;
	if (head == NULL || t->writer)
		return;
	if (head->mode == LOCKMGR_WRITE && t->readers > 0)
		return;
	TAILQ_FOREACH(e, &t->queue, queue)
	{
		if (e->mode == LOCKMGR_WRITE && e != head)
			break;
		if (*n == lm->scratch_cap) {
			lm->scratch_cap = lm->scratch_cap ? lm->scratch_cap * 2 : 64;
			lm->scratch = xrealloc(lm->scratch, lm->scratch_cap * sizeof *lm->scratch);
		}
		lm->scratch[(*n)++] = e->req;
		if (e->mode == LOCKMGR_WRITE)
			break;
	}
}

static int
lockmgr_compare_seq(const void *a, const void *b)
{
	const struct lockmgr_req *x = *(struct lockmgr_req *const *)a;
	const struct lockmgr_req *y = *(struct lockmgr_req *const *)b;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

void
lockmgr_release(struct lockmgr *lm, struct lockmgr_req *req)
{
	if (req->state == LOCKMGR_REQ_WAITING) {
		for (unsigned int i = 0; i < req->nentries; i++)
			lockmgr_entry_dequeue(&req->entries[i]);
	} else {
		lockmgr_req_unhold(req);
	}
	lockmgr_req_set_state(lm, req, LOCKMGR_REQ_DETACHED);

	/* Only requests waiting on the freed tables can have become grantable. */
	size_t n = 0;
	for (unsigned int i = 0; i < req->nentries; i++)
		lockmgr_collect(lm, req->entries[i].table, &n);
	if (req->nentries > 1 && n > 1)
		qsort(lm->scratch, n, sizeof *lm->scratch, lockmgr_compare_seq);
	for (size_t i = 0; i < n; i++) {
		struct lockmgr_req *c = lm->scratch[i];
		if (c->state != LOCKMGR_REQ_WAITING || !lockmgr_req_grantable(c, true))
			continue;
		for (unsigned int j = 0; j < c->nentries; j++)
			lockmgr_entry_dequeue(&c->entries[j]);
		lockmgr_req_hold(c);
		lockmgr_req_set_state(lm, c, LOCKMGR_REQ_NOTIFY);
	}

	for (unsigned int i = 0; i < req->nentries; i++)
		lockmgr_table_drop_if_idle(lm, req->entries[i].table);
	free(req);
	lockmgr_notify(lm);
}

/* Tells owners of new grants, oldest first. Not reentrant on purpose: a
 * callback that releases something adds to the notify list, and this loop
 * (already running further up the stack) delivers it. */
static void
lockmgr_notify(struct lockmgr *lm)
{
	if (lm->notifying)
		return;
	lm->notifying = true;
	struct lockmgr_req *req;
	while ((req = TAILQ_FIRST(&lm->lists[LOCKMGR_REQ_NOTIFY].reqs)) != NULL) {
		lockmgr_req_set_state(lm, req, LOCKMGR_REQ_GRANTED);
		if (lm->grant != NULL)
			lm->grant(req, req->owner, lm->arg); /* may free req */
	}
	lm->notifying = false;
}

bool
lockmgr_is_granted(const struct lockmgr_req *req)
{
	return req->state == LOCKMGR_REQ_NOTIFY || req->state == LOCKMGR_REQ_GRANTED;
}

size_t
lockmgr_count_waiting(const struct lockmgr *lm)
{
	return lm->lists[LOCKMGR_REQ_WAITING].count;
}

size_t
lockmgr_count_granted(const struct lockmgr *lm)
{
	return lm->lists[LOCKMGR_REQ_NOTIFY].count + lm->lists[LOCKMGR_REQ_GRANTED].count;
}

void
lockmgr_foreach_waiting(struct lockmgr *lm, lockmgr_visit_fn *fn, void *arg)
{
	struct lockmgr_req *req, *next;
	for (req = TAILQ_FIRST(&lm->lists[LOCKMGR_REQ_WAITING].reqs); req != NULL; req = next) {
		next = TAILQ_NEXT(req, list);
		fn(req, req->owner, arg);
	}
}
