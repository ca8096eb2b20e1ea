/* libtablelock results and status: response JSON into typed C values. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/tablelock.h"
#include "client/tablelock_private.h"
#include "proto/proto_bytes.h"
#include "util/plural.h"
#include "util/xmalloc.h"

/* One cell, decoded once: typed access and text both read from here. */
struct result_cell {
	enum tablelock_type type;
	char *text; /* NUL-terminated; NULL for SQL NULL */
	size_t len;
	int64_t i; /* TABLELOCK_INT, TABLELOCK_BOOL */
	double d;  /* TABLELOCK_DOUBLE */
};

struct tablelock_result {
	size_t ncolumns;
	char **names;
	char **types;
	size_t nrows;
	struct result_cell *cells; /* nrows * ncolumns, row after row */
	uint64_t affected_rows;
	uint64_t insert_id;
	unsigned int warnings;
	struct tablelock_error *error; /* a results[] entry the daemon could not send */
};

static int result_cell_set(struct result_cell *cell, const json_t *v);
static const struct result_cell *result_cell(const struct tablelock_result *r, size_t row,
                                             size_t col);
static char *result_strdup_json(const json_t *v);
static int64_t result_int(const json_t *obj, const char *key);
static const char **result_string_list(const json_t *a, size_t *n);
static void result_blockers(struct tablelock_lease_status *l, const json_t *o);
static void result_lease_free(struct tablelock_lease_status *l);

/* ---------------------------------------------------------------- results */

/* Shortest text that reads back as the same double. */
static void
result_format_double(char *out, size_t size, double d)
{
	snprintf(out, size, "%.15g", d);
	if (strtod(out, NULL) != d)
		snprintf(out, size, "%.17g", d);
}

static int
result_cell_set(struct result_cell *cell, const json_t *v)
{
	char num[64];

	memset(cell, 0, sizeof(*cell));
	switch (json_typeof(v)) {
	case JSON_NULL:
		cell->type = TABLELOCK_NULL;
		return 0;
	case JSON_TRUE:
	case JSON_FALSE:
		cell->type = TABLELOCK_BOOL;
		cell->i = json_is_true(v);
		cell->text = xstrdup(cell->i ? "1" : "0");
		break;
	case JSON_INTEGER:
		cell->type = TABLELOCK_INT;
		cell->i = (int64_t)json_integer_value(v);
		snprintf(num, sizeof(num), "%" PRId64, cell->i);
		cell->text = xstrdup(num);
		break;
	case JSON_REAL:
		cell->type = TABLELOCK_DOUBLE;
		cell->d = json_real_value(v);
		result_format_double(num, sizeof(num), cell->d);
		cell->text = xstrdup(num);
		break;
	case JSON_STRING:
		cell->type = TABLELOCK_STRING;
		cell->len = json_string_length(v);
		cell->text = xmalloc(cell->len + 1);
		memcpy(cell->text, json_string_value(v), cell->len);
		cell->text[cell->len] = '\0';
		return 0;
	case JSON_OBJECT:
		/* Bytes: {"base64":"…"}. */
		if ((cell->text = proto_bytes_decode(v, &cell->len)) == NULL)
			return -1;
		cell->type = TABLELOCK_BINARY;
		return 0;
	case JSON_ARRAY:
		return -1;
	}
	cell->len = strlen(cell->text);
	return 0;
}

struct tablelock_result *
tablelock_result_from_json(const json_t *obj, char *why, size_t whysize)
{
	struct tablelock_result *r = xcalloc(1, sizeof(*r));
	const json_t *columns = json_object_get(obj, "columns");
	const json_t *rows = json_object_get(obj, "rows");

	if (!json_is_object(obj)) {
		snprintf(why, whysize, "a result is not an object");
		goto fail;
	}
	if (json_object_get(obj, "error") != NULL) {
		/* The statement ran, but its result was over the daemon's
		 * limits (result_too_large): no rows, only why. */
		r->error = xcalloc(1, sizeof(*r->error));
		tablelock_error_from_response(r->error, obj);
		return r;
	}
	r->affected_rows = (uint64_t)result_int(obj, "affected_rows");
	r->insert_id = (uint64_t)result_int(obj, "insert_id");
	r->warnings = (unsigned int)result_int(obj, "warnings");
	if (r->affected_rows == UINT64_MAX)
		r->affected_rows = 0;
	if (r->insert_id == UINT64_MAX)
		r->insert_id = 0;
	if (r->warnings == UINT32_MAX)
		r->warnings = 0;
	if (columns == NULL)
		return r; /* no result set (UPDATE, …) */
	if (!json_is_array(columns) || !json_is_array(rows)) {
		snprintf(why, whysize, "\"columns\" and \"rows\" must be arrays");
		goto fail;
	}
	r->ncolumns = json_array_size(columns);
	r->names = xcalloc(r->ncolumns, sizeof(*r->names));
	r->types = xcalloc(r->ncolumns, sizeof(*r->types));
	for (size_t c = 0; c < r->ncolumns; c++) {
		const json_t *col = json_array_get(columns, c);
		const char *name = json_string_value(json_object_get(col, "name"));
		const char *type = json_string_value(json_object_get(col, "type"));
		r->names[c] = xstrdup(name != NULL ? name : "");
		r->types[c] = xstrdup(type != NULL ? type : "");
	}
	r->cells =
	    xcalloc(json_array_size(rows) * (r->ncolumns ? r->ncolumns : 1), sizeof(*r->cells));
	for (size_t i = 0; i < json_array_size(rows); i++) {
		const json_t *row = json_array_get(rows, i);
		if (!json_is_array(row) || json_array_size(row) != r->ncolumns) {
			snprintf(why, whysize, "row %zu does not have %zu value%s", i, r->ncolumns,
			         plural_s(r->ncolumns));
			goto fail;
		}
		r->nrows++;
		for (size_t c = 0; c < r->ncolumns; c++) {
			if (result_cell_set(&r->cells[i * r->ncolumns + c],
			                    json_array_get(row, c)) != 0) {
				snprintf(why, whysize, "row %zu column %zu has a bad value", i, c);
				goto fail;
			}
		}
	}
	return r;
fail:
	tablelock_result_free(r);
	return NULL;
}

void
tablelock_result_free(struct tablelock_result *r)
{
	if (r == NULL)
		return;
	for (size_t c = 0; c < r->ncolumns; c++) {
		if (r->names != NULL)
			free(r->names[c]);
		if (r->types != NULL)
			free(r->types[c]);
	}
	for (size_t i = 0; r->cells != NULL && i < r->nrows * r->ncolumns; i++)
		free(r->cells[i].text);
	free(r->error);
	free(r->names);
	free(r->types);
	free(r->cells);
	free(r);
}

static const struct result_cell *
result_cell(const struct tablelock_result *r, size_t row, size_t col)
{
	if (r == NULL || row >= r->nrows || col >= r->ncolumns)
		return NULL;
	return &r->cells[row * r->ncolumns + col];
}

size_t
tablelock_result_ncolumns(const struct tablelock_result *r)
{
	return r != NULL ? r->ncolumns : 0;
}

const char *
tablelock_result_column_name(const struct tablelock_result *r, size_t col)
{
	return r != NULL && col < r->ncolumns ? r->names[col] : NULL;
}

const char *
tablelock_result_column_type(const struct tablelock_result *r, size_t col)
{
	return r != NULL && col < r->ncolumns ? r->types[col] : NULL;
}

size_t
tablelock_result_nrows(const struct tablelock_result *r)
{
	return r != NULL ? r->nrows : 0;
}

enum tablelock_type
tablelock_result_type(const struct tablelock_result *r, size_t row, size_t col)
{
	const struct result_cell *cell = result_cell(r, row, col);
	return cell != NULL ? cell->type : TABLELOCK_NULL;
}

bool
tablelock_result_is_null(const struct tablelock_result *r, size_t row, size_t col)
{
	return tablelock_result_type(r, row, col) == TABLELOCK_NULL;
}

const char *
tablelock_result_text(const struct tablelock_result *r, size_t row, size_t col, size_t *len)
{
	const struct result_cell *cell = result_cell(r, row, col);

	if (len != NULL)
		*len = cell != NULL ? cell->len : 0;
	return cell != NULL ? cell->text : NULL;
}

int
tablelock_result_int64(const struct tablelock_result *r, size_t row, size_t col, int64_t *out)
{
	const struct result_cell *cell = result_cell(r, row, col);
	char *end;
	long long v;

	if (cell == NULL)
		return -1;
	switch (cell->type) {
	case TABLELOCK_INT:
	case TABLELOCK_BOOL:
		*out = cell->i;
		return 0;
	case TABLELOCK_STRING:
		if (cell->len == 0 || cell->text[0] == ' ')
			return -1;
		errno = 0;
		v = strtoll(cell->text, &end, 10);
		if (errno != 0 || *end != '\0')
			return -1;
		*out = v;
		return 0;
	default:
		return -1;
	}
}

int
tablelock_result_uint64(const struct tablelock_result *r, size_t row, size_t col, uint64_t *out)
{
	const struct result_cell *cell = result_cell(r, row, col);
	char *end;
	unsigned long long v;

	if (cell == NULL)
		return -1;
	switch (cell->type) {
	case TABLELOCK_INT:
	case TABLELOCK_BOOL:
		if (cell->i < 0)
			return -1;
		*out = (uint64_t)cell->i;
		return 0;
	case TABLELOCK_STRING:
		/* strtoull accepts "-1" (wrapping): digits only. */
		if (cell->len == 0 || cell->text[0] < '0' || cell->text[0] > '9')
			return -1;
		errno = 0;
		v = strtoull(cell->text, &end, 10);
		if (errno != 0 || *end != '\0')
			return -1;
		*out = v;
		return 0;
	default:
		return -1;
	}
}

int
tablelock_result_double(const struct tablelock_result *r, size_t row, size_t col, double *out)
{
	const struct result_cell *cell = result_cell(r, row, col);
	char *end;
	double d;

	if (cell == NULL)
		return -1;
	switch (cell->type) {
	case TABLELOCK_INT:
	case TABLELOCK_BOOL:
		*out = (double)cell->i;
		return 0;
	case TABLELOCK_DOUBLE:
		*out = cell->d;
		return 0;
	case TABLELOCK_STRING:
		if (cell->len == 0 || cell->text[0] == ' ')
			return -1;
		errno = 0;
		d = strtod(cell->text, &end);
		if (errno != 0 || *end != '\0' || !isfinite(d))
			return -1;
		*out = d;
		return 0;
	default:
		return -1;
	}
}

uint64_t
tablelock_result_affected_rows(const struct tablelock_result *r)
{
	return r != NULL ? r->affected_rows : 0;
}

uint64_t
tablelock_result_insert_id(const struct tablelock_result *r)
{
	return r != NULL ? r->insert_id : 0;
}

unsigned int
tablelock_result_warnings(const struct tablelock_result *r)
{
	return r != NULL ? r->warnings : 0;
}

const struct tablelock_error *
tablelock_result_error(const struct tablelock_result *r)
{
	return r != NULL ? r->error : NULL;
}

/* ---------------------------------------------------------------- status */

static char *
result_strdup_json(const json_t *v)
{
	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

/* An integer field, or -1 when absent or null. */
static int64_t
result_int(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static const char **
result_string_list(const json_t *a, size_t *n)
{
	const char **list;

	*n = 0;
	if (!json_is_array(a) || json_array_size(a) == 0)
		return NULL;
	list = xcalloc(json_array_size(a), sizeof(*list));
	for (size_t i = 0; i < json_array_size(a); i++) {
		const char *s = json_string_value(json_array_get(a, i));
		list[(*n)++] = xstrdup(s != NULL ? s : "?");
	}
	return list;
}

static void
result_blockers(struct tablelock_lease_status *l, const json_t *o)
{
	const json_t *by = json_object_get(o, "blocked_by");

	l->blockers_unavailable = result_strdup_json(json_object_get(o, "blockers_unavailable"));
	if (!json_is_array(by))
		return;
	l->blocked_by = xcalloc(json_array_size(by) + 1, sizeof(*l->blocked_by));
	for (size_t i = 0; i < json_array_size(by); i++) {
		const json_t *e = json_array_get(by, i);
		const json_t *lock = json_object_get(e, "lock");
		struct tablelock_blocker *b = &l->blocked_by[l->nblocked_by];

		if (!json_is_object(e))
			continue;
		l->nblocked_by++;
		b->mysql_thread = result_int(e, "mysql_thread");
		b->user = result_strdup_json(json_object_get(e, "user"));
		b->host = result_strdup_json(json_object_get(e, "host"));
		b->db = result_strdup_json(json_object_get(e, "db"));
		b->command = result_strdup_json(json_object_get(e, "command"));
		b->state = result_strdup_json(json_object_get(e, "state"));
		b->time_s = result_int(e, "time_s");
		b->info = result_strdup_json(json_object_get(e, "info"));
		b->lock_type = result_strdup_json(json_object_get(lock, "type"));
		b->lock_table = result_strdup_json(json_object_get(lock, "table"));
		b->pending = json_is_string(json_object_get(lock, "status")) &&
		             strcmp(json_string_value(json_object_get(lock, "status")), "pending") == 0;
	}
}

static void
result_lease_free(struct tablelock_lease_status *l)
{
	for (size_t i = 0; i < l->nblocked_by; i++) {
		struct tablelock_blocker *b = &l->blocked_by[i];
		free((char *)b->user);
		free((char *)b->host);
		free((char *)b->db);
		free((char *)b->command);
		free((char *)b->state);
		free((char *)b->info);
		free((char *)b->lock_type);
		free((char *)b->lock_table);
	}
	free(l->blocked_by);
	free((char *)l->blockers_unavailable);
	free((char *)l->client);
	free((char *)l->address);
	free((char *)l->state);
	for (size_t i = 0; i < l->nread; i++)
		free((char *)l->read[i]);
	for (size_t i = 0; i < l->nwrite; i++)
		free((char *)l->write[i]);
	free(l->read);
	free(l->write);
}

struct tablelock_status *
tablelock_status_from_json(const json_t *obj, char *why, size_t whysize)
{
	const json_t *leases = json_object_get(obj, "leases");
	const json_t *pool = json_object_get(obj, "pool");
	const json_t *totals = json_object_get(obj, "totals");
	struct tablelock_status *s;

	if (!json_is_array(leases)) {
		snprintf(why, whysize, "no \"leases\" array");
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->leases = xcalloc(json_array_size(leases), sizeof(*s->leases));
	for (size_t i = 0; i < json_array_size(leases); i++) {
		const json_t *o = json_array_get(leases, i);
		const json_t *peer = json_object_get(o, "peer");
		struct tablelock_lease_status *l = &s->leases[s->nleases];
		int64_t id = result_int(o, "lease");

		if (!json_is_object(o))
			continue;
		s->nleases++;
		l->lease = id > 0 ? (uint64_t)id : 0; /* hidden from non-admins */
		l->client = result_strdup_json(json_object_get(o, "client"));
		l->uid = (long)result_int(peer, "uid");
		l->pid = (long)result_int(peer, "pid");
		l->address = result_strdup_json(json_object_get(peer, "address"));
		l->read = result_string_list(json_object_get(o, "read"), &l->nread);
		l->write = result_string_list(json_object_get(o, "write"), &l->nwrite);
		l->state = result_strdup_json(json_object_get(o, "state"));
		if (l->state == NULL)
			l->state = xstrdup("?");
		l->age_ms = result_int(o, "age_ms");
		l->held_ms = result_int(o, "held_ms");
		l->expires_in_ms = result_int(o, "expires_in_ms");
		l->mysql_thread = result_int(o, "mysql_thread");
		l->transact = json_is_true(json_object_get(o, "transact"));
		l->fence = result_int(o, "fence") > 0 ? (uint64_t)result_int(o, "fence") : 0;
		result_blockers(l, o);
	}
	s->pool.size = result_int(pool, "size");
	s->pool.idle = result_int(pool, "idle");
	s->pool.busy = result_int(pool, "busy");
	s->pool.connecting = result_int(pool, "connecting");
	s->pool.broken = result_int(pool, "broken");
	s->totals.acquired = result_int(totals, "acquired");
	s->totals.committed = result_int(totals, "committed");
	s->totals.rolled_back = result_int(totals, "rolled_back");
	s->totals.expired = result_int(totals, "expired");
	s->totals.released_on_disconnect = result_int(totals, "released_on_disconnect");
	s->totals.lock_timeouts = result_int(totals, "lock_timeouts");
	s->totals.revoked = result_int(totals, "revoked");
	s->totals.lost = result_int(totals, "lost");
	s->totals.shutdown = result_int(totals, "shutdown");
	s->clients = result_int(obj, "clients");
	s->waiting = result_int(obj, "waiting");
	s->uptime_ms = result_int(obj, "uptime_ms");
	return s;
}

void
tablelock_status_free(struct tablelock_status *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nleases; i++)
		result_lease_free(&s->leases[i]);
	free(s->leases);
	free(s);
}
