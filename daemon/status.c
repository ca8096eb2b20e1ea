/* Status: every lease, the pool and the totals, as one JSON answer. */
#include "daemon/status.h"

#include <unistd.h>

#include "daemon/blockers.h"
#include "daemon/client.h"
#include "daemon/lease.h"
#include "daemon/pool.h"
#include "daemon/server.h"
#include "util/monotime.h"

void
status_fill(json_t *resp, struct client *asker)
{
	const struct server_totals *t = &server.totals;
	bool admin = client_is_admin(asker);
	json_t *leases = json_array();
	json_t *totals = json_object();
	struct server_census census;
	struct lease *l;

	/* Ids are handed out on arrival, so id order is queue order. */
	for (l = lease_first(); l != NULL; l = lease_next(l)) {
		bool own = lease_client(l) == asker;
		json_t *o;
		if (lease_get_phase(l) == LEASE_PHASE_ENDING)
			continue;
		o = lease_status(l, admin || own);
		/* Who holds it up in MySQL: other sessions' statements are the
		 * admin's to see, and the holder's. */
		if (lease_get_phase(l) == LEASE_PHASE_LOCKING && (admin || own))
			blockers_annotate(o, l);
		json_array_append_new(leases, o);
	}
	json_object_set_new(resp, "leases", leases);
	json_object_set_new(resp, "pool", pool_status(server.pool));
	json_object_set_new(totals, "acquired", json_integer((json_int_t)t->acquired));
	/* After "acquired", how many leases ended which way, in lease_end's
	 * order (proto/PROTOCOL.md, status). */
	for (int i = 0; i < LEASE_END__COUNT; i++)
		if (lease_end_total((enum lease_end)i) != NULL)
			json_object_set_new(totals, lease_end_total((enum lease_end)i),
					    json_integer((json_int_t)t->ended[i]));
	json_object_set_new(resp, "totals", totals);
	json_object_set_new(resp, "clients", json_integer(server.nclients));
	server_census(&census);
	json_object_set_new(resp, "waiting", json_integer(census.waiting));
	json_object_set_new(resp, "uptime_ms",
			    json_integer((json_int_t)((monotime_us() - server.started_us) / 1000)));
}
