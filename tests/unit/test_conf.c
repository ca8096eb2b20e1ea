/* Unit tests of the config parser: defaults, every value type, every error, the sample file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "util/buf.h"

/* Tests run from the repository root; __FILE__ finds it from elsewhere too. */
static void
repo_path(char *out, size_t n, const char *rel)
{
	const char *f = __FILE__;
	const char *tail = strstr(f, "tests/unit/test_conf.c");
	int prefix = tail != NULL ? (int)(tail - f) : 0;
	snprintf(out, n, "%.*s%s", prefix, f, rel);
}

static void
assert_str(const char *got, const char *want)
{
	if (got == NULL || want == NULL)
		assert_ptr_equal(got, want);
	else
		assert_string_equal(got, want);
}

/* Every member, so a key added to conf.h without a test shows up here. */
static void
assert_conf_equal(const struct conf *a, const struct conf *b)
{
	assert_int_equal(a->nlisten, b->nlisten);
	for (size_t i = 0; i < a->nlisten; i++)
		assert_string_equal(a->listen[i], b->listen[i]);
	assert_int_equal(a->socket_mode, b->socket_mode);
	assert_int_equal(a->max_request_bytes, b->max_request_bytes);
	assert_int_equal(a->max_clients, b->max_clients);
	assert_str(a->state_file, b->state_file);
	assert_str(a->log_level, b->log_level);
	assert_str(a->host, b->host);
	assert_int_equal(a->port, b->port);
	assert_str(a->socket, b->socket);
	assert_str(a->user, b->user);
	assert_str(a->password, b->password);
	assert_str(a->database, b->database);
	assert_str(a->option_file, b->option_file);
	assert_str(a->option_group, b->option_group);
	assert_int_equal(a->pool_size, b->pool_size);
	assert_int_equal(a->connect_timeout_ms, b->connect_timeout_ms);
	assert_int_equal(a->default_wait_ms, b->default_wait_ms);
	assert_int_equal(a->default_ttl_ms, b->default_ttl_ms);
	assert_int_equal(a->max_ttl_ms, b->max_ttl_ms);
	assert_int_equal(a->max_waiters, b->max_waiters);
	assert_int_equal(a->max_rows, b->max_rows);
	assert_int_equal(a->max_result_bytes, b->max_result_bytes);
	assert_int_equal(a->timeout_ms, b->timeout_ms);
}

static void
assert_freed(const struct conf *c)
{
	static const struct conf zero;
	assert_memory_equal(c, &zero, sizeof zero);
}

static void
load_ok(const char *text, struct conf *c)
{
	char err[512] = "";
	int rc = conf_load_string("t.conf", text, c, err, sizeof err);
	if (rc != 0)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(rc, 0);
}

static void
test_defaults(void **state)
{
	(void)state;
	struct conf c, d;
	unsetenv("STATE_DIRECTORY");
	conf_defaults(&c);
	assert_int_equal(c.nlisten, 0);
	assert_null(c.listen);
	assert_int_equal(c.socket_mode, 0660);
	assert_int_equal(c.max_request_bytes, 1024 * 1024);
	assert_int_equal(c.max_clients, 10000);
	assert_string_equal(c.state_file, "/var/lib/tablelockd/lease_id");
	assert_string_equal(c.log_level, "info");
	assert_null(c.host);
	assert_int_equal(c.port, 3306);
	assert_null(c.socket);
	assert_null(c.user);
	assert_null(c.password);
	assert_null(c.database);
	assert_null(c.option_file);
	assert_string_equal(c.option_group, "client");
	assert_int_equal(c.pool_size, 8);
	assert_int_equal(c.connect_timeout_ms, 5000);
	assert_int_equal(c.default_wait_ms, 5000);
	assert_int_equal(c.default_ttl_ms, 30000);
	assert_int_equal(c.max_ttl_ms, 600000);
	assert_int_equal(c.max_waiters, 10000);
	assert_int_equal(c.max_rows, 100000);
	assert_int_equal(c.max_result_bytes, 16 * 1024 * 1024);
	assert_int_equal(c.timeout_ms, 30000);

	/* An empty file, or one of comments, is all defaults. */
	load_ok("", &d);
	assert_conf_equal(&c, &d);
	conf_free(&d);
	load_ok("# nothing\n; here\n\n[daemon]\n[mysql]\n", &d);
	assert_conf_equal(&c, &d);
	conf_free(&d);
	conf_free(&c);
	assert_freed(&c);
	conf_free(&c); /* twice is harmless */
}

/* Under systemd the default state file lives in the unit's StateDirectory=
 * ($STATE_DIRECTORY, the first of several); a file that sets it wins. */
static void
test_state_file_in_state_directory(void **state)
{
	(void)state;
	struct conf c;
	setenv("STATE_DIRECTORY", "/var/lib/tl-b:/var/lib/other", 1);
	load_ok("", &c);
	assert_string_equal(c.state_file, "/var/lib/tl-b/lease_id");
	conf_free(&c);
	load_ok("[daemon]\nstate_file = /srv/ids\n", &c);
	assert_string_equal(c.state_file, "/srv/ids");
	conf_free(&c);
	setenv("STATE_DIRECTORY", "relative", 1); /* not systemd's: ignored */
	load_ok("", &c);
	assert_string_equal(c.state_file, "/var/lib/tablelockd/lease_id");
	conf_free(&c);
	unsetenv("STATE_DIRECTORY");
}

static void
test_every_type(void **state)
{
	(void)state;
	struct conf c;
	load_ok("[daemon]\n"
		"listen = unix:/run/t.sock\n"
		"socket_mode = 600\n"		/* octal, leading 0 optional */
		"max_request_bytes = 2048\n"	/* size, plain bytes */
		"max_clients = 42 ; inline comment\n"
		"state_file = /var/lib/t/state\n"
		"log_level = debug\n"
		"[mysql]\n"
		"host = db.example\n"
		"port: 3307\n"			/* inih also takes "name: value" */
		"socket = /run/mysqld/mysqld.sock\n"
		"user = app\n"
		"password = p;w#d\n"		/* ';' only starts a comment after a space */
		"database = shop\n"
		"option_file = my.cnf\n"
		"option_group = tablelockd\n"
		"pool_size = 1\n"
		"connect_timeout_ms = 250\n"
		"[leases]\n"
		"default_wait_ms = 0\n"
		"default_ttl_ms = 1000\n"
		"max_ttl_ms = 1000\n"
		"max_waiters = 0\n"
		"[statements]\n"
		"max_rows = 1000000000\n"
		"max_result_bytes = 1G\n"
		"timeout_ms = 0\n",
		&c);
	assert_int_equal(c.nlisten, 1);
	assert_string_equal(c.listen[0], "unix:/run/t.sock");
	assert_int_equal(c.socket_mode, 0600);
	assert_int_equal(c.max_request_bytes, 2048);
	assert_int_equal(c.max_clients, 42);
	assert_string_equal(c.state_file, "/var/lib/t/state");
	assert_string_equal(c.log_level, "debug");
	assert_string_equal(c.host, "db.example");
	assert_int_equal(c.port, 3307);
	assert_string_equal(c.socket, "/run/mysqld/mysqld.sock");
	assert_string_equal(c.user, "app");
	assert_string_equal(c.password, "p;w#d");
	assert_string_equal(c.database, "shop");
	assert_string_equal(c.option_file, "my.cnf");
	assert_string_equal(c.option_group, "tablelockd");
	assert_int_equal(c.pool_size, 1);
	assert_int_equal(c.connect_timeout_ms, 250);
	assert_int_equal(c.default_wait_ms, 0);
	assert_int_equal(c.default_ttl_ms, 1000);
	assert_int_equal(c.max_ttl_ms, 1000);
	assert_int_equal(c.max_waiters, 0);
	assert_int_equal(c.max_rows, 1000000000);
	assert_int_equal(c.max_result_bytes, 1024ULL * 1024 * 1024);
	assert_int_equal(c.timeout_ms, 0);
	conf_free(&c);

	/* Size suffixes, either case; the top of each range. */
	static const struct {
		const char *value;
		size_t bytes;
	} sizes[] = {{"1K", 1024},	 {"1k", 1024},	      {"1025", 1025},
		     {"64M", 64 << 20}, {"3m", 3 << 20},     {"65536K", 64 << 20}};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char text[128];
		snprintf(text, sizeof text, "[daemon]\nmax_request_bytes = %s\n", sizes[i].value);
		load_ok(text, &c);
		assert_int_equal(c.max_request_bytes, sizes[i].bytes);
		conf_free(&c);
	}
	load_ok("[daemon]\nsocket_mode = 0\n[leases]\ndefault_wait_ms = 86400000\n"
		"max_ttl_ms = 86400000\nmax_waiters = 10000000\n[mysql]\nport = 65535\n",
		&c);
	assert_int_equal(c.socket_mode, 0);
	assert_int_equal(c.default_wait_ms, 86400000);
	assert_int_equal(c.port, 65535);
	conf_free(&c);

	/* Whitespace, CRLF and a UTF-8 byte order mark are fine. */
	load_ok("\xEF\xBB\xBF[mysql]\r\n  host   =   h  \r\nport=1\r\n", &c);
	assert_string_equal(c.host, "h");
	assert_int_equal(c.port, 1);
	conf_free(&c);
}

static void
test_listen_repeatable(void **state)
{
	(void)state;
	struct conf c;
	load_ok("[daemon]\n"
		"listen = unix:/run/a.sock\n"
		"listen = unix:relative.sock\n"
		"  tcp:127.0.0.1:7000\n"	/* an indented line adds another */
		"\ttcp:[::1]:7000\n"
		"max_clients = 5\n"
		"listen = tcp:db-1.example:65535\n"
		"[daemon]\n"
		"listen = tcp:[fe80::1%eth0]:1\n"
		"[tokens]\n"
		"app = 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
		&c);
	static const char *const want[] = {"unix:/run/a.sock", "unix:relative.sock",
					   "tcp:127.0.0.1:7000", "tcp:[::1]:7000",
					   "tcp:db-1.example:65535", "tcp:[fe80::1%eth0]:1"};
	assert_int_equal(c.nlisten, 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(c.listen[i], want[i]);
	assert_int_equal(c.max_clients, 5);
	conf_free(&c);

	/* The longest unix socket path that fits in sockaddr_un. */
	char text[256];
	char path[108];
	memset(path, 'p', 107);
	path[107] = '\0';
	snprintf(text, sizeof text, "[daemon]\nlisten = unix:%s\n", path);
	load_ok(text, &c);
	assert_int_equal(strlen(c.listen[0]), 5 + 107);
	conf_free(&c);
}

struct bad_case {
	const char *text;
	const char *error;
};

#define LINE_50 "01234567890123456789012345678901234567890123456789"
#define LONG_LINE LINE_50 LINE_50 LINE_50 LINE_50 /* 200 characters */

static const struct bad_case bad_cases[] = {
	/* Where a key may be. */
	{"[daemon]\nmax_clients = 5\n\n[leaes]\nmax_ttl_ms = 5\n",
	 "t.conf:4: unknown section [leaes] (sections are daemon, mysql, leases, statements, metrics, tls, access and tokens)"},
	{"max_clients = 5\n",
	 "t.conf:1: max_clients: key before any section ([daemon], [mysql], [leases] or "
	 "[statements])"},
	{"[leases]\nmax_tll_ms = 5\n", "t.conf:2: [leases] max_tll_ms: unknown key"},
	{"[daemon]\nport = 3306\n", "t.conf:2: [daemon] port: unknown key"},
	{"[mysql]\nHOST = x\n", "t.conf:2: [mysql] HOST: unknown key"},
	/* Given twice, also across two headers of one section. */
	{"[mysql]\nport = 1\nport = 2\n", "t.conf:3: [mysql] port: given twice (first on line 2)"},
	{"[mysql]\nhost = a\n[leases]\n[mysql]\n\nhost = a\n",
	 "t.conf:6: [mysql] host: given twice (first on line 2)"},
	{"[mysql]\nhost = x\n  port = 3306\n",
	 "t.conf:3: [mysql] host: this indented line continues the value of host, which takes "
	 "one line (remove the indentation)"},
	/* Empty values. */
	{"[mysql]\nhost =\n", "t.conf:2: [mysql] host: must not be empty"},
	{"[mysql]\nport = ; no value\n", "t.conf:2: [mysql] port: must not be empty"},
	{"[daemon]\nlisten =\n", "t.conf:2: [daemon] listen: must not be empty"},
	/* Integers. */
	{"[leases]\nmax_ttl_ms = 0\n",
	 "t.conf:2: [leases] max_ttl_ms: must be an integer between 1 and 86400000"},
	{"[leases]\nmax_ttl_ms = 86400001\n",
	 "t.conf:2: [leases] max_ttl_ms: must be an integer between 1 and 86400000"},
	{"[mysql]\nport = 33o6\n", "t.conf:2: [mysql] port: must be an integer between 1 and 65535"},
	{"[mysql]\nport = -1\n", "t.conf:2: [mysql] port: must be an integer between 1 and 65535"},
	{"[mysql]\nport = +1\n", "t.conf:2: [mysql] port: must be an integer between 1 and 65535"},
	{"[mysql]\nport = 1.5\n", "t.conf:2: [mysql] port: must be an integer between 1 and 65535"},
	{"[mysql]\nport = 0x10\n", "t.conf:2: [mysql] port: must be an integer between 1 and 65535"},
	{"[mysql]\nport = 1 2\n", "t.conf:2: [mysql] port: must be an integer between 1 and 65535"},
	{"[mysql]\nport = 65536\n", "t.conf:2: [mysql] port: must be an integer between 1 and 65535"},
	{"[mysql]\nport = 99999999999999999999999\n",
	 "t.conf:2: [mysql] port: must be an integer between 1 and 65535"},
	{"[mysql]\npool_size = 0\n",
	 "t.conf:2: [mysql] pool_size: must be an integer between 1 and 1000"},
	{"[leases]\ndefault_wait_ms = 5s\n",
	 "t.conf:2: [leases] default_wait_ms: must be an integer between 0 and 86400000"},
	{"[statements]\nmax_rows = 0\n",
	 "t.conf:2: [statements] max_rows: must be an integer between 1 and 1000000000"},
	/* Sizes. */
	{"[daemon]\nmax_request_bytes = 1023\n",
	 "t.conf:2: [daemon] max_request_bytes: must be a size between 1K and 64M (bytes, or a "
	 "number followed by K, M or G)"},
	{"[daemon]\nmax_request_bytes = 65M\n",
	 "t.conf:2: [daemon] max_request_bytes: must be a size between 1K and 64M (bytes, or a "
	 "number followed by K, M or G)"},
	{"[daemon]\nmax_request_bytes = 1MB\n",
	 "t.conf:2: [daemon] max_request_bytes: must be a size between 1K and 64M (bytes, or a "
	 "number followed by K, M or G)"},
	{"[daemon]\nmax_request_bytes = 1T\n",
	 "t.conf:2: [daemon] max_request_bytes: must be a size between 1K and 64M (bytes, or a "
	 "number followed by K, M or G)"},
	{"[daemon]\nmax_request_bytes = M\n",
	 "t.conf:2: [daemon] max_request_bytes: must be a size between 1K and 64M (bytes, or a "
	 "number followed by K, M or G)"},
	{"[statements]\nmax_result_bytes = 17179869184G\n",
	 "t.conf:2: [statements] max_result_bytes: must be a size between 1K and 1G (bytes, or a "
	 "number followed by K, M or G)"},
	/* Modes and choices. */
	{"[daemon]\nsocket_mode = 0668\n",
	 "t.conf:2: [daemon] socket_mode: must be an octal mode between 0000 and 0777"},
	{"[daemon]\nsocket_mode = 1777\n",
	 "t.conf:2: [daemon] socket_mode: must be an octal mode between 0000 and 0777"},
	{"[daemon]\nsocket_mode = rw-rw----\n",
	 "t.conf:2: [daemon] socket_mode: must be an octal mode between 0000 and 0777"},
	{"[daemon]\nlog_level = verbose\n",
	 "t.conf:2: [daemon] log_level: must be one of error, warn, info, debug"},
	{"[daemon]\nlog_level = INFO\n",
	 "t.conf:2: [daemon] log_level: must be one of error, warn, info, debug"},
	/* Listen addresses. */
	{"[daemon]\nlisten = /run/t.sock\n",
	 "t.conf:2: [daemon] listen: must be unix:PATH, tcp:HOST:PORT or tls:HOST:PORT"},
	{"[daemon]\nlisten = udp:h:1\n",
	 "t.conf:2: [daemon] listen: must be unix:PATH, tcp:HOST:PORT or tls:HOST:PORT"},
	{"[daemon]\nlisten = unix:\n",
	 "t.conf:2: [daemon] listen: unix: needs a socket path, as unix:/run/x.sock"},
	{"[daemon]\nlisten = tcp:127.0.0.1:7000\n",
	 "t.conf:2: [daemon] listen tcp:127.0.0.1:7000: a TCP listener needs authentication: "
	 "configure [tokens] (or use tls: with [tls] client_ca)"},
	{"[mysql]\nsql_mode = STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES\n",
	 "t.conf:2: [mysql] sql_mode: NO_BACKSLASH_ESCAPES changes how quotes are read, which the "
	 "statement firewall relies on"},
	{"[mysql]\nsql_mode = ANSI\n",
	 "t.conf:2: [mysql] sql_mode: ANSI changes how quotes are read, which the statement "
	 "firewall relies on"},
	{"[mysql]\nsql_mode = STRICT_ALL_TABLES' OR 1\n",
	 "t.conf:2: [mysql] sql_mode: only mode names (A-Z, 0-9, _) separated by commas"},
	{"[daemon]\nlisten = tls:127.0.0.1:7000\n",
	 "t.conf:2: [daemon] listen tls:127.0.0.1:7000 needs [tls] cert and key"},
	{"[tokens]\napp = secret\n",
	 "t.conf:2: [tokens] app: must be the token's SHA-256 as 64 hex digits "
	 "(printf %s TOKEN | sha256sum), never the token itself"},
	{"[daemon]\nlisten = tcp:localhost\n",
	 "t.conf:2: [daemon] listen: must be tcp:HOST:PORT, as tcp:127.0.0.1:7000"},
	{"[daemon]\nlisten = tcp::7000\n",
	 "t.conf:2: [daemon] listen: must be tcp:HOST:PORT, as tcp:127.0.0.1:7000"},
	{"[daemon]\nlisten = tls:localhost\n",
	 "t.conf:2: [daemon] listen: must be tls:HOST:PORT, as tls:127.0.0.1:7000"},
	{"[daemon]\nlisten = tcp:::1:7000\n",
	 "t.conf:2: [daemon] listen: an IPv6 address goes in brackets, as tcp:[::1]:7000"},
	{"[daemon]\nlisten = tcp:[::1]7000\n",
	 "t.conf:2: [daemon] listen: must be tcp:[IPV6]:PORT, as tcp:[::1]:7000"},
	{"[daemon]\nlisten = tcp:[]:7000\n",
	 "t.conf:2: [daemon] listen: must be tcp:[IPV6]:PORT, as tcp:[::1]:7000"},
	{"[daemon]\nlisten = tcp:[::1:7000\n",
	 "t.conf:2: [daemon] listen: must be tcp:[IPV6]:PORT, as tcp:[::1]:7000"},
	{"[daemon]\nlisten = tcp:h:0\n",
	 "t.conf:2: [daemon] listen: the port must be an integer between 1 and 65535"},
	{"[daemon]\nlisten = tcp:h:65536\n",
	 "t.conf:2: [daemon] listen: the port must be an integer between 1 and 65535"},
	{"[daemon]\nlisten = tcp:h:\n",
	 "t.conf:2: [daemon] listen: the port must be an integer between 1 and 65535"},
	{"[daemon]\nlisten = tcp:h:http\n",
	 "t.conf:2: [daemon] listen: the port must be an integer between 1 and 65535"},
	{"[daemon]\nlisten = tcp:a b:1\n",
	 "t.conf:2: [daemon] listen: the host contains a space or a control character"},
	{"[daemon]\nlisten = unix:/a\nlisten = tcp:h:1\n  unix:/a\n",
	 "t.conf:4: [daemon] listen: unix:/a is listed twice"},
	/* What inih itself refuses. */
	{"[daemon\nmax_clients = 1\n", "t.conf:1: a section header needs a closing ']'"},
	{"[daemon ; comment]\n", "t.conf:1: a section header needs a closing ']'"},
	{"[daemon]\nmax_clients\n",
	 "t.conf:2: expected \"name = value\", a [section] or a comment"},
	/* The first error by line wins, whoever found it. */
	{"[mysql]\nport = x\nhost =\n",
	 "t.conf:2: [mysql] port: must be an integer between 1 and 65535"},
	{"[daemon]\ngarbage\nmax_clients = 0\n",
	 "t.conf:2: expected \"name = value\", a [section] or a comment"},
	{"[daemon]\nmax_clients = 0\ngarbage\n",
	 "t.conf:2: [daemon] max_clients: must be an integer between 1 and 1000000"},
	{"[bad]\ngarbage\nk = v\n",
	 "t.conf:1: unknown section [bad] (sections are daemon, mysql, leases, statements, metrics, tls, access and tokens)"},
	{"[bad]\n#" LONG_LINE "\nk = v\n",
	 "t.conf:1: unknown section [bad] (sections are daemon, mysql, leases, statements, metrics, tls, access and tokens)"},
	/* Cross-checks point at the key to change. */
	{"[leases]\ndefault_ttl_ms = 700000\n",
	 "t.conf:2: [leases] default_ttl_ms (700000) exceeds max_ttl_ms (600000)"},
	{"[leases]\nmax_ttl_ms = 1000\n",
	 "t.conf:2: [leases] default_ttl_ms (30000) exceeds max_ttl_ms (1000)"},
};

static void
test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		struct conf c;
		char err[512] = "";
		memset(&c, 0xa5, sizeof c); /* conf_load needs no initialised *c */
		int rc = conf_load_string("t.conf", bad_cases[i].text, &c, err, sizeof err);
		if (rc != -1 || strcmp(err, bad_cases[i].error) != 0)
			print_error("case %zu: rc %d\n  got:  %s\n  want: %s\n", i, rc, err,
				    bad_cases[i].error);
		assert_int_equal(rc, -1);
		assert_string_equal(err, bad_cases[i].error);
		assert_freed(&c);
	}
}

/* An indented line is a continuation only after a key in the same
 * section, as inih reads it. */
static void
test_indentation(void **state)
{
	(void)state;
	struct conf c;
	load_ok("[mysql]\n  host = x\n[mysql]\n  port = 7\n", &c);
	assert_string_equal(c.host, "x");
	assert_int_equal(c.port, 7);
	conf_free(&c);
	load_ok("[mysql]\nhost = x\n\n# comment\n  ; indented comment\n", &c);
	assert_string_equal(c.host, "x");
	conf_free(&c);
}

static void
test_long_lines(void **state)
{
	(void)state;
	struct conf c;
	char text[512], err[256];
	/* 197 characters is the longest line, also with CRLF. */
	for (int crlf = 0; crlf <= 1; crlf++) {
		int n = snprintf(text, sizeof text, "[mysql]\nhost = ");
		memset(text + n, 'h', 197 - 7);
		snprintf(text + n + 190, sizeof text - (size_t)n - 190, "%s", crlf ? "\r\n" : "\n");
		load_ok(text, &c);
		assert_int_equal(strlen(c.host), 190);
		conf_free(&c);
	}
	/* 198 is refused, on its own line number, comment or not. */
	int n = snprintf(text, sizeof text, "[mysql]\n# ");
	memset(text + n, 'x', 196);
	snprintf(text + n + 196, sizeof text - (size_t)n - 196, "\nport = 1\n");
	assert_int_equal(conf_load_string("t.conf", text, &c, err, sizeof err), -1);
	assert_string_equal(err, "t.conf:2: line is longer than 197 characters");
	/* At the end of the text without a newline too. */
	n = snprintf(text, sizeof text, "[mysql]\nhost = ");
	memset(text + n, 'h', 300);
	text[n + 300] = '\0';
	assert_int_equal(conf_load_string("t.conf", text, &c, err, sizeof err), -1);
	assert_string_equal(err, "t.conf:2: line is longer than 197 characters");
	assert_freed(&c);
}

static void
test_small_error_buffer(void **state)
{
	(void)state;
	struct conf c;
	char err[8];
	assert_int_equal(conf_load_string("t.conf", "[x]\ny=1\n", &c, err, sizeof err), -1);
	assert_string_equal(err, "t.conf:");
	assert_int_equal(conf_load_string("t.conf", "[x]\ny=1\n", &c, NULL, 0), -1);
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
test_load_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_conf.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], err[512], want[256];
	struct conf c;
	snprintf(path, sizeof path, "%s/tablelockd.conf", dir);

	const char *good = "[daemon]\nlisten = unix:/tmp/x.sock\n[mysql]\npool_size = 3\n";
	write_file(path, good, strlen(good));
	assert_int_equal(conf_load(path, &c, err, sizeof err), 0);
	assert_int_equal(c.pool_size, 3);
	assert_string_equal(c.listen[0], "unix:/tmp/x.sock");
	conf_free(&c);

	const char *bad = "[daemon]\n\nmax_clients = lots\n";
	write_file(path, bad, strlen(bad));
	assert_int_equal(conf_load(path, &c, err, sizeof err), -1);
	snprintf(want, sizeof want,
		 "%s:3: [daemon] max_clients: must be an integer between 1 and 1000000", path);
	assert_string_equal(err, want);
	assert_freed(&c);

	write_file(path, "[daemon]\nmax_clients = 1\0\n", 26);
	assert_int_equal(conf_load(path, &c, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: contains a NUL byte", path);
	assert_string_equal(err, want);

	write_file(path, "", 0);
	assert_int_equal(conf_load(path, &c, err, sizeof err), 0);
	assert_int_equal(c.pool_size, 8);
	conf_free(&c);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(conf_load(path, &c, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
	assert_string_equal(err, want);
	assert_freed(&c);
	assert_int_equal(rmdir(dir), 0);
}

/* The sample sets every key to its default; its commented-out examples
 * (";key = value") must parse too once uncommented. */
static void
test_sample_round_trip(void **state)
{
	(void)state;
	char path[4096], err[512];
	repo_path(path, sizeof path, "conf/tablelockd.conf");
	struct conf c, d;
	int rc = conf_load(path, &c, err, sizeof err);
	if (rc != 0)
		print_error("%s (tests run from the repository root)\n", err);
	assert_int_equal(rc, 0);
	conf_defaults(&d);
	assert_int_equal(c.nlisten, 1);
	assert_string_equal(c.listen[0], "unix:/run/tablelockd/tablelockd.sock");
	free(c.listen[0]);
	free(c.listen);
	c.listen = NULL;
	c.nlisten = 0;
	assert_conf_equal(&c, &d);
	conf_free(&c);
	conf_free(&d);

	/* Every key is shown, set or commented out. */
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	struct buf text = {0};
	char line[512];
	while (fgets(line, sizeof line, f) != NULL)
		buf_append_str(&text, line[0] == ';' && line[1] >= 'a' && line[1] <= 'z' ? line + 1
											   : line);
	fclose(f);
	static const char *const keys[] = {
		"listen",	  "socket_mode",	"max_request_bytes", "max_clients",
		"state_file",	  "log_level",		"host",		     "port",
		"socket",	  "user",		"password",	     "database",
		"option_file",	  "option_group",	"pool_size",	     "connect_timeout_ms",
		"default_wait_ms", "default_ttl_ms",	"max_ttl_ms",	     "max_waiters",
		"max_rows",	  "max_result_bytes",	"timeout_ms",	     "drain_timeout_ms",
		"request_timeout_ms", "idle_timeout_ms", "max_output_bytes", "socket_owner",
		"socket_group", "max_connections_per_identity", "max_waiting_per_identity",
		"cert", "key", "client_ca", "allow", "sql_mode",
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char needle[64];
		snprintf(needle, sizeof needle, "\n%s = ", keys[i]);
		if (strstr(text.data, needle) == NULL)
			print_error("sample lacks %s\n", keys[i]);
		assert_non_null(strstr(text.data, needle));
	}
	assert_int_equal(conf_load_string("uncommented", text.data, &c, err, sizeof err), 0);
	assert_int_equal(c.nlisten, 3);
	assert_non_null(c.host);
	assert_non_null(c.password);
	assert_non_null(c.option_file);
	assert_non_null(c.state_file);
	assert_int_equal(c.ntokens, 1);
	assert_string_equal(c.tokens[0].name, "billing");
	assert_int_equal(c.tokens[0].sha256[0], 0x9f);
	assert_int_equal(c.access_allow.n, 3);
	assert_true(c.access_allow.lines[0] > 0);
	assert_non_null(c.tls_client_ca);
	conf_free(&c);
	buf_free(&text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_state_file_in_state_directory),
		cmocka_unit_test(test_every_type),
		cmocka_unit_test(test_listen_repeatable),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_indentation),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_small_error_buffer),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_sample_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
