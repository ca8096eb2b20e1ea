/* Listeners: the Unix and TCP sockets clients connect to. */
#ifndef TABLELOCK_LISTENER_H
#define TABLELOCK_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

struct conf;

/* True when systemd passed listening sockets (LISTEN_FDS). */
bool listener_activated(void);
/* Opens the sockets systemd passed, if any (the `listen` lines are then
 * ignored), else every `listen` address of the config. Returns 0, or -1 with a
 * reason in err (and nothing left open). */
int listener_open_all(const struct conf *c, char *err, size_t errsize);
/* Stops accepting and removes the Unix socket files. */
void listener_close_all(void);

#endif
