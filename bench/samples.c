/* Latency samples: a growable array of nanosecond durations and its percentiles. */
#include "samples.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "util/xmalloc.h"

static int samples_compare(const void *a, const void *b);

void
samples_init(struct samples *s)
{
	s->ns = NULL;
	s->len = s->cap = 0;
	s->sorted = 0;
}

void
samples_free(struct samples *s)
{
	free(s->ns);
	samples_init(s);
}

void
samples_add(struct samples *s, int64_t ns)
{
	if (s->len == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 4096;
		s->ns = xreallocarray(s->ns, s->cap, sizeof(*s->ns));
	}
	s->ns[s->len++] = ns;
	s->sorted = 0;
}

void
samples_merge(struct samples *to, const struct samples *from)
{
	for (size_t i = 0; i < from->len; i++)
		samples_add(to, from->ns[i]);
}

static int
samples_compare(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

double
samples_percentile_us(struct samples *s, double q)
{
	if (s->len == 0)
		return 0;
	if (!s->sorted) {
		qsort(s->ns, s->len, sizeof(*s->ns), samples_compare);
		s->sorted = 1;
	}
	/* Nearest rank: the smallest sample with at least q of all at or below it. */
	size_t rank = (size_t)ceil(q * (double)s->len);
	if (rank < 1)
		rank = 1;
	if (rank > s->len)
		rank = s->len;
	return (double)s->ns[rank - 1] / 1000.0;
}

double
samples_mean_us(const struct samples *s)
{
	if (s->len == 0)
		return 0;
	double sum = 0;
	for (size_t i = 0; i < s->len; i++)
		sum += (double)s->ns[i];
	return sum / (double)s->len / 1000.0;
}

void
samples_report(struct samples *s, const char *prefix, json_t *result)
{
	static const struct {
		const char *name;
		double q;
	} points[] = {{"p50_us", 0.50}, {"p90_us", 0.90}, {"p99_us", 0.99}, {"max_us", 1.0}};
	char key[64];

	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		snprintf(key, sizeof(key), "%s%s", prefix, points[i].name);
		json_object_set_new(result, key, json_real(samples_percentile_us(s, points[i].q)));
	}
	snprintf(key, sizeof(key), "%smean_us", prefix);
	json_object_set_new(result, key, json_real(samples_mean_us(s)));
}
