/* Result encoding: MySQL rows streamed into JSON, with size limits. */
#ifndef TABLELOCK_RESULT_H
#define TABLELOCK_RESULT_H

#include <jansson.h>
#include <mysql.h>
#include <stdbool.h>
#include <stdint.h>

/* Builds {"columns":[…]} and rows as they are fetched one by one. Past
 * max_rows or max_result_bytes it stops keeping rows (the rest is still
 * fetched and dropped, so the session stays in step) and sets too_large. */
struct result_builder {
	uint64_t max_rows;
	uint64_t max_bytes;
	json_t *columns;
	json_t *rows;
	uint64_t nrows;
	uint64_t nbytes;
	bool too_large;
	char too_large_why[160];
};

void result_builder_limits(struct result_builder *b, uint64_t max_rows, uint64_t max_bytes);
void result_builder_start(struct result_builder *b, MYSQL_RES *res);
void result_builder_add(struct result_builder *b, MYSQL_RES *res, MYSQL_ROW row);
/* Hands over columns and rows (new references) and the row count. */
void result_builder_finish(struct result_builder *b, json_t **columns, json_t **rows,
			   uint64_t *nrows);
/* Drops what was built; keeps the limits. */
void result_builder_reset(struct result_builder *b);

/* The type name shown for a column ("int", "varchar", "blob", …). */
const char *result_type_name(const MYSQL_FIELD *field);

#endif
