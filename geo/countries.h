/*
 * geo/countries.h: static facts about countries.
 *
 * Maps an ISO 3166-1 alpha-2 code (plus XK, Kosovo, which GeoIP databases
 * use) to its continent, as MaxMind assigns it (GeoNames' seven codes: AF AN
 * AS EU NA OC SA; RU is EU, TR is AS, EG is AF, MX and PA are NA), and to an
 * approximate centroid for when a database has no coordinates. Read-only
 * tables: pure functions, any thread, no allocation.
 */
#ifndef MR_GEO_COUNTRIES_H
#define MR_GEO_COUNTRIES_H

#include <stdbool.h>

/* Writes the continent of country cc ("gb", "GB") into out ("EU" and a NUL);
 * false, out untouched, when cc is not a known two-letter code. */
bool mr_countries_continent(const char *cc, char out[3]);

/* Sets *lat and *lon (degrees) to the centroid of country cc; false, outputs
 * untouched, when cc is not a known two-letter code. */
bool mr_countries_centroid(const char *cc, double *lat, double *lon);

#endif
