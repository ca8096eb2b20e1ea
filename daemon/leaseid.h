/* Lease ids: unique and strictly increasing, also across restarts. */
#ifndef TABLELOCK_LEASEID_H
#define TABLELOCK_LEASEID_H

#include <stddef.h>
#include <stdint.h>

/* Ids continue from the high-water mark kept in state_file ([daemon]
 * state_file; 1 when the file does not exist yet), so they stay short and
 * keep growing across restarts: clients use them as fencing tokens. The
 * first block of ids is reserved in the file before this returns. Returns
 * 0, or -1 with a reason in err (the daemon then refuses to start). */
int leaseid_init(const char *state_file, char *err, size_t errsize);
/* The next id, or 0 with a reason in err when the file cannot take the
 * next block's reservation (no id is handed out that is not on disk). */
uint64_t leaseid_next(char *err, size_t errsize);

#endif
