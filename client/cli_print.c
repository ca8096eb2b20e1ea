/* Results on the terminal: aligned tables for people, JSON lines for programs. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "util/buf.h"
#include "util/plural.h"
#include "util/xmalloc.h"

/* Binary values show this many bytes as hex, then "…". */
#define PRINT_BINARY_MAX 32

static char *print_cell(const struct tablelock_result *r, size_t row, size_t col);
static size_t print_width(const char *s);
static bool print_right_aligned(const struct tablelock_result *r, size_t col);
static void print_padded(FILE *out, const char *s, size_t width, bool right, bool last);

/* The cell as one line of text: NULL, numbers, text with control
 * characters escaped (so rows stay one line), bytes as 0x…. */
static char *
print_cell(const struct tablelock_result *r, size_t row, size_t col)
{
	struct buf b = {0};
	size_t len;
	const char *text = tablelock_result_text(r, row, col, &len);

	if (text == NULL)
		return xstrdup("NULL");
	if (tablelock_result_type(r, row, col) == TABLELOCK_BINARY) {
		buf_append_str(&b, "0x");
		for (size_t i = 0; i < len && i < PRINT_BINARY_MAX; i++)
			buf_appendf(&b, "%02X", (unsigned char)text[i]);
		if (len > PRINT_BINARY_MAX)
			buf_append_str(&b, "…");
		return b.data;
	}
	buf_reserve(&b, len + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\n')
			buf_append_str(&b, "\\n");
		else if (c == '\t')
			buf_append_str(&b, "\\t");
		else if (c == '\r')
			buf_append_str(&b, "\\r");
		else if (c < 0x20 || c == 0x7f)
			buf_appendf(&b, "\\x%02x", c);
		else
			buf_append_char(&b, (char)c);
	}
	if (b.data == NULL)
		return xstrdup("");
	return b.data;
}

/* Columns on screen: UTF-8 code points (wide characters count one). */
static size_t
print_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static bool
print_right_aligned(const struct tablelock_result *r, size_t col)
{
	const char *type = tablelock_result_column_type(r, col);

	if (type != NULL && strcmp(type, "decimal") == 0)
		return true;
	for (size_t row = 0; row < tablelock_result_nrows(r); row++) {
		enum tablelock_type t = tablelock_result_type(r, row, col);
		if (t == TABLELOCK_NULL)
			continue;
		return t == TABLELOCK_INT || t == TABLELOCK_DOUBLE;
	}
	return false;
}

static void
print_padded(FILE *out, const char *s, size_t width, bool right, bool last)
{
	size_t w = print_width(s);
	size_t pad = w < width ? width - w : 0;

	if (right)
		fprintf(out, "%*s%s", (int)pad, "", s);
	else if (last)
		fputs(s, out); /* no trailing blanks */
	else
		fprintf(out, "%s%*s", s, (int)pad, "");
	fputs(last ? "\n" : "  ", out);
}

void
cli_print_result(FILE *out, const struct tablelock_result *r)
{
	size_t ncols = tablelock_result_ncolumns(r), nrows = tablelock_result_nrows(r);
	size_t *width;
	bool *right;
	char **cells;

	if (ncols == 0) {
		unsigned long long n = (unsigned long long)tablelock_result_affected_rows(r);
		fprintf(out, "OK, %llu row%s affected", n, plural_s(n));
		if (tablelock_result_insert_id(r) != 0)
			fprintf(out, ", insert id %llu",
			        (unsigned long long)tablelock_result_insert_id(r));
		if (tablelock_result_warnings(r) != 0)
			fprintf(out, ", %u warning%s", tablelock_result_warnings(r),
			        plural_s(tablelock_result_warnings(r)));
		fputc('\n', out);
		return;
	}
	width = xcalloc(ncols, sizeof(*width));
	right = xcalloc(ncols, sizeof(*right));
	cells = xcalloc(nrows * ncols, sizeof(*cells));
	for (size_t c = 0; c < ncols; c++) {
		width[c] = print_width(tablelock_result_column_name(r, c));
		right[c] = print_right_aligned(r, c);
	}
	for (size_t row = 0; row < nrows; row++) {
		for (size_t c = 0; c < ncols; c++) {
			char *cell = print_cell(r, row, c);
			size_t w = print_width(cell);
			cells[row * ncols + c] = cell;
			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t c = 0; c < ncols; c++)
		print_padded(out, tablelock_result_column_name(r, c), width[c], right[c],
		             c == ncols - 1);
	for (size_t c = 0; c < ncols; c++) {
		for (size_t i = 0; i < width[c]; i++)
			fputc('-', out);
		fputs(c == ncols - 1 ? "\n" : "  ", out);
	}
	for (size_t row = 0; row < nrows; row++)
		for (size_t c = 0; c < ncols; c++)
			print_padded(out, cells[row * ncols + c], width[c], right[c],
			             c == ncols - 1);
	fprintf(out, "(%zu row%s", nrows, plural_s(nrows));
	if (tablelock_result_warnings(r) != 0)
		fprintf(out, ", %u warning%s", tablelock_result_warnings(r),
		        plural_s(tablelock_result_warnings(r)));
	fputs(")\n", out);
	for (size_t i = 0; i < nrows * ncols; i++)
		free(cells[i]);
	free(cells);
	free(width);
	free(right);
}

void
cli_print_result_json(FILE *out, const struct tablelock *tl, long index)
{
	const char *raw = tablelock_last_response(tl);
	json_t *resp, *obj, *line;
	char *text;

	if (raw == NULL || (resp = json_loads(raw, 0, NULL)) == NULL)
		return;
	obj = index >= 0 ? json_array_get(json_object_get(resp, "results"), (size_t)index) : resp;
	line = json_object();
	if (index >= 0)
		json_object_set_new(line, "statement", json_integer(index));
	if (json_is_object(obj)) {
		const char *key;
		json_t *value;
		json_object_foreach(obj, key, value)
		{
			if (strcmp(key, "id") != 0 && strcmp(key, "ok") != 0)
				json_object_set(line, key, value);
		}
	}
	text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text != NULL) {
		fputs(text, out);
		fputc('\n', out);
		free(text);
	}
	json_decref(line);
	json_decref(resp);
}

void
cli_format_duration(char *out, size_t size, int64_t ms)
{
	if (ms < 0)
		snprintf(out, size, "-");
	else if (ms < 1000)
		snprintf(out, size, "%lldms", (long long)ms);
	else if (ms < 60000)
		snprintf(out, size, "%.1fs", (double)(ms / 100) / 10.0);
	else if (ms < 3600000)
		snprintf(out, size, "%lldm%02llds", (long long)(ms / 60000),
		         (long long)(ms / 1000 % 60));
	else if (ms < 86400000)
		snprintf(out, size, "%lldh%02lldm", (long long)(ms / 3600000),
		         (long long)(ms / 60000 % 60));
	else
		snprintf(out, size, "%lldd%02lldh", (long long)(ms / 86400000),
		         (long long)(ms / 3600000 % 24));
}
