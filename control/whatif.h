/*
 * control/whatif.h: the guardrail, the dry run and explain.
 * (Moved from control.c; reworked in the next commit.)
 */
#ifndef MR_CONTROL_WHATIF_H
#define MR_CONTROL_WHATIF_H

#include <jansson.h>

#include "conf/snapshot.h"
#include "geo/policy.h"

void class_location(const char *country, const char *continent, struct mr_location *loc);
json_t *stranded(const struct mr_snapshot *before, const struct mr_snapshot *after);
void spread(const struct mr_snapshot *snap, const struct mr_location *loc, double n,
            json_t *shares);
const char *skip_reason(const struct mr_snapshot *snap, const struct mr_cluster *c);

#endif
