/* libFuzzer harness for conf/conf.c: any text loads or is refused cleanly, rules included. */
/*
 * Invariants (leaks are the sanitizer's):
 * - conf_load_string returns 0 or -1; on -1 err is NUL-terminated within
 *   errsize (on 0 it is not written), says where ("fuzz.conf..."), and a
 *   smaller buffer holds a prefix of the same message;
 * - a loaded config keeps the cross-key rules (default_ttl_ms <= max_ttl_ms,
 *   TCP listeners authenticate), every allow value has its line, and the
 *   same text loads again to a config conf_keep_fixed finds no change in;
 * - [access] rules compile or are refused with a file:line message.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "daemon/access.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_conf_report(const char *section, const char *name, void *arg);
static void fuzz_conf_check_loaded(const struct conf *c);

static void
fuzz_conf_report(const char *section, const char *name, void *arg)
{
	fprintf(stderr, "[%s] %s differs between two loads of the same text\n", section, name);
	(void)arg;
	abort();
}

static void
fuzz_conf_check_loaded(const struct conf *c)
{
	if (c->default_ttl_ms > c->max_ttl_ms)
		abort();
	for (size_t i = 0; i < c->nlisten; i++) {
		bool tls = strncmp(c->listen[i], "tls:", 4) == 0;
		bool tcp = tls || strncmp(c->listen[i], "tcp:", 4) == 0;
		if (tcp && c->ntokens == 0 && !(tls && c->tls_client_ca != NULL))
			abort(); /* an unauthenticated TCP listener */
	}
	for (size_t i = 0; i < c->access_allow.n; i++)
		if (c->access_allow.items[i] == NULL || c->access_allow.lines[i] < 1)
			abort();

	struct access *a = NULL;
	char err[400];
	memset(err, 0x55, sizeof err);
	if (access_compile(&c->access_allow, "fuzz.conf", &a, err, sizeof err) == 0) {
		if (access_enabled(a) != (c->access_allow.n > 0))
			abort();
		access_free(a);
	} else if (a != NULL || strncmp(err, "fuzz.conf:", 10) != 0 ||
		   strstr(err, ": [access] allow: ") == NULL) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t small_sizes[] = {1, 2, 11, 40};
	char *text = malloc(size + 1);
	char err[1024], small[64];
	struct conf c, again;

	memcpy(text, data, size);
	text[size] = '\0'; /* a NUL inside ends the text early: fine */

	memset(err, 0x55, sizeof err);
	int rc = conf_load_string("fuzz.conf", text, &c, err, sizeof err);
	if (rc != 0 && rc != -1)
		abort();
	if (rc == -1) {
		if (memchr(err, '\0', sizeof err) == NULL)
			abort();
		size_t smallsize = small_sizes[size % 4];
		if (strncmp(err, "fuzz.conf", 9) != 0)
			abort();
		memset(small, 0x55, sizeof small);
		if (conf_load_string("fuzz.conf", text, &again, small, smallsize) != -1)
			abort();
		if (memchr(small, '\0', smallsize) == NULL ||
		    strncmp(small, err, strlen(small)) != 0)
			abort();
		conf_free(&c); /* "left freed": freeing again is harmless */
		free(text);
		return 0;
	}

	fuzz_conf_check_loaded(&c);
	if (conf_load_string("fuzz.conf", text, &again, err, sizeof err) != 0)
		abort();
	conf_keep_fixed(&again, &c, fuzz_conf_report, NULL);
	conf_free(&again);
	conf_free(&c);
	conf_free(&c);
	free(text);
	return 0;
}
