/* Access rules: [access] allow values compiled once, checked on each request. */
#include "daemon/access.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto_table.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

/* Longest user, group, token or CN name in a rule, in bytes: far above
 * Linux's 32-byte user names and RFC 5280's 64-character CN, low enough
 * that a stray paste is caught. */
#define ACCESS_NAME_MAX 255
/* Config text quoted in an error message is cut to this many bytes. */
#define ACCESS_QUOTE_MAX 80
#define ACCESS_FORMS "(patterns are db.table, db.* or *)"
#define ACCESS_STAR_ALONE "bad pattern '%.*s': '*' only stands alone " ACCESS_FORMS

/* A table pattern: db NULL is "*" (every table of every database), table
 * NULL is "db.*". write: it came after "write" (which implies read). */
struct access_pattern {
	char *db;
	char *table;
	bool write;
};

/* What a matcher needs of a rule. */
struct access_rule_view {
	char *name;		/* user, group, token or CN; NULL for uid: and * */
	uid_t uid;		/* uid: */
};

/* Whether a rule's identity is id. */
typedef bool access_match_fn(const struct access_rule_view *rule,
			     const struct access_identity *id);

struct access_rule {
	const struct access_kind *kind;
	struct access_rule_view who;
	struct access_pattern *patterns;
	size_t npatterns;
	bool admin;
};

struct access {
	struct access_rule *rules;
	size_t nrules;
};

static access_match_fn access_match_anyone;
static access_match_fn access_match_user;
static access_match_fn access_match_group;
static access_match_fn access_match_uid;
static access_match_fn access_match_token;
static access_match_fn access_match_cn;

/* Identity kinds: the prefix before ':' (or "*" alone) and who it matches.
 * Unix kinds never match a TCP client, whose uid means nothing. */
static const struct access_kind {
	const char *prefix;
	bool named;		/* takes a NAME (else a number, or nothing for *) */
	access_match_fn *match;
} access_kinds[] = {
	{"*", false, access_match_anyone},
	{"user", true, access_match_user},
	{"group", true, access_match_group},
	{"uid", false, access_match_uid},
	{"token", true, access_match_token},
	{"cn", true, access_match_cn},
};
#define ACCESS_NKINDS (sizeof access_kinds / sizeof access_kinds[0])

/* The words after the identity. A read or write section runs until the
 * next keyword and needs at least one pattern; admin takes none. */
enum access_section {
	ACCESS_SECTION_NONE,
	ACCESS_SECTION_READ,
	ACCESS_SECTION_WRITE,
	ACCESS_SECTION_ADMIN,
};

static const struct access_keyword {
	const char *word;
	enum access_section section;
} access_keywords[] = {
	{"read", ACCESS_SECTION_READ},
	{"write", ACCESS_SECTION_WRITE},
	{"admin", ACCESS_SECTION_ADMIN},
};
#define ACCESS_NKEYWORDS (sizeof access_keywords / sizeof access_keywords[0])

/* A word of a rule: where it starts in the value, and its length. */
struct access_word {
	const char *s;
	size_t len;
};

static int access_shown(size_t len);
static bool access_fail(char *why, size_t whysize, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool access_word_is(const struct access_word *w, const char *lower);
static bool access_next_word(const char **p, struct access_word *w);
static bool access_parse_identity(const struct access_word *w, struct access_rule *r, char *why,
				  size_t whysize);
static bool access_parse_pattern(const struct access_word *w, bool write, struct access_rule *r,
				 char *why, size_t whysize);
static bool access_parse_rule(const char *value, struct access_rule *r, char *why,
			      size_t whysize);
static bool access_pattern_matches(const struct access_pattern *p, const char *db,
				   const char *table);
static const struct access_identity *access_identity_or_nobody(const struct access_identity *id);
static void access_label_put(char *out, size_t outsize, size_t *at, const char *s);
static void access_rule_free(struct access_rule *r);

static bool
access_match_anyone(const struct access_rule_view *rule, const struct access_identity *id)
{
	(void)rule;
	(void)id;
	return true;
}

static bool
access_match_user(const struct access_rule_view *rule, const struct access_identity *id)
{
	return id->is_unix && id->user != NULL && strcmp(id->user, rule->name) == 0;
}

static bool
access_match_group(const struct access_rule_view *rule, const struct access_identity *id)
{
	if (!id->is_unix || id->groups == NULL)
		return false;
	for (size_t i = 0; i < id->ngroups; i++)
		if (id->groups[i] != NULL && strcmp(id->groups[i], rule->name) == 0)
			return true;
	return false;
}

static bool
access_match_uid(const struct access_rule_view *rule, const struct access_identity *id)
{
	return id->is_unix && id->uid == rule->uid;
}

static bool
access_match_token(const struct access_rule_view *rule, const struct access_identity *id)
{
	return id->token != NULL && strcmp(id->token, rule->name) == 0;
}

static bool
access_match_cn(const struct access_rule_view *rule, const struct access_identity *id)
{
	return id->cn != NULL && strcmp(id->cn, rule->name) == 0;
}

/* How much of a word an error message quotes. */
static int
access_shown(size_t len)
{
	return len > ACCESS_QUOTE_MAX ? ACCESS_QUOTE_MAX : (int)len;
}

static bool
access_fail(char *why, size_t whysize, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whysize, fmt, ap);
	va_end(ap);
	return false;
}

/* Case-insensitive in ASCII only: keywords must not depend on the locale. */
static bool
access_word_is(const struct access_word *w, const char *lower)
{
	size_t n = strlen(lower);
	if (w->len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = w->s[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lower[i])
			return false;
	}
	return true;
}

/* Words are separated by spaces and tabs. */
static bool
access_next_word(const char **p, struct access_word *w)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return false;
	w->s = s;
	while (*s != '\0' && *s != ' ' && *s != '\t')
		s++;
	w->len = (size_t)(s - w->s);
	*p = s;
	return true;
}

static bool
access_parse_identity(const struct access_word *w, struct access_rule *r, char *why,
		      size_t whysize)
{
	const char *colon = memchr(w->s, ':', w->len);
	int shown = access_shown(w->len);

	if (w->len == 1 && w->s[0] == '*') {
		r->kind = &access_kinds[0];
		return true;
	}
	if (colon == NULL)
		return access_fail(why, whysize,
				   "unknown identity '%.*s' (expected user:NAME, group:NAME, "
				   "uid:N, token:NAME, cn:NAME or *)",
				   shown, w->s);
	struct access_word prefix = {w->s, (size_t)(colon - w->s)};
	for (size_t i = 1; i < ACCESS_NKINDS && r->kind == NULL; i++)
		if (access_word_is(&prefix, access_kinds[i].prefix))
			r->kind = &access_kinds[i];
	if (r->kind == NULL)
		return access_fail(why, whysize,
				   "unknown identity kind '%.*s' in '%.*s' (expected user:, "
				   "group:, uid:, token:, cn: or *)",
				   access_shown(prefix.len), prefix.s, shown, w->s);

	const char *name = colon + 1;
	size_t len = w->len - prefix.len - 1;
	if (len == 0)
		return access_fail(why, whysize, "empty name in '%.*s'", shown, w->s);
	if (len > ACCESS_NAME_MAX)
		return access_fail(why, whysize, "name in '%.*s...' is longer than %d bytes", shown,
				   w->s, ACCESS_NAME_MAX);
	/* Names are literal: "cn:*" must not read as "any certificate". */
	if (len == 1 && name[0] == '*')
		return access_fail(why, whysize,
				   "bad name in '%.*s': names are literal (for anyone, write * "
				   "alone)",
				   shown, w->s);
	if (r->kind->named) {
		r->who.name = xstrndup(name, len);
		return true;
	}

	/* uid:N, decimal. (uid_t)-1 means "no uid" to the kernel's calls. */
	uint64_t uid = 0;
	for (size_t i = 0; i < len; i++) {
		if (name[i] < '0' || name[i] > '9' || uid > UINT32_MAX)
			return access_fail(why, whysize,
					   "bad name in '%.*s': a uid is a number from 0 to %u",
					   shown, w->s, UINT32_MAX - 1);
		uid = uid * 10 + (uint64_t)(name[i] - '0');
	}
	if (uid >= UINT32_MAX)
		return access_fail(why, whysize,
				   "bad name in '%.*s': a uid is a number from 0 to %u", shown,
				   w->s, UINT32_MAX - 1);
	r->who.uid = (uid_t)uid;
	return true;
}

/* db.table, db.* or *. Parts follow proto_table_valid_part, as the names
 * in requests do, so a pattern can only name what a request can. */
static bool
access_parse_pattern(const struct access_word *w, bool write, struct access_rule *r, char *why,
		     size_t whysize)
{
	int shown = access_shown(w->len);
	const char *dot = memchr(w->s, '.', w->len);
	char *db = NULL, *table = NULL;
	char reason[160];

	if (w->len == 1 && w->s[0] == '*') {
		/* every table */
	} else if (dot == NULL) {
		return access_fail(why, whysize, "pattern '%.*s' names no database " ACCESS_FORMS,
				   shown, w->s);
	} else if ((size_t)(dot - w->s) == 1 && w->s[0] == '*') {
		return access_fail(why, whysize,
				   "bad pattern '%.*s': the database cannot be '*' " ACCESS_FORMS,
				   shown, w->s);
	} else if (dot + 2 == w->s + w->len && dot[1] == '*') {
		size_t dblen = (size_t)(dot - w->s);
		if (!proto_table_valid_part(w->s, dblen, reason, sizeof reason))
			return access_fail(why, whysize, "bad pattern '%.*s': database name %s",
					   shown, w->s, reason);
		if (memchr(w->s, '*', dblen) != NULL)
			return access_fail(why, whysize, ACCESS_STAR_ALONE, shown, w->s);
		db = xstrndup(w->s, dblen);
	} else {
		if (!proto_table_split(w->s, w->len, NULL, &db, &table, reason, sizeof reason))
			return access_fail(why, whysize, "bad pattern '%.*s': %s", shown, w->s,
					   reason);
		/* "app.order_*" is not a glob: say so rather than match a
		 * table literally named so. */
		if (strchr(db, '*') != NULL || strchr(table, '*') != NULL) {
			free(db);
			free(table);
			return access_fail(why, whysize, ACCESS_STAR_ALONE, shown, w->s);
		}
	}
	r->patterns = xrealloc(r->patterns, (r->npatterns + 1) * sizeof *r->patterns);
	r->patterns[r->npatterns++] = (struct access_pattern){db, table, write};
	return true;
}

/* IDENTITY [read PATTERN...] [write PATTERN...] [admin], sections in any
 * order. On failure r holds what was parsed so far (freed by the caller). */
static bool
access_parse_rule(const char *value, struct access_rule *r, char *why, size_t whysize)
{
	enum access_section section = ACCESS_SECTION_NONE;
	size_t section_patterns = 0;
	const char *p = value;
	struct access_word w;

	if (value == NULL)
		return access_fail(why, whysize, "empty rule");
	for (const unsigned char *c = (const unsigned char *)value; *c != '\0'; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return access_fail(why, whysize,
					   "contains a control character (byte 0x%02x)", *c);
	if (!access_next_word(&p, &w))
		return access_fail(why, whysize, "empty rule");
	if (!access_parse_identity(&w, r, why, whysize))
		return false;
	struct access_word identity = w;

	for (;;) {
		bool more = access_next_word(&p, &w);
		const struct access_keyword *kw = NULL;
		for (size_t i = 0; more && i < ACCESS_NKEYWORDS; i++)
			if (access_word_is(&w, access_keywords[i].word))
				kw = &access_keywords[i];
		if ((!more || kw != NULL) && section_patterns == 0 &&
		    (section == ACCESS_SECTION_READ || section == ACCESS_SECTION_WRITE))
			return access_fail(why, whysize,
					   "%s needs at least one pattern " ACCESS_FORMS,
					   section == ACCESS_SECTION_READ ? "read" : "write");
		if (!more)
			break;
		int shown = access_shown(w.len);
		if (kw != NULL) {
			section = kw->section;
			section_patterns = 0;
			if (section == ACCESS_SECTION_ADMIN)
				r->admin = true;
		} else if (section == ACCESS_SECTION_NONE) {
			return access_fail(why, whysize,
					   "unknown keyword '%.*s' after the identity (expected "
					   "read, write or admin)",
					   shown, w.s);
		} else if (section == ACCESS_SECTION_ADMIN) {
			return access_fail(why, whysize,
					   "unknown keyword '%.*s' after admin, which takes no "
					   "patterns (expected read, write or admin)",
					   shown, w.s);
		} else {
			bool write = section == ACCESS_SECTION_WRITE;
			if (!access_parse_pattern(&w, write, r, why, whysize))
				return false;
			section_patterns++;
		}
	}
	if (r->npatterns == 0 && !r->admin)
		return access_fail(why, whysize,
				   "the rule for '%.*s' grants nothing (add read, write or admin)",
				   access_shown(identity.len), identity.s);
	return true;
}

int
access_compile(const struct conf_list *allow, const char *file, struct access **out, char *err,
	       size_t errsize)
{
	struct access *a = xcalloc(1, sizeof *a);
	size_t n = allow != NULL ? allow->n : 0;
	char why[320];

	*out = NULL;
	if (errsize > 0)
		err[0] = '\0';
	if (n > 0)
		a->rules = xcalloc(n, sizeof *a->rules);
	for (size_t i = 0; i < n; i++) {
		struct access_rule *r = &a->rules[a->nrules++];
		why[0] = '\0';
		if (access_parse_rule(allow->items[i], r, why, sizeof why))
			continue;
		const char *name = file != NULL ? file : "config";
		if (allow->lines != NULL)
			snprintf(err, errsize, "%s:%d: [access] allow: %s", name, allow->lines[i],
				 why);
		else
			snprintf(err, errsize, "%s: [access] allow: %s", name, why);
		access_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

bool
access_enabled(const struct access *a)
{
	return a != NULL && a->nrules > 0;
}

static bool
access_pattern_matches(const struct access_pattern *p, const char *db, const char *table)
{
	if (p->db == NULL)
		return true;
	if (strcmp(p->db, db) != 0)
		return false;
	return p->table == NULL || strcmp(p->table, table) == 0;
}

/* A missing identity is asked about as nobody in particular: only * rules
 * match it. */
static const struct access_identity *
access_identity_or_nobody(const struct access_identity *id)
{
	static const struct access_identity nobody;
	return id != NULL ? id : &nobody;
}

bool
access_may_lock(const struct access *a, const struct access_identity *id, const char *db,
		const char *table, bool write)
{
	if (!access_enabled(a))
		return true;
	if (db == NULL || table == NULL)
		return false;
	id = access_identity_or_nobody(id);
	for (size_t i = 0; i < a->nrules; i++) {
		const struct access_rule *r = &a->rules[i];
		if (!r->kind->match(&r->who, id))
			continue;
		for (size_t j = 0; j < r->npatterns; j++) {
			const struct access_pattern *p = &r->patterns[j];
			if ((p->write || !write) && access_pattern_matches(p, db, table))
				return true;
		}
	}
	return false;
}

bool
access_is_admin(const struct access *a, const struct access_identity *id)
{
	if (!access_enabled(a))
		return false;
	id = access_identity_or_nobody(id);
	for (size_t i = 0; i < a->nrules; i++) {
		const struct access_rule *r = &a->rules[i];
		if (r->admin && r->kind->match(&r->who, id))
			return true;
	}
	return false;
}

/* Appends s at *at, control characters as '?', stopping before the last
 * byte of out (kept for the NUL). */
static void
access_label_put(char *out, size_t outsize, size_t *at, const char *s)
{
	for (; *s != '\0' && *at + 1 < outsize; s++) {
		unsigned char c = (unsigned char)*s;
		out[(*at)++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
}

void
access_identity_label(const struct access_identity *id, char *out, size_t outsize)
{
	char uid[24];
	const char *kind, *name;
	size_t at = 0;

	if (outsize == 0)
		return;
	id = access_identity_or_nobody(id);
	if (id->token != NULL) {
		kind = "token:";
		name = id->token;
	} else if (id->cn != NULL) {
		kind = "cn:";
		name = id->cn;
	} else if (id->is_unix && id->user != NULL) {
		kind = "user:";
		name = id->user;
	} else if (id->is_unix) {
		snprintf(uid, sizeof uid, "%lu", (unsigned long)id->uid);
		kind = "uid:";
		name = uid;
	} else {
		kind = "anonymous";
		name = "";
	}
	access_label_put(out, outsize, &at, kind);
	access_label_put(out, outsize, &at, name);
	out[at] = '\0';

	/* Cut short inside a multibyte character: drop its start, so the
	 * label stays valid UTF-8 when it was. */
	if (at + 1 == outsize && strlen(kind) + strlen(name) > at)
		out[utf8_complete_prefix(out, at)] = '\0';
}

static void
access_rule_free(struct access_rule *r)
{
	free(r->who.name);
	for (size_t j = 0; j < r->npatterns; j++) {
		free(r->patterns[j].db);
		free(r->patterns[j].table);
	}
	free(r->patterns);
}

void
access_free(struct access *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->nrules; i++)
		access_rule_free(&a->rules[i]);
	free(a->rules);
	free(a);
}
