/* The monotonic clock: for deadlines, timeouts and durations, never for the time of day. */
#include "util/monotime.h"

#include <time.h>

int64_t
monotime_ns(void)
{
	struct timespec ts;

	/* Cannot fail for CLOCK_MONOTONIC with a valid pointer (clock_gettime(2)). */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
monotime_us(void)
{
	return monotime_ns() / 1000;
}

int64_t
monotime_ms(void)
{
	return monotime_ns() / 1000000;
}
