/* Metadata locks: which of MySQL's block LOCK TABLES (pure, unit-tested). */
#include "daemon/mdl.h"

#include <string.h>

bool
mdl_blocks_lock_tables(bool write, bool backup, const char *type)
{
	/* MySQL's compatibility of metadata locks (sql/mdl.cc): LOCK TABLES
	 * … WRITE takes SHARED_NO_READ_WRITE, which only SHARED and
	 * SHARED_HIGH_PRIO (metadata reads) live beside; … READ takes
	 * SHARED_READ_ONLY, which every lock that writes or reshapes the
	 * table excludes. In the backup namespace, FLUSH TABLES WITH READ
	 * LOCK (BACKUP_FTWRL1, then FTWRL2) stops every writer. */
	static const char *const readers_exclude[] = {
	    "SHARED_WRITE", "SHARED_WRITE_LOW_PRIO", "SHARED_NO_READ_WRITE", "EXCLUSIVE",
	};

	if (type == NULL)
		return false;
	if (strncmp(type, "MDL_", 4) == 0)
		type += 4;
	if (backup)
		return write && (strcmp(type, "BACKUP_FTWRL1") == 0 ||
				 strcmp(type, "BACKUP_FTWRL2") == 0);
	if (write)
		return strcmp(type, "SHARED") != 0 && strcmp(type, "SHARED_HIGH_PRIO") != 0;
	for (size_t i = 0; i < sizeof(readers_exclude) / sizeof(readers_exclude[0]); i++)
		if (strcmp(type, readers_exclude[i]) == 0)
			return true;
	return false;
}
