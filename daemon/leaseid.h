/* Lease ids: unique and strictly increasing, also across restarts. */
#ifndef TABLELOCK_LEASEID_H
#define TABLELOCK_LEASEID_H

#include <stddef.h>
#include <stdint.h>

/* With a state file, ids continue from the high-water mark stored there
 * (reserved in blocks, so the file is written once per block, not per
 * lease). Without one, ids start from the wall clock in microseconds.
 * Returns 0, or -1 with a reason in err. */
int leaseid_init(const char *state_file, char *err, size_t errsize);
uint64_t leaseid_next(void);

#endif
