/*
 * geo/geoip.h: where a client is, from a MaxMind DB (libmaxminddb).
 *
 * One database per snapshot, opened (mmap) by mr_geoip_attach() on the
 * control thread before the snapshot is published and closed by the
 * snapshot's release hook, so a reload that points at a new file swaps it
 * with the rest of the configuration. After publish the database is
 * read-only and shared by every worker: libmaxminddb lookups on one MMDB_s
 * are thread-safe. mr_geoip_lookup() is on the data path (once per new
 * session): it does not allocate and treats values of an unexpected type as
 * absent rather than failing.
 */
#ifndef MR_GEO_GEOIP_H
#define MR_GEO_GEOIP_H

#include <stdbool.h>
#include <sys/socket.h>

#include "common/err.h"
#include "conf/snapshot.h"

/* An open database; only geoip.c looks inside. */
struct mr_geoip;

/* What the database says about one address. */
struct mr_location {
    bool found;        /* the address has a record with a country, continent
                        * or coordinates; false for private, loopback,
                        * unallocated addresses and when there is no database */
    char country[3];   /* ISO 3166-1 alpha-2, upper case; "" when absent */
    char continent[3]; /* "EU", ...; from the record, else the country; "" */
    bool has_coords;   /* lat/lon valid: from the record, else the country's
                        * centroid; false only when neither is known */
    double lat, lon;   /* degrees */
};

/*
 * When snap->geoip.database is set, opens it and sets snap->geo, with a
 * release hook on snap that closes it. Returns 0 (also when no database is
 * configured: snap->geo stays NULL), or -1 after adding
 * "geoip.database: cannot open PATH: REASON" to errs; snap->geo stays NULL
 * then and the caller drops the snapshot. Before publish, control thread.
 */
int mr_geoip_attach(struct mr_snapshot *snap, struct mr_errors *errs);

/*
 * Looks addr (AF_INET, AF_INET6; an IPv4-mapped IPv6 address is looked up as
 * IPv4) up in snap's database, reading the country, latitude and longitude at
 * the snapshot's configured paths and the continent at ["continent","code"].
 * Always fills out; out->found is false without a database. Any thread.
 */
void mr_geoip_lookup(const struct mr_snapshot *snap, const struct sockaddr *addr,
                     struct mr_location *out);

#endif
