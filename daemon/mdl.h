/* Metadata locks: which of MySQL's block LOCK TABLES. */
#ifndef TABLELOCK_MDL_H
#define TABLELOCK_MDL_H

#include <stdbool.h>

/* Does lock type (as MySQL names it, with or without "MDL_") on a table,
 * held or requested by another session, conflict with LOCK TABLES … WRITE
 * (write) or … READ on that table? backup: a lock of MariaDB's backup
 * namespace (FLUSH TABLES WITH READ LOCK, BACKUP STAGE), which concerns
 * every table. Pure: unit-tested. */
bool mdl_blocks_lock_tables(bool write, bool backup, const char *type);

#endif
