/* Latency samples: a growable array of nanosecond durations and its percentiles. */
#ifndef TABLELOCK_BENCH_SAMPLES_H
#define TABLELOCK_BENCH_SAMPLES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct samples {
	int64_t *ns;
	size_t len;
	size_t cap;
	int sorted;
};

void samples_init(struct samples *s);
void samples_free(struct samples *s);
void samples_add(struct samples *s, int64_t ns);
/* Appends every sample of from to to. */
void samples_merge(struct samples *to, const struct samples *from);
/* Nearest-rank percentile (q in 0..1) in microseconds; 0 when empty.
 * Sorts s on first use. */
double samples_percentile_us(struct samples *s, double q);
double samples_mean_us(const struct samples *s);
/* Adds <prefix>p50_us, p90_us, p99_us, max_us, mean_us to result. */
void samples_report(struct samples *s, const char *prefix, json_t *result);

#endif
