/* Client connection: one socket, its requests in order, its lease. */
#include "daemon/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "daemon/dispatch.h"
#include "daemon/lease.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/server.h"
#include "proto/buf.h"
#include "proto/proto_response.h"

static const char *const client_state_names[CLIENT__STATE_COUNT] = {
	[CLIENT_READY] = "ready",
	[CLIENT_BUSY] = "busy",
	[CLIENT_CLOSING] = "closing",
	[CLIENT_CLOSED] = "closed",
};

static uint64_t client_next_id = 1;

static void client_enter_state(struct client *c, enum client_state state);
static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_process(struct client *c);
static void client_write(struct client *c, json_t *obj);
static void client_free_cb(evutil_socket_t fd, short what, void *arg);
static void client_peer_init(struct client *c, evutil_socket_t fd, const struct sockaddr *addr,
			     bool is_unix);

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

void
client_accept(evutil_socket_t fd, const struct sockaddr *addr, int addrlen, bool is_unix)
{
	struct client *c;

	(void)addrlen;
	if (server.shutting_down || server.nclients >= server.conf.max_clients) {
		/* Answer once, then close: the client learns why. */
		char line[160];
		int n = snprintf(line, sizeof(line),
				 "{\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
				 server.shutting_down ? "shutting_down" : "too_many_clients",
				 server.shutting_down ? "the daemon is shutting down"
						      : "max_clients reached");
		if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			log_debug("refusing a connection: %s", strerror(errno));
		evutil_closesocket(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->id = client_next_id++;
	metrics.client_connections++;
	c->state = CLIENT_READY;
	client_peer_init(c, fd, addr, is_unix);
	proto_frame_init(&c->frame, server.conf.max_request_bytes);
	c->bev = bufferevent_socket_new(server.base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&server.clients, c, entry);
	server.nclients++;
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
	return c->name != NULL ? c->name : c->peer.address;
}

json_t *
client_peer_json(const struct client *c)
{
	if (c->peer.is_unix)
		return json_pack("{s:i,s:i}", "uid", (int)c->peer.uid, "pid", (int)c->peer.pid);
	return json_pack("{s:s}", "address", c->peer.address);
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
	client_process(c);
	/* A client that pipelines far ahead of a slow request is not read
	 * further until it catches up: memory per connection stays bounded. */
	if (c->state == CLIENT_BUSY &&
	    proto_frame_pending(&c->frame) > 2 * server.conf.max_request_bytes)
		bufferevent_disable(c->bev, EV_READ);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	if (c->state == CLIENT_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_close(c, "closed after an error");
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF)
		client_close(c, "disconnected");
	else if (what & BEV_EVENT_ERROR)
		client_close(c, strerror(EVUTIL_SOCKET_ERROR()));
}

/* Handles buffered request lines in order, one at a time: a request that
 * must wait for MySQL leaves the client BUSY, and the next line waits. */
static void
client_process(struct client *c)
{
	const char *line;
	size_t len;

	if (c->processing)
		return;
	c->processing = true;
	while (c->state == CLIENT_READY) {
		enum proto_frame_status st = proto_frame_next(&c->frame, &line, &len);
		if (st == PROTO_FRAME_NEED_MORE)
			break;
		if (st == PROTO_FRAME_TOO_LARGE) {
			char msg[128];
			snprintf(msg, sizeof(msg), "request line longer than max_request_bytes (%zu)",
				 server.conf.max_request_bytes);
			client_write(c, proto_response_error(NULL, PROTO_ERR_REQUEST_TOO_LARGE, msg));
			client_enter_state(c, CLIENT_CLOSING);
			bufferevent_disable(c->bev, EV_READ);
			break;
		}
		size_t i = 0;
		while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
			i++;
		if (i == len)
			continue; /* blank lines are ignored */
		client_enter_state(c, CLIENT_BUSY);
		dispatch_line(c, line, len);
	}
	c->processing = false;
	if (c->state == CLIENT_READY)
		bufferevent_enable(c->bev, EV_READ);
}

static void
client_write(struct client *c, json_t *obj)
{
	struct buf b = {0};

	if (c->state == CLIENT_CLOSED) {
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
	bufferevent_write(c->bev, b.data, b.len);
	buf_free(&b);
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
client_close(struct client *c, const char *why)
{
	struct timeval now = {0, 0};

	if (c->state == CLIENT_CLOSED)
		return;
	log_debug("client %llu (%s): %s", (unsigned long long)c->id, client_label(c), why);
	client_enter_state(c, CLIENT_CLOSED);
	if (c->lease != NULL)
		lease_end(c->lease, LEASE_END_DISCONNECT);
	TAILQ_REMOVE(&server.clients, c, entry);
	server.nclients--;
	bufferevent_free(c->bev);
	c->bev = NULL;
	/* Freed from a fresh loop iteration: callers up the stack may still
	 * look at c (tmux's rule: never free what a callback is using). */
	event_base_once(server.base, -1, EV_TIMEOUT, client_free_cb, c, &now);
}

static void
client_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	proto_frame_free(&c->frame);
	json_decref(c->request_id);
	free(c->name);
	free(c);
}
