/* Listeners: the Unix and TCP sockets clients connect to. */
#include "daemon/listener.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <event2/listener.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/client.h"
#include "daemon/log.h"
#include "daemon/server.h"
#include "util/plural.h"
#include "util/xmalloc.h"

struct listener {
	struct evconnlistener *ev;
	char *path;		/* Unix socket file to remove, or NULL */
	bool is_unix;
	enum client_transport transport;
	char *address;
	struct event *pause;	/* re-enables after a burst or running out of descriptors */
	unsigned int burst;	/* accepted since the listener last yielded */
};

/* libevent's listener accepts until the backlog is empty: under a storm of
 * connects that could starve the clients already served. After this many
 * accepts the listener yields to one turn of the event loop. */
#define LISTENER_BURST 32

static struct listener *listeners;
static size_t nlisteners;

static void listener_accept_cb(struct evconnlistener *ev, evutil_socket_t fd,
			       struct sockaddr *addr, int len, void *arg);
static void listener_error_cb(struct evconnlistener *ev, void *arg);
static void listener_resume_cb(evutil_socket_t fd, short what, void *arg);
static int listener_open_unix(struct listener *l, const char *path, const struct conf *c,
			      char *err, size_t errsize);
static int listener_open_tcp(struct listener *l, const char *hostport, char *err,
			     size_t errsize);

static void
listener_accept_cb(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *addr, int len,
		   void *arg)
{
	struct listener *l = arg;
	struct timeval now = {0, 0};

	client_accept(fd, addr, len, l->transport);
	if (++l->burst >= LISTENER_BURST) {
		evconnlistener_disable(ev);
		evtimer_add(l->pause, &now);
	}
}

/* Out of file descriptors (EMFILE): accepting again at once would spin,
 * so pause this listener briefly. */
static void
listener_error_cb(struct evconnlistener *ev, void *arg)
{
	struct listener *l = arg;
	struct timeval tv = {0, 100000};

	log_warn("accept on %s", l->address);
	evconnlistener_disable(ev);
	evtimer_add(l->pause, &tv);
}

static void
listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	(void)fd;
	(void)what;
	l->burst = 0;
	if (l->ev != NULL)
		evconnlistener_enable(l->ev);
}

/* Owner and group from the config: the group decides who may connect. */
static int
listener_chown(const char *path, const struct conf *c, char *err, size_t errsize)
{
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;

	if (c->socket_owner != NULL) {
		struct passwd *pw = getpwnam(c->socket_owner);
		if (pw == NULL) {
			snprintf(err, errsize, "[daemon] socket_owner %s: no such user",
				 c->socket_owner);
			return -1;
		}
		uid = pw->pw_uid;
	}
	if (c->socket_group != NULL) {
		struct group *gr = getgrnam(c->socket_group);
		if (gr == NULL) {
			snprintf(err, errsize, "[daemon] socket_group %s: no such group",
				 c->socket_group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) != 0) {
		snprintf(err, errsize, "unix:%s: chown: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
listener_open_unix(struct listener *l, const char *path, const struct conf *c, char *err,
		   size_t errsize)
{
	unsigned int mode = c->socket_mode;
	struct sockaddr_un sun;
	struct stat st;
	evutil_socket_t fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errsize, "unix:%s: path too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errsize, "unix:%s: exists and is not a socket", path);
			return -1;
		}
		/* A socket file that nobody answers on is left from a crash;
		 * one that answers belongs to a running daemon. */
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			snprintf(err, errsize, "unix:%s: another daemon is listening there", path);
			return -1;
		}
		if (fd >= 0)
			close(fd);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, mode) != 0 || listen(fd, 1024) != 0) {
		snprintf(err, errsize, "unix:%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (listener_chown(path, c, err, errsize) != 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	l->ev = evconnlistener_new(server.base, listener_accept_cb, l,
				   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l->ev == NULL) {
		snprintf(err, errsize, "unix:%s: cannot listen", path);
		close(fd);
		unlink(path);
		return -1;
	}
	l->path = xstrdup(path);
	l->is_unix = true;
	l->transport = CLIENT_UNIX;
	return 0;
}

static int
listener_open_tcp(struct listener *l, const char *hostport, char *err, size_t errsize)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss, &len) != 0) {
		snprintf(err, errsize, "tcp:%s: not an address:port", hostport);
		return -1;
	}
	l->ev = evconnlistener_new_bind(server.base, listener_accept_cb, l,
					LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
						LEV_OPT_REUSEABLE,
					1024, (struct sockaddr *)&ss, len);
	if (l->ev == NULL) {
		snprintf(err, errsize, "tcp:%s: %s", hostport, strerror(errno));
		return -1;
	}
	return 0;
}

bool
listener_activated(void)
{
	/* Peek without unsetting: listener_open_all takes them over. */
	return sd_listen_fds(0) > 0;
}

/* Socket activation (sd_listen_fds(3)): systemd owns the socket files, so
 * they are not removed at exit. */
static int
listener_adopt(int n, char *err, size_t errsize)
{
	listeners = xcalloc((size_t)n, sizeof(*listeners));
	for (int i = 0; i < n; i++) {
		struct listener *l = &listeners[i];
		int fd = SD_LISTEN_FDS_START + i;

		nlisteners = (size_t)i + 1;
		l->is_unix = sd_is_socket(fd, AF_UNIX, SOCK_STREAM, 1) > 0;
		l->transport = l->is_unix ? CLIENT_UNIX : CLIENT_TCP;
		if (!l->is_unix && sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			snprintf(err, errsize, "passed descriptor %d is not a listening stream socket",
				 fd);
			listener_close_all();
			return -1;
		}
		if (!l->is_unix && server.conf.ntokens == 0) {
			snprintf(err, errsize,
				 "passed descriptor %d is a TCP socket, and TCP clients must "
				 "authenticate: configure [tokens]",
				 fd);
			listener_close_all();
			return -1;
		}
		evutil_make_socket_nonblocking(fd);
		evutil_make_socket_closeonexec(fd);
		l->address = xstrdup(l->is_unix ? "systemd unix socket" : "systemd tcp socket");
		l->pause = evtimer_new(server.base, listener_resume_cb, l);
		l->ev = evconnlistener_new(server.base, listener_accept_cb, l,
					   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
		if (l->ev == NULL) {
			snprintf(err, errsize, "cannot listen on passed descriptor %d", fd);
			listener_close_all();
			return -1;
		}
		evconnlistener_set_error_cb(l->ev, listener_error_cb);
		log_info("listening on passed descriptor %d (%s)", fd, l->address);
	}
	return 0;
}

int
listener_open_all(const struct conf *c, char *err, size_t errsize)
{
	int passed = sd_listen_fds(1);

	if (passed > 0) {
		if (c->nlisten > 0)
			log_info("socket activation: using %d passed socket%s, not the listen lines",
				 passed, plural_s(passed));
		return listener_adopt(passed, err, errsize);
	}
	listeners = xcalloc(c->nlisten, sizeof(*listeners));
	for (size_t i = 0; i < c->nlisten; i++) {
		struct listener *l = &listeners[i];
		const char *a = c->listen[i];
		int rc;

		l->address = xstrdup(a);
		l->pause = evtimer_new(server.base, listener_resume_cb, l);
		nlisteners = i + 1;
		if (strncmp(a, "unix:", 5) == 0) {
			rc = listener_open_unix(l, a + 5, c, err, errsize);
		} else if (strncmp(a, "tcp:", 4) == 0 || strncmp(a, "tls:", 4) == 0) {
			l->transport = a[1] == 'l' ? CLIENT_TLS : CLIENT_TCP;
			rc = listener_open_tcp(l, a + 4, err, errsize);
		}
		else {
			snprintf(err, errsize, "%s: unknown listen address kind", a);
			rc = -1;
		}
		if (rc != 0) {
			listener_close_all();
			return -1;
		}
		evconnlistener_set_error_cb(l->ev, listener_error_cb);
		log_info("listening on %s", a);
	}
	return 0;
}

void
listener_close_all(void)
{
	for (size_t i = 0; i < nlisteners; i++) {
		struct listener *l = &listeners[i];
		if (l->ev != NULL)
			evconnlistener_free(l->ev);
		if (l->path != NULL)
			unlink(l->path);
		if (l->pause != NULL)
			event_free(l->pause);
		free(l->path);
		free(l->address);
	}
	free(listeners);
	listeners = NULL;
	nlisteners = 0;
}
