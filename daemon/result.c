/* Result encoding: MySQL rows streamed into JSON, with size limits. */
#include "daemon/result.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto_bytes.h"

/* MySQL's "binary" character set number: such string columns hold bytes,
 * not text (MariaDB KB "Supported Character Sets and Collations"). */
#define RESULT_BINARY_CHARSET 63

enum result_kind { KIND_TEXT, KIND_SIGNED, KIND_REAL, KIND_EXACT, KIND_BYTES };

struct result_type {
	enum enum_field_types type;
	const char *name;	/* as text */
	const char *binary_name; /* with the binary charset */
	enum result_kind kind;
};

static const struct result_type result_types[] = {
	{MYSQL_TYPE_DECIMAL, "decimal", NULL, KIND_EXACT},
	{MYSQL_TYPE_NEWDECIMAL, "decimal", NULL, KIND_EXACT},
	{MYSQL_TYPE_TINY, "tinyint", NULL, KIND_SIGNED},
	{MYSQL_TYPE_SHORT, "smallint", NULL, KIND_SIGNED},
	{MYSQL_TYPE_INT24, "mediumint", NULL, KIND_SIGNED},
	{MYSQL_TYPE_LONG, "int", NULL, KIND_SIGNED},
	{MYSQL_TYPE_LONGLONG, "bigint", NULL, KIND_SIGNED},
	{MYSQL_TYPE_YEAR, "year", NULL, KIND_SIGNED},
	{MYSQL_TYPE_FLOAT, "float", NULL, KIND_REAL},
	{MYSQL_TYPE_DOUBLE, "double", NULL, KIND_REAL},
	{MYSQL_TYPE_NULL, "null", NULL, KIND_TEXT},
	{MYSQL_TYPE_TIMESTAMP, "timestamp", NULL, KIND_TEXT},
	{MYSQL_TYPE_DATE, "date", NULL, KIND_TEXT},
	{MYSQL_TYPE_NEWDATE, "date", NULL, KIND_TEXT},
	{MYSQL_TYPE_TIME, "time", NULL, KIND_TEXT},
	{MYSQL_TYPE_DATETIME, "datetime", NULL, KIND_TEXT},
	{MYSQL_TYPE_BIT, "bit", "bit", KIND_BYTES},
	{MYSQL_TYPE_JSON, "json", NULL, KIND_TEXT},
	{MYSQL_TYPE_ENUM, "enum", NULL, KIND_TEXT},
	{MYSQL_TYPE_SET, "set", NULL, KIND_TEXT},
	{MYSQL_TYPE_VARCHAR, "varchar", "varbinary", KIND_TEXT},
	{MYSQL_TYPE_VAR_STRING, "varchar", "varbinary", KIND_TEXT},
	{MYSQL_TYPE_STRING, "char", "binary", KIND_TEXT},
	{MYSQL_TYPE_TINY_BLOB, "text", "blob", KIND_TEXT},
	{MYSQL_TYPE_MEDIUM_BLOB, "text", "blob", KIND_TEXT},
	{MYSQL_TYPE_LONG_BLOB, "text", "blob", KIND_TEXT},
	{MYSQL_TYPE_BLOB, "text", "blob", KIND_TEXT},
	{MYSQL_TYPE_GEOMETRY, "geometry", "geometry", KIND_BYTES},
};

static const struct result_type *result_type_of(const MYSQL_FIELD *field);
static bool result_is_binary(const MYSQL_FIELD *field, const struct result_type *t);
static json_t *result_value(const MYSQL_FIELD *field, const char *data, unsigned long len);

static const struct result_type *
result_type_of(const MYSQL_FIELD *field)
{
	static const struct result_type unknown = {MYSQL_TYPE_STRING, "unknown", NULL, KIND_TEXT};
	for (size_t i = 0; i < sizeof(result_types) / sizeof(result_types[0]); i++)
		if (result_types[i].type == field->type)
			return &result_types[i];
	return &unknown;
}

static bool
result_is_binary(const MYSQL_FIELD *field, const struct result_type *t)
{
	if (t->kind == KIND_BYTES)
		return true;
	return t->binary_name != NULL && field->charsetnr == RESULT_BINARY_CHARSET;
}

const char *
result_type_name(const MYSQL_FIELD *field)
{
	const struct result_type *t = result_type_of(field);
	if (field->flags & ENUM_FLAG)
		return "enum";
	if (field->flags & SET_FLAG)
		return "set";
	if (result_is_binary(field, t))
		return t->binary_name;
	return t->name;
}

static json_t *
result_value(const MYSQL_FIELD *field, const char *data, unsigned long len)
{
	const struct result_type *t = result_type_of(field);
	char *end;

	if (data == NULL)
		return json_null();
	if (result_is_binary(field, t))
		return proto_bytes_encode(data, len);
	switch (t->kind) {
	case KIND_SIGNED:
		errno = 0;
		if (field->flags & UNSIGNED_FLAG) {
			unsigned long long u = strtoull(data, &end, 10);
			/* Above 2^63-1 a JSON integer would lose exactness in
			 * most clients: send the exact decimal text. */
			if (errno == 0 && *end == '\0' && u <= (unsigned long long)INT64_MAX)
				return json_integer((json_int_t)u);
		} else {
			long long v = strtoll(data, &end, 10);
			if (errno == 0 && *end == '\0')
				return json_integer(v);
		}
		return json_stringn(data, len);
	case KIND_REAL: {
		double d = strtod(data, &end);
		if (*end == '\0')
			return json_real(d);
		return json_stringn(data, len);
	}
	case KIND_EXACT:
	case KIND_TEXT:
	case KIND_BYTES:
		break;
	}
	/* Text columns arrive in utf8mb4 (the connection charset); a value that
	 * is still not valid UTF-8 is sent as bytes rather than mangled. */
	json_t *s = json_stringn(data, len);
	return s != NULL ? s : proto_bytes_encode(data, len);
}

void
result_builder_limits(struct result_builder *b, uint64_t max_rows, uint64_t max_bytes)
{
	b->max_rows = max_rows;
	b->max_bytes = max_bytes;
}

void
result_builder_start(struct result_builder *b, MYSQL_RES *res)
{
	unsigned int n = mysql_num_fields(res);
	MYSQL_FIELD *fields = mysql_fetch_fields(res);

	result_builder_reset(b);
	b->columns = json_array();
	b->rows = json_array();
	for (unsigned int i = 0; i < n; i++)
		json_array_append_new(b->columns,
				      json_pack("{s:s,s:s}", "name", fields[i].name, "type",
						result_type_name(&fields[i])));
}

void
result_builder_add(struct result_builder *b, MYSQL_RES *res, MYSQL_ROW row)
{
	unsigned int n = mysql_num_fields(res);
	MYSQL_FIELD *fields = mysql_fetch_fields(res);
	unsigned long *lengths = mysql_fetch_lengths(res);
	uint64_t bytes = 2;
	json_t *out;

	b->nrows++;
	if (b->too_large)
		return;
	for (unsigned int i = 0; i < n; i++)
		bytes += lengths[i] + 4;
	if (b->max_rows > 0 && b->nrows > b->max_rows) {
		b->too_large = true;
		snprintf(b->too_large_why, sizeof(b->too_large_why),
			 "result has more than max_rows (%llu) rows", (unsigned long long)b->max_rows);
	} else if (b->max_bytes > 0 && b->nbytes + bytes > b->max_bytes) {
		b->too_large = true;
		snprintf(b->too_large_why, sizeof(b->too_large_why),
			 "result is larger than max_result_bytes (%llu)",
			 (unsigned long long)b->max_bytes);
	}
	if (b->too_large) {
		/* Drop what was kept: the client gets an error, not a part. */
		json_array_clear(b->rows);
		return;
	}
	b->nbytes += bytes;
	out = json_array();
	for (unsigned int i = 0; i < n; i++)
		json_array_append_new(out, result_value(&fields[i], row[i], lengths[i]));
	json_array_append_new(b->rows, out);
}

void
result_builder_finish(struct result_builder *b, json_t **columns, json_t **rows, uint64_t *nrows)
{
	*columns = json_incref(b->columns);
	*rows = json_incref(b->rows);
	*nrows = b->nrows;
}

void
result_builder_reset(struct result_builder *b)
{
	json_decref(b->columns);
	json_decref(b->rows);
	b->columns = NULL;
	b->rows = NULL;
	b->nrows = 0;
	b->nbytes = 0;
	b->too_large = false;
	b->too_large_why[0] = '\0';
}
