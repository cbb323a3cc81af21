/*
 * conf/routing.h: the configuration of which regions serve a client:
 * "routing" maps country codes and continent codes to ordered lists of
 * regions, with a default list, proximity and the endpoint policy.
 *
 * Region lists name regions read before (mr_regions_load), each at most
 * once. The reader fills ld->snap->routing and reports every problem with
 * its JSON path, then carries on (conf/loader.h).
 */
#ifndef MR_CONF_ROUTING_H
#define MR_CONF_ROUTING_H

#include <jansson.h>

#include "conf/loader.h"

/* root.routing, which must be there; after mr_regions_load. */
void mr_routing_load(struct mr_loader *ld, json_t *root);

#endif
