/* Reads counters from the daemon's Prometheus endpoint (GET /metrics). */
#ifndef TABLELOCK_BENCH_SCRAPE_H
#define TABLELOCK_BENCH_SCRAPE_H

#include <stddef.h>

/* Fetches http://hostport/metrics and, for each of the n metric names, sums
 * the values of all its series (every label set) into values[i], or stores
 * -1 when the daemon does not expose that name. Returns 0, or -1 with the
 * reason in err when the endpoint cannot be read. */
int scrape_counters(const char *hostport, const char *const names[], double values[], size_t n,
                    char *err, size_t errlen);

#endif
