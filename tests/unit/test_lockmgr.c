/* Unit tests of the lock manager: sharing, exclusion, FIFO, no overtaking, re-entrancy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "daemon/lockmgr.h"

/* Owners are small integers; the grant callback logs them in call order. */
#define MAX_LOG 40000

struct grant_log {
	int ids[MAX_LOG];
	size_t n;
	/* Optional behaviour of the callback, for the re-entrancy tests. */
	struct lockmgr *lm;
	bool release_self;
	struct lockmgr_req **victims;	/* indexed by owner id: release this one too */
	int victim_of;			/* owner whose grant releases victims[victim_of] */
	int acquire_on;			/* owner whose grant acquires "w:other" */
	struct lockmgr_req *acquired;
	enum lockmgr_result acquired_result;
};

static struct grant_log *test_log;

#define ID(p) ((int)(intptr_t)(p))
#define OWNER(i) ((void *)(intptr_t)(i))

static void
test_grant(struct lockmgr_req *req, void *owner, void *arg)
{
	struct grant_log *log = arg;
	assert_true(lockmgr_is_granted(req));
	assert_true(log->n < MAX_LOG);
	log->ids[log->n++] = ID(owner);
	if (log->victims != NULL && ID(owner) == log->victim_of && log->victims[ID(owner)] != NULL) {
		lockmgr_release(log->lm, log->victims[ID(owner)]);
		log->victims[ID(owner)] = NULL;
	}
	if (ID(owner) == log->acquire_on) {
		struct lockmgr_item it = {"other", LOCKMGR_WRITE};
		log->acquired_result =
			lockmgr_acquire(log->lm, &it, 1, false, OWNER(999), &log->acquired);
	}
	if (log->release_self)
		lockmgr_release(log->lm, req);
}

/* "w:t1 r:db.t2" -> items; returns the lock manager's answer. */
static enum lockmgr_result
acq(struct lockmgr *lm, const char *spec, bool try_only, int id, struct lockmgr_req **out)
{
	struct lockmgr_item items[16];
	char copy[256], *save = NULL;
	size_t n = 0;
	snprintf(copy, sizeof copy, "%s", spec);
	for (char *tok = strtok_r(copy, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
		assert_true(n < 16 && strlen(tok) > 2 && tok[1] == ':');
		items[n].mode = tok[0] == 'w' ? LOCKMGR_WRITE : LOCKMGR_READ;
		items[n].table = tok + 2;
		n++;
	}
	return lockmgr_acquire(lm, items, n, try_only, OWNER(id), out);
}

static struct lockmgr_req *
must(struct lockmgr *lm, const char *spec, int id, enum lockmgr_result want)
{
	struct lockmgr_req *req = NULL;
	assert_int_equal(acq(lm, spec, false, id, &req), want);
	assert_non_null(req);
	return req;
}

static int
setup(void **state)
{
	test_log = calloc(1, sizeof *test_log);
	test_log->victim_of = -1;
	test_log->acquire_on = -1;
	test_log->lm = lockmgr_new(0, test_grant, test_log);
	*state = test_log->lm;
	return 0;
}

static int
teardown(void **state)
{
	lockmgr_free(*state);
	free(test_log);
	return 0;
}

static void
assert_log(const int *want, size_t n)
{
	assert_int_equal(test_log->n, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(test_log->ids[i], want[i]);
	test_log->n = 0;
}
#define ASSERT_LOG(...)                                                                   \
	do {                                                                              \
		const int want_[] = {__VA_ARGS__};                                        \
		assert_log(want_, sizeof want_ / sizeof want_[0]);                        \
	} while (0)
#define ASSERT_NO_GRANTS() assert_int_equal(test_log->n, 0)

static void
test_readers_share(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *r[100];
	for (int i = 0; i < 100; i++)
		r[i] = must(lm, "r:t", i, LOCKMGR_GRANTED);
	assert_int_equal(lockmgr_count_granted(lm), 100);
	assert_int_equal(lockmgr_count_waiting(lm), 0);
	for (int i = 0; i < 100; i++)
		lockmgr_release(lm, r[i]);
	assert_int_equal(lockmgr_count_granted(lm), 0);
	ASSERT_NO_GRANTS();
}

static void
test_writer_excludes(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *r1 = must(lm, "r:t", 1, LOCKMGR_GRANTED);
	struct lockmgr_req *w2 = must(lm, "w:t", 2, LOCKMGR_QUEUED);
	struct lockmgr_req *w3 = must(lm, "w:t", 3, LOCKMGR_QUEUED);
	assert_false(lockmgr_is_granted(w2));
	lockmgr_release(lm, r1);
	ASSERT_LOG(2);
	assert_true(lockmgr_is_granted(w2));
	assert_false(lockmgr_is_granted(w3));
	struct lockmgr_req *r4 = must(lm, "r:t", 4, LOCKMGR_QUEUED);
	lockmgr_release(lm, w2);
	ASSERT_LOG(3); /* writer against writer: one at a time */
	lockmgr_release(lm, w3);
	ASSERT_LOG(4);
	lockmgr_release(lm, r4);
	assert_int_equal(lockmgr_count_granted(lm) + lockmgr_count_waiting(lm), 0);
}

static void
test_multi_table_all_or_none(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *x = must(lm, "r:t1", 1, LOCKMGR_GRANTED);
	struct lockmgr_req *a = must(lm, "w:t2", 2, LOCKMGR_GRANTED);
	struct lockmgr_req *b = must(lm, "w:t1 w:t2 r:t3", 3, LOCKMGR_QUEUED);
	lockmgr_release(lm, a); /* t2 is free but t1 is not: b takes nothing */
	ASSERT_NO_GRANTS();
	assert_false(lockmgr_is_granted(b));
	/* An unrelated reader of t3 still shares with b's READ of t3. */
	struct lockmgr_req *c = must(lm, "r:t3", 4, LOCKMGR_GRANTED);
	lockmgr_release(lm, x);
	ASSERT_LOG(3);
	struct lockmgr_req *tmp = NULL;
	assert_int_equal(acq(lm, "r:t1", true, 5, &tmp), LOCKMGR_WOULD_BLOCK);
	assert_int_equal(acq(lm, "r:t2", true, 5, &tmp), LOCKMGR_WOULD_BLOCK);
	assert_null(tmp);
	assert_int_equal(acq(lm, "w:t3", true, 5, &tmp), LOCKMGR_WOULD_BLOCK);
	lockmgr_release(lm, b);
	lockmgr_release(lm, c);
	struct lockmgr_req *all = must(lm, "w:t1 w:t2 w:t3", 6, LOCKMGR_GRANTED);
	lockmgr_release(lm, all);
	ASSERT_NO_GRANTS();
}

static void
test_fifo_order(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *reqs[6];
	reqs[0] = must(lm, "w:t", 0, LOCKMGR_GRANTED);
	for (int i = 1; i < 6; i++)
		reqs[i] = must(lm, i % 2 ? "w:t" : "r:t", i, LOCKMGR_QUEUED);
	for (int i = 0; i < 5; i++) {
		lockmgr_release(lm, reqs[i]);
		ASSERT_LOG(i + 1);
	}
	lockmgr_release(lm, reqs[5]);
	ASSERT_NO_GRANTS();
}

static void
test_no_overtaking(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *r1 = must(lm, "r:t", 1, LOCKMGR_GRANTED);
	struct lockmgr_req *w2 = must(lm, "w:t", 2, LOCKMGR_QUEUED);
	/* A reader would share with r1 but must not pass the waiting writer. */
	struct lockmgr_req *r3 = must(lm, "r:t", 3, LOCKMGR_QUEUED);
	/* Nothing ahead conflicts on an unrelated table. */
	struct lockmgr_req *u4 = must(lm, "w:u", 4, LOCKMGR_GRANTED);
	/* Nor on a table where the waiter ahead only reads. */
	struct lockmgr_req *h5 = must(lm, "w:v", 5, LOCKMGR_GRANTED);
	struct lockmgr_req *r6 = must(lm, "r:v r:x", 6, LOCKMGR_QUEUED);
	struct lockmgr_req *r7 = must(lm, "r:x", 7, LOCKMGR_GRANTED);
	struct lockmgr_req *w8 = must(lm, "w:x", 8, LOCKMGR_QUEUED); /* behind r6 */
	lockmgr_release(lm, r7);
	ASSERT_NO_GRANTS();
	lockmgr_release(lm, h5);
	ASSERT_LOG(6);
	lockmgr_release(lm, r6);
	ASSERT_LOG(8);
	lockmgr_release(lm, r1);
	ASSERT_LOG(2);
	lockmgr_release(lm, w2);
	ASSERT_LOG(3);
	lockmgr_release(lm, r3);
	lockmgr_release(lm, u4);
	lockmgr_release(lm, w8);
	ASSERT_NO_GRANTS();
	assert_int_equal(lockmgr_count_granted(lm) + lockmgr_count_waiting(lm), 0);
}

static void
test_readers_batch_after_writer(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *w0 = must(lm, "w:t", 0, LOCKMGR_GRANTED);
	struct lockmgr_req *r1 = must(lm, "r:t", 1, LOCKMGR_QUEUED);
	struct lockmgr_req *r2 = must(lm, "r:t", 2, LOCKMGR_QUEUED);
	struct lockmgr_req *r3 = must(lm, "r:t", 3, LOCKMGR_QUEUED);
	struct lockmgr_req *w4 = must(lm, "w:t", 4, LOCKMGR_QUEUED);
	struct lockmgr_req *r5 = must(lm, "r:t", 5, LOCKMGR_QUEUED);
	lockmgr_release(lm, w0);
	ASSERT_LOG(1, 2, 3);
	assert_int_equal(lockmgr_count_granted(lm), 3);
	assert_int_equal(lockmgr_count_waiting(lm), 2);
	lockmgr_release(lm, r2);
	lockmgr_release(lm, r1);
	ASSERT_NO_GRANTS();
	lockmgr_release(lm, r3);
	ASSERT_LOG(4);
	lockmgr_release(lm, w4);
	ASSERT_LOG(5);
	lockmgr_release(lm, r5);
}

static void
test_try_only(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *tmp = (struct lockmgr_req *)1;
	struct lockmgr_req *w1 = must(lm, "w:t", 1, LOCKMGR_GRANTED);
	assert_int_equal(acq(lm, "r:t", true, 2, &tmp), LOCKMGR_WOULD_BLOCK);
	assert_null(tmp);
	assert_int_equal(lockmgr_count_waiting(lm), 0);
	lockmgr_release(lm, w1);
	ASSERT_NO_GRANTS();

	struct lockmgr_req *r3 = must(lm, "r:t", 3, LOCKMGR_GRANTED);
	struct lockmgr_req *w4 = must(lm, "w:t", 4, LOCKMGR_QUEUED);
	/* Would share with r3, but w4 waits ahead. */
	assert_int_equal(acq(lm, "r:t", true, 5, &tmp), LOCKMGR_WOULD_BLOCK);
	assert_int_equal(acq(lm, "r:u r:t", true, 5, &tmp), LOCKMGR_WOULD_BLOCK);
	assert_int_equal(lockmgr_count_waiting(lm), 1);
	assert_int_equal(acq(lm, "r:u", true, 6, &tmp), LOCKMGR_GRANTED);
	assert_true(lockmgr_is_granted(tmp));
	lockmgr_release(lm, tmp);
	lockmgr_release(lm, r3);
	ASSERT_LOG(4);
	lockmgr_release(lm, w4);
}

static void
test_max_waiters(void **state)
{
	struct lockmgr *lm = *state;
	lockmgr_set_max_waiters(lm, 2);
	struct lockmgr_req *tmp = (struct lockmgr_req *)1;
	struct lockmgr_req *w0 = must(lm, "w:t", 0, LOCKMGR_GRANTED);
	struct lockmgr_req *w1 = must(lm, "w:t", 1, LOCKMGR_QUEUED);
	struct lockmgr_req *w2 = must(lm, "w:t", 2, LOCKMGR_QUEUED);
	assert_int_equal(acq(lm, "w:t", false, 3, &tmp), LOCKMGR_TOO_MANY_WAITERS);
	assert_null(tmp);
	assert_int_equal(lockmgr_count_waiting(lm), 2);
	/* A full queue does not stop what can be granted at once. */
	struct lockmgr_req *u = must(lm, "w:u", 4, LOCKMGR_GRANTED);
	/* try_only reports that it would block, not that the queue is full. */
	assert_int_equal(acq(lm, "w:t", true, 5, &tmp), LOCKMGR_WOULD_BLOCK);
	lockmgr_release(lm, w2); /* a waiter leaves: room for one */
	struct lockmgr_req *w6 = must(lm, "w:t", 6, LOCKMGR_QUEUED);
	assert_int_equal(acq(lm, "w:t", false, 7, &tmp), LOCKMGR_TOO_MANY_WAITERS);
	lockmgr_set_max_waiters(lm, 0);
	struct lockmgr_req *w8 = must(lm, "w:t", 8, LOCKMGR_QUEUED);
	lockmgr_release(lm, w0);
	lockmgr_release(lm, w1);
	lockmgr_release(lm, w6);
	lockmgr_release(lm, w8);
	lockmgr_release(lm, u);
	ASSERT_LOG(1, 6, 8);
}

static void
test_release_waiting(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *r1 = must(lm, "r:t", 1, LOCKMGR_GRANTED);
	struct lockmgr_req *w2 = must(lm, "w:t", 2, LOCKMGR_QUEUED);
	struct lockmgr_req *r3 = must(lm, "r:t", 3, LOCKMGR_QUEUED);
	struct lockmgr_req *w4 = must(lm, "w:t", 4, LOCKMGR_QUEUED);
	/* The writer gives up: the reader behind it shares with r1 now. */
	lockmgr_release(lm, w2);
	ASSERT_LOG(3);
	/* A waiter leaving from the back unblocks nobody. */
	struct lockmgr_req *r5 = must(lm, "r:t", 5, LOCKMGR_QUEUED);
	lockmgr_release(lm, r5);
	ASSERT_NO_GRANTS();
	lockmgr_release(lm, r1);
	lockmgr_release(lm, r3);
	ASSERT_LOG(4);

	/* A multi-table waiter leaving unblocks waiters on each of its tables. */
	struct lockmgr_req *h = must(lm, "r:a", 6, LOCKMGR_GRANTED);
	struct lockmgr_req *m = must(lm, "w:a w:b", 7, LOCKMGR_QUEUED);
	struct lockmgr_req *rb = must(lm, "r:b", 8, LOCKMGR_QUEUED);
	struct lockmgr_req *ra = must(lm, "r:a", 9, LOCKMGR_QUEUED);
	lockmgr_release(lm, m);
	ASSERT_LOG(8, 9);
	lockmgr_release(lm, h);
	lockmgr_release(lm, rb);
	lockmgr_release(lm, ra);
	lockmgr_release(lm, w4);
	assert_int_equal(lockmgr_count_granted(lm) + lockmgr_count_waiting(lm), 0);
}

static void
test_duplicates_merged(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *tmp = NULL;
	/* WRITE wins, whatever the order. */
	struct lockmgr_req *a = must(lm, "r:t w:t r:t", 1, LOCKMGR_GRANTED);
	assert_int_equal(acq(lm, "r:t", true, 2, &tmp), LOCKMGR_WOULD_BLOCK);
	lockmgr_release(lm, a);
	/* The same table twice is not a conflict with itself. */
	a = must(lm, "w:t w:t", 3, LOCKMGR_GRANTED);
	lockmgr_release(lm, a);
	a = must(lm, "r:t r:t", 4, LOCKMGR_GRANTED);
	struct lockmgr_req *b = must(lm, "r:t", 5, LOCKMGR_GRANTED);
	lockmgr_release(lm, a);
	struct lockmgr_req *c = must(lm, "w:t", 6, LOCKMGR_QUEUED);
	lockmgr_release(lm, b);
	ASSERT_LOG(6);
	lockmgr_release(lm, c);
	/* Keys are exact byte strings. */
	a = must(lm, "w:db.t", 7, LOCKMGR_GRANTED);
	b = must(lm, "w:t w:DB.t w:db.t2", 8, LOCKMGR_GRANTED);
	lockmgr_release(lm, a);
	lockmgr_release(lm, b);
	ASSERT_NO_GRANTS();
}

static void
test_reentrant_release_self(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *h = must(lm, "w:t", 0, LOCKMGR_GRANTED);
	for (int i = 1; i <= 50; i++)
		must(lm, i % 3 ? "w:t" : "r:t", i, LOCKMGR_QUEUED);
	/* Each owner gives its lock back from inside its own grant callback. */
	test_log->release_self = true;
	lockmgr_release(lm, h);
	test_log->release_self = false;
	assert_int_equal(test_log->n, 50);
	for (int i = 0; i < 50; i++)
		assert_int_equal(test_log->ids[i], i + 1);
	test_log->n = 0;
	assert_int_equal(lockmgr_count_granted(lm) + lockmgr_count_waiting(lm), 0);
}

static void
test_reentrant_release_other(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req *victims[8] = {0};
	struct lockmgr_req *h = must(lm, "w:t", 0, LOCKMGR_GRANTED);
	struct lockmgr_req *r1 = must(lm, "r:t", 1, LOCKMGR_QUEUED);
	struct lockmgr_req *r2 = must(lm, "r:t", 2, LOCKMGR_QUEUED);
	struct lockmgr_req *r3 = must(lm, "r:t", 3, LOCKMGR_QUEUED);
	/* r1..r3 are granted together; r1's callback releases r2, whose own
	 * callback is pending: it must never be called (it was freed). */
	victims[1] = r2;
	test_log->victims = victims;
	test_log->victim_of = 1;
	lockmgr_release(lm, h);
	ASSERT_LOG(1, 3);
	assert_int_equal(lockmgr_count_granted(lm), 2);
	test_log->victims = NULL;
	test_log->victim_of = -1;

	/* A callback that acquires: its new request is answered directly. */
	struct lockmgr_req *w4 = must(lm, "w:t", 4, LOCKMGR_QUEUED);
	test_log->acquire_on = 4;
	lockmgr_release(lm, r1);
	lockmgr_release(lm, r3);
	ASSERT_LOG(4);
	assert_int_equal(test_log->acquired_result, LOCKMGR_GRANTED);
	lockmgr_release(lm, test_log->acquired);
	test_log->acquire_on = -1;

	/* A callback that releases a still-waiting request unblocks others:
	 * their grants are delivered after it returns, in order. */
	struct lockmgr_req *w5 = must(lm, "w:t", 5, LOCKMGR_QUEUED);
	struct lockmgr_req *w6 = must(lm, "w:u r:t", 6, LOCKMGR_QUEUED);
	struct lockmgr_req *r7 = must(lm, "r:u", 7, LOCKMGR_QUEUED); /* behind w6 */
	struct lockmgr_req *r8 = must(lm, "r:u", 8, LOCKMGR_QUEUED);
	victims[5] = w6;
	test_log->victims = victims;
	test_log->victim_of = 5;
	lockmgr_release(lm, w4);
	ASSERT_LOG(5, 7, 8);
	test_log->victims = NULL;
	lockmgr_release(lm, w5);
	lockmgr_release(lm, r7);
	lockmgr_release(lm, r8);
	ASSERT_NO_GRANTS();
	assert_int_equal(lockmgr_count_granted(lm) + lockmgr_count_waiting(lm), 0);
}

struct visit {
	int ids[16];
	size_t n;
};

static void
visit_collect(struct lockmgr_req *req, void *owner, void *arg)
{
	struct visit *v = arg;
	assert_false(lockmgr_is_granted(req));
	v->ids[v->n++] = ID(owner);
}

static void
test_foreach_waiting_and_counts(void **state)
{
	struct lockmgr *lm = *state;
	struct visit v = {.n = 0};
	lockmgr_foreach_waiting(lm, visit_collect, &v);
	assert_int_equal(v.n, 0);

	struct lockmgr_req *w0 = must(lm, "w:t", 0, LOCKMGR_GRANTED);
	struct lockmgr_req *q[6];
	for (int i = 1; i <= 5; i++)
		q[i] = must(lm, i == 3 ? "r:t w:u" : "r:t", i, LOCKMGR_QUEUED);
	struct lockmgr_req *free_u = must(lm, "r:v", 6, LOCKMGR_GRANTED);
	assert_int_equal(lockmgr_count_waiting(lm), 5);
	assert_int_equal(lockmgr_count_granted(lm), 2);
	lockmgr_release(lm, q[2]);
	lockmgr_foreach_waiting(lm, visit_collect, &v);
	assert_int_equal(v.n, 4);
	int want[] = {1, 3, 4, 5};
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(v.ids[i], want[i]);
	lockmgr_release(lm, w0);
	ASSERT_LOG(1, 3, 4, 5);
	assert_int_equal(lockmgr_count_waiting(lm), 0);
	assert_int_equal(lockmgr_count_granted(lm), 5);
	lockmgr_release(lm, free_u);
	/* Left held on purpose: lockmgr_free (in teardown) frees them. */
	must(lm, "w:u", 7, LOCKMGR_QUEUED);
}

/* --- Randomised check against a naive model of the rules -------------------- */

#define MODEL_TABLES 5
#define MODEL_REQS 64

struct model_req {
	bool active;
	bool granted;
	uint64_t seq;
	int mode[MODEL_TABLES]; /* -1 unused, else enum lockmgr_mode */
	struct lockmgr_req *real;
};

struct model {
	struct model_req reqs[MODEL_REQS];
	uint64_t seq;
	size_t max_waiters;
	int expect[MODEL_REQS * 2];
	size_t nexpect;
};

static bool
model_conflict(const struct model_req *a, const struct model_req *b)
{
	for (int t = 0; t < MODEL_TABLES; t++) {
		if (a->mode[t] >= 0 && b->mode[t] >= 0 &&
		    (a->mode[t] == LOCKMGR_WRITE || b->mode[t] == LOCKMGR_WRITE))
			return true;
	}
	return false;
}

/* Straight from the header: compatible with every holder and every
 * earlier waiter. */
static bool
model_grantable(const struct model *m, const struct model_req *r)
{
	for (int i = 0; i < MODEL_REQS; i++) {
		const struct model_req *o = &m->reqs[i];
		if (!o->active || o == r)
			continue;
		if ((o->granted || o->seq < r->seq) && model_conflict(r, o))
			return false;
	}
	return true;
}

static size_t
model_waiting(const struct model *m)
{
	size_t n = 0;
	for (int i = 0; i < MODEL_REQS; i++)
		n += m->reqs[i].active && !m->reqs[i].granted;
	return n;
}

/* Grants to a fixpoint, oldest first, recording the expected callbacks. */
static void
model_settle(struct model *m)
{
	bool changed = true;
	while (changed) {
		changed = false;
		for (;;) {
			struct model_req *best = NULL;
			for (int i = 0; i < MODEL_REQS; i++) {
				struct model_req *r = &m->reqs[i];
				if (r->active && !r->granted && model_grantable(m, r) &&
				    (best == NULL || r->seq < best->seq))
					best = r;
			}
			if (best == NULL)
				break;
			best->granted = true;
			m->expect[m->nexpect++] = (int)(best - m->reqs);
			changed = true;
		}
	}
}

struct model_visit {
	const struct model *m;
	uint64_t last_seq;
	size_t n;
};

static void
model_visit(struct lockmgr_req *req, void *owner, void *arg)
{
	struct model_visit *v = arg;
	const struct model_req *r = &v->m->reqs[ID(owner)];
	assert_true(r->active && !r->granted && r->real == req);
	assert_true(r->seq > v->last_seq);
	v->last_seq = r->seq;
	v->n++;
}

static void
model_compare(struct lockmgr *lm, struct model *m)
{
	assert_int_equal(test_log->n, m->nexpect);
	for (size_t i = 0; i < m->nexpect; i++)
		assert_int_equal(test_log->ids[i], m->expect[i]);
	test_log->n = 0;
	m->nexpect = 0;
	size_t granted = 0, waiting = 0;
	for (int i = 0; i < MODEL_REQS; i++) {
		const struct model_req *r = &m->reqs[i];
		if (!r->active)
			continue;
		assert_int_equal(lockmgr_is_granted(r->real), r->granted);
		granted += r->granted;
		waiting += !r->granted;
	}
	assert_int_equal(lockmgr_count_granted(lm), granted);
	assert_int_equal(lockmgr_count_waiting(lm), waiting);
	struct model_visit v = {m, 0, 0};
	lockmgr_foreach_waiting(lm, model_visit, &v);
	assert_int_equal(v.n, waiting);
}

static void
model_acquire(struct lockmgr *lm, struct model *m, int id)
{
	static const char *const names[MODEL_TABLES] = {"t0", "t1", "db.t2", "t3", "t4"};
	struct model_req *r = &m->reqs[id];
	struct lockmgr_item items[6];
	size_t n = 1 + (size_t)(rand() % (rand() % 4 ? 2 : 6));
	for (int t = 0; t < MODEL_TABLES; t++)
		r->mode[t] = -1;
	for (size_t i = 0; i < n; i++) {
		int t = rand() % MODEL_TABLES;
		/* Readers are more common, as in real use; duplicates happen. */
		items[i].mode = rand() % 3 ? LOCKMGR_READ : LOCKMGR_WRITE;
		items[i].table = names[t];
		if (r->mode[t] != LOCKMGR_WRITE)
			r->mode[t] = (int)items[i].mode;
	}
	bool try_only = rand() % 5 == 0;
	r->seq = ++m->seq;
	r->active = true;
	r->granted = false;
	enum lockmgr_result want;
	if (model_grantable(m, r))
		want = LOCKMGR_GRANTED;
	else if (try_only)
		want = LOCKMGR_WOULD_BLOCK;
	else if (m->max_waiters != 0 && model_waiting(m) - 1 >= m->max_waiters)
		want = LOCKMGR_TOO_MANY_WAITERS;
	else
		want = LOCKMGR_QUEUED;
	assert_int_equal(lockmgr_acquire(lm, items, n, try_only, OWNER(id), &r->real), want);
	r->granted = want == LOCKMGR_GRANTED;
	r->active = want == LOCKMGR_GRANTED || want == LOCKMGR_QUEUED;
}

static void
test_model_random(void **state)
{
	struct lockmgr *lm = *state;
	struct model *m = calloc(1, sizeof *m);
	srand(12345);
	for (int op = 0; op < 20000; op++) {
		if (op % 2000 == 0) {
			static const size_t limits[] = {0, 3, 10};
			m->max_waiters = limits[(op / 2000) % 3];
			lockmgr_set_max_waiters(lm, m->max_waiters);
		}
		int id = rand() % MODEL_REQS;
		struct model_req *r = &m->reqs[id];
		if (!r->active) {
			model_acquire(lm, m, id);
		} else {
			lockmgr_release(lm, r->real);
			r->active = false;
			model_settle(m);
		}
		model_compare(lm, m);
	}
	free(m);
}

/* --- Scale ------------------------------------------------------------------ */

static double
now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define DRAIN_WAITERS 10000

static void
test_drain_10000_waiters(void **state)
{
	struct lockmgr *lm = *state;
	struct lockmgr_req **reqs = calloc(DRAIN_WAITERS + 1, sizeof *reqs);
	double t0 = now_seconds();

	/* Writers, each released by the test once granted. */
	reqs[0] = must(lm, "w:db.hot", 0, LOCKMGR_GRANTED);
	for (int i = 1; i <= DRAIN_WAITERS; i++)
		reqs[i] = must(lm, "w:db.hot", i, LOCKMGR_QUEUED);
	assert_int_equal(lockmgr_count_waiting(lm), DRAIN_WAITERS);
	for (int i = 0; i < DRAIN_WAITERS; i++) {
		lockmgr_release(lm, reqs[i]);
		assert_int_equal(test_log->n, 1);
		assert_int_equal(test_log->ids[0], i + 1);
		test_log->n = 0;
	}
	lockmgr_release(lm, reqs[DRAIN_WAITERS]);
	double t1 = now_seconds();

	/* Mixed runs of readers and writers, each released from its callback. */
	reqs[0] = must(lm, "w:db.hot", 0, LOCKMGR_GRANTED);
	for (int i = 1; i <= DRAIN_WAITERS; i++)
		must(lm, (i / 7) % 2 ? "w:db.hot" : "r:db.hot", i, LOCKMGR_QUEUED);
	test_log->release_self = true;
	lockmgr_release(lm, reqs[0]);
	test_log->release_self = false;
	assert_int_equal(test_log->n, DRAIN_WAITERS);
	for (int i = 0; i < DRAIN_WAITERS; i++)
		assert_int_equal(test_log->ids[i], i + 1);
	test_log->n = 0;
	double t2 = now_seconds();

	/* Ten thousand readers behind one writer, granted by one release. */
	reqs[0] = must(lm, "w:db.hot", 0, LOCKMGR_GRANTED);
	for (int i = 1; i <= DRAIN_WAITERS; i++)
		reqs[i] = must(lm, "r:db.hot", i, LOCKMGR_QUEUED);
	lockmgr_release(lm, reqs[0]);
	assert_int_equal(test_log->n, DRAIN_WAITERS);
	test_log->n = 0;
	for (int i = 1; i <= DRAIN_WAITERS; i++)
		lockmgr_release(lm, reqs[i]);
	double t3 = now_seconds();

	assert_int_equal(lockmgr_count_granted(lm) + lockmgr_count_waiting(lm), 0);
	print_message("drain of %d waiters on one table: writers %.2f ms, mixed from callbacks "
		      "%.2f ms, readers %.2f ms\n",
		      DRAIN_WAITERS, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3);
	/* Linear work takes milliseconds; a rescan per release would take seconds. */
	assert_true(t3 - t0 < 2.0);
	free(reqs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_readers_share, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_excludes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi_table_all_or_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_overtaking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readers_batch_after_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_try_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_waiters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_merged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reentrant_release_self, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reentrant_release_other, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_waiting_and_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_10000_waiters, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
