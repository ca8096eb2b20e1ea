/* Request parsing and validation: one JSON line into a typed request. */
#include "proto/proto_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"
#include "util/xmalloc.h"

/* User text quoted in a message is cut to this many bytes. */
#define REQUEST_QUOTE_MAX 64
#define REQUEST_CLIENT_MAX 128

/* State of one parse: where the request goes and where errors are written. */
struct request_ctx {
	json_t *root;
	const struct proto_parse_options *opts;
	struct proto_request *req;
	char *msg;
	size_t msgsize;
	size_t tables_cap;	/* allocated length of req->tables */
};

typedef enum proto_error request_parse_fn(struct request_ctx *ctx);

static enum proto_error request_fail(struct request_ctx *ctx, enum proto_error code,
				     const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const char *request_quote(char *out, size_t outsize, const char *s, size_t len);
static json_t *request_optional(const json_t *obj, const char *key);
static size_t request_depth(const json_t *v, size_t limit);
static enum proto_error request_get_int(struct request_ctx *ctx, const char *field, int64_t min,
					int64_t *out);
static enum proto_error request_parse_entry(struct request_ctx *ctx, const char *list,
					    size_t index, const json_t *entry, bool write);
static enum proto_error request_parse_list(struct request_ctx *ctx, const char *list, bool write);
static int request_table_cmp(const void *a, const void *b);
static bool request_table_same(const struct proto_table *a, const struct proto_table *b);
static enum proto_error request_merge_tables(struct request_ctx *ctx);
static enum proto_error request_parse_lease_fields(struct request_ctx *ctx);
static enum proto_error request_parse_statement(struct request_ctx *ctx, const json_t *obj,
					       const char *prefix, struct proto_statement *st);
static enum proto_error request_parse_nothing(struct request_ctx *ctx);
static enum proto_error request_parse_hello(struct request_ctx *ctx);
static enum proto_error request_parse_acquire(struct request_ctx *ctx);
static enum proto_error request_parse_query(struct request_ctx *ctx);
static enum proto_error request_parse_renew(struct request_ctx *ctx);
static enum proto_error request_parse_transact(struct request_ctx *ctx);
static enum proto_error request_parse_statements(struct request_ctx *ctx, bool required);
static enum proto_error request_parse_commit(struct request_ctx *ctx);
static enum proto_error request_parse_revoke(struct request_ctx *ctx);

/* Every op: its wire name and the parser of its fields. Fields a parser does
 * not know are ignored, so a newer client can talk to an older daemon. */
static const struct request_op {
	const char *name;
	enum proto_op op;
	request_parse_fn *parse;
} request_ops[] = {
	{"ping", PROTO_OP_PING, request_parse_nothing},
	{"hello", PROTO_OP_HELLO, request_parse_hello},
	{"acquire", PROTO_OP_ACQUIRE, request_parse_acquire},
	{"query", PROTO_OP_QUERY, request_parse_query},
	{"commit", PROTO_OP_COMMIT, request_parse_commit},
	{"rollback", PROTO_OP_ROLLBACK, request_parse_nothing},
	{"renew", PROTO_OP_RENEW, request_parse_renew},
	{"status", PROTO_OP_STATUS, request_parse_nothing},
	{"transact", PROTO_OP_TRANSACT, request_parse_transact},
	{"revoke", PROTO_OP_REVOKE, request_parse_revoke},
};
#define REQUEST_NOPS (sizeof(request_ops) / sizeof(request_ops[0]))

const char *
proto_op_name(enum proto_op op)
{
	for (size_t i = 0; i < REQUEST_NOPS; i++)
		if (request_ops[i].op == op)
			return request_ops[i].name;
	return "unknown";
}

enum proto_op
proto_op_from_name(const char *name)
{
	for (size_t i = 0; i < REQUEST_NOPS; i++)
		if (strcmp(request_ops[i].name, name) == 0)
			return request_ops[i].op;
	return PROTO_OP__COUNT;
}

static enum proto_error
request_fail(struct request_ctx *ctx, enum proto_error code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx->msg, ctx->msgsize, fmt, ap);
	va_end(ap);
	/* vsnprintf may cut the message inside a multibyte character: drop
	 * the incomplete tail so it stays valid UTF-8 for the response. */
	if (ctx->msgsize > 0)
		ctx->msg[utf8_complete_prefix(ctx->msg, strlen(ctx->msg))] = '\0';
	return code;
}

/* Copies client text for a message: at most REQUEST_QUOTE_MAX bytes, cut at
 * a character boundary (the text came through jansson, so it is valid
 * UTF-8), control characters and NUL shown as '?', "..." when cut. */
static const char *
request_quote(char *out, size_t outsize, const char *s, size_t len)
{
	size_t n = len;
	bool cut = false;
	if (n > REQUEST_QUOTE_MAX) {
		n = utf8_complete_prefix(s, REQUEST_QUOTE_MAX);
		cut = true;
	}
	if (n + 4 > outsize)
		n = 0; /* callers pass room for REQUEST_QUOTE_MAX + 4 */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (cut) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

/* An optional field: absent and JSON null both count as not given. */
static json_t *
request_optional(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_null(v) ? NULL : v;
}

/* Nesting depth of v (a scalar is 0, {} is 1), counted no further than
 * limit + 1. Recursion is bounded by jansson's own parse depth limit. */
static size_t
request_depth(const json_t *v, size_t limit)
{
	size_t deepest = 0;
	if (json_is_object(v)) {
		const char *key;
		json_t *child;
		json_object_foreach((json_t *)v, key, child) {
			size_t d = request_depth(child, limit);
			if (d > deepest)
				deepest = d;
			if (deepest > limit)
				break;
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *child;
		json_array_foreach(v, i, child) {
			size_t d = request_depth(child, limit);
			if (d > deepest)
				deepest = d;
			if (deepest > limit)
				break;
		}
	} else {
		return 0;
	}
	return deepest + 1;
}

/* Reads an optional integer field that must be >= min (0 or 1); leaves *out
 * alone (-1) when absent. */
static enum proto_error
request_get_int(struct request_ctx *ctx, const char *field, int64_t min, int64_t *out)
{
	json_t *v = request_optional(ctx->root, field);
	if (v == NULL)
		return PROTO_OK;
	if (!json_is_integer(v) || json_integer_value(v) < min)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST, "field '%s' must be a %s integer",
				    field, min > 0 ? "positive" : "non-negative");
	*out = json_integer_value(v);
	return PROTO_OK;
}

/* One entry of "write" or "read": "name", "db.name" or {"table":…,"as":…}.
 * Appended to req->tables at once, so proto_request_free owns it. */
static enum proto_error
request_parse_entry(struct request_ctx *ctx, const char *list, size_t index, const json_t *entry,
		    bool write)
{
	struct proto_request *req = ctx->req;
	char where[32], why[160], shown[REQUEST_QUOTE_MAX + 4];
	const json_t *table = entry, *alias = NULL;

	snprintf(where, sizeof(where), "%s[%zu]", list, index);
	if (json_is_object(entry)) {
		table = json_object_get(entry, "table");
		if (table == NULL)
			return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
					    "field '%s.table' is required", where);
		if (!json_is_string(table))
			return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
					    "field '%s.table' must be a string", where);
		alias = request_optional(entry, "as");
		if (alias != NULL && !json_is_string(alias))
			return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
					    "field '%s.as' must be a string", where);
	} else if (!json_is_string(entry)) {
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
				    "field '%s' must be a table name string or an object with "
				    "\"table\"",
				    where);
	}

	const char *spec = json_string_value(table);
	size_t speclen = json_string_length(table);
	char *db, *name;
	if (!proto_table_split(spec, speclen, ctx->opts->default_db, &db, &name, why,
			       sizeof(why)))
		return request_fail(ctx, PROTO_ERR_INVALID_TABLE, "invalid table in %s ('%s'): %s",
				    where, request_quote(shown, sizeof(shown), spec, speclen), why);
	if (alias != NULL &&
	    !proto_table_valid_part(json_string_value(alias), json_string_length(alias), why,
				    sizeof(why))) {
		free(db);
		free(name);
		return request_fail(ctx, PROTO_ERR_INVALID_TABLE,
				    "invalid alias in %s ('%s'): alias %s", where,
				    request_quote(shown, sizeof(shown), json_string_value(alias),
						  json_string_length(alias)),
				    why);
	}

	if (req->ntables == ctx->tables_cap) {
		ctx->tables_cap = ctx->tables_cap ? 2 * ctx->tables_cap : 8;
		req->tables = xrealloc(req->tables, ctx->tables_cap * sizeof(*req->tables));
	}
	struct proto_table *t = &req->tables[req->ntables++];
	t->db = db;
	t->name = name;
	t->alias = alias != NULL ? xstrdup(json_string_value(alias)) : NULL;
	t->write = write;
	return PROTO_OK;
}

static enum proto_error
request_parse_list(struct request_ctx *ctx, const char *list, bool write)
{
	json_t *arr = request_optional(ctx->root, list);
	if (arr == NULL)
		return PROTO_OK;
	if (!json_is_array(arr))
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST, "field '%s' must be an array",
				    list);
	size_t i;
	json_t *entry;
	json_array_foreach(arr, i, entry) {
		enum proto_error err = request_parse_entry(ctx, list, i, entry, write);
		if (err != PROTO_OK)
			return err;
	}
	return PROTO_OK;
}

/* Orders entry pointers by (db, name, alias; no alias first), then by
 * position, so equal entries sit together with the earliest first. */
static int
request_table_cmp(const void *a, const void *b)
{
	const struct proto_table *x = *(const struct proto_table *const *)a;
	const struct proto_table *y = *(const struct proto_table *const *)b;
	int c = strcmp(x->db, y->db);
	if (c == 0)
		c = strcmp(x->name, y->name);
	if (c == 0 && (x->alias == NULL || y->alias == NULL))
		c = (x->alias != NULL) - (y->alias != NULL);
	else if (c == 0)
		c = strcmp(x->alias, y->alias);
	if (c == 0)
		c = (x > y) - (x < y);
	return c;
}

static bool
request_table_same(const struct proto_table *a, const struct proto_table *b)
{
	if (strcmp(a->db, b->db) != 0 || strcmp(a->name, b->name) != 0)
		return false;
	if (a->alias == NULL || b->alias == NULL)
		return a->alias == b->alias;
	return strcmp(a->alias, b->alias) == 0;
}

/* Merges entries equal in (db, name, alias) within one list, keeping the
 * first; the same entry in both lists is an error (which mode was meant?).
 * Names compare as exact bytes, as MySQL does on Linux by default. Sorting
 * keeps this O(n log n) for lists as long as a request line allows. */
static enum proto_error
request_merge_tables(struct request_ctx *ctx)
{
	struct proto_request *req = ctx->req;
	size_t n = req->ntables;
	struct proto_table **order = xcalloc(n, sizeof(*order));
	bool *drop = xcalloc(n, sizeof(*drop));
	const struct proto_table *conflict = NULL;

	for (size_t i = 0; i < n; i++)
		order[i] = &req->tables[i];
	qsort(order, n, sizeof(*order), request_table_cmp);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		bool write = order[i]->write, mixed = false;
		for (; j < n && request_table_same(order[i], order[j]); j++) {
			mixed |= order[j]->write != write;
			drop[order[j] - req->tables] = true;
		}
		/* Report the conflict that comes first in the request. */
		if (mixed && (conflict == NULL || order[i] < conflict))
			conflict = order[i];
		i = j;
	}
	free(order);

	enum proto_error err = PROTO_OK;
	if (conflict != NULL) {
		char key[2 * REQUEST_QUOTE_MAX + 16], shown[REQUEST_QUOTE_MAX + 4];
		char *k = proto_table_key(conflict);
		snprintf(key, sizeof(key), "%s", request_quote(shown, sizeof(shown), k, strlen(k)));
		free(k);
		if (conflict->alias != NULL)
			err = request_fail(ctx, PROTO_ERR_BAD_REQUEST,
					   "table '%s' as '%s' is in both 'write' and 'read'", key,
					   request_quote(shown, sizeof(shown), conflict->alias,
							 strlen(conflict->alias)));
		else
			err = request_fail(ctx, PROTO_ERR_BAD_REQUEST,
					   "table '%s' is in both 'write' and 'read'", key);
		free(drop);
		return err;
	}

	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (drop[i]) {
			free(req->tables[i].db);
			free(req->tables[i].name);
			free(req->tables[i].alias);
		} else {
			req->tables[kept++] = req->tables[i];
		}
	}
	req->ntables = kept;
	free(drop);
	return PROTO_OK;
}

/* The fields acquire and transact share: tables, wait_ms, ttl_ms. */
static enum proto_error
request_parse_lease_fields(struct request_ctx *ctx)
{
	struct proto_request *req = ctx->req;
	enum proto_error err;

	if ((err = request_parse_list(ctx, "write", true)) != PROTO_OK ||
	    (err = request_parse_list(ctx, "read", false)) != PROTO_OK)
		return err;
	if (req->ntables == 0)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
				    "no tables: 'write' and 'read' are both missing or empty");
	if ((err = request_merge_tables(ctx)) != PROTO_OK)
		return err;
	if (ctx->opts->max_tables > 0 && req->ntables > ctx->opts->max_tables)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
				    "too many tables: %zu, at most %zu are allowed", req->ntables,
				    ctx->opts->max_tables);
	if ((err = request_get_int(ctx, "wait_ms", 0, &req->wait_ms)) != PROTO_OK ||
	    (err = request_get_int(ctx, "ttl_ms", 1, &req->ttl_ms)) != PROTO_OK)
		return err;
	return PROTO_OK;
}

/* "sql" and "params" of obj; prefix names the statement in messages
 * ("" for query, "statements[2]." for transact). Parameter values are not
 * checked here: matching them to placeholders is bad_params, later. */
static enum proto_error
request_parse_statement(struct request_ctx *ctx, const json_t *obj, const char *prefix,
			struct proto_statement *st)
{
	const struct proto_parse_options *opts = ctx->opts;
	json_t *sql = json_object_get(obj, "sql");
	if (sql == NULL)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST, "field '%ssql' is required", prefix);
	if (!json_is_string(sql) || json_string_length(sql) == 0)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
				    "field '%ssql' must be a non-empty string", prefix);
	size_t len = json_string_length(sql);
	if (memchr(json_string_value(sql), '\0', len) != NULL)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST, "field '%ssql' must not contain NUL",
				    prefix);
	if (opts->max_sql_bytes > 0 && len > opts->max_sql_bytes)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
				    "field '%ssql' is %zu bytes long, at most %zu are allowed",
				    prefix, len, opts->max_sql_bytes);

	json_t *params = request_optional(obj, "params");
	if (params != NULL && !json_is_array(params))
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST, "field '%sparams' must be an array",
				    prefix);
	if (params != NULL && opts->max_params > 0 && json_array_size(params) > opts->max_params)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
				    "field '%sparams' has %zu elements, at most %zu are allowed",
				    prefix, json_array_size(params), opts->max_params);
	st->sql = json_string_value(sql);
	st->sql_len = len;
	st->params = params;
	return PROTO_OK;
}

static enum proto_error
request_parse_nothing(struct request_ctx *ctx)
{
	(void)ctx;
	return PROTO_OK;
}

static enum proto_error
request_parse_hello(struct request_ctx *ctx)
{
	json_t *client = request_optional(ctx->root, "client");
	json_t *token = request_optional(ctx->root, "token");

	if (client != NULL) {
		if (!json_is_string(client) || json_string_length(client) == 0 ||
		    json_string_length(client) > REQUEST_CLIENT_MAX)
			return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
					    "field 'client' must be a string of 1 to %d bytes",
					    REQUEST_CLIENT_MAX);
		/* Shown in logs and status: no C0/C1 control characters. */
		const unsigned char *s = (const unsigned char *)json_string_value(client);
		size_t len = json_string_length(client);
		for (size_t i = 0; i < len; i++)
			if (s[i] < 0x20 || s[i] == 0x7f ||
			    (s[i] == 0xc2 && i + 1 < len && s[i + 1] <= 0x9f))
				return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
						    "field 'client' must not contain control "
						    "characters");
		ctx->req->client = json_string_value(client);
	}
	if (token != NULL) {
		if (!json_is_string(token))
			return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
					    "field 'token' must be a string");
		if (memchr(json_string_value(token), '\0', json_string_length(token)) != NULL)
			return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
					    "field 'token' must not contain NUL");
		ctx->req->token = json_string_value(token);
	}
	return PROTO_OK;
}

static enum proto_error
request_parse_acquire(struct request_ctx *ctx)
{
	enum proto_error err = request_parse_lease_fields(ctx);
	if (err != PROTO_OK)
		return err;
	return request_parse_statements(ctx, false);
}

static enum proto_error
request_parse_query(struct request_ctx *ctx)
{
	return request_parse_statement(ctx, ctx->root, "", &ctx->req->query);
}

static enum proto_error
request_parse_renew(struct request_ctx *ctx)
{
	return request_get_int(ctx, "ttl_ms", 1, &ctx->req->ttl_ms);
}

/* "statements": an array of {"sql","params"?} objects; required (non-empty)
 * for transact, optional for acquire and commit (absent or empty: none). */
static enum proto_error
request_parse_statements(struct request_ctx *ctx, bool required)
{
	struct proto_request *req = ctx->req;
	enum proto_error err;
	json_t *stmts = json_object_get(ctx->root, "statements");

	if (stmts == NULL && !required)
		return PROTO_OK;
	if (stmts == NULL)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST, "field 'statements' is required");
	if (!json_is_array(stmts) || (required && json_array_size(stmts) == 0))
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
				    required ? "field 'statements' must be a non-empty array"
					     : "field 'statements' must be an array");
	size_t n = json_array_size(stmts);
	if (ctx->opts->max_statements > 0 && n > ctx->opts->max_statements)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
				    "field 'statements' has %zu elements, at most %zu are allowed",
				    n, ctx->opts->max_statements);
	if (n == 0)
		return PROTO_OK;

	req->statements = xcalloc(n, sizeof(*req->statements));
	for (size_t i = 0; i < n; i++) {
		json_t *st = json_array_get(stmts, i);
		char prefix[40];
		snprintf(prefix, sizeof(prefix), "statements[%zu].", i);
		if (!json_is_object(st))
			return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
					    "field 'statements[%zu]' must be an object", i);
		err = request_parse_statement(ctx, st, prefix, &req->statements[i]);
		if (err != PROTO_OK)
			return err;
		req->nstatements = i + 1;
	}
	return PROTO_OK;
}

static enum proto_error
request_parse_transact(struct request_ctx *ctx)
{
	enum proto_error err = request_parse_lease_fields(ctx);
	if (err != PROTO_OK)
		return err;
	return request_parse_statements(ctx, true);
}

static enum proto_error
request_parse_commit(struct request_ctx *ctx)
{
	return request_parse_statements(ctx, false);
}

static enum proto_error
request_parse_revoke(struct request_ctx *ctx)
{
	if (json_object_get(ctx->root, "lease") == NULL)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST, "field 'lease' is required");
	json_t *v = json_object_get(ctx->root, "lease");
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return request_fail(ctx, PROTO_ERR_BAD_REQUEST,
				    "field 'lease' must be a positive integer");
	ctx->req->lease = json_integer_value(v);
	return PROTO_OK;
}

enum proto_error
proto_request_parse(const char *line, size_t len, const struct proto_parse_options *opts,
		    struct proto_request *req, char *msg, size_t msgsize)
{
	struct request_ctx ctx = {
		.opts = opts,
		.req = req,
		.msg = msg,
		.msgsize = msgsize,
	};
	json_error_t jerr;

	memset(req, 0, sizeof(*req));
	req->op = PROTO_OP__COUNT;
	req->wait_ms = req->ttl_ms = req->lease = -1;
	if (msgsize > 0)
		msg[0] = '\0';

	/* Duplicate keys are refused: which "op" or "lease" was meant is not
	 * ours to guess. NUL is allowed so that string params can carry it;
	 * every field that must not hold one is checked below. */
	req->root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
			       &jerr);
	if (req->root == NULL) {
		/* jansson may quote raw input bytes: keep the message ASCII. */
		for (char *p = jerr.text; *p != '\0'; p++)
			if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
				*p = '?';
		return request_fail(&ctx, PROTO_ERR_BAD_REQUEST, "invalid JSON at byte %d: %s",
				    jerr.position, jerr.text);
	}
	ctx.root = req->root;
	if (!json_is_object(req->root))
		return request_fail(&ctx, PROTO_ERR_BAD_REQUEST, "request must be a JSON object");
	req->id = json_object_get(req->root, "id");

	if (opts->max_depth > 0 && request_depth(req->root, opts->max_depth) > opts->max_depth)
		return request_fail(&ctx, PROTO_ERR_BAD_REQUEST,
				    "request is nested deeper than %zu levels", opts->max_depth);

	json_t *op = json_object_get(req->root, "op");
	if (op == NULL)
		return request_fail(&ctx, PROTO_ERR_BAD_REQUEST, "field 'op' is required");
	if (!json_is_string(op))
		return request_fail(&ctx, PROTO_ERR_BAD_REQUEST, "field 'op' must be a string");
	const char *name = json_string_value(op);
	size_t namelen = json_string_length(op);
	const struct request_op *entry = NULL;
	for (size_t i = 0; i < REQUEST_NOPS; i++)
		if (strlen(request_ops[i].name) == namelen &&
		    memcmp(request_ops[i].name, name, namelen) == 0)
			entry = &request_ops[i];
	if (entry == NULL) {
		char shown[REQUEST_QUOTE_MAX + 4];
		return request_fail(&ctx, PROTO_ERR_BAD_REQUEST, "unknown op '%s'",
				    request_quote(shown, sizeof(shown), name, namelen));
	}
	req->op = entry->op;
	return entry->parse(&ctx);
}

void
proto_request_free(struct proto_request *req)
{
	json_decref(req->root);
	proto_table_free_array(req->tables, req->ntables);
	free(req->statements);
	memset(req, 0, sizeof(*req));
	req->op = PROTO_OP__COUNT;
	req->wait_ms = req->ttl_ms = req->lease = -1;
}
