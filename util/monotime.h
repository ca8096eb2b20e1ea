/* The monotonic clock: for deadlines, timeouts and durations, never for the time of day. */
#ifndef TABLELOCK_MONOTIME_H
#define TABLELOCK_MONOTIME_H

#include <stdint.h>

/* CLOCK_MONOTONIC since an arbitrary start (boot, on Linux), which never
 * jumps when the wall clock is set. Signed, so that differences and
 * deadlines can go below zero. */
int64_t monotime_ns(void);
int64_t monotime_us(void);
int64_t monotime_ms(void);

#endif
