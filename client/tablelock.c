/* libtablelock connection: requests out, responses and events in, errors. */
#include "client/tablelock.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/tablelock_private.h"
#include "proto/proto_error.h"
#include "proto/proto_frame.h"
#include "proto/proto_response.h"
#include "util/buf.h"
#include "util/hostport.h"
#include "util/monotime.h"
#include "util/plural.h"
#include "util/xmalloc.h"

/* The daemon's own codes and ours share one enum; the wire names come from
 * proto/, so both ends spell them the same. */
#define TABLELOCK_SAME(x) _Static_assert((int)TABLELOCK_ERR_##x == (int)PROTO_ERR_##x, #x)
TABLELOCK_SAME(BAD_REQUEST);
TABLELOCK_SAME(REQUEST_TOO_LARGE);
TABLELOCK_SAME(INVALID_TABLE);
TABLELOCK_SAME(UNKNOWN_TABLE);
TABLELOCK_SAME(LEASE_HELD);
TABLELOCK_SAME(NO_LEASE);
TABLELOCK_SAME(LOCK_TIMEOUT);
TABLELOCK_SAME(TOO_MANY_WAITERS);
TABLELOCK_SAME(UNAVAILABLE);
TABLELOCK_SAME(MYSQL);
TABLELOCK_SAME(COMMIT_UNKNOWN);
TABLELOCK_SAME(INTERNAL);
TABLELOCK_SAME(STATEMENT_NOT_ALLOWED);
TABLELOCK_SAME(RESULT_TOO_LARGE);
TABLELOCK_SAME(STATEMENT_TIMEOUT);
TABLELOCK_SAME(BAD_PARAMS);
TABLELOCK_SAME(LEASE_LOST);
TABLELOCK_SAME(LEASE_EXPIRED);
TABLELOCK_SAME(LEASE_REVOKED);
TABLELOCK_SAME(UNAUTHENTICATED);
TABLELOCK_SAME(FORBIDDEN);
TABLELOCK_SAME(TOO_MANY_CLIENTS);
TABLELOCK_SAME(SHUTTING_DOWN);
_Static_assert((int)PROTO_ERR__COUNT <= (int)TABLELOCK_ERR_CONNECT, "protocol codes overlap ours");

/* A response line may be as large as the daemon's max_result_bytes plus
 * JSON and base64 overhead; this only stops a runaway peer. */
#define TABLELOCK_MAX_LINE ((size_t)1 << 30)
#define TABLELOCK_READ_CHUNK 65536

/* Names of this library's own codes, from TABLELOCK_ERR_CONNECT on. */
static const char *const tablelock_local_names[] = {
    "connect", "timeout", "closed", "protocol", "usage", "unknown",
};

/* Which answer a request gets, and what it does to the handle. */
enum tablelock_kind {
	TABLELOCK_KIND_PLAIN, /* ping, hello, status, revoke: nothing */
	TABLELOCK_KIND_ACQUIRE,
	TABLELOCK_KIND_QUERY,
	TABLELOCK_KIND_COMMIT,
	TABLELOCK_KIND_ROLLBACK,
	TABLELOCK_KIND_RENEW,
	TABLELOCK_KIND_TRANSACT
};

struct tablelock_pending {
	json_int_t id;
	enum tablelock_kind kind;
	size_t nresults; /* results[] the answer carries (a query's is the answer) */
	int64_t ttl_ms;  /* acquire, renew: asked for, if the answer says nothing */
};

struct tablelock {
	int fd; /* -1 once closed */
	char *address;
	struct proto_frame frame;
	struct buf out;
	json_int_t next_id;
	uint64_t lease; /* held, as far as we know; 0 if none */
	int64_t lease_ttl;
	uint64_t fence; /* of the last acquire or transact; 0 if none */
	char *server_version;
	char *last_response;
	bool eof; /* the daemon closed its end */
	/* The peer has sent one line of tablelockd's protocol. Until then a
	 * peer that answers nonsense, or nothing, is not tablelockd at all
	 * (a wrong address), which is what the error must say. */
	bool spoke;
	struct tablelock_error error;
	struct tablelock_event *events; /* pending, oldest first */
	size_t nevents;
	size_t during_call;                /* events at index >= this arrived during the call */
	struct tablelock_pending *pending; /* requests awaiting their answer, oldest first */
	size_t npending;
	size_t nsent; /* pending[0 .. nsent) are written; the rest wait in out */
};

static int64_t tablelock_deadline(int timeout_ms);
static int tablelock_remaining(int64_t deadline);
static void tablelock_error_set(struct tablelock_error *err, enum tablelock_code code,
                                int sys_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int tablelock_fail(struct tablelock *tl, enum tablelock_code code, int sys_errno,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void tablelock_error_from_event(struct tablelock_error *err,
                                       const struct tablelock_event *ev);
static int tablelock_connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline);
static int tablelock_open_unix(const char *path, int64_t deadline, struct tablelock_error *err,
                               const char *address);
static int tablelock_open_tcp(const char *spec, int64_t deadline, struct tablelock_error *err,
                              const char *address);
static void tablelock_shut(struct tablelock *tl);
static void tablelock_describe_bytes(const unsigned char *p, size_t n, char *out, size_t size);
static int tablelock_stranger(struct tablelock *tl, const char *what);
static int tablelock_check_stranger(struct tablelock *tl, bool closed);
static int tablelock_send(struct tablelock *tl, int64_t deadline, int timeout_ms);
static int tablelock_read(struct tablelock *tl, int64_t deadline, int timeout_ms,
                          json_t **response);
static int tablelock_line(struct tablelock *tl, const char *line, size_t len, json_t **response);
static void tablelock_event_push(struct tablelock *tl, const json_t *msg);
static void tablelock_event_pop(struct tablelock *tl, size_t index, struct tablelock_event *ev);
static ssize_t tablelock_event_find(const struct tablelock *tl, enum tablelock_code code,
                                    size_t from);
static int tablelock_enqueue(struct tablelock *tl, json_t *request, enum tablelock_kind kind,
                             size_t nresults, int64_t ttl_ms);
static void tablelock_pending_pop(struct tablelock *tl, struct tablelock_pending *p);
static void tablelock_drop_unsent(struct tablelock *tl);
static int tablelock_flush_out(struct tablelock *tl, int64_t deadline, int timeout_ms);
static bool tablelock_commit_refused(enum tablelock_code code);
static int tablelock_answer(struct tablelock *tl, json_t **response, struct tablelock_pending *req,
                            int timeout_ms);
static int tablelock_call_kind(struct tablelock *tl, json_t *request, enum tablelock_kind kind,
                               size_t nresults, int64_t ttl_ms, json_t **response, int timeout_ms);
static int tablelock_call(struct tablelock *tl, json_t *request, json_t **response, int timeout_ms);
static json_t *tablelock_statements_json(struct tablelock *tl, json_t *request, const char *op,
                                         const struct tablelock_statement *statements,
                                         size_t nstatements, bool required);
static int tablelock_results_take(struct tablelock *tl, json_t *resp, size_t expected,
                                  struct tablelock_result **results, size_t nresults,
                                  const char *op);
static void tablelock_results_clear(struct tablelock_result **results, size_t nresults);
static json_t *tablelock_acquire_json(struct tablelock *tl, const struct tablelock_lock *lock,
                                      const struct tablelock_statement *statements,
                                      size_t nstatements);
static json_t *tablelock_query_json(struct tablelock *tl, const char *sql,
                                    const struct tablelock_param *params, size_t nparams);
static json_t *tablelock_commit_json(struct tablelock *tl,
                                     const struct tablelock_statement *statements,
                                     size_t nstatements);
static json_t *tablelock_transact_json(struct tablelock *tl, const struct tablelock_lock *lock,
                                       const struct tablelock_statement *statements,
                                       size_t nstatements);
static json_t *tablelock_lock_json(const char *op, const struct tablelock_lock *lock,
                                   struct tablelock *tl);
static json_t *tablelock_params_json(struct tablelock *tl, const struct tablelock_param *params,
                                     size_t nparams, const char *what);
static json_t *tablelock_statement_json(struct tablelock *tl, const char *sql,
                                        const struct tablelock_param *params, size_t nparams,
                                        const char *what);
static int64_t tablelock_get_int(const json_t *obj, const char *key, int64_t fallback);

const char *
tablelock_version(void)
{
	return TABLELOCK_VERSION;
}

const char *
tablelock_code_name(enum tablelock_code code)
{
	size_t nlocal = sizeof(tablelock_local_names) / sizeof(tablelock_local_names[0]);

	if ((int)code >= 0 && (int)code < PROTO_ERR__COUNT)
		return proto_error_name((enum proto_error)code);
	if (code >= TABLELOCK_ERR_CONNECT && (size_t)(code - TABLELOCK_ERR_CONNECT) < nlocal)
		return tablelock_local_names[code - TABLELOCK_ERR_CONNECT];
	return "unknown";
}

/* ---------------------------------------------------------------- time */

/* -1 means no deadline. */
static int64_t
tablelock_deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return -1;
	return monotime_ms() + timeout_ms;
}

/* Milliseconds left for poll(): -1 forever, 0 when past. */
static int
tablelock_remaining(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - monotime_ms();
	if (left <= 0)
		return 0;
	return left > 1000000000 ? 1000000000 : (int)left;
}

/* ---------------------------------------------------------------- errors */

static void
tablelock_error_set(struct tablelock_error *err, enum tablelock_code code, int sys_errno,
                    const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
	err->code = code;
	err->statement = -1;
	err->sys_errno = sys_errno;
	snprintf(err->code_name, sizeof(err->code_name), "%s", tablelock_code_name(code));
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

static int
tablelock_fail(struct tablelock *tl, enum tablelock_code code, int sys_errno, const char *fmt, ...)
{
	va_list ap;

	tablelock_error_set(&tl->error, code, sys_errno, "%s", "");
	va_start(ap, fmt);
	vsnprintf(tl->error.message, sizeof(tl->error.message), fmt, ap);
	va_end(ap);
	return -1;
}

static void
tablelock_error_from_event(struct tablelock_error *err, const struct tablelock_event *ev)
{
	const char *what;

	switch (ev->code) {
	case TABLELOCK_ERR_LEASE_EXPIRED:
		what = "expired: it was not committed or renewed within its TTL";
		break;
	case TABLELOCK_ERR_LEASE_LOST:
		what = "was lost: its MySQL session died";
		break;
	case TABLELOCK_ERR_LEASE_REVOKED:
		what = "was revoked by an administrator";
		break;
	default:
		what = "ended";
		break;
	}
	if (ev->reason[0] != '\0')
		tablelock_error_set(err, ev->code, 0, "lease %llu %s (%s); it was rolled back",
		                    (unsigned long long)ev->lease, what, ev->reason);
	else
		tablelock_error_set(err, ev->code, 0, "lease %llu %s; it was rolled back",
		                    (unsigned long long)ev->lease, what);
	snprintf(err->code_name, sizeof(err->code_name), "%s", ev->name);
	err->lease = ev->lease;
}

/* An error answer ({"error":{…},"statement":i}), or a results[] entry of
 * the same shape, into *err. */
void
tablelock_error_from_response(struct tablelock_error *err, const json_t *resp)
{
	const json_t *e = json_object_get(resp, "error");
	const char *name = json_string_value(json_object_get(e, "code"));
	const char *message = json_string_value(json_object_get(e, "message"));
	const char *sqlstate = json_string_value(json_object_get(e, "sqlstate"));
	json_t *merrno = json_object_get(e, "mysql_errno");
	json_t *statement = json_object_get(resp, "statement");
	enum proto_error code;

	if (name == NULL) {
		tablelock_error_set(err, TABLELOCK_ERR_PROTOCOL, 0,
		                    "tablelockd answered an error without a code");
		return;
	}
	code = proto_error_from_name(name);
	tablelock_error_set(
	    err, code == PROTO_ERR__COUNT ? TABLELOCK_ERR_UNKNOWN : (enum tablelock_code)code, 0,
	    "%s", message != NULL ? message : name);
	snprintf(err->code_name, sizeof(err->code_name), "%s", name);
	if (json_is_integer(merrno))
		err->mysql_errno = (unsigned int)json_integer_value(merrno);
	if (sqlstate != NULL)
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate);
	if (json_is_integer(statement))
		err->statement = (long)json_integer_value(statement);
}

const struct tablelock_error *
tablelock_last_error(const struct tablelock *tl)
{
	return &tl->error;
}

const char *
tablelock_last_response(const struct tablelock *tl)
{
	return tl->last_response;
}

int
tablelock_fd(const struct tablelock *tl)
{
	return tl->fd;
}

const char *
tablelock_address(const struct tablelock *tl)
{
	return tl->address;
}

uint64_t
tablelock_lease(const struct tablelock *tl)
{
	return tl->lease;
}

uint64_t
tablelock_fence(const struct tablelock *tl)
{
	return tl->fence;
}

int64_t
tablelock_lease_ttl(const struct tablelock *tl)
{
	return tl->lease != 0 ? tl->lease_ttl : 0;
}

const char *
tablelock_server_version(const struct tablelock *tl)
{
	return tl->server_version;
}

/* ---------------------------------------------------------------- connect */

/* Non-blocking connect, finished within the deadline. Returns 0 or an errno. */
static int
tablelock_connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	socklen_t elen = sizeof(int);
	int error = 0;

	for (;;) {
		if (connect(fd, sa, len) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && sa->sa_family == AF_UNIX) {
			/* The listen backlog is full: try again shortly. */
			if (tablelock_remaining(deadline) == 0)
				return ETIMEDOUT;
			usleep(5000);
			continue;
		}
		if (errno != EINPROGRESS)
			return errno;
		break;
	}
	for (;;) {
		int n = poll(&pfd, 1, tablelock_remaining(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return ETIMEDOUT;
		break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &elen) != 0)
		return errno;
	return error;
}

static int
tablelock_open_unix(const char *path, int64_t deadline, struct tablelock_error *err,
                    const char *address)
{
	struct sockaddr_un sun;
	int fd, error;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
		tablelock_error_set(
		    err, TABLELOCK_ERR_USAGE, 0, "socket path %s is %s (at most %zu bytes)",
		    address, path[0] == '\0' ? "empty" : "too long", sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tablelock_error_set(err, TABLELOCK_ERR_CONNECT, errno, "socket: %s",
		                    strerror(errno));
		return -1;
	}
	error = tablelock_connect_fd(fd, (struct sockaddr *)&sun, sizeof(sun), deadline);
	if (error != 0) {
		close(fd);
		tablelock_error_set(
		    err, error == ETIMEDOUT ? TABLELOCK_ERR_TIMEOUT : TABLELOCK_ERR_CONNECT, error,
		    "cannot connect to tablelockd at %s: %s", address, strerror(error));
		return -1;
	}
	return fd;
}

/* Name resolution itself (getaddrinfo) cannot be given a deadline; use a
 * numeric address where that matters. */
static int
tablelock_open_tcp(const char *spec, int64_t deadline, struct tablelock_error *err,
                   const char *address)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct hostport hp;
	char why[128];
	int fd = -1, error = 0, one = 1, rc;

	if (!hostport_parse(spec, "tcp:", &hp, why, sizeof(why))) {
		tablelock_error_set(err, TABLELOCK_ERR_USAGE, 0, "address %s: %s", address, why);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(hp.host, hp.port, &hints, &res);
	if (rc != 0) {
		tablelock_error_set(err, TABLELOCK_ERR_CONNECT, 0,
		                    "cannot connect to tablelockd at %s: %s", address,
		                    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0) {
			error = errno;
			continue;
		}
		error = tablelock_connect_fd(fd, ai->ai_addr, ai->ai_addrlen, deadline);
		if (error == 0)
			break;
		close(fd);
		fd = -1;
		if (error == ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		tablelock_error_set(
		    err, error == ETIMEDOUT ? TABLELOCK_ERR_TIMEOUT : TABLELOCK_ERR_CONNECT, error,
		    "cannot connect to tablelockd at %s: %s", address, strerror(error));
		return -1;
	}
	/* Requests are single small writes that wait for their answer. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

struct tablelock *
tablelock_connect(const char *address, int timeout_ms, struct tablelock_error *err)
{
	int64_t deadline = tablelock_deadline(timeout_ms);
	struct tablelock *tl;
	int fd;

	if (address == NULL || address[0] == '\0')
		address = TABLELOCK_DEFAULT_SOCKET;
	if (strncmp(address, "tcp:", 4) == 0)
		fd = tablelock_open_tcp(address + 4, deadline, err, address);
	else if (strncmp(address, "unix:", 5) == 0)
		fd = tablelock_open_unix(address + 5, deadline, err, address);
	else
		fd = tablelock_open_unix(address, deadline, err, address);
	if (fd < 0)
		return NULL;

	tl = xcalloc(1, sizeof(*tl));
	tl->fd = fd;
	tl->address = xstrdup(address);
	proto_frame_init(&tl->frame, TABLELOCK_MAX_LINE);
	tl->next_id = 1;
	tablelock_error_set(&tl->error, TABLELOCK_OK, 0, "no error");
	if (err != NULL)
		tablelock_error_set(err, TABLELOCK_OK, 0, "no error");
	return tl;
}

/* Drops the connection; the handle stays for its error and events. */
static void
tablelock_shut(struct tablelock *tl)
{
	if (tl->fd >= 0)
		close(tl->fd);
	tl->fd = -1;
	tl->lease = 0;
}

void
tablelock_close(struct tablelock *tl)
{
	if (tl == NULL)
		return;
	tablelock_shut(tl);
	proto_frame_free(&tl->frame);
	buf_free(&tl->out);
	free(tl->address);
	free(tl->server_version);
	free(tl->last_response);
	free(tl->events);
	free(tl->pending);
	free(tl);
}

/* ---------------------------------------------------------------- a wrong peer */

/*
 * tablelockd only ever sends JSON objects, one per line, and never speaks
 * before the client except to refuse it with an error line. Whatever else
 * a peer sends before its first such line shows that the address is not
 * tablelockd's, typically the MySQL server's own socket: a MySQL server
 * speaks first, with a binary greeting (a 4-byte packet header with
 * sequence id 0, then protocol version 10 and the server version as a
 * NUL-terminated string; MariaDB KB "Connection", "Initial handshake
 * packet"), which may even start with '{' (a payload of 123 bytes).
 */

/* A short, printable account of what a peer sent: its first line quoted
 * when it is text, else "binary data". */
static void
tablelock_describe_bytes(const unsigned char *p, size_t n, char *out, size_t size)
{
	char text[64];
	size_t len = 0;

	for (size_t i = 0; i < n && p[i] != '\n' && p[i] != '\r'; i++) {
		if (p[i] < 0x20 && p[i] != '\t') {
			snprintf(out, size, "binary data");
			return;
		}
		if (len < 60)
			text[len++] = p[i] == 0x7f ? '?' : (char)p[i];
	}
	text[len] = '\0';
	snprintf(out, size, "\"%s%s\"", text, len == 60 ? "..." : "");
}

/* Fails the call: the peer at tl->address is not tablelockd (what: what
 * it did instead). */
static int
tablelock_stranger(struct tablelock *tl, const char *what)
{
	tablelock_shut(tl);
	return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0, "%s is not a tablelockd socket (%s)",
	                      tl->address, what);
}

/* Before the peer's first line of the protocol: do the bytes received so
 * far prove it is not tablelockd? closed: the peer has closed its end.
 * Returns -1 with the error set when they do, else 0 (undecided, or a
 * line that may be JSON: tablelock_line() judges it). */
static int
tablelock_check_stranger(struct tablelock *tl, bool closed)
{
	const unsigned char *p = (const unsigned char *)tl->frame.data + tl->frame.start;
	size_t n = proto_frame_pending(&tl->frame), i;
	char what[160], sent[80];

	if (tl->spoke)
		return 0;
	if (n == 0 && closed) {
		/* A daemon that stops as the client connects does this too. */
		tablelock_shut(tl);
		return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
		                      "%s is not a tablelockd socket (it closed the connection "
		                      "without answering), unless the daemon stopped just then",
		                      tl->address);
	}
	if (n == 0)
		return 0;
	if (n >= 5 && p[3] == 0 && p[4] == 10) {
		/* The server version: printable up to its NUL, or nothing. */
		for (i = 5; i < n && i < 5 + 60 && p[i] >= 0x20 && p[i] < 0x7f; i++)
			;
		if (i > 5 && i < n && p[i] == 0)
			snprintf(what, sizeof(what), "it sent a MySQL server greeting, version %.*s",
			         (int)(i - 5), (const char *)p + 5);
		else
			snprintf(what, sizeof(what), "it sent a MySQL server greeting");
		return tablelock_stranger(tl, what);
	}
	if (n >= 5 && p[3] == 0 && p[4] == 0xff) {
		/* An error packet instead of a greeting: errno, '#', SQLSTATE, text. */
		size_t start = n >= 13 && p[7] == '#' ? 13 : 7;
		tablelock_describe_bytes(p + start, n > start ? n - start : 0, sent, sizeof(sent));
		snprintf(what, sizeof(what), "it sent a MySQL server error: %s", sent);
		return tablelock_stranger(tl, what);
	}
	if (memchr(p, '\0', n) != NULL)
		return tablelock_stranger(tl, "it sent binary data");
	for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'); i++)
		;
	if (i < n && p[i] != '{') {
		tablelock_describe_bytes(p + i, n - i, sent, sizeof(sent));
		snprintf(what, sizeof(what), "it answered %s", sent);
		return tablelock_stranger(tl, what);
	}
	return 0;
}

/* ---------------------------------------------------------------- I/O */

/* Writes tl->out in full. While the socket takes no more, whatever the
 * daemon answers meanwhile is read into the frame (parsed later, in
 * order): a long pipeline must not fill the daemon's output while we wait
 * for it to read, nor make it stop reading. */
static int
tablelock_send(struct tablelock *tl, int64_t deadline, int timeout_ms)
{
	char chunk[TABLELOCK_READ_CHUNK];
	size_t off = 0;

	while (off < tl->out.len) {
		ssize_t n = send(tl->fd, tl->out.data + off, tl->out.len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = tl->fd,
			                     .events = (short)(POLLOUT | (tl->eof ? 0 : POLLIN))};
			int r = poll(&pfd, 1, tablelock_remaining(deadline));
			if (r == 0) {
				tablelock_shut(tl);
				return tablelock_fail(
				    tl, TABLELOCK_ERR_TIMEOUT, ETIMEDOUT,
				    "tablelockd at %s took no request within %d ms; "
				    "the connection was closed (a lease it held "
				    "is rolled back)",
				    tl->address, timeout_ms);
			}
			if (r < 0 && errno != EINTR) {
				int e = errno;
				tablelock_shut(tl);
				return tablelock_fail(tl, TABLELOCK_ERR_CLOSED, e, "poll: %s",
				                      strerror(e));
			}
			if (r > 0 && (pfd.revents & POLLIN) != 0) {
				ssize_t got = recv(tl->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
				if (got > 0)
					proto_frame_feed(&tl->frame, chunk, (size_t)got);
				else if (got == 0)
					tl->eof = true; /* the send that follows fails */
			}
			continue;
		}
		int e = n < 0 ? errno : EPIPE;
		if (!tl->spoke && (e == EPIPE || e == ECONNRESET)) {
			/* Hung up before answering anything: what it sent
			 * first, if anything, says who it was. */
			ssize_t got;
			while ((got = recv(tl->fd, chunk, sizeof(chunk), MSG_DONTWAIT)) > 0)
				proto_frame_feed(&tl->frame, chunk, (size_t)got);
			if (tablelock_check_stranger(tl, true) != 0)
				return -1;
		}
		tablelock_shut(tl);
		return tablelock_fail(tl, TABLELOCK_ERR_CLOSED, e,
		                      "connection to tablelockd at %s failed: %s", tl->address,
		                      strerror(e));
	}
	buf_reset(&tl->out);
	return 0;
}

/* One line from the daemon: an event is queued; a response is returned in
 * *response (when response is NULL, none was expected: protocol error).
 * Returns 0, or -1 with the error set and the connection shut. */
static int
tablelock_line(struct tablelock *tl, const char *line, size_t len, json_t **response)
{
	json_error_t jerr;
	json_t *msg;

	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return 0;
	msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!tl->spoke) {
		/* Its first line: tablelockd's protocol, or someone else's. */
		char sent[80], what[128];
		if (json_is_object(msg) && (json_is_boolean(json_object_get(msg, "ok")) ||
		                            json_is_string(json_object_get(msg, "event")))) {
			tl->spoke = true;
		} else {
			json_decref(msg);
			tablelock_describe_bytes((const unsigned char *)line, len, sent, sizeof(sent));
			snprintf(what, sizeof(what), "it answered %s", sent);
			return tablelock_stranger(tl, what);
		}
	}
	if (!json_is_object(msg)) {
		json_decref(msg);
		tablelock_shut(tl);
		return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
		                      "tablelockd at %s sent a line that is not a JSON object: %s",
		                      tl->address, jerr.text);
	}
	if (json_object_get(msg, "event") != NULL && json_object_get(msg, "ok") == NULL) {
		tablelock_event_push(tl, msg);
		json_decref(msg);
		return 0;
	}
	if (response == NULL || *response != NULL) {
		json_decref(msg);
		tablelock_shut(tl);
		return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
		                      "tablelockd at %s sent a response nobody asked for",
		                      tl->address);
	}
	free(tl->last_response);
	tl->last_response = xstrndup(line, len);
	*response = msg;
	return 0;
}

/* Reads until a response arrives (response != NULL) or, with response
 * NULL, until an event is pending or nothing more is readable within the
 * deadline. Returns 0 (check *response / tl->nevents), or -1 with the
 * error set. */
static int
tablelock_read(struct tablelock *tl, int64_t deadline, int timeout_ms, json_t **response)
{
	char chunk[TABLELOCK_READ_CHUNK];
	const char *line;
	size_t len;
	enum proto_frame_status st;

	for (;;) {
		/* Not tablelockd at all: say so now, not after a timeout. */
		if (tablelock_check_stranger(tl, tl->eof) != 0)
			return -1;
		/* Lines already buffered first. */
		while ((st = proto_frame_next(&tl->frame, &line, &len)) == PROTO_FRAME_LINE) {
			if (tablelock_line(tl, line, len, response) != 0)
				return -1;
			if (response != NULL ? *response != NULL : tl->nevents > 0)
				return 0;
		}
		if (st == PROTO_FRAME_TOO_LARGE) {
			tablelock_shut(tl);
			return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
			                      "tablelockd at %s sent a line over %zu bytes",
			                      tl->address, TABLELOCK_MAX_LINE);
		}
		if (tl->eof) {
			tablelock_shut(tl);
			return tablelock_fail(tl, TABLELOCK_ERR_CLOSED, 0,
			                      "tablelockd at %s closed the connection (a lease it "
			                      "held is rolled back)",
			                      tl->address);
		}

		struct pollfd pfd = {.fd = tl->fd, .events = POLLIN};
		int r = poll(&pfd, 1, tablelock_remaining(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			tablelock_shut(tl);
			return tablelock_fail(tl, TABLELOCK_ERR_CLOSED, e, "poll: %s", strerror(e));
		}
		if (r == 0) {
			if (response == NULL)
				return 0; /* poll: nothing came */
			tablelock_shut(tl);
			return tablelock_fail(tl, TABLELOCK_ERR_TIMEOUT, ETIMEDOUT,
			                      "no answer from tablelockd at %s within %d ms; the "
			                      "connection was closed (a lease it held is rolled "
			                      "back)",
			                      tl->address, timeout_ms);
		}
		ssize_t n = recv(tl->fd, chunk, sizeof(chunk), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0 && errno == ECONNRESET && !tl->spoke)
			n = 0; /* hung up on our first request: judged as a close */
		if (n < 0) {
			int e = errno;
			tablelock_shut(tl);
			return tablelock_fail(tl, TABLELOCK_ERR_CLOSED, e,
			                      "connection to tablelockd at %s failed: %s",
			                      tl->address, strerror(e));
		}
		if (n == 0) {
			/* A last line without its '\n' still counts. */
			tl->eof = true;
			if (proto_frame_pending(&tl->frame) > 0)
				proto_frame_feed(&tl->frame, "\n", 1);
			continue;
		}
		proto_frame_feed(&tl->frame, chunk, (size_t)n);
	}
}

/* ---------------------------------------------------------------- events */

static void
tablelock_event_push(struct tablelock *tl, const json_t *msg)
{
	const char *name = json_string_value(json_object_get(msg, "event"));
	const char *reason = json_string_value(json_object_get(msg, "reason"));
	json_t *lease = json_object_get(msg, "lease");
	struct tablelock_event *ev;
	enum proto_error code;

	if (name == NULL)
		return;
	/* The events that end a lease share their names with the error codes
	 * a request on that lease gets. Others are newer than this library. */
	code = proto_error_from_name(name);
	if (code != PROTO_ERR_LEASE_EXPIRED && code != PROTO_ERR_LEASE_LOST &&
	    code != PROTO_ERR_LEASE_REVOKED)
		return;
	tl->events = xrealloc(tl->events, (tl->nevents + 1) * sizeof(*tl->events));
	ev = &tl->events[tl->nevents++];
	memset(ev, 0, sizeof(*ev));
	ev->code = (enum tablelock_code)code;
	snprintf(ev->name, sizeof(ev->name), "%s", name);
	ev->lease = json_is_integer(lease) ? (uint64_t)json_integer_value(lease) : 0;
	if (reason != NULL)
		snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
	if (ev->lease == tl->lease || ev->lease == 0)
		tl->lease = 0;
}

static void
tablelock_event_pop(struct tablelock *tl, size_t index, struct tablelock_event *ev)
{
	if (ev != NULL)
		*ev = tl->events[index];
	memmove(&tl->events[index], &tl->events[index + 1],
	        (tl->nevents - index - 1) * sizeof(*tl->events));
	tl->nevents--;
	if (tl->during_call > index)
		tl->during_call--;
}

/* Index of the first pending event with code (any code when code is
 * TABLELOCK_OK) at or after from, or -1. */
static ssize_t
tablelock_event_find(const struct tablelock *tl, enum tablelock_code code, size_t from)
{
	for (size_t i = from; i < tl->nevents; i++)
		if (code == TABLELOCK_OK || tl->events[i].code == code)
			return (ssize_t)i;
	return -1;
}

int
tablelock_poll(struct tablelock *tl, struct tablelock_event *ev, int timeout_ms)
{
	int rc = 0;

	tablelock_error_set(&tl->error, TABLELOCK_OK, 0, "no error");
	if (tl->npending > 0)
		return tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0,
		                      "tablelock_receive() must first take the answer%s to %zu "
		                      "pipelined request%s",
		                      plural_s(tl->npending), tl->npending, plural_s(tl->npending));
	if (tl->nevents == 0) {
		if (tl->fd < 0)
			return tablelock_fail(tl, TABLELOCK_ERR_CLOSED, 0,
			                      "the connection to tablelockd at %s is closed",
			                      tl->address);
		rc = tablelock_read(tl, tablelock_deadline(timeout_ms), timeout_ms, NULL);
	}
	if (tl->nevents > 0) {
		/* An event read just before the connection failed comes first;
		 * the next call reports the closed connection. */
		tablelock_event_pop(tl, 0, ev);
		return 1;
	}
	return rc;
}

/* ---------------------------------------------------------------- requests */

/*
 * Every request, synchronous or pipelined, takes one path:
 * tablelock_enqueue() encodes it into tl->out and notes what its answer
 * means (tl->pending, oldest first); tablelock_flush_out() writes what is
 * queued; tablelock_answer() reads the oldest request's answer and applies
 * it to the handle (lease, TTL, events). A synchronous call is enqueue,
 * then answer, on an empty pipeline.
 *
 * tl->pending[0 .. tl->nsent) are written; the rest wait in tl->out.
 */

/* Queues request (consumed; NULL: its builder failed and set the error). */
static int
tablelock_enqueue(struct tablelock *tl, json_t *request, enum tablelock_kind kind, size_t nresults,
                  int64_t ttl_ms)
{
	struct tablelock_pending *p;

	if (request == NULL)
		return -1;
	json_object_set_new(request, "id", json_integer(tl->next_id));
	if (proto_write_line(&tl->out, request) != 0) {
		json_decref(request);
		return tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0,
		                      "the request cannot be encoded as JSON (text must be UTF-8)");
	}
	json_decref(request);
	tl->pending = xrealloc(tl->pending, (tl->npending + 1) * sizeof(*tl->pending));
	p = &tl->pending[tl->npending++];
	p->id = tl->next_id++;
	p->kind = kind;
	p->nresults = nresults;
	p->ttl_ms = ttl_ms;
	return 0;
}

static void
tablelock_pending_pop(struct tablelock *tl, struct tablelock_pending *p)
{
	*p = tl->pending[0];
	memmove(&tl->pending[0], &tl->pending[1], (tl->npending - 1) * sizeof(*tl->pending));
	tl->npending--;
	if (tl->nsent > 0)
		tl->nsent--;
}

/* Forgets the requests that were never written. */
static void
tablelock_drop_unsent(struct tablelock *tl)
{
	tl->npending = tl->nsent;
	buf_reset(&tl->out);
}

/* Writes every queued request. With nothing in flight, a lease-ending
 * event that came in since the last answer is reported instead, and the
 * queued requests are dropped unsent: the caller learns first that its
 * lease is gone, as with a synchronous call. */
static int
tablelock_flush_out(struct tablelock *tl, int64_t deadline, int timeout_ms)
{
	if (tl->npending == tl->nsent)
		return 0;
	if (tl->nsent == 0) {
		if (tl->fd >= 0 && tl->nevents == 0)
			(void)tablelock_read(tl, 0, 0, NULL);
		while (tl->nevents > 0) {
			struct tablelock_event ev;
			tablelock_event_pop(tl, 0, &ev);
			/* A lease acquired after this one ended (its event was
			 * still on the way) proves the old one gone; only
			 * tablelock_poll could have said more. */
			if (tl->lease != 0 && ev.lease != 0 && ev.lease != tl->lease)
				continue;
			tablelock_drop_unsent(tl);
			tablelock_error_from_event(&tl->error, &ev);
			return -1;
		}
		tl->during_call = 0;
	}
	if (tl->fd < 0) {
		tablelock_drop_unsent(tl);
		if (tl->error.code != TABLELOCK_OK)
			return -1; /* the drain above found the connection closed */
		return tablelock_fail(tl, TABLELOCK_ERR_CLOSED, 0,
		                      "the connection to tablelockd at %s is closed; connect again",
		                      tl->address);
	}
	/* From here a request may have reached the daemon: a commit that
	 * meets a failure is of unknown outcome. */
	tl->nsent = tl->npending;
	return tablelock_send(tl, deadline, timeout_ms);
}

/* Does a failed commit leave the lease held? Only when the daemon refused
 * the request before running anything: a statement the firewall refused,
 * params that do not fit, a malformed request. */
static bool
tablelock_commit_refused(enum tablelock_code code)
{
	return code == TABLELOCK_ERR_STATEMENT_NOT_ALLOWED || code == TABLELOCK_ERR_BAD_PARAMS ||
	       code == TABLELOCK_ERR_BAD_REQUEST;
}

/* Reads the oldest request's answer and applies it to the handle. Returns 0
 * with the "ok":true answer in *response (when not NULL), or -1 with the
 * error set; *req is the request it answered (kind PLAIN when none was
 * sent). */
static int
tablelock_answer(struct tablelock *tl, json_t **response, struct tablelock_pending *req,
                 int timeout_ms)
{
	int64_t deadline = tablelock_deadline(timeout_ms);
	json_t *resp = NULL, *rid;
	bool commits;
	ssize_t i;

	if (response != NULL)
		*response = NULL;
	free(tl->last_response);
	tl->last_response = NULL;
	tablelock_error_set(&tl->error, TABLELOCK_OK, 0, "no error");
	if (tl->npending == 0)
		return tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0, "no request awaits an answer");
	if (tablelock_flush_out(tl, deadline, timeout_ms) != 0 && tl->nsent == 0) {
		/* Nothing went out: the request is gone unanswered. */
		req->kind = TABLELOCK_KIND_PLAIN;
		return -1;
	}
	tablelock_pending_pop(tl, req);
	commits = req->kind == TABLELOCK_KIND_COMMIT || req->kind == TABLELOCK_KIND_TRANSACT;

	if (tl->error.code != TABLELOCK_OK ||
	    tablelock_read(tl, deadline, timeout_ms, &resp) != 0) {
		/* The lease went with the connection; an event explains more. */
		if (tl->fd < 0 && tl->error.code == TABLELOCK_OK)
			tablelock_fail(tl, TABLELOCK_ERR_CLOSED, 0,
			               "the connection to tablelockd at %s was lost before this "
			               "answer",
			               tl->address);
		if (tl->error.code == TABLELOCK_ERR_CLOSED &&
		    (i = tablelock_event_find(tl, TABLELOCK_OK, 0)) >= 0) {
			struct tablelock_event ev;
			tablelock_event_pop(tl, (size_t)i, &ev);
			tablelock_error_from_event(&tl->error, &ev);
		} else if (commits && (tl->error.code == TABLELOCK_ERR_CLOSED ||
		                       tl->error.code == TABLELOCK_ERR_TIMEOUT)) {
			char why[sizeof(tl->error.message)];
			int e = tl->error.sys_errno;
			memcpy(why, tl->error.message, sizeof(why));
			tablelock_fail(tl, TABLELOCK_ERR_COMMIT_UNKNOWN, e,
			               "whether the transaction committed is unknown: %.900s", why);
		}
		tl->lease = 0;
		return -1;
	}
	/* An answer to a line the daemon could not parse has no id. */
	rid = json_object_get(resp, "id");
	if (rid != NULL && !(json_is_integer(rid) && json_integer_value(rid) == req->id)) {
		json_decref(resp);
		tablelock_shut(tl);
		return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
		                      "tablelockd at %s answered another request", tl->address);
	}
	if (json_is_true(json_object_get(resp, "ok"))) {
		switch (req->kind) {
		case TABLELOCK_KIND_ACQUIRE: {
			int64_t id = tablelock_get_int(resp, "lease", 0);
			if (id <= 0) {
				json_decref(resp);
				return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
				                      "tablelockd granted a lease without an id");
			}
			tl->lease = (uint64_t)id;
			tl->lease_ttl = tablelock_get_int(resp, "ttl_ms", req->ttl_ms);
			tl->fence = (uint64_t)tablelock_get_int(resp, "fence", 0);
			break;
		}
		case TABLELOCK_KIND_TRANSACT:
			tl->fence = (uint64_t)tablelock_get_int(resp, "fence", 0);
			break;
		case TABLELOCK_KIND_COMMIT:
		case TABLELOCK_KIND_ROLLBACK:
			tl->lease = 0;
			break;
		case TABLELOCK_KIND_RENEW:
			tl->lease_ttl = tablelock_get_int(
			    resp, "ttl_ms", req->ttl_ms >= 0 ? req->ttl_ms : tl->lease_ttl);
			break;
		default:
			break;
		}
		if (response != NULL)
			*response = resp;
		else
			json_decref(resp);
		return 0;
	}
	if (!json_is_false(json_object_get(resp, "ok"))) {
		json_decref(resp);
		tablelock_shut(tl);
		return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
		                      "tablelockd at %s answered without \"ok\"", tl->address);
	}
	tablelock_error_from_response(&tl->error, resp);
	json_decref(resp);

	switch (tl->error.code) {
	case TABLELOCK_ERR_LEASE_EXPIRED:
	case TABLELOCK_ERR_LEASE_LOST:
	case TABLELOCK_ERR_LEASE_REVOKED:
		/* The answer reports the ending: its event needs no second report. */
		if ((i = tablelock_event_find(tl, tl->error.code, 0)) >= 0) {
			tl->error.lease = tl->events[i].lease;
			tablelock_event_pop(tl, (size_t)i, NULL);
		}
		tl->lease = 0;
		break;
	case TABLELOCK_ERR_NO_LEASE:
		/* The lease ended while the request was on its way: say how. */
		if ((i = tablelock_event_find(tl, TABLELOCK_OK, tl->during_call)) >= 0) {
			struct tablelock_event ev;
			tablelock_event_pop(tl, (size_t)i, &ev);
			tablelock_error_from_event(&tl->error, &ev);
		}
		tl->lease = 0;
		break;
	case TABLELOCK_ERR_COMMIT_UNKNOWN:
		tl->lease = 0;
		break;
	default:
		break;
	}
	/* A commit or rollback that fails ends the lease too, unless the
	 * daemon refused the commit before running anything. */
	if (req->kind == TABLELOCK_KIND_ROLLBACK ||
	    (req->kind == TABLELOCK_KIND_COMMIT && !tablelock_commit_refused(tl->error.code)))
		tl->lease = 0;
	return -1;
}

/* A synchronous call: request (consumed) out, its answer in. */
static int
tablelock_call_kind(struct tablelock *tl, json_t *request, enum tablelock_kind kind,
                    size_t nresults, int64_t ttl_ms, json_t **response, int timeout_ms)
{
	struct tablelock_pending req;

	if (response != NULL)
		*response = NULL;
	if (request == NULL)
		return -1; /* the builder said why */
	tablelock_error_set(&tl->error, TABLELOCK_OK, 0, "no error");
	if (tl->npending > 0) {
		json_decref(request);
		return tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0,
		                      "tablelock_receive() must first take the answer%s to %zu "
		                      "pipelined request%s",
		                      plural_s(tl->npending), tl->npending, plural_s(tl->npending));
	}
	if (tablelock_enqueue(tl, request, kind, nresults, ttl_ms) != 0)
		return -1;
	return tablelock_answer(tl, response, &req, timeout_ms);
}

static int
tablelock_call(struct tablelock *tl, json_t *request, json_t **response, int timeout_ms)
{
	return tablelock_call_kind(tl, request, TABLELOCK_KIND_PLAIN, 0, -1, response, timeout_ms);
}

/* ---------------------------------------------------------------- calls */

static int64_t
tablelock_get_int(const json_t *obj, const char *key, int64_t fallback)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : fallback;
}

/* {"op":op,"write":[…],"read":[…],"wait_ms":…,"ttl_ms":…}, or NULL with
 * the error set. */
static json_t *
tablelock_lock_json(const char *op, const struct tablelock_lock *lock, struct tablelock *tl)
{
	json_t *req, *read, *write;

	if (lock == NULL || lock->tables == NULL || lock->ntables == 0) {
		tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0, "%s: no tables to lock", op);
		return NULL;
	}
	req = json_pack("{s:s}", "op", op);
	read = json_array();
	write = json_array();
	for (size_t i = 0; i < lock->ntables; i++) {
		const struct tablelock_table *t = &lock->tables[i];
		json_t *name, *entry;

		if (t->name == NULL || (name = json_string(t->name)) == NULL) {
			tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0,
			               "%s: table %zu has no name or one that is not UTF-8", op, i);
			goto fail;
		}
		entry = name;
		if (t->alias != NULL) {
			json_t *alias = json_string(t->alias);
			if (alias == NULL) {
				json_decref(name);
				tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0,
				               "%s: alias of table %s is not UTF-8", op, t->name);
				goto fail;
			}
			entry = json_object();
			json_object_set_new(entry, "table", name);
			json_object_set_new(entry, "as", alias);
		}
		json_array_append_new(t->write ? write : read, entry);
	}
	if (json_array_size(write) > 0)
		json_object_set(req, "write", write);
	if (json_array_size(read) > 0)
		json_object_set(req, "read", read);
	json_decref(read);
	json_decref(write);
	if (lock->wait_ms >= 0)
		json_object_set_new(req, "wait_ms", json_integer(lock->wait_ms));
	if (lock->ttl_ms >= 0)
		json_object_set_new(req, "ttl_ms", json_integer(lock->ttl_ms));
	return req;
fail:
	json_decref(read);
	json_decref(write);
	json_decref(req);
	return NULL;
}

static json_t *
tablelock_params_json(struct tablelock *tl, const struct tablelock_param *params, size_t nparams,
                      const char *what)
{
	json_t *a = json_array();

	if (nparams > 0 && params == NULL) {
		tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0, "%s: %zu param%s but no array", what,
		               nparams, plural_s(nparams));
		json_decref(a);
		return NULL;
	}
	for (size_t i = 0; i < nparams; i++) {
		const struct tablelock_param *p = &params[i];
		json_t *v = NULL;
		const char *bad = "has an unknown type";

		switch (p->type) {
		case TABLELOCK_NULL:
			v = json_null();
			break;
		case TABLELOCK_BOOL:
			v = json_boolean(p->v.b);
			break;
		case TABLELOCK_INT:
			v = json_integer((json_int_t)p->v.i);
			break;
		case TABLELOCK_UINT:
			/* JSON integers stop at INT64_MAX in the daemon too. */
			if (p->v.u <= (uint64_t)INT64_MAX)
				v = json_integer((json_int_t)p->v.u);
			else
				v = json_sprintf("%llu", (unsigned long long)p->v.u);
			break;
		case TABLELOCK_DOUBLE:
			v = json_real(p->v.d); /* NULL for NaN and infinities */
			bad = "is not a finite number";
			break;
		case TABLELOCK_STRING:
			if (p->v.s.ptr != NULL)
				v = json_stringn(p->v.s.ptr, p->v.s.len);
			bad = "is not valid UTF-8 text";
			break;
		case TABLELOCK_BINARY:
			bad = "is binary: the protocol takes text parameters only";
			break;
		}
		if (v == NULL) {
			tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0, "%s: param %zu %s", what, i,
			               bad);
			json_decref(a);
			return NULL;
		}
		json_array_append_new(a, v);
	}
	return a;
}

static json_t *
tablelock_statement_json(struct tablelock *tl, const char *sql,
                         const struct tablelock_param *params, size_t nparams, const char *what)
{
	json_t *st, *text, *p;

	if (sql == NULL || (text = json_string(sql)) == NULL) {
		tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0, "%s: sql is %s", what,
		               sql == NULL ? "NULL" : "not valid UTF-8");
		return NULL;
	}
	if ((p = tablelock_params_json(tl, params, nparams, what)) == NULL) {
		json_decref(text);
		return NULL;
	}
	st = json_object();
	json_object_set_new(st, "sql", text);
	if (nparams > 0)
		json_object_set_new(st, "params", p);
	else
		json_decref(p);
	return st;
}

int
tablelock_ping(struct tablelock *tl, int timeout_ms)
{
	return tablelock_call(tl, json_pack("{s:s}", "op", "ping"), NULL, timeout_ms);
}

int
tablelock_hello(struct tablelock *tl, const char *client, const char *token, int timeout_ms)
{
	json_t *req = json_pack("{s:s}", "op", "hello"), *resp, *v;
	const char *version;

	if (client != NULL) {
		if ((v = json_string(client)) == NULL) {
			json_decref(req);
			return tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0,
			                      "hello: client name is not UTF-8");
		}
		json_object_set_new(req, "client", v);
	}
	if (token != NULL) {
		if ((v = json_string(token)) == NULL) {
			json_decref(req);
			return tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0,
			                      "hello: token is not UTF-8");
		}
		json_object_set_new(req, "token", v);
	}
	if (tablelock_call(tl, req, &resp, timeout_ms) != 0)
		return -1;
	version = json_string_value(json_object_get(resp, "version"));
	free(tl->server_version);
	tl->server_version = version != NULL ? xstrdup(version) : NULL;
	json_decref(resp);
	return 0;
}

/* Adds "statements" to request (consumed; returned, or NULL with the
 * error set). required: transact's, which must have at least one. */
static json_t *
tablelock_statements_json(struct tablelock *tl, json_t *request, const char *op,
                          const struct tablelock_statement *statements, size_t nstatements,
                          bool required)
{
	json_t *list;
	char what[64];

	if (request == NULL)
		return NULL;
	if (required && (statements == NULL || nstatements == 0)) {
		json_decref(request);
		tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0, "%s: no statements", op);
		return NULL;
	}
	if (nstatements == 0)
		return request;
	if (statements == NULL) {
		json_decref(request);
		tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0, "%s: %zu statement%s but no array", op,
		               nstatements, plural_s(nstatements));
		return NULL;
	}
	list = json_array();
	for (size_t i = 0; i < nstatements; i++) {
		const struct tablelock_statement *st = &statements[i];
		json_t *one;

		snprintf(what, sizeof(what), "%s statement %zu", op, i);
		one = tablelock_statement_json(tl, st->sql, st->params, st->nparams, what);
		if (one == NULL) {
			tl->error.statement = (long)i;
			json_decref(list);
			json_decref(request);
			return NULL;
		}
		json_array_append_new(list, one);
	}
	json_object_set_new(request, "statements", list);
	return request;
}

/* The answer's "results" (exactly expected of them) into results[0 ..
 * nresults), when results is not NULL; the slots past expected are set to
 * NULL. On failure every slot is NULL. */
static int
tablelock_results_take(struct tablelock *tl, json_t *resp, size_t expected,
                       struct tablelock_result **results, size_t nresults, const char *op)
{
	json_t *rs = json_object_get(resp, "results");
	char why[256];

	if (expected == 0)
		return 0;
	if (!json_is_array(rs) || json_array_size(rs) != expected)
		return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
		                      "tablelockd answered %s without %zu result%s", op, expected,
		                      plural_s(expected));
	for (size_t i = 0; results != NULL && i < nresults && i < expected; i++) {
		results[i] = tablelock_result_from_json(json_array_get(rs, i), why, sizeof(why));
		if (results[i] == NULL) {
			for (size_t j = 0; j < i; j++) {
				tablelock_result_free(results[j]);
				results[j] = NULL;
			}
			return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
			                      "tablelockd sent result %zu that makes no sense: %s",
			                      i, why);
		}
	}
	return 0;
}

static void
tablelock_results_clear(struct tablelock_result **results, size_t nresults)
{
	for (size_t i = 0; results != NULL && i < nresults; i++)
		results[i] = NULL;
}

/* The request of each op, for the synchronous call and the pipeline alike. */

static json_t *
tablelock_acquire_json(struct tablelock *tl, const struct tablelock_lock *lock,
                       const struct tablelock_statement *statements, size_t nstatements)
{
	return tablelock_statements_json(tl, tablelock_lock_json("acquire", lock, tl), "acquire",
	                                 statements, nstatements, false);
}

static json_t *
tablelock_query_json(struct tablelock *tl, const char *sql, const struct tablelock_param *params,
                     size_t nparams)
{
	json_t *req = tablelock_statement_json(tl, sql, params, nparams, "query");

	if (req != NULL)
		json_object_set_new(req, "op", json_string("query"));
	return req;
}

static json_t *
tablelock_commit_json(struct tablelock *tl, const struct tablelock_statement *statements,
                      size_t nstatements)
{
	return tablelock_statements_json(tl, json_pack("{s:s}", "op", "commit"), "commit",
	                                 statements, nstatements, false);
}

static json_t *
tablelock_transact_json(struct tablelock *tl, const struct tablelock_lock *lock,
                        const struct tablelock_statement *statements, size_t nstatements)
{
	return tablelock_statements_json(tl, tablelock_lock_json("transact", lock, tl), "transact",
	                                 statements, nstatements, true);
}

int
tablelock_acquire(struct tablelock *tl, const struct tablelock_lock *lock, uint64_t *lease,
                  int timeout_ms)
{
	return tablelock_acquire_with(tl, lock, NULL, 0, NULL, lease, timeout_ms);
}

int
tablelock_acquire_with(struct tablelock *tl, const struct tablelock_lock *lock,
                       const struct tablelock_statement *statements, size_t nstatements,
                       struct tablelock_result **results, uint64_t *lease, int timeout_ms)
{
	json_t *resp;

	if (lease != NULL)
		*lease = 0;
	tablelock_results_clear(results, nstatements);
	if (tablelock_call_kind(tl, tablelock_acquire_json(tl, lock, statements, nstatements),
	                        TABLELOCK_KIND_ACQUIRE, nstatements,
	                        lock != NULL ? lock->ttl_ms : -1, &resp, timeout_ms) != 0)
		return -1;
	if (tablelock_results_take(tl, resp, nstatements, results, nstatements, "acquire") != 0) {
		/* Held, but the caller cannot see what its statements did:
		 * give the lease back rather than leave it unknown. */
		json_decref(resp);
		tablelock_shut(tl);
		return -1;
	}
	json_decref(resp);
	if (lease != NULL)
		*lease = tl->lease;
	return 0;
}

int
tablelock_query(struct tablelock *tl, const char *sql, const struct tablelock_param *params,
                size_t nparams, struct tablelock_result **result, int timeout_ms)
{
	json_t *resp;
	char why[256];

	if (result != NULL)
		*result = NULL;
	if (tablelock_call_kind(tl, tablelock_query_json(tl, sql, params, nparams),
	                        TABLELOCK_KIND_QUERY, 1, -1, &resp, timeout_ms) != 0)
		return -1;
	if (result != NULL) {
		*result = tablelock_result_from_json(resp, why, sizeof(why));
		if (*result == NULL) {
			json_decref(resp);
			return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
			                      "tablelockd sent a result that makes no sense: %s",
			                      why);
		}
	}
	json_decref(resp);
	return 0;
}

int
tablelock_commit(struct tablelock *tl, int timeout_ms)
{
	return tablelock_commit_with(tl, NULL, 0, NULL, timeout_ms);
}

int
tablelock_commit_with(struct tablelock *tl, const struct tablelock_statement *statements,
                      size_t nstatements, struct tablelock_result **results, int timeout_ms)
{
	json_t *resp;
	int rc;

	tablelock_results_clear(results, nstatements);
	if (tablelock_call_kind(tl, tablelock_commit_json(tl, statements, nstatements),
	                        TABLELOCK_KIND_COMMIT, nstatements, -1, &resp, timeout_ms) != 0)
		return -1;
	/* Committed: a bad results list cannot undo that, but says so. */
	rc = tablelock_results_take(tl, resp, nstatements, results, nstatements, "commit");
	json_decref(resp);
	return rc;
}

int
tablelock_rollback(struct tablelock *tl, int timeout_ms)
{
	return tablelock_call_kind(tl, json_pack("{s:s}", "op", "rollback"),
	                           TABLELOCK_KIND_ROLLBACK, 0, -1, NULL, timeout_ms);
}

int
tablelock_renew(struct tablelock *tl, int64_t ttl_ms, int timeout_ms)
{
	json_t *req = json_pack("{s:s}", "op", "renew");

	if (ttl_ms >= 0)
		json_object_set_new(req, "ttl_ms", json_integer(ttl_ms));
	return tablelock_call_kind(tl, req, TABLELOCK_KIND_RENEW, 0, ttl_ms, NULL, timeout_ms);
}

int
tablelock_transact(struct tablelock *tl, const struct tablelock_lock *lock,
                   const struct tablelock_statement *statements, size_t nstatements,
                   struct tablelock_result **results, uint64_t *lease, int timeout_ms)
{
	json_t *resp;

	if (lease != NULL)
		*lease = 0;
	tablelock_results_clear(results, nstatements);
	if (tablelock_call_kind(tl, tablelock_transact_json(tl, lock, statements, nstatements),
	                        TABLELOCK_KIND_TRANSACT, nstatements, -1, &resp, timeout_ms) != 0)
		return -1;
	if (tablelock_results_take(tl, resp, nstatements, results, nstatements, "transact") != 0) {
		json_decref(resp);
		return -1;
	}
	if (lease != NULL)
		*lease = (uint64_t)tablelock_get_int(resp, "lease", 0);
	json_decref(resp);
	return 0;
}

/* ---------------------------------------------------------------- pipeline */

/* Each queue call clears the error before building its request, whose
 * builder says why when it fails; tablelock_enqueue() then writes nothing,
 * so a closed connection is reported by the flush, in order. */

int
tablelock_queue_acquire(struct tablelock *tl, const struct tablelock_lock *lock,
                        const struct tablelock_statement *statements, size_t nstatements)
{
	tablelock_error_set(&tl->error, TABLELOCK_OK, 0, "no error");
	return tablelock_enqueue(tl, tablelock_acquire_json(tl, lock, statements, nstatements),
	                         TABLELOCK_KIND_ACQUIRE, nstatements,
	                         lock != NULL ? lock->ttl_ms : -1);
}

int
tablelock_queue_query(struct tablelock *tl, const char *sql, const struct tablelock_param *params,
                      size_t nparams)
{
	tablelock_error_set(&tl->error, TABLELOCK_OK, 0, "no error");
	return tablelock_enqueue(tl, tablelock_query_json(tl, sql, params, nparams),
	                         TABLELOCK_KIND_QUERY, 1, -1);
}

int
tablelock_queue_commit(struct tablelock *tl, const struct tablelock_statement *statements,
                       size_t nstatements)
{
	tablelock_error_set(&tl->error, TABLELOCK_OK, 0, "no error");
	return tablelock_enqueue(tl, tablelock_commit_json(tl, statements, nstatements),
	                         TABLELOCK_KIND_COMMIT, nstatements, -1);
}

int
tablelock_queue_rollback(struct tablelock *tl)
{
	tablelock_error_set(&tl->error, TABLELOCK_OK, 0, "no error");
	return tablelock_enqueue(tl, json_pack("{s:s}", "op", "rollback"), TABLELOCK_KIND_ROLLBACK,
	                         0, -1);
}

int
tablelock_queue_transact(struct tablelock *tl, const struct tablelock_lock *lock,
                         const struct tablelock_statement *statements, size_t nstatements)
{
	tablelock_error_set(&tl->error, TABLELOCK_OK, 0, "no error");
	return tablelock_enqueue(tl, tablelock_transact_json(tl, lock, statements, nstatements),
	                         TABLELOCK_KIND_TRANSACT, nstatements, -1);
}

size_t
tablelock_pending(const struct tablelock *tl)
{
	return tl->npending;
}

int
tablelock_flush(struct tablelock *tl, int timeout_ms)
{
	tablelock_error_set(&tl->error, TABLELOCK_OK, 0, "no error");
	return tablelock_flush_out(tl, tablelock_deadline(timeout_ms), timeout_ms);
}

int
tablelock_receive(struct tablelock *tl, struct tablelock_result **results, size_t nresults,
                  uint64_t *lease, int timeout_ms)
{
	struct tablelock_pending req;
	json_t *resp;
	char why[256];
	int rc = 0;

	if (lease != NULL)
		*lease = 0;
	tablelock_results_clear(results, nresults);
	if (tablelock_answer(tl, &resp, &req, timeout_ms) != 0)
		return -1;
	if (req.kind == TABLELOCK_KIND_QUERY) {
		if (results != NULL && nresults > 0) {
			results[0] = tablelock_result_from_json(resp, why, sizeof(why));
			if (results[0] == NULL)
				rc = tablelock_fail(
				    tl, TABLELOCK_ERR_PROTOCOL, 0,
				    "tablelockd sent a result that makes no sense: %s", why);
		}
	} else {
		rc = tablelock_results_take(tl, resp, req.nresults, results, nresults, "request");
	}
	if (rc == 0 && lease != NULL)
		*lease = (uint64_t)tablelock_get_int(resp, "lease", 0);
	json_decref(resp);
	return rc;
}

int
tablelock_revoke(struct tablelock *tl, uint64_t lease, int timeout_ms)
{
	if (lease == 0 || lease > (uint64_t)INT64_MAX)
		return tablelock_fail(tl, TABLELOCK_ERR_USAGE, 0, "revoke: no such lease id %llu",
		                      (unsigned long long)lease);
	return tablelock_call(tl,
	                      json_pack("{s:s,s:I}", "op", "revoke", "lease", (json_int_t)lease),
	                      NULL, timeout_ms);
}

int
tablelock_status(struct tablelock *tl, struct tablelock_status **status, int timeout_ms)
{
	json_t *resp;
	char why[256];

	*status = NULL;
	if (tablelock_call(tl, json_pack("{s:s}", "op", "status"), &resp, timeout_ms) != 0)
		return -1;
	*status = tablelock_status_from_json(resp, why, sizeof(why));
	json_decref(resp);
	if (*status == NULL)
		return tablelock_fail(tl, TABLELOCK_ERR_PROTOCOL, 0,
		                      "tablelockd sent a status that makes no sense: %s", why);
	return 0;
}
