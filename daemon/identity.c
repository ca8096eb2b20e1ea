/* Identity: who a client is (unix user, token, certificate) and what
 * each identity has open, for access rules and per-identity caps. */
#include "daemon/identity.h"

#include <grp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "conf/conf.h"
#include "daemon/log.h"
#include "util/xmalloc.h"

/* Connections and waits open per identity label, in a chained hash table
 * by label; freed when the last client or lease lets go of it. */
struct identity_count {
	LIST_ENTRY(identity_count) bucket;
	unsigned int refs;
	unsigned int connections;
	unsigned int waiting;
	char label[160];
};

#define IDENTITY_BUCKETS 1024
static LIST_HEAD(identity_bucket, identity_count) identity_table[IDENTITY_BUCKETS];

/* uid -> names, looked up once: the user database may be slow (NSS), and
 * a daemon serving one or a few local users asks about the same uids. */
struct identity_cached {
	uid_t uid;
	char *user;
	char **groups;
	size_t ngroups;
};

#define IDENTITY_CACHE 64
static struct identity_cached identity_cache[IDENTITY_CACHE];
static size_t identity_ncached;

static const struct identity_cached *identity_lookup(uid_t uid, gid_t gid);
static unsigned int identity_hash(const char *s);

static const struct identity_cached *
identity_lookup(uid_t uid, gid_t gid)
{
	struct identity_cached *e;
	struct passwd pw, *pwp = NULL;
	char buf[4096];
	gid_t gids[64];
	int ngids = 64;

	for (size_t i = 0; i < identity_ncached; i++)
		if (identity_cache[i].uid == uid)
			return &identity_cache[i];
	if (identity_ncached == IDENTITY_CACHE) {
		/* Full: forget the oldest half. Rare: few uids talk to us. */
		for (size_t i = 0; i < IDENTITY_CACHE / 2; i++) {
			free(identity_cache[i].user);
			for (size_t j = 0; j < identity_cache[i].ngroups; j++)
				free(identity_cache[i].groups[j]);
			free(identity_cache[i].groups);
		}
		memmove(identity_cache, identity_cache + IDENTITY_CACHE / 2,
			(IDENTITY_CACHE / 2) * sizeof(identity_cache[0]));
		identity_ncached = IDENTITY_CACHE / 2;
	}
	e = &identity_cache[identity_ncached++];
	memset(e, 0, sizeof(*e));
	e->uid = uid;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) != 0 || pwp == NULL)
		return e;
	e->user = xstrdup(pw.pw_name);
	if (getgrouplist(pw.pw_name, gid, gids, &ngids) < 0)
		ngids = 64;
	e->groups = xcalloc((size_t)ngids, sizeof(char *));
	for (int i = 0; i < ngids; i++) {
		struct group gr, *grp = NULL;
		if (getgrgid_r(gids[i], &gr, buf, sizeof(buf), &grp) == 0 && grp != NULL)
			e->groups[e->ngroups++] = xstrdup(gr.gr_name);
	}
	return e;
}

void
identity_unix(struct identity *id, uid_t uid, gid_t gid)
{
	const struct identity_cached *e = identity_lookup(uid, gid);

	id->authenticated = true;
	id->user = e->user != NULL ? xstrdup(e->user) : NULL;
	id->ngroups = e->ngroups;
	id->groups = xcalloc(e->ngroups, sizeof(char *));
	for (size_t i = 0; i < e->ngroups; i++)
		id->groups[i] = xstrdup(e->groups[i]);
	identity_unix_label(id, uid);
}

void
identity_unix_label(struct identity *id, uid_t uid)
{
	if (id->user != NULL)
		snprintf(id->label, sizeof(id->label), "user:%s", id->user);
	else
		snprintf(id->label, sizeof(id->label), "uid:%u", (unsigned int)uid);
}

/* Labels go into logs and error messages: a certificate's CN is the
 * peer's text, so control characters become '?'. */
static void
identity_set_label(struct identity *id, const char *kind, const char *name)
{
	snprintf(id->label, sizeof(id->label), "%s:%s", kind, name);
	for (char *p = id->label; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

void
identity_set_token(struct identity *id, const char *name)
{
	free(id->token);
	id->token = xstrdup(name);
	id->authenticated = true;
	identity_set_label(id, "token", name);
}

void
identity_set_cn(struct identity *id, const char *cn)
{
	free(id->cn);
	id->cn = xstrdup(cn);
	id->authenticated = true;
	identity_set_label(id, "cn", cn);
}

void
identity_view(const struct identity *id, uid_t uid, bool is_unix, struct access_identity *out)
{
	memset(out, 0, sizeof(*out));
	out->is_unix = is_unix;
	out->uid = uid;
	out->user = id->user;
	out->groups = (const char *const *)id->groups;
	out->ngroups = id->ngroups;
	out->token = id->token;
	out->cn = id->cn;
}

void
identity_free(struct identity *id)
{
	identity_detach(id);
	free(id->user);
	for (size_t i = 0; i < id->ngroups; i++)
		free(id->groups[i]);
	free(id->groups);
	free(id->token);
	free(id->cn);
	memset(id, 0, sizeof(*id));
}

const char *
identity_check_token(const struct conf *c, const char *token, size_t len)
{
	unsigned char digest[32];
	unsigned int dlen = sizeof(digest);
	const char *found = NULL;

	if (EVP_Digest(token, len, digest, &dlen, EVP_sha256(), NULL) != 1)
		return NULL;
	/* Every hash is compared, matching or not, each in constant time:
	 * the time taken says nothing about which token came close. */
	for (size_t i = 0; i < c->ntokens; i++)
		if (CRYPTO_memcmp(digest, c->tokens[i].sha256, sizeof(digest)) == 0)
			found = c->tokens[i].name;
	return found;
}

static unsigned int
identity_hash(const char *s)
{
	unsigned int h = 2166136261u;
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % IDENTITY_BUCKETS;
}

void
identity_attach(struct identity *id)
{
	unsigned int h;
	struct identity_count *e;

	identity_detach(id);
	h = identity_hash(id->label);
	LIST_FOREACH(e, &identity_table[h], bucket)
		if (strcmp(e->label, id->label) == 0)
			break;
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		snprintf(e->label, sizeof(e->label), "%s", id->label);
		LIST_INSERT_HEAD(&identity_table[h], e, bucket);
	}
	e->refs++;
	id->count = e;
}

void
identity_detach(struct identity *id)
{
	struct identity_count *e = id->count;

	if (e == NULL)
		return;
	id->count = NULL;
	if (--e->refs > 0)
		return;
	LIST_REMOVE(e, bucket);
	free(e);
}

unsigned int *
identity_connections(struct identity *id)
{
	return id->count != NULL ? &id->count->connections : NULL;
}

struct identity_count *
identity_hold(struct identity *id)
{
	if (id->count == NULL)
		identity_attach(id);
	id->count->refs++;
	return id->count;
}

void
identity_unhold(struct identity_count *e)
{
	struct identity tmp = {.count = e};
	identity_detach(&tmp);
}

unsigned int *
identity_count_waiting(struct identity_count *e)
{
	return &e->waiting;
}
