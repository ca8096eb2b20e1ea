/* libFuzzer harness for proto/: a stream framed in random chunks, parsed and answered. */
/*
 * Input: four bytes of settings (max_line, caps, default database, chunk
 * sizes), then the stream.
 *
 * Invariants:
 * - framing returns exactly the '\n'-separated lines of the stream (one final
 *   '\r' dropped), whatever the chunking; TOO_LARGE exactly when a line, or
 *   the unterminated tail, is longer than max_line; pending bytes are the
 *   unreturned tail, at most max_line + 1 of them, and an idle frame holds
 *   no memory;
 * - a parsed request respects every cap and holds only valid table names;
 * - a refusal has a non-empty, valid UTF-8 message, and its error response
 *   (and every ok response) encodes as one JSON line that reads back with
 *   the same code and id.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto_frame.h"
#include "proto/proto_request.h"
#include "proto/proto_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t fuzz_request_depth(const json_t *v);
static void fuzz_request_check_line(struct buf *out, const json_t *response, json_t *id,
				    enum proto_error code);
static void fuzz_request_check_parsed(const struct proto_request *req,
				      const struct proto_parse_options *opts);
static void fuzz_request_parse(const char *line, size_t len,
			       const struct proto_parse_options *opts);

static size_t
fuzz_request_depth(const json_t *v)
{
	size_t deepest = 0, i;
	const char *key;
	json_t *child;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, child) {
			size_t d = fuzz_request_depth(child);
			deepest = d > deepest ? d : deepest;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child) {
			size_t d = fuzz_request_depth(child);
			deepest = d > deepest ? d : deepest;
		}
	} else {
		return 0;
	}
	return deepest + 1;
}

/* response must encode as one line that decodes to the same id and code. */
static void
fuzz_request_check_line(struct buf *out, const json_t *response, json_t *id,
			enum proto_error code)
{
	json_error_t jerr;

	buf_reset(out);
	if (proto_write_line(out, response) != 0)
		abort();
	if (out->len == 0 || out->data[out->len - 1] != '\n' ||
	    memchr(out->data, '\n', out->len - 1) != NULL)
		abort();
	json_t *back = json_loadb(out->data, out->len - 1, JSON_ALLOW_NUL, &jerr);
	if (back == NULL) {
		fprintf(stderr, "response does not read back: %s\n", jerr.text);
		abort();
	}
	json_t *back_id = json_object_get(back, "id");
	if ((id == NULL) != (back_id == NULL) || (id != NULL && !json_equal(id, back_id)))
		abort();
	if (json_is_true(json_object_get(back, "ok")) != (code == PROTO_OK))
		abort();
	if (code != PROTO_OK) {
		json_t *error = json_object_get(back, "error");
		const char *name = json_string_value(json_object_get(error, "code"));
		const char *message = json_string_value(json_object_get(error, "message"));
		if (name == NULL || strcmp(name, proto_error_name(code)) != 0)
			abort();
		if (proto_error_from_name(name) != code || message == NULL || message[0] == '\0')
			abort();
	}
	json_decref(back);
}

static void
fuzz_request_check_parsed(const struct proto_request *req, const struct proto_parse_options *opts)
{
	char why[160];

	if (req->op >= PROTO_OP__COUNT || proto_op_from_name(proto_op_name(req->op)) != req->op)
		abort();
	if (opts->max_depth > 0 && fuzz_request_depth(req->root) > opts->max_depth)
		abort();
	if (req->wait_ms < -1 || req->ttl_ms == 0 || req->ttl_ms < -1)
		abort();
	if (req->op == PROTO_OP_REVOKE && req->lease < 1)
		abort();
	if (req->op == PROTO_OP_HELLO && req->client != NULL) {
		size_t len = strlen(req->client);
		if (len == 0 || len > 128)
			abort();
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)req->client[i] < 0x20 || req->client[i] == 0x7f)
				abort();
	}

	bool lease = req->op == PROTO_OP_ACQUIRE || req->op == PROTO_OP_TRANSACT;
	if (lease != (req->ntables > 0))
		abort();
	if (opts->max_tables > 0 && req->ntables > opts->max_tables)
		abort();
	for (size_t i = 0; i < req->ntables; i++) {
		const struct proto_table *t = &req->tables[i];
		if (!proto_table_valid_part(t->db, strlen(t->db), why, sizeof why) ||
		    !proto_table_valid_part(t->name, strlen(t->name), why, sizeof why) ||
		    (t->alias != NULL &&
		     !proto_table_valid_part(t->alias, strlen(t->alias), why, sizeof why)))
			abort();
		for (size_t j = 0; j < i; j++) {
			const struct proto_table *u = &req->tables[j];
			bool same_alias = t->alias == NULL ? u->alias == NULL
							   : u->alias != NULL &&
								 strcmp(t->alias, u->alias) == 0;
			if (strcmp(t->db, u->db) == 0 && strcmp(t->name, u->name) == 0 &&
			    same_alias)
				abort(); /* duplicates are merged */
		}
	}

	const struct proto_statement *st = req->statements;
	size_t nst = req->nstatements;
	if (req->op == PROTO_OP_QUERY) {
		st = &req->query;
		nst = 1;
	}
	/* transact and query carry statements; acquire and commit may (run
	 * with LOCK TABLES, or before the commit: PROTOCOL.md); nothing else. */
	bool needs = req->op == PROTO_OP_TRANSACT || req->op == PROTO_OP_QUERY;
	bool may = needs || req->op == PROTO_OP_ACQUIRE || req->op == PROTO_OP_COMMIT;
	if ((needs && nst == 0) || (!may && nst > 0))
		abort();
	if (opts->max_statements > 0 && req->op != PROTO_OP_QUERY && nst > opts->max_statements)
		abort();
	for (size_t i = 0; i < nst; i++) {
		if (st[i].sql == NULL || st[i].sql_len == 0 ||
		    memchr(st[i].sql, '\0', st[i].sql_len) != NULL)
			abort();
		if (opts->max_sql_bytes > 0 && st[i].sql_len > opts->max_sql_bytes)
			abort();
		if (st[i].params != NULL &&
		    (!json_is_array(st[i].params) ||
		     (opts->max_params > 0 && json_array_size(st[i].params) > opts->max_params)))
			abort();
	}
}

static void
fuzz_request_parse(const char *line, size_t len, const struct proto_parse_options *opts)
{
	struct proto_request req;
	struct buf out = {0};
	char msg[256];

	memset(msg, 0x55, sizeof msg);
	enum proto_error code = proto_request_parse(line, len, opts, &req, msg, sizeof msg);
	if (code >= PROTO_ERR__COUNT || memchr(msg, '\0', sizeof msg) == NULL)
		abort();
	if (code == PROTO_OK) {
		fuzz_request_check_parsed(&req, opts);
		json_t *ok = proto_response_ok(req.id);
		fuzz_request_check_line(&out, ok, req.id, PROTO_OK);
		json_decref(ok);
	} else {
		json_t *text = json_string(msg);
		if (msg[0] == '\0' || text == NULL) {
			fprintf(stderr, "bad message for %s: '%s'\n", proto_error_name(code), msg);
			abort();
		}
		json_decref(text);
		json_t *error = proto_response_error(req.id, code, msg);
		fuzz_request_check_line(&out, error, req.id, code);
		json_decref(error);
	}
	proto_request_free(&req);
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t max_lines[] = {0, 8, 64, 300, 4096};
	static const size_t small[] = {0, 1, 2, 4};

	if (size < 4)
		return 0;
	struct proto_parse_options opts = {
		.default_db = (data[2] & 0x80) ? "app" : NULL,
		.max_depth = data[1] % 8,
		.max_tables = small[(data[1] >> 3) % 4],
		.max_statements = small[data[2] % 4],
		.max_params = small[(data[2] >> 2) % 4],
		.max_sql_bytes = (data[2] & 0x10) ? 16 : 0,
	};
	size_t max_line = max_lines[data[0] % 5];
	uint32_t rng = data[3] * 2654435761u + 1;
	const char *stream = (const char *)data + 4;
	size_t len = size - 4, fed = 0, expect = 0; /* expect: start of the next line */
	struct proto_frame frame;
	bool closed = false;

	proto_frame_init(&frame, max_line);
	while (fed < len && !closed) {
		rng ^= rng << 13;
		rng ^= rng >> 17;
		rng ^= rng << 5;
		size_t chunk = 1 + rng % (1u << (rng >> 28) % 10);
		if (chunk > len - fed)
			chunk = len - fed;
		proto_frame_feed(&frame, stream + fed, chunk);
		fed += chunk;

		for (;;) {
			const char *line;
			size_t n;
			enum proto_frame_status st = proto_frame_next(&frame, &line, &n);
			const char *nl = memchr(stream + expect, '\n', fed - expect);
			size_t want = nl != NULL ? (size_t)(nl - stream) - expect : fed - expect;
			if (want > 0 && stream[expect + want - 1] == '\r')
				want--;
			bool too_large = max_line > 0 && want > max_line;

			if (st == PROTO_FRAME_TOO_LARGE) {
				if (!too_large)
					abort();
				closed = true;
				break;
			}
			if (too_large)
				abort();
			if (st == PROTO_FRAME_NEED_MORE) {
				size_t pending = proto_frame_pending(&frame);
				if (nl != NULL || pending != fed - expect)
					abort();
				/* Bounded while waiting; nothing held when idle. */
				if (max_line > 0 && pending > max_line + 1)
					abort();
				if (pending == 0 && (frame.data != NULL || frame.cap != 0))
					abort();
				break;
			}
			if (st != PROTO_FRAME_LINE || nl == NULL || n != want ||
			    memcmp(line, stream + expect, n) != 0 || line[n] != '\0')
				abort();
			expect = (size_t)(nl - stream) + 1;
			if (proto_frame_pending(&frame) != fed - expect)
				abort();
			fuzz_request_parse(line, n, &opts);
		}
	}
	proto_frame_free(&frame);
	return 0;
}
