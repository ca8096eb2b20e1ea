/* Notify: tells systemd (when it started us) about readiness and state. */
#ifndef TABLELOCK_NOTIFY_H
#define TABLELOCK_NOTIFY_H

/* Starts the watchdog pings and the periodic STATUS= line. */
void notify_start(void);
/* READY=1, once: listeners are open and the pool has connected (or has
 * found MySQL unreachable, which STATUS= then says). */
void notify_ready(const char *status);
void notify_reloading(void);
void notify_reloaded(void);
void notify_stopping(void);
void notify_stop(void);

#endif
