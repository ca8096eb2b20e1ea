/* English plurals for counts in messages: "1 session", "2 sessions", "0 sessions". */
#ifndef TABLELOCK_PLURAL_H
#define TABLELOCK_PLURAL_H

/*
 * The ending a regular noun takes after the count n: "" for exactly one,
 * "s" for any other count (zero included), as in
 * printf("%u session%s", n, plural_s(n)). Every count that the daemon
 * logs and the clients print goes through it, so that none says
 * "1 sessions". A noun that does not take a plain "s" is written out.
 */
static inline const char *
plural_s(unsigned long long n)
{
	return n == 1 ? "" : "s";
}

#endif
