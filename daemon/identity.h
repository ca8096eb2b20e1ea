/* Identity: who a client is (unix user, token, certificate) and what
 * each identity has open, for access rules and per-identity caps. */
#ifndef TABLELOCK_IDENTITY_H
#define TABLELOCK_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "daemon/access.h"

struct client;
struct conf;

/* Per-client identity: built at accept (unix), on hello (token) or after
 * the TLS handshake (certificate). */
struct identity {
	bool authenticated;	/* unix peers are; TCP ones after token or cert */
	char *user;		/* unix user name, NULL if unknown */
	char **groups;		/* unix group names */
	size_t ngroups;
	char *token;		/* token name from hello */
	char *cn;		/* TLS client certificate subject CN */
	char label[160];	/* "user:alice", "token:billing", … */
	struct identity_count *count; /* this identity's open connections and waits */
};

/* Fills id for a unix peer (looks the uid up in the user database, once
 * per uid: the result is cached). */
void identity_unix(struct identity *id, uid_t uid, gid_t gid);
/* The label of a unix peer: "user:NAME", or "uid:N" without a name. */
void identity_unix_label(struct identity *id, uid_t uid);
/* Marks a TCP/TLS client authenticated by token or certificate. */
void identity_set_token(struct identity *id, const char *name);
void identity_set_cn(struct identity *id, const char *cn);
/* The view access.c checks against. */
void identity_view(const struct identity *id, uid_t uid, bool is_unix,
		   struct access_identity *out);
void identity_free(struct identity *id);

/* Finds the configured token whose SHA-256 matches, comparing every
 * configured hash in constant time. Returns its name or NULL. */
const char *identity_check_token(const struct conf *c, const char *token, size_t len);

/* Per-identity counters. A lease that counts itself as waiting holds the
 * entry (it may outlive its client). */
unsigned int *identity_connections(struct identity *id);
struct identity_count *identity_hold(struct identity *id);
void identity_unhold(struct identity_count *e);
unsigned int *identity_count_waiting(struct identity_count *e);
/* Re-files the identity under its current label (after authentication). */
void identity_attach(struct identity *id);
void identity_detach(struct identity *id);

#endif
