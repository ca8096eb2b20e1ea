/* libFuzzer harness for daemon/access.c: rule lists against a reference reading of them. */
/*
 * Input: rule text, one allow value per line (line i is config line 3i+2).
 *
 * Invariants:
 * - a refusal is "fuzz.conf:LINE: [access] allow: reason" for one of the
 *   given lines, and a smaller error buffer holds a prefix of it;
 * - a compiled list is enabled iff it has a rule, and every line of it also
 *   compiles alone;
 * - for identities and tables taken from the rules themselves, the whole
 *   list grants exactly what its lines grant one by one, and each line
 *   grants exactly what a word-by-word reference reading says (identity
 *   first word, then read/write/admin sections of db.table, db.* and *
 *   patterns): nothing without a matching identity word and pattern, write
 *   only from a write section, a Unix kind never to a TCP client;
 * - labels are NUL-terminated prefixes of the full label, without control
 *   characters.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/access.h"

#define FUZZ_ACCESS_LINES 32
#define FUZZ_ACCESS_NAMES 4
#define FUZZ_ACCESS_TABLES 5
#define FUZZ_ACCESS_WORDS 128
#define FUZZ_ACCESS_IDS (FUZZ_ACCESS_NAMES * 4 + 2)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_access_table {
	char db[80];
	char table[80];
};

static size_t fuzz_access_words(char *line, char **words, size_t max);
static bool fuzz_access_word_is(const char *w, const char *lower);
static bool fuzz_access_ref_identity(const char *w, const struct access_identity *id);
static bool fuzz_access_ref_lock(char *const *words, size_t n, const struct access_identity *id,
				 const struct fuzz_access_table *t, bool write);
static bool fuzz_access_ref_admin(char *const *words, size_t n, const struct access_identity *id);
static void fuzz_access_check_label(const struct access_identity *id);
static struct access *fuzz_access_compile(char **items, int *lines, size_t n, char *err,
					  size_t errsize);

/* Splits line in place on spaces and tabs, as the rules are. */
static size_t
fuzz_access_words(char *line, char **words, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *w = strtok_r(line, " \t", &save); w != NULL && n < max;
	     w = strtok_r(NULL, " \t", &save))
		words[n++] = w;
	return n;
}

static bool
fuzz_access_word_is(const char *w, const char *lower)
{
	size_t n = strlen(lower);
	if (strlen(w) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = w[i] >= 'A' && w[i] <= 'Z' ? (char)(w[i] - 'A' + 'a') : w[i];
		if (c != lower[i])
			return false;
	}
	return true;
}

static bool
fuzz_access_ref_identity(const char *w, const struct access_identity *id)
{
	if (strcmp(w, "*") == 0)
		return true;
	const char *colon = strchr(w, ':');
	if (colon == NULL)
		abort(); /* compiled, so it has a kind */
	char kind[8] = "";
	size_t klen = (size_t)(colon - w);
	if (klen < sizeof kind) {
		memcpy(kind, w, klen);
		kind[klen] = '\0';
	}
	const char *name = colon + 1;

	if (fuzz_access_word_is(kind, "user"))
		return id->is_unix && id->user != NULL && strcmp(id->user, name) == 0;
	if (fuzz_access_word_is(kind, "group")) {
		for (size_t i = 0; id->is_unix && i < id->ngroups; i++)
			if (strcmp(id->groups[i], name) == 0)
				return true;
		return false;
	}
	if (fuzz_access_word_is(kind, "uid"))
		return id->is_unix && strtoull(name, NULL, 10) == id->uid;
	if (fuzz_access_word_is(kind, "token"))
		return id->token != NULL && strcmp(id->token, name) == 0;
	if (fuzz_access_word_is(kind, "cn"))
		return id->cn != NULL && strcmp(id->cn, name) == 0;
	abort(); /* compiled, so the kind is known */
}

static bool
fuzz_access_ref_lock(char *const *words, size_t n, const struct access_identity *id,
		     const struct fuzz_access_table *t, bool write)
{
	char exact[200], all[100];
	bool in_write = false;

	if (!fuzz_access_ref_identity(words[0], id))
		return false;
	snprintf(exact, sizeof exact, "%s.%s", t->db, t->table);
	snprintf(all, sizeof all, "%s.*", t->db);
	for (size_t i = 1; i < n; i++) {
		if (fuzz_access_word_is(words[i], "write") ||
		    fuzz_access_word_is(words[i], "read") ||
		    fuzz_access_word_is(words[i], "admin")) {
			in_write = fuzz_access_word_is(words[i], "write");
			continue;
		}
		if ((in_write || !write) && (strcmp(words[i], "*") == 0 ||
					     strcmp(words[i], all) == 0 ||
					     strcmp(words[i], exact) == 0))
			return true;
	}
	return false;
}

static bool
fuzz_access_ref_admin(char *const *words, size_t n, const struct access_identity *id)
{
	if (!fuzz_access_ref_identity(words[0], id))
		return false;
	for (size_t i = 1; i < n; i++)
		if (fuzz_access_word_is(words[i], "admin"))
			return true;
	return false;
}

static void
fuzz_access_check_label(const struct access_identity *id)
{
	static const size_t sizes[] = {1, 5, 9, 300};
	char full[300], cut[300];

	access_identity_label(id, full, sizeof full);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		memset(cut, 0x55, sizeof cut);
		access_identity_label(id, cut, sizes[i]);
		size_t len = strnlen(cut, sizes[i]);
		if (len == sizes[i] || strncmp(cut, full, len) != 0)
			abort();
		for (size_t j = 0; j < len; j++)
			if ((unsigned char)cut[j] < 0x20 || cut[j] == 0x7f)
				abort();
	}
}

static struct access *
fuzz_access_compile(char **items, int *lines, size_t n, char *err, size_t errsize)
{
	struct conf_list l = {items, lines, n};
	struct access *a = (struct access *)&l;

	memset(err, 0x55, errsize);
	int rc = access_compile(&l, "fuzz.conf", &a, err, errsize);
	if (rc != 0 && rc != -1)
		abort();
	if ((rc == 0) != (a != NULL) || memchr(err, '\0', errsize) == NULL)
		abort();
	if (rc == 0 && (access_enabled(a) != (n > 0) || err[0] != '\0'))
		abort();
	return a;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *copy = malloc(size + 1);
	char *items[FUZZ_ACCESS_LINES];
	int lines[FUZZ_ACCESS_LINES];
	size_t n = 0;
	char err[600], small[24];

	memcpy(text, data, size);
	text[size] = '\0';
	for (char *p = text; n < FUZZ_ACCESS_LINES;) {
		char *nl = strchr(p, '\n');
		items[n] = p;
		lines[n] = 3 * (int)n + 2;
		n++;
		if (nl == NULL)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	if (size == 0)
		n = 0;

	struct access *a = fuzz_access_compile(items, lines, n, err, sizeof err);
	if (a == NULL) {
		int line = -1, at = 0;
		if (sscanf(err, "fuzz.conf:%d: [access] allow: %n", &line, &at) != 1 || at == 0 ||
		    err[at] == '\0' || line < 2 || (line - 2) % 3 != 0 || (line - 2) / 3 >= (int)n)
			abort();
		size_t errsize = 1 + size % sizeof small;
		if (fuzz_access_compile(items, lines, n, small, errsize) != NULL ||
		    strncmp(small, err, errsize - 1) != 0)
			abort();
		free(text);
		free(copy);
		return 0;
	}

	/* Names and tables to ask about, from the rules' own words. */
	char names[FUZZ_ACCESS_NAMES][64];
	size_t nnames = 0;
	struct fuzz_access_table tables[FUZZ_ACCESS_TABLES] = {{"app", "t"}};
	size_t ntables = 1;
	char *words[FUZZ_ACCESS_LINES][FUZZ_ACCESS_WORDS];
	bool skip = false;
	size_t nwords[FUZZ_ACCESS_LINES];
	memcpy(copy, text, size + 1); /* lines already cut at their '\n' */
	for (size_t i = 0; i < n; i++) {
		/* items[i] points into text: the same line starts there in copy. */
		char *line = copy + (items[i] - text);
		nwords[i] = fuzz_access_words(line, words[i], FUZZ_ACCESS_WORDS);
		if (nwords[i] == 0)
			abort(); /* a compiled rule has an identity */
		if (nwords[i] == FUZZ_ACCESS_WORDS)
			skip = true; /* too many words for the reference */
		const char *colon = strchr(words[i][0], ':');
		if (colon != NULL && nnames < FUZZ_ACCESS_NAMES)
			snprintf(names[nnames++], sizeof names[0], "%s", colon + 1);
		for (size_t j = 1; j < nwords[i] && ntables < FUZZ_ACCESS_TABLES; j++) {
			const char *dot = strchr(words[i][j], '.');
			if (dot == NULL)
				continue;
			struct fuzz_access_table *t = &tables[ntables++];
			int dblen = (int)(dot - words[i][j]);
			snprintf(t->db, sizeof t->db, "%.*s", dblen, words[i][j]);
			snprintf(t->table, sizeof t->table, "%s", dot + 1);
		}
	}

	struct access_identity ids[FUZZ_ACCESS_IDS];
	const char *groups[FUZZ_ACCESS_NAMES][2];
	size_t nids = 0;
	ids[nids++] = (struct access_identity){0};
	ids[nids++] = (struct access_identity){.is_unix = true};
	for (size_t i = 0; i < nnames; i++) {
		uid_t uid = (uid_t)strtoul(names[i], NULL, 10);
		groups[i][0] = "staff";
		groups[i][1] = names[i];
		ids[nids++] = (struct access_identity){.is_unix = true,
						       .uid = uid,
						       .user = names[i],
						       .groups = groups[i],
						       .ngroups = 2};
		ids[nids++] = (struct access_identity){.is_unix = true, .uid = uid};
		ids[nids++] = (struct access_identity){.token = names[i], .uid = uid};
		ids[nids++] = (struct access_identity){.cn = names[i], .user = names[i]};
	}

	struct access *single[FUZZ_ACCESS_LINES];
	if (skip) { /* compiled: that is all this input checks */
		access_free(a);
		free(text);
		free(copy);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if ((single[i] = fuzz_access_compile(&items[i], &lines[i], 1, err, sizeof err)) ==
		    NULL)
			abort();

	for (size_t k = 0; k < nids; k++) {
		const struct access_identity *id = &ids[k];
		bool admin = false;
		for (size_t i = 0; i < n; i++) {
			bool one = access_is_admin(single[i], id);
			if (one != fuzz_access_ref_admin(words[i], nwords[i], id))
				abort();
			admin |= one;
		}
		if (access_is_admin(a, id) != admin)
			abort();
		for (size_t t = 0; t < ntables; t++) {
			for (int write = 0; write < 2; write++) {
				bool any = false;
				for (size_t i = 0; i < n; i++) {
					bool one = access_may_lock(single[i], id, tables[t].db,
								   tables[t].table, write);
					if (one != fuzz_access_ref_lock(words[i], nwords[i], id,
									&tables[t], write)) {
						fprintf(stderr, "line %zu: engine %d, "
							"reference %d\n", i, one, !one);
						abort();
					}
					any |= one;
				}
				/* No rules at all: everything is allowed. */
				if (access_may_lock(a, id, tables[t].db, tables[t].table, write) !=
				    (any || n == 0))
					abort();
				if (write && any &&
				    !access_may_lock(a, id, tables[t].db, tables[t].table, false))
					abort();
			}
		}
		fuzz_access_check_label(id);
	}

	for (size_t i = 0; i < n; i++)
		access_free(single[i]);
	access_free(a);
	free(text);
	free(copy);
	return 0;
}
