/* Access rules: which identity may lock which tables, and who is admin. */
#ifndef TABLELOCK_ACCESS_H
#define TABLELOCK_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf/conf.h"

/* Pure: no I/O and no name lookups (the caller resolves a Unix peer's uid
 * to its user and group names). Rules come from [access] allow values:
 *
 *	IDENTITY [read PATTERN...] [write PATTERN...] [admin]
 *
 * IDENTITY is user:NAME, group:NAME or uid:N (a Unix peer), token:NAME (a
 * client that presented that token), cn:NAME (a TLS client certificate's
 * subject CN), or * (anyone the daemon asks about: it never asks for a TCP
 * client before authentication). PATTERN is db.table, db.* or *. Keywords
 * and identity kinds are case-insensitive; names and patterns are not
 * (table names compare as bytes, as MySQL does on Linux by default: with
 * lower_case_table_names=1 write them in lower case, or a differently
 * cased request is refused, never wrongly allowed). write implies read.
 * Every matching rule adds its rights. Once any rule exists, whatever no
 * rule allows is refused. */
struct access;

/* Who is asking. Fields that do not apply are NULL (and uid ignored when
 * !is_unix): a TCP client has a token or a cn, a Unix peer has a uid, its
 * user name (NULL if it has none) and groups, and may have a token too. */
struct access_identity {
	bool is_unix;
	uid_t uid;
	const char *user;
	const char *const *groups;
	size_t ngroups;
	const char *token;
	const char *cn;
};

/* Compiles allow's values (allow may be NULL or empty: no rules). Returns 0
 * and sets *out, or -1 with "file:LINE: [access] allow: reason" in err
 * (line numbers from allow->lines) and *out NULL. */
int access_compile(const struct conf_list *allow, const char *file, struct access **out,
		   char *err, size_t errsize);

/* False when there are no rules (a may be NULL): then access_may_lock
 * allows everything and access_is_admin is false, and the caller decides
 * who is admin (root and the daemon's own uid). */
bool access_enabled(const struct access *a);

/* Whether id may lock db.table for write (or read). Never allocates. */
bool access_may_lock(const struct access *a, const struct access_identity *id, const char *db,
		     const char *table, bool write);

bool access_is_admin(const struct access *a, const struct access_identity *id);

/* "token:billing", "cn:x", "user:alice", "uid:1000", or "anonymous", for
 * messages and logs: the token's name when there is one, else the
 * certificate's CN, else the Unix user. Control characters are shown as
 * '?'; always NUL-terminated when outsize > 0. */
void access_identity_label(const struct access_identity *id, char *out, size_t outsize);

void access_free(struct access *a);

#endif
