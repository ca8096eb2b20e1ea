/* libtablelock internals shared by its files; not installed. */
#ifndef TABLELOCK_PRIVATE_H
#define TABLELOCK_PRIVATE_H

#include <jansson.h>

#include "client/tablelock.h"

/* Internal: kept out of the shared library's exports, and made local in the
 * static library's single object (objcopy --localize-hidden). */
#define TABLELOCK_INTERNAL __attribute__((visibility("hidden")))

/* Builds a result from one result object of a response ("columns", "rows",
 * "affected_rows", …), or from a results[] entry that is an error (over the
 * daemon's limits: see tablelock_result_error). Returns NULL and says why when the object does not
 * have the documented shape. */
TABLELOCK_INTERNAL struct tablelock_result *tablelock_result_from_json(const json_t *obj, char *why,
                                                                       size_t whysize);

/* The error an answer (or a results[] entry) carries: {"error":{"code",
 * "message","mysql_errno"?,"sqlstate"?},"statement"?}. */
TABLELOCK_INTERNAL void tablelock_error_from_response(struct tablelock_error *err,
                                                      const json_t *resp);

/* Builds a status from a status response. NULL and why on a bad shape. */
TABLELOCK_INTERNAL struct tablelock_status *tablelock_status_from_json(const json_t *obj, char *why,
                                                                       size_t whysize);

#endif
