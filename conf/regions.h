/*
 * conf/regions.h: the configuration of where requests go: "regions", each
 * with its clusters (weight, drain, public_url, send_proxy) and their
 * endpoints.
 *
 * Region and cluster names are unique and limited to characters that need
 * no escaping in URLs, cookies, metric labels and log lines. Each reader
 * fills ld->snap and reports every problem with its JSON path, then carries
 * on (conf/loader.h).
 */
#ifndef MR_CONF_REGIONS_H
#define MR_CONF_REGIONS_H

#include <jansson.h>

#include "conf/loader.h"

/* root.regions: a non-empty array of regions, each with a non-empty array
 * of clusters, each with a non-empty array of endpoints. */
void mr_regions_load(struct mr_loader *ld, json_t *root);

/* After mr_regions_load: numbers clusters and endpoints densely and builds
 * snap->clusters and snap->endpoints. */
void mr_regions_index(struct mr_loader *ld);

/* Once listeners and hosts are read: redirect mode needs every cluster's
 * public_url. */
void mr_regions_check_public_urls(struct mr_loader *ld);

#endif
