/* Lease ids: unique and strictly increasing, also across restarts. */
#include "daemon/leaseid.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "daemon/log.h"

/* Ids handed out per write of the state file. A crash loses at most the
 * unused rest of a block: ids skip ahead, they never repeat. */
#define LEASEID_BLOCK 10000

static uint64_t leaseid_next_id = 1;
static uint64_t leaseid_reserved;	/* ids below this are on disk */
static char *leaseid_path;

static int leaseid_store(uint64_t value, char *err, size_t errsize);

/* Writes value to a temporary file and renames it over the state file, so
 * a crash leaves either the old or the new mark, never a torn one. */
static int
leaseid_store(uint64_t value, char *err, size_t errsize)
{
	char tmp[4096], text[32];
	int fd, n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", leaseid_path);
	n = snprintf(text, sizeof(text), "%" PRIu64 "\n", value);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) != 0 || close(fd) != 0 ||
	    rename(tmp, leaseid_path) != 0) {
		snprintf(err, errsize, "%s: %s", leaseid_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return 0;
}

int
leaseid_init(const char *state_file, char *err, size_t errsize)
{
	struct timeval tv;

	free(leaseid_path);
	leaseid_path = NULL;
	if (state_file == NULL) {
		gettimeofday(&tv, NULL);
		leaseid_next_id = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
		leaseid_reserved = UINT64_MAX;
		return 0;
	}
	leaseid_path = strdup(state_file);
	FILE *f = fopen(state_file, "r");
	uint64_t mark = 1;
	if (f != NULL) {
		if (fscanf(f, "%" SCNu64, &mark) != 1 || mark == 0) {
			snprintf(err, errsize, "%s: not a lease id high-water mark", state_file);
			fclose(f);
			return -1;
		}
		fclose(f);
	} else if (errno != ENOENT) {
		snprintf(err, errsize, "%s: %s", state_file, strerror(errno));
		return -1;
	}
	leaseid_next_id = mark;
	leaseid_reserved = mark + LEASEID_BLOCK;
	return leaseid_store(leaseid_reserved, err, errsize);
}

uint64_t
leaseid_next(void)
{
	if (leaseid_next_id >= leaseid_reserved) {
		char err[256];
		/* A small synchronous write once per block of ids: rare enough
		 * not to matter to the loop, and ids must never repeat. */
		if (leaseid_store(leaseid_reserved + LEASEID_BLOCK, err, sizeof(err)) == 0)
			leaseid_reserved += LEASEID_BLOCK;
		else
			log_error("cannot save the lease id mark: %s", err);
	}
	return leaseid_next_id++;
}
