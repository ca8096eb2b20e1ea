/* lease-update: take a lease on a table, update a row under it, commit. */
/*
 * Build:  cc lease-update.c $(pkg-config --cflags --libs tablelock) -o lease-update
 *         (after `make install`; from the source tree without installing,
 *         first export PKG_CONFIG_PATH=$PWD/client: see client/README.md)
 * Run:    ./lease-update [SOCKET] [ACCOUNT] [AMOUNT]
 *
 * Adds AMOUNT (default 10) to the balance of ACCOUNT (default 1) in table
 * accounts (id INT PRIMARY KEY, balance DECIMAL(10,2), as in make run's demo
 * database), under a WRITE lock that every MySQL client respects until the
 * commit.
 */
#include <stdio.h>
#include <stdlib.h>

#include <tablelock.h>

#define TIMEOUT_MS 10000 /* longest wait for any one answer */

static int
fail(struct tablelock *tl, const char *what)
{
	const struct tablelock_error *err = tablelock_last_error(tl);

	fprintf(stderr, "lease-update: %s: %s [%s]", what, err->message, err->code_name);
	if (err->mysql_errno != 0)
		fprintf(stderr, " (MySQL %u, SQLSTATE %s)", err->mysql_errno, err->sqlstate);
	fputc('\n', stderr);
	tablelock_close(tl); /* a lease still held is rolled back by the daemon */
	return 1;
}

int
main(int argc, char **argv)
{
	const char *address = argc > 1 ? argv[1] : getenv("TABLELOCK_SOCKET");
	int64_t account = argc > 2 ? atoll(argv[2]) : 1;
	int64_t amount = argc > 3 ? atoll(argv[3]) : 10;
	struct tablelock_table tables[] = {{.name = "accounts", .write = true}};
	struct tablelock_lock lock = {tables, 1, 5000, 10000}; /* wait 5 s, TTL 10 s */
	struct tablelock_param params[] = {tablelock_int(amount), tablelock_int(account)};
	struct tablelock_result *r;
	struct tablelock_error err;
	struct tablelock *tl;
	uint64_t lease;
	const char *text;
	char balance[64];

	if ((tl = tablelock_connect(address, TIMEOUT_MS, &err)) == NULL) {
		fprintf(stderr, "lease-update: %s\n", err.message);
		return 1;
	}
	if (tablelock_hello(tl, "lease-update", NULL, TIMEOUT_MS) != 0)
		return fail(tl, "hello");
	if (tablelock_acquire(tl, &lock, &lease, lock.wait_ms + TIMEOUT_MS) != 0)
		return fail(tl, "acquire");

	/* Until the commit, no other session can read or write accounts. */
	if (tablelock_query(tl, "UPDATE accounts SET balance = balance + ? WHERE id = ?", params, 2,
	                    &r, TIMEOUT_MS) != 0)
		return fail(tl, "update");
	if (tablelock_result_affected_rows(r) != 1) {
		fprintf(stderr, "lease-update: no account %lld\n", (long long)account);
		tablelock_result_free(r);
		tablelock_rollback(tl, TIMEOUT_MS);
		tablelock_close(tl);
		return 1;
	}
	tablelock_result_free(r);

	if (tablelock_query(tl, "SELECT balance FROM accounts WHERE id = ?", &params[1], 1, &r,
	                    TIMEOUT_MS) != 0)
		return fail(tl, "select");
	/* A DECIMAL comes as its exact text ("110.00"), never as a float. */
	text = tablelock_result_text(r, 0, 0, NULL);
	snprintf(balance, sizeof(balance), "%s", text != NULL ? text : "NULL");
	tablelock_result_free(r);

	if (tablelock_commit(tl, TIMEOUT_MS) != 0)
		return fail(tl, "commit");
	printf("lease %llu committed: account %lld balance is now %s\n",
	       (unsigned long long)lease, (long long)account, balance);
	tablelock_close(tl);
	return 0;
}
