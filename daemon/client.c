/* Client connection: one socket, its requests in order, its lease. */
#include "daemon/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "daemon/access.h"
#include "daemon/blockers.h"
#include "daemon/dispatch.h"
#include "daemon/lease.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/server.h"
#include "daemon/tls.h"
#include "proto/proto_response.h"
#include "util/buf.h"
#include "util/xmalloc.h"

static const char *const client_state_names[CLIENT__STATE_COUNT] = {
	[CLIENT_READY] = "ready",
	[CLIENT_BUSY] = "busy",
	[CLIENT_CLOSING] = "closing",
	[CLIENT_DROPPING] = "dropping",
	[CLIENT_CLOSED] = "closed",
};

static uint64_t client_next_id = 1;

static void client_enter_state(struct client *c, enum client_state state);
static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_recv_cb(evutil_socket_t fd, short what, void *arg);
static void client_reading(struct client *c, bool on);
static void client_input(struct client *c, const char *data, size_t len);
static void client_eof(struct client *c);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_process(struct client *c);
static void client_next_cb(evutil_socket_t fd, short what, void *arg);
static void client_write(struct client *c, json_t *obj);
static void client_free_cb(evutil_socket_t fd, short what, void *arg);
static void client_peer_init(struct client *c, evutil_socket_t fd, const struct sockaddr *addr,
			     bool is_unix);
static void client_timer_cb(evutil_socket_t fd, short what, void *arg);
static void client_arm(struct client *c, enum client_timer kind, int64_t ms);
static void client_timers_update(struct client *c);
static bool client_count_connection(struct client *c);
static void client_refuse(evutil_socket_t fd, const char *code, const char *message);
static bool client_peer_gone(struct client *c);
static bool client_half_close(struct client *c);
static void client_send(struct client *c, const char *data, size_t len);
static void client_close_after_flush(struct client *c, const char *why);

static void
client_enter_state(struct client *c, enum client_state state)
{
	if (c->state == state)
		return;
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_debug("client %llu: %s -> %s", (unsigned long long)c->id,
			  client_state_names[c->state], client_state_names[state]);
	c->state = state;
}

static void
client_peer_init(struct client *c, evutil_socket_t fd, const struct sockaddr *addr, bool is_unix)
{
	struct client_peer *p = &c->peer;

	p->is_unix = is_unix;
	p->uid = (uid_t)-1;
	p->gid = (gid_t)-1;
	p->pid = 0;
	if (is_unix) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		snprintf(p->address, sizeof(p->address), "unix");
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
			p->uid = cred.uid;
			p->gid = cred.gid;
			p->pid = cred.pid;
		}
		return;
	}
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned int port = 0;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(p->address, sizeof(p->address), "%s:%u", host, port);
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(p->address, sizeof(p->address), "[%s]:%u", host, port);
	}
}

/* Answers once on a socket we will not serve, then closes it: the client
 * learns why instead of seeing a bare close. */
static void
client_refuse(evutil_socket_t fd, const char *code, const char *message)
{
	char line[200];
	int n = snprintf(line, sizeof(line),
			 "{\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
			 message);
	if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("refusing a connection: %s", strerror(errno));
	evutil_closesocket(fd);
}

/* Files the connection under its identity; false when the identity is at
 * max_connections_per_identity. */
static bool
client_count_connection(struct client *c)
{
	unsigned int *n;

	identity_attach(&c->identity);
	n = identity_connections(&c->identity);
	if (server.conf.max_connections_per_identity > 0 &&
	    *n >= server.conf.max_connections_per_identity)
		return false;
	(*n)++;
	c->counted = true;
	return true;
}

void
client_accept(evutil_socket_t fd, const struct sockaddr *addr, int addrlen,
	      enum client_transport transport)
{
	bool is_unix = transport == CLIENT_UNIX;
	struct client *c;

	(void)addrlen;
	if (server.shutting_down) {
		client_refuse(fd, "shutting_down", "the daemon is shutting down");
		return;
	}
	if (server.nclients >= server.conf.max_clients) {
		client_refuse(fd, "too_many_clients", "max_clients reached");
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->id = client_next_id++;
	c->state = CLIENT_READY;
	client_peer_init(c, fd, addr, is_unix);
	c->peer.transport = transport;
	if (is_unix) {
		identity_unix(&c->identity, c->peer.uid, c->peer.gid);
		if (!client_count_connection(c)) {
			log_warnx("%s: max_connections_per_identity (%u) reached; refused",
				  c->identity.label, server.conf.max_connections_per_identity);
			identity_free(&c->identity);
			free(c);
			client_refuse(fd, "too_many_clients",
				      "max_connections_per_identity reached");
			return;
		}
	} else {
		/* Unauthenticated until a token (hello) or a certificate. */
		snprintf(c->identity.label, sizeof(c->identity.label), "unauthenticated@%s",
			 c->peer.address);
	}
	metrics.client_connections++;
	proto_frame_init(&c->frame, server.conf.max_request_bytes);
	if (transport == CLIENT_TLS) {
		SSL *ssl = tls_new();
		c->bev = ssl != NULL ? bufferevent_openssl_socket_new(server.base, fd, ssl,
								       BUFFEREVENT_SSL_ACCEPTING,
								       BEV_OPT_CLOSE_ON_FREE)
				     : NULL;
		if (c->bev == NULL) {
			if (ssl != NULL)
				SSL_free(ssl);
			evutil_closesocket(fd);
			identity_free(&c->identity);
			free(c);
			return;
		}
	} else {
		c->bev = bufferevent_socket_new(server.base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	c->next = event_new(server.base, -1, 0, client_next_cb, c);
	if (transport == CLIENT_TLS) {
		bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	} else {
		/* Plain sockets are read here, with one recv() per wake-up; the
		 * bufferevent would ask FIONREAD first (an ioctl per request).
		 * It still buffers what a slow reader leaves unsent. */
		bufferevent_setcb(c->bev, NULL, client_write_cb, client_event_cb, c);
		bufferevent_enable(c->bev, EV_WRITE);
		c->rev = event_new(server.base, fd, EV_READ | EV_PERSIST, client_recv_cb, c);
	}
	client_reading(c, true);
	TAILQ_INSERT_TAIL(&server.clients, c, entry);
	server.nclients++;
	client_timers_update(c);
	if (is_unix)
		log_debug("client %llu: connected (uid %d, pid %d)", (unsigned long long)c->id,
			  (int)c->peer.uid, (int)c->peer.pid);
	else
		log_debug("client %llu: connected from %s", (unsigned long long)c->id,
			  c->peer.address);
}

const char *
client_label(const struct client *c)
{
	if (c == NULL)
		return "(gone)";
	return c->name != NULL ? c->name : c->identity.label;
}

json_t *
client_peer_json(const struct client *c)
{
	if (c->peer.is_unix)
		return json_pack("{s:i,s:i}", "uid", (int)c->peer.uid, "pid", (int)c->peer.pid);
	return json_pack("{s:s}", "address", c->peer.address);
}

/* Turns reading on or off (TLS: the bufferevent's; else our own event). */
static void
client_reading(struct client *c, bool on)
{
	if (on == c->reading)
		return;
	c->reading = on;
	if (c->rev == NULL) {
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
	} else if (on) {
		event_add(c->rev, NULL);
	} else {
		event_del(c->rev);
	}
}

/* Bytes from the client: frame them and serve what is complete. */
static void
client_input(struct client *c, const char *data, size_t len)
{
	proto_frame_feed(&c->frame, data, len);
	client_process(c);
	/* A client that pipelines far ahead of a slow request is not read
	 * further until it catches up: memory per connection stays bounded. */
	if (c->state == CLIENT_BUSY &&
	    proto_frame_pending(&c->frame) > 2 * server.conf.max_request_bytes)
		client_reading(c, false);
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char chunk[16384];
	int n;

	while ((n = evbuffer_remove(in, chunk, sizeof(chunk))) > 0)
		proto_frame_feed(&c->frame, chunk, (size_t)n);
	client_input(c, "", 0);
}

static void
client_recv_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	char chunk[16384];
	ssize_t n;

	(void)what;
	n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
	if (n > 0) {
		client_input(c, chunk, (size_t)n);
		return;
	}
	if (n == 0)
		client_eof(c);
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		client_close(c, strerror(errno));
}

/* End of input: see client_half_close. */
static void
client_eof(struct client *c)
{
	if (client_half_close(c))
		return;
	client_close(c, "disconnected");
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	if (c->state == CLIENT_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_close(c, "closed after an error");
}

/* Has the peer closed its socket entirely (not just its sending side)? A
 * Unix socket whose peer is gone reports POLLHUP; one whose peer did
 * shutdown(SHUT_WR) does not. TCP cannot tell the two apart. */
static bool
client_peer_gone(struct client *c)
{
	struct pollfd pfd = {.fd = bufferevent_getfd(c->bev), .events = POLLIN};

	if (!c->peer.is_unix)
		return true;
	return poll(&pfd, 1, 0) < 0 || (pfd.revents & (POLLHUP | POLLERR)) != 0;
}

/* End of input. A client that only closed its sending side, as
 * `printf … | socat` does, still gets the answers to what it sent; a
 * client that is gone ends at once (and its lease with it). While
 * answers are pending, a short timer watches for the peer going away. */
static bool
client_half_close(struct client *c)
{
	/* Requests still to answer: one in flight, or ones read ahead or
	 * buffered whose turn is scheduled but has not come yet. */
	bool unanswered = c->state == CLIENT_BUSY ||
			  (c->state == CLIENT_READY &&
			   (c->nahead > 0 || proto_frame_pending(&c->frame) > 0));

	if (!unanswered || client_peer_gone(c))
		return false;
	c->half_closed = true;
	client_reading(c, false);
	client_arm(c, CLIENT_TIMER_HANGUP, 50);
	log_debug("client %llu: closed its sending side; answering what it sent",
		  (unsigned long long)c->id);
	if (c->state == CLIENT_READY)
		event_active(c->next, EV_TIMEOUT, 1);
	return true;
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		/* TLS handshake done: a verified client certificate names the
		 * client. */
		char cn[128];
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		if (tls_client_certs() && ssl != NULL && tls_peer_cn(ssl, cn, sizeof(cn))) {
			identity_set_cn(&c->identity, cn);
			if (!client_count_connection(c)) {
				client_close(c, "max_connections_per_identity reached");
				return;
			}
			log_debug("client %llu: certificate CN %s", (unsigned long long)c->id, cn);
		}
		return;
	}
	if (what & BEV_EVENT_EOF)
		client_eof(c);
	else if (what & BEV_EVENT_ERROR)
		client_close(c, strerror(EVUTIL_SOCKET_ERROR()));
}

/* The next non-blank request line: LINE, NEED_MORE, or TOO_LARGE (then
 * the connection is closed after an answer). */
static enum proto_frame_status
client_next_line(struct client *c, const char **line, size_t *len)
{
	for (;;) {
		enum proto_frame_status st = proto_frame_next(&c->frame, line, len);
		if (st != PROTO_FRAME_LINE)
			return st;
		size_t i = 0;
		while (i < *len && ((*line)[i] == ' ' || (*line)[i] == '\t' || (*line)[i] == '\r'))
			i++;
		if (i < *len)
			return st; /* blank lines are ignored */
	}
}

/* Drops the first read-ahead entry (its request was run or freed). */
static void
client_ahead_pop(struct client *c, struct dispatch_entry *out)
{
	*out = c->ahead[0];
	c->nahead--;
	memmove(c->ahead, c->ahead + 1, c->nahead * sizeof(*c->ahead));
}

const struct proto_request *
client_lookahead(struct client *c, size_t i)
{
	const char *line;
	size_t len;

	while (c->nahead <= i) {
		if (client_next_line(c, &line, &len) != PROTO_FRAME_LINE)
			return NULL;
		if (c->nahead == c->ahead_cap) {
			c->ahead_cap = c->ahead_cap ? c->ahead_cap * 2 : 4;
			c->ahead = xrealloc(c->ahead, c->ahead_cap * sizeof(*c->ahead));
		}
		dispatch_parse(line, len, &c->ahead[c->nahead++]);
	}
	if (c->ahead[i].code != PROTO_OK || !c->identity.authenticated)
		return NULL;
	return &c->ahead[i].req;
}

void
client_answer_and_advance(struct client *c, json_t *resp)
{
	struct dispatch_entry e;

	client_write(c, resp);
	json_decref(c->request_id);
	c->request_id = NULL;
	if (c->nahead == 0)
		return; /* cannot happen: the lease ran a request read ahead */
	client_ahead_pop(c, &e);
	c->request_id = e.req.id != NULL ? json_incref(e.req.id) : NULL;
	metrics.requests[e.req.op]++;
	proto_request_free(&e.req);
}

/* Handles buffered requests in order, one at a time: a request that must
 * wait for MySQL leaves the client BUSY, and the next one waits. Requests
 * read ahead (client_lookahead) come first, then the buffered lines. */
static void
client_process(struct client *c)
{
	const char *line;
	size_t len;

	if (c->processing)
		return;
	c->processing = true;
	while (c->state == CLIENT_READY) {
		struct dispatch_entry e;
		if (c->nahead > 0) {
			client_ahead_pop(c, &e);
			client_enter_state(c, CLIENT_BUSY);
			dispatch_run(c, &e);
			continue;
		}
		enum proto_frame_status st = client_next_line(c, &line, &len);
		if (st == PROTO_FRAME_NEED_MORE)
			break;
		if (st == PROTO_FRAME_TOO_LARGE) {
			char msg[128];
			snprintf(msg, sizeof(msg), "request line longer than max_request_bytes (%zu)",
				 server.conf.max_request_bytes);
			client_write(c, proto_response_error(NULL, PROTO_ERR_REQUEST_TOO_LARGE, msg));
			client_close_after_flush(c, "request too large");
			break;
		}
		client_enter_state(c, CLIENT_BUSY);
		dispatch_parse(line, len, &e);
		dispatch_run(c, &e);
	}
	c->processing = false;
	if (c->half_closed && c->state == CLIENT_READY) {
		/* Everything it sent is answered: flush, then close. */
		client_close_after_flush(c, "closed after answering its last request");
		return;
	}
	if (c->state == CLIENT_READY)
		client_reading(c, true);
	client_timers_update(c);
}

/* One timer per connection, for whichever applies: a request line left
 * incomplete (slow-loris defence) runs against request_timeout_ms from its
 * first byte; a connection with nothing to do and no lease runs against
 * idle_timeout_ms. A busy connection or one holding a lease has neither. */
static void
client_timers_update(struct client *c)
{
	enum client_timer want = CLIENT_TIMER_NONE;

	if (c->state == CLIENT_CLOSED || c->timer_kind == CLIENT_TIMER_AUTH_DELAY ||
	    c->half_closed)
		return;
	if (c->state == CLIENT_READY && proto_frame_pending(&c->frame) > 0)
		want = CLIENT_TIMER_REQUEST;
	else if (c->state == CLIENT_READY && c->lease == NULL && server.conf.idle_timeout_ms > 0)
		want = CLIENT_TIMER_IDLE;
	if (want == c->timer_kind && want != CLIENT_TIMER_IDLE)
		return; /* a request timer runs from the line's first byte */
	if (want == CLIENT_TIMER_NONE) {
		if (c->timer != NULL)
			evtimer_del(c->timer);
		c->timer_kind = CLIENT_TIMER_NONE;
		return;
	}
	client_arm(c, want,
		   want == CLIENT_TIMER_REQUEST ? server.conf.request_timeout_ms
						: server.conf.idle_timeout_ms);
}

static void
client_arm(struct client *c, enum client_timer kind, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};

	if (c->timer == NULL)
		c->timer = evtimer_new(server.base, client_timer_cb, c);
	c->timer_kind = kind;
	evtimer_add(c->timer, &tv);
}

static void
client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	enum client_timer kind = c->timer_kind;
	json_t *resp;

	(void)fd;
	(void)what;
	c->timer_kind = CLIENT_TIMER_NONE;
	switch (kind) {
	case CLIENT_TIMER_REQUEST:
		client_close(c, "request line incomplete after request_timeout_ms");
		break;
	case CLIENT_TIMER_IDLE:
		client_close(c, "idle for idle_timeout_ms without a lease");
		break;
	case CLIENT_TIMER_AUTH_DELAY:
		resp = c->delayed;
		c->delayed = NULL;
		client_respond(c, resp);
		break;
	case CLIENT_TIMER_HANGUP:
		if (client_peer_gone(c))
			client_close(c, "disconnected");
		else
			client_arm(c, CLIENT_TIMER_HANGUP, 50);
		break;
	case CLIENT_TIMER_NONE:
		break;
	}
}

void
client_delay_respond(struct client *c, json_t *resp)
{
	/* Failed authentication answers after a second: guessing tokens
	 * over one connection gets slow. */
	json_decref(c->delayed);
	c->delayed = resp;
	client_arm(c, CLIENT_TIMER_AUTH_DELAY, 1000);
}

bool
client_authenticate(struct client *c, const char *token)
{
	const char *name = identity_check_token(&server.conf, token, strlen(token));

	if (name == NULL) {
		log_warnx("client %llu from %s: authentication failed (bad token)",
			  (unsigned long long)c->id, c->peer.address);
		return false;
	}
	if (c->counted) {
		(*identity_connections(&c->identity))--;
		c->counted = false;
	}
	identity_set_token(&c->identity, name);
	if (!client_count_connection(c)) {
		log_warnx("%s: max_connections_per_identity (%u) reached",
			  c->identity.label, server.conf.max_connections_per_identity);
		/* Refused: the connection stays as unauthenticated as it was. */
		identity_detach(&c->identity);
		free(c->identity.token);
		c->identity.token = NULL;
		c->identity.authenticated = c->peer.is_unix;
		if (c->peer.is_unix) {
			/* Back under its unix identity, which held this
			 * connection a moment ago: it fits again. */
			identity_unix_label(&c->identity, c->peer.uid);
			(void)client_count_connection(c);
		} else {
			snprintf(c->identity.label, sizeof(c->identity.label),
				 "unauthenticated@%s", c->peer.address);
		}
		return false;
	}
	log_info("client %llu from %s: authenticated as %s", (unsigned long long)c->id,
		 c->peer.address, c->identity.label);
	return true;
}

bool
client_may_lock(struct client *c, const char *db, const char *table, bool write)
{
	struct access_identity view;

	if (!access_enabled(server.access))
		return true;
	identity_view(&c->identity, c->peer.uid, c->peer.is_unix, &view);
	return access_may_lock(server.access, &view, db, table, write);
}

bool
client_is_admin(struct client *c)
{
	struct access_identity view;

	if (!access_enabled(server.access))
		return c->peer.is_unix && (c->peer.uid == 0 || c->peer.uid == server.uid);
	identity_view(&c->identity, c->peer.uid, c->peer.is_unix, &view);
	return access_is_admin(server.access, &view);
}

/* Writes at once when nothing is queued (the usual case: one answer per
 * request), so an answer costs one send() and no event changes; whatever
 * the socket does not take goes through the bufferevent. TLS always goes
 * through the bufferevent. */
static void
client_send(struct client *c, const char *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->peer.transport != CLIENT_TLS && evbuffer_get_length(out) == 0) {
		ssize_t n = send(bufferevent_getfd(c->bev), data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		}
	}
	if (len > 0)
		bufferevent_write(c->bev, data, len);
}

static void
client_write(struct client *c, json_t *obj)
{
	struct buf b = {0};

	if (c->state == CLIENT_CLOSED || c->state == CLIENT_DROPPING) {
		json_decref(obj);
		return;
	}
	if (proto_write_line(&b, obj) != 0) {
		json_t *err = proto_response_error(json_object_get(obj, "id"), PROTO_ERR_INTERNAL,
						   "response could not be encoded");
		proto_write_line(&b, err);
		json_decref(err);
	}
	json_decref(obj);
	client_send(c, b.data, b.len);
	buf_free(&b);
	/* A client that does not read its answers cannot make us buffer
	 * without bound. */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > server.conf.max_output_bytes &&
	    c->state != CLIENT_CLOSING) {
		log_warnx("client %llu (%s): more than max_output_bytes (%zu) unread; closing",
			  (unsigned long long)c->id, client_label(c), server.conf.max_output_bytes);
		/* Not now: the writer (a lease answering, say) is still using
		 * the client and its lease. */
		client_reading(c, false);
		client_enter_state(c, CLIENT_DROPPING);
		event_active(c->next, EV_TIMEOUT, 1);
	}
}

json_t *
client_ok(struct client *c)
{
	return proto_response_ok(c->request_id);
}

json_t *
client_error(struct client *c, enum proto_error code, const char *message)
{
	return proto_response_error(c->request_id, code, message);
}

void
client_respond(struct client *c, json_t *resp)
{
	client_write(c, resp);
	json_decref(c->request_id);
	c->request_id = NULL;
	if (c->state != CLIENT_BUSY)
		return;
	client_enter_state(c, CLIENT_READY);
	/* Inside client_process() its loop goes on by itself; anywhere else
	 * (a lease's callback) the next request waits for a fresh turn of the
	 * event loop, after the caller has settled. event_active costs no
	 * system call. */
	if (!c->processing)
		event_active(c->next, EV_TIMEOUT, 1);
}

static void
client_next_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	if (c->state == CLIENT_DROPPING)
		client_close(c, "not reading its answers");
	else if (c->state == CLIENT_READY)
		client_process(c);
}

void
client_respond_error(struct client *c, enum proto_error code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	client_respond(c, client_error(c, code, msg));
}

void
client_push(struct client *c, json_t *ev)
{
	client_write(c, ev);
}

void
client_lease_gone(struct client *c)
{
	client_timers_update(c);
}

void
client_flush_and_close(struct client *c)
{
	client_close_after_flush(c, "daemon shutdown");
}

/* Closes once what is written has gone out (at once when nothing is
 * queued: answers are usually sent straight away). */
static void
client_close_after_flush(struct client *c, const char *why)
{
	if (c->state == CLIENT_CLOSED)
		return;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		client_close(c, why);
		return;
	}
	client_reading(c, false);
	client_enter_state(c, CLIENT_CLOSING);
}

void
client_close(struct client *c, const char *why)
{
	struct timeval now = {0, 0};

	if (c->state == CLIENT_CLOSED)
		return;
	log_debug("client %llu (%s): %s", (unsigned long long)c->id, client_label(c), why);
	client_enter_state(c, CLIENT_CLOSED);
	if (c->lease != NULL)
		lease_end(c->lease, LEASE_END_DISCONNECT);
	blockers_forget(c); /* a status waiting for MySQL's answer */
	TAILQ_REMOVE(&server.clients, c, entry);
	server.nclients--;
	if (c->timer != NULL)
		evtimer_del(c->timer);
	c->timer_kind = CLIENT_TIMER_NONE;
	if (c->next != NULL)
		event_del(c->next);
	if (c->counted)
		(*identity_connections(&c->identity))--;
	c->counted = false;
	if (c->rev != NULL)
		event_del(c->rev);
	bufferevent_free(c->bev);
	c->bev = NULL;
	/* Freed from a fresh loop iteration: callers up the stack may still
	 * look at c (tmux's rule: never free what a callback is using). */
	event_base_once(server.base, -1, EV_TIMEOUT, client_free_cb, c, &now);
	server_client_closed();
}

static void
client_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	proto_frame_free(&c->frame);
	json_decref(c->request_id);
	json_decref(c->delayed);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->next != NULL)
		event_free(c->next);
	if (c->rev != NULL)
		event_free(c->rev);
	for (size_t i = 0; i < c->nahead; i++)
		proto_request_free(&c->ahead[i].req);
	free(c->ahead);
	identity_free(&c->identity);
	free(c->name);
	free(c);
}
