/* Client connection: one socket, its requests in order, its lease. */
#ifndef TABLELOCK_CLIENT_H
#define TABLELOCK_CLIENT_H

#include <event2/bufferevent.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "daemon/identity.h"
#include "proto/proto_error.h"
#include "proto/proto_frame.h"

struct lease;
struct dispatch_entry;

/* A connection's life; client_enter_state() alone moves it. */
enum client_state {
	CLIENT_READY,	/* reading requests */
	CLIENT_BUSY,	/* one request in flight; later lines wait their turn */
	CLIENT_CLOSING,	/* flushing a last answer, then closing */
	CLIENT_DROPPING, /* closing at the next turn of the loop; writes dropped */
	CLIENT_CLOSED,	/* gone; freed once the loop is done with it */
	CLIENT__STATE_COUNT
};

/* What kind of listener a connection came from. */
enum client_transport { CLIENT_UNIX, CLIENT_TCP, CLIENT_TLS };

/* Who is on the other end. */
struct client_peer {
	bool is_unix;
	enum client_transport transport;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char address[80];	/* "unix" or "host:port" */
};

struct client {
	TAILQ_ENTRY(client) entry;
	uint64_t id;
	enum client_state state;
	struct bufferevent *bev;	/* writes; and reads, for TLS */
	struct event *rev;	/* reads of a plain socket (NULL for TLS) */
	bool reading;		/* reads are on */
	struct proto_frame frame;
	struct client_peer peer;
	char *name;		/* from hello */
	struct lease *lease;	/* the lease requests go to, or NULL */
	uint64_t lost_lease;	/* a lease lost under us: the next lease op says so */
	json_t *request_id;	/* id of the request in flight */
	bool processing;	/* inside client_process(): do not recurse */
	struct event *next;	/* runs the next buffered request (client_respond) */
	struct dispatch_entry *ahead; /* requests read ahead of their turn, in order */
	size_t nahead;
	size_t ahead_cap;
	struct identity identity;
	bool counted;		/* counted in its identity's connections */
	struct event *timer;	/* request_timeout_ms / idle_timeout_ms / auth delay */
	enum client_timer { CLIENT_TIMER_NONE, CLIENT_TIMER_REQUEST, CLIENT_TIMER_IDLE,
			    CLIENT_TIMER_AUTH_DELAY, CLIENT_TIMER_HANGUP } timer_kind;
	bool half_closed;	/* the peer shut down its sending side only */
	json_t *delayed;	/* the answer held back by CLIENT_TIMER_AUTH_DELAY */
};

/* Takes over an accepted socket. */
void client_accept(evutil_socket_t fd, const struct sockaddr *addr, int addrlen,
		   enum client_transport transport);
/* The only way out: ends the lease (rolled back), closes, frees later. */
void client_close(struct client *c, const char *why);
/* Its lease has ended (idle_timeout_ms applies again). */
void client_lease_gone(struct client *c);
/* Shutdown: sends what is already written, then closes. */
void client_flush_and_close(struct client *c);

/* The i-th request after the one in flight (0: the next), read from what
 * the client has sent so far; NULL when that line is not complete yet, or
 * is not a valid request (it is answered in its turn). A lease uses this
 * to run pipelined requests in the same MySQL round trip. */
const struct proto_request *client_lookahead(struct client *c, size_t i);
/* Answers the request in flight with resp (stolen) and makes the next one
 * (client_lookahead(c, 0)) the request in flight: the lease ran it along.
 * The client stays BUSY until an answer goes through client_respond(). */
void client_answer_and_advance(struct client *c, json_t *resp);

/* {"id":…,"ok":true} for the request in flight; add fields, then respond. */
json_t *client_ok(struct client *c);
/* Sends the answer to the request in flight (steals resp). The next
 * buffered request is scheduled, never run from inside this call: the
 * caller (a lease's MySQL callback, say) finishes first. */
void client_respond(struct client *c, json_t *resp);
void client_respond_error(struct client *c, enum proto_error code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* An error answer for the request in flight, to add fields to. */
json_t *client_error(struct client *c, enum proto_error code, const char *message);
/* Sends an unsolicited event (steals ev). */
void client_push(struct client *c, json_t *ev);
/* May this client lock db.table (for write, or read)? Access rules. */
bool client_may_lock(struct client *c, const char *db, const char *table, bool write);
/* Full status and revoke: the admin right of the access rules (without
 * rules: root and the daemon's own user, by peer credentials). */
bool client_is_admin(struct client *c);
/* hello with a token: authenticates, or answers unauthenticated after a
 * delay (failures are logged with the peer address, never the token). */
bool client_authenticate(struct client *c, const char *token);
/* Answers after the failed-authentication delay. */
void client_delay_respond(struct client *c, json_t *resp);
/* "name" or "-" for logs. */
const char *client_label(const struct client *c);
/* {"uid":…,"pid":…} or {"address":…}. */
json_t *client_peer_json(const struct client *c);

#endif
