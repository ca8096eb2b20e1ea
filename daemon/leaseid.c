/* Lease ids: unique and strictly increasing, also across restarts. */
#include "daemon/leaseid.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"

/*
 * The state file holds a high-water mark: every id ever handed out is below
 * it, and after a restart ids start from it. Ids are reserved in blocks:
 * the mark moves one block ahead, durably (a new file written and fsynced,
 * renamed over the old one, the directory fsynced), before the first id of
 * the block is handed out. A crash, a kill -9 or a power loss therefore
 * never hands out an id twice; a restart skips the unused rest of one
 * block at most.
 *
 * Blocks are LEASEID_STEP_MIN ids, so ids stay short and a restart skips
 * few. Each write is synchronous, on the event loop: a block used up in
 * less than LEASEID_FAST_US doubles the next one (up to LEASEID_STEP_MAX),
 * and one that lasted longer than LEASEID_SLOW_US halves it again, so a
 * busy daemon writes the file about once a second at most (and then skips
 * more ids at a restart, up to one block).
 */
#define LEASEID_STEP_MIN 100
#define LEASEID_STEP_MAX 10000
#define LEASEID_FAST_US 1000000ULL
#define LEASEID_SLOW_US 10000000ULL

static uint64_t leaseid_next_id = 1;
static uint64_t leaseid_reserved;	/* the mark on disk: ids below it are reserved */
static uint64_t leaseid_step = LEASEID_STEP_MIN;
static uint64_t leaseid_block_us;	/* when the block in use was reserved */
static char leaseid_path[PATH_MAX];

static uint64_t leaseid_now_us(void);
static int leaseid_store(uint64_t value, char *err, size_t errsize);
static void leaseid_make_dir(const char *state_file);

static uint64_t
leaseid_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Writes value to a temporary file and renames it over the state file, so
 * a crash leaves either the old or the new mark, never a torn one; the
 * directory is synced too, or a power loss could undo the rename. */
static int
leaseid_store(uint64_t value, char *err, size_t errsize)
{
	char tmp[PATH_MAX + 4], text[32], copy[PATH_MAX], *dir;
	int fd, dirfd, n;
	const char *failed;

	snprintf(tmp, sizeof(tmp), "%s.tmp", leaseid_path);
	n = snprintf(text, sizeof(text), "%" PRIu64 "\n", value);
	failed = "cannot create";
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		failed = "cannot write";
		if (write(fd, text, (size_t)n) == n && fsync(fd) == 0) {
			failed = "cannot close";
			if (close(fd) == 0) {
				fd = -1;
				failed = "cannot rename it over the state file";
				if (rename(tmp, leaseid_path) == 0)
					failed = NULL;
			}
		}
	}
	if (failed != NULL) {
		snprintf(err, errsize, "%s %.300s: %s", failed, tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(copy, sizeof(copy), "%s", leaseid_path);
	dir = dirname(copy);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || fsync(dirfd) != 0) {
		snprintf(err, errsize, "cannot sync the directory %.300s: %s", dir, strerror(errno));
		if (dirfd >= 0)
			close(dirfd);
		return -1;
	}
	close(dirfd);
	return 0;
}

/* The state file's directory, when it is missing and its parent is there
 * (/var/lib/tablelockd, the default, on a machine that never ran the
 * systemd unit): created for the daemon's user alone. Anything else that
 * fails is said by leaseid_store, with what to do. */
static void
leaseid_make_dir(const char *state_file)
{
	char dir[sizeof(leaseid_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", state_file);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0700) == 0)
		log_info("created %s for the lease id state file", dir);
}

int
leaseid_init(const char *state_file, char *err, size_t errsize)
{
	char why[512];
	uint64_t mark = 1;
	FILE *f;

	if (state_file == NULL) {
		snprintf(err, errsize, "is not set");
		return -1;
	}
	if (strlen(state_file) >= sizeof(leaseid_path)) {
		snprintf(err, errsize, "%.100s...: path too long", state_file);
		return -1;
	}
	snprintf(leaseid_path, sizeof(leaseid_path), "%s", state_file);
	f = fopen(state_file, "r");
	if (f != NULL) {
		int got = fscanf(f, "%" SCNu64, &mark);
		fclose(f);
		if (got != 1 || mark == 0) {
			snprintf(err, errsize,
				 "%s: not a lease id high-water mark (one positive number); "
				 "it is the daemon's own file: restore it, or remove it only if "
				 "no client relies on lease ids growing across restarts",
				 state_file);
			return -1;
		}
	} else if (errno != ENOENT) {
		snprintf(err, errsize, "%s: cannot read: %s", state_file, strerror(errno));
		return -1;
	}
	leaseid_next_id = mark;
	leaseid_step = LEASEID_STEP_MIN;
	leaseid_make_dir(state_file);
	if (leaseid_store(mark + leaseid_step, why, sizeof(why)) != 0) {
		snprintf(err, errsize,
			 "%s: %s. Lease ids are kept there so that they keep growing across "
			 "restarts (clients use them as fencing tokens): create its directory, "
			 "writable by the daemon's user (the systemd unit's StateDirectory= "
			 "does that), or set [daemon] state_file to a path the daemon can write",
			 state_file, why);
		return -1;
	}
	leaseid_reserved = mark + leaseid_step;
	leaseid_block_us = leaseid_now_us();
	return 0;
}

uint64_t
leaseid_next(char *err, size_t errsize)
{
	if (leaseid_next_id >= leaseid_reserved) {
		uint64_t now = leaseid_now_us(), lasted = now - leaseid_block_us;
		uint64_t step = leaseid_step;
		char why[512];

		if (lasted < LEASEID_FAST_US && step < LEASEID_STEP_MAX)
			step = step * 2 < LEASEID_STEP_MAX ? step * 2 : LEASEID_STEP_MAX;
		else if (lasted > LEASEID_SLOW_US && step > LEASEID_STEP_MIN)
			step = step / 2 > LEASEID_STEP_MIN ? step / 2 : LEASEID_STEP_MIN;
		/* The mark goes ahead of the id on disk first: no id is ever
		 * handed out that a restart could hand out again. */
		if (leaseid_store(leaseid_next_id + step, why, sizeof(why)) != 0) {
			log_error("cannot reserve lease ids in %s: %s", leaseid_path, why);
			snprintf(err, errsize, "cannot reserve lease ids: %s", why);
			return 0;
		}
		leaseid_reserved = leaseid_next_id + step;
		leaseid_step = step;
		leaseid_block_us = now;
	}
	return leaseid_next_id++;
}
