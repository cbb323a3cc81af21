/* tests/unit/test_policy.c: location -> ordered candidate regions. Hand-built
 * snapshots (policy reads only regions and routing), decision tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "conf/snapshot.h"
#include "geo/geoip.h"
#include "geo/policy.h"

enum { EU_WEST, US_EAST, AP_SOUTH, SA_EAST, N_REGIONS };

/* The contract example's regions plus one in South America. */
static struct mr_region regions[N_REGIONS] = {
    [EU_WEST] = {.name = "eu-west", .lat = 53.35, .lon = -6.26, .index = EU_WEST},
    [US_EAST] = {.name = "us-east", .lat = 39.04, .lon = -77.49, .index = US_EAST},
    [AP_SOUTH] = {.name = "ap-south", .lat = 1.35, .lon = 103.82, .index = AP_SOUTH},
    [SA_EAST] = {.name = "sa-east", .lat = -23.55, .lon = -46.63, .index = SA_EAST},
};

static size_t us_list[] = {US_EAST, EU_WEST};
static size_t gb_list[] = {EU_WEST, US_EAST};
static size_t de_list[] = {EU_WEST, EU_WEST, 99, US_EAST}; /* a repeat, an unknown index */
static size_t eu_list[] = {EU_WEST, US_EAST};
static size_t na_list[] = {US_EAST, EU_WEST};
static size_t as_list[] = {AP_SOUTH, EU_WEST};
static size_t default_list[] = {US_EAST, EU_WEST, AP_SOUTH};

#define LIST(a)                                                                                    \
    {                                                                                              \
        .regions = (a), .n = sizeof(a) / sizeof((a)[0])                                            \
    }

static struct mr_route countries[] = {
    {.code = "US", .list = LIST(us_list)},
    {.code = "GB", .list = LIST(gb_list)},
    {.code = "DE", .list = LIST(de_list)},
};
static struct mr_route continents[] = {
    {.code = "EU", .list = LIST(eu_list)},
    {.code = "NA", .list = LIST(na_list)},
    {.code = "AS", .list = LIST(as_list)},
};

/* The contract example's routing (plus DE) over the four regions. */
static void init_example(struct mr_snapshot *snap, bool proximity)
{
    memset(snap, 0, sizeof(*snap));
    snap->regions = regions;
    snap->n_regions = N_REGIONS;
    snap->routing.countries = countries;
    snap->routing.n_countries = sizeof(countries) / sizeof(countries[0]);
    snap->routing.continents = continents;
    snap->routing.n_continents = sizeof(continents) / sizeof(continents[0]);
    snap->routing.proximity = proximity;
    snap->routing.default_regions = (struct mr_region_list)LIST(default_list);
}

/* No country or continent rules: proximity, then a default. */
static void init_proximity_only(struct mr_snapshot *snap)
{
    static size_t short_default[] = {US_EAST, EU_WEST};

    memset(snap, 0, sizeof(*snap));
    snap->regions = regions;
    snap->n_regions = N_REGIONS;
    snap->routing.proximity = true;
    snap->routing.default_regions = (struct mr_region_list)LIST(short_default);
}

static struct mr_location at(const char *country, const char *continent, double lat, double lon)
{
    struct mr_location loc = {.found = true, .has_coords = true, .lat = lat, .lon = lon};

    snprintf(loc.country, sizeof(loc.country), "%s", country);
    snprintf(loc.continent, sizeof(loc.continent), "%s", continent);
    return loc;
}

#define C MR_POLICY_STEP_COUNTRY
#define K MR_POLICY_STEP_CONTINENT
#define P MR_POLICY_STEP_PROXIMITY
#define D MR_POLICY_STEP_DEFAULT
#define END ((size_t)-1)

struct policy_case {
    const char *name;
    int routing; /* 0: example, proximity on; 1: example, off;
                  * 2: proximity only */
    struct mr_location loc;
    size_t want[N_REGIONS + 1]; /* region indices, END-terminated */
    enum mr_policy_step steps[N_REGIONS];
};

static const struct policy_case cases[] = {
    {"GB London: country list, continent adds nothing, the rest by distance",
     0,
     {.found = true,
      .country = "GB",
      .continent = "EU",
      .has_coords = true,
      .lat = 51.5,
      .lon = -0.1},
     {EU_WEST, US_EAST, SA_EAST, AP_SOUTH, END},
     {C, C, P, P}},
    {"GB London, proximity off: country list, then default",
     1,
     {.found = true,
      .country = "GB",
      .continent = "EU",
      .has_coords = true,
      .lat = 51.5,
      .lon = -0.1},
     {EU_WEST, US_EAST, AP_SOUTH, END},
     {C, C, D}},
    {"FR Paris: no country rule, continent EU, then distance",
     0,
     {.found = true,
      .country = "FR",
      .continent = "EU",
      .has_coords = true,
      .lat = 48.86,
      .lon = 2.35},
     {EU_WEST, US_EAST, SA_EAST, AP_SOUTH, END},
     {K, K, P, P}},
    {"US: country, continent repeats, the rest by distance",
     0,
     {.found = true,
      .country = "US",
      .continent = "NA",
      .has_coords = true,
      .lat = 37.09,
      .lon = -95.71},
     {US_EAST, EU_WEST, SA_EAST, AP_SOUTH, END},
     {C, C, P, P}},
    {"JP Tokyo: continent AS, then the rest by distance",
     0,
     {.found = true,
      .country = "JP",
      .continent = "AS",
      .has_coords = true,
      .lat = 35.69,
      .lon = 139.69},
     {AP_SOUTH, EU_WEST, US_EAST, SA_EAST, END},
     {K, K, P, P}},
    {"AU Sydney: no rules, all by distance",
     0,
     {.found = true,
      .country = "AU",
      .continent = "OC",
      .has_coords = true,
      .lat = -33.87,
      .lon = 151.21},
     {AP_SOUTH, SA_EAST, US_EAST, EU_WEST, END},
     {P, P, P, P}},
    {"AU Sydney, proximity off: default only",
     1,
     {.found = true,
      .country = "AU",
      .continent = "OC",
      .has_coords = true,
      .lat = -33.87,
      .lon = 151.21},
     {US_EAST, EU_WEST, AP_SOUTH, END},
     {D, D, D}},
    {"SG without country/continent rules: ap-south first",
     2,
     {.found = true,
      .country = "SG",
      .continent = "AS",
      .has_coords = true,
      .lat = 1.29,
      .lon = 103.85},
     {AP_SOUTH, EU_WEST, US_EAST, SA_EAST, END},
     {P, P, P, P}},
    {"BR Sao Paulo without rules: sa-east first",
     2,
     {.found = true,
      .country = "BR",
      .continent = "SA",
      .has_coords = true,
      .lat = -23.55,
      .lon = -46.63},
     {SA_EAST, US_EAST, EU_WEST, AP_SOUTH, END},
     {P, P, P, P}},
    {"not found: default only, whatever else is set",
     0,
     {.found = false,
      .country = "GB",
      .continent = "EU",
      .has_coords = true,
      .lat = 1.29,
      .lon = 103.85},
     {US_EAST, EU_WEST, AP_SOUTH, END},
     {D, D, D}},
    {"not found, proximity only: default only",
     2,
     {.found = false},
     {US_EAST, EU_WEST, END},
     {D, D}},
    {"found without coordinates: no proximity",
     0,
     {.found = true, .country = "ZZ", .continent = "", .has_coords = false},
     {US_EAST, EU_WEST, AP_SOUTH, END},
     {D, D, D}},
    {"continent only (no country): continent, then distance",
     0,
     {.found = true,
      .country = "",
      .continent = "NA",
      .has_coords = true,
      .lat = 19.43,
      .lon = -99.13},
     {US_EAST, EU_WEST, SA_EAST, AP_SOUTH, END},
     {K, K, P, P}},
    {"DE list with a repeat and a bad index: each region once",
     1,
     {.found = true,
      .country = "DE",
      .continent = "EU",
      .has_coords = true,
      .lat = 52.52,
      .lon = 13.40},
     {EU_WEST, US_EAST, AP_SOUTH, END},
     {C, C, D}},
    {"lower-case codes do not match (geoip upper-cases them)",
     1,
     {.found = true, .country = "gb", .continent = "eu", .has_coords = false},
     {US_EAST, EU_WEST, AP_SOUTH, END},
     {D, D, D}},
};

static void test_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct policy_case *c = &cases[i];
        struct mr_snapshot snap;
        size_t out[N_REGIONS + 2], n_want = 0, n;
        enum mr_policy_step steps[N_REGIONS + 2];

        if (c->routing == 2) {
            init_proximity_only(&snap);
        } else {
            init_example(&snap, c->routing == 0);
        }
        while (c->want[n_want] != END) {
            n_want++;
        }
        n = mr_policy_regions(&snap, &c->loc, out, steps, N_REGIONS + 2);
        if (n != n_want) {
            fail_msg("%s: %zu regions, want %zu", c->name, n, n_want);
        }
        for (size_t j = 0; j < n; j++) {
            if (out[j] != c->want[j] || steps[j] != c->steps[j]) {
                fail_msg("%s: [%zu] = %s by %s, want %s by %s", c->name, j, regions[out[j]].name,
                         mr_policy_step_name(steps[j]), regions[c->want[j]].name,
                         mr_policy_step_name(c->steps[j]));
            }
        }
    }
}

/* cap cuts the list; steps may be NULL; the result is a prefix of the full one. */
static void test_cap_and_null_steps(void **state)
{
    struct mr_snapshot snap;
    struct mr_location loc = at("GB", "EU", 51.5, -0.1);
    size_t out[N_REGIONS], full[N_REGIONS];
    size_t n_full;

    init_example(&snap, true);
    n_full = mr_policy_regions(&snap, &loc, full, NULL, N_REGIONS);
    assert_int_equal(n_full, N_REGIONS);
    for (size_t cap = 0; cap <= N_REGIONS; cap++) {
        size_t n;

        memset(out, 0xff, sizeof(out));
        n = mr_policy_regions(&snap, &loc, out, NULL, cap);
        assert_int_equal(n, cap);
        assert_memory_equal(out, full, n * sizeof(out[0]));
        if (cap < N_REGIONS) {
            assert_true(out[cap] == (size_t)-1); /* nothing written past cap */
        }
    }
    /* A NULL location reads as not found. */
    assert_int_equal(mr_policy_regions(&snap, NULL, out, NULL, N_REGIONS), 3);
    assert_int_equal(out[0], US_EAST);
}

/* Equal distances keep configuration order. */
static void test_ties(void **state)
{
    static struct mr_region twins[] = {
        {.name = "b", .lat = 10, .lon = 20, .index = 0},
        {.name = "a", .lat = 10, .lon = -20, .index = 1},
        {.name = "c", .lat = 10, .lon = 20, .index = 2},
    };
    struct mr_snapshot snap;
    struct mr_location loc = at("", "", 10, 0);
    size_t out[3];

    memset(&snap, 0, sizeof(snap));
    snap.regions = twins;
    snap.n_regions = 3;
    snap.routing.proximity = true;
    assert_int_equal(mr_policy_regions(&snap, &loc, out, NULL, 3), 3);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    assert_int_equal(out[2], 2);
}

/* Past MR_POLICY_MAX_NEAREST regions, proximity keeps the nearest ones, in
 * order, and default still adds the rest it names. */
#define MANY 100

static void test_many_regions(void **state)
{
    static struct mr_region many[MANY];
    static size_t far_default[2];
    struct mr_snapshot snap;
    struct mr_location loc = at("", "", 0, -60);
    size_t out[MANY], n;
    enum mr_policy_step steps[MANY];

    /* Region r sits (r * 37) % 100 degrees of longitude east of the client,
     * so the listing order is not the distance order and the nearest-buffer
     * has to evict; 73 is 37's inverse mod 100: the i-th nearest is region
     * (i * 73) % 100. */
    for (size_t r = 0; r < MANY; r++) {
        many[r].index = r;
        many[r].lat = 0;
        many[r].lon = -60 + (double)((r * 37) % MANY);
    }
    far_default[0] = (99 * 73) % MANY; /* the farthest */
    far_default[1] = 0;                /* the nearest: already listed */
    memset(&snap, 0, sizeof(snap));
    snap.regions = many;
    snap.n_regions = MANY;
    snap.routing.proximity = true;
    snap.routing.default_regions = (struct mr_region_list)LIST(far_default);
    n = mr_policy_regions(&snap, &loc, out, steps, MANY);
    assert_int_equal(n, MR_POLICY_MAX_NEAREST + 1);
    for (size_t i = 0; i < MR_POLICY_MAX_NEAREST; i++) {
        assert_int_equal(out[i], (i * 73) % MANY);
        assert_int_equal(steps[i], P);
    }
    assert_int_equal(out[MR_POLICY_MAX_NEAREST], far_default[0]);
    assert_int_equal(steps[MR_POLICY_MAX_NEAREST], D);
}

static void test_distance(void **state)
{
    /* London - Paris ~344 km, New York - London ~5570 km, antipodes ~20015. */
    assert_true(fabs(mr_policy_distance_km(51.5074, -0.1278, 48.8566, 2.3522) - 344) < 5);
    assert_true(fabs(mr_policy_distance_km(40.7128, -74.006, 51.5074, -0.1278) - 5570) < 20);
    assert_true(fabs(mr_policy_distance_km(0, 0, 0, 180) - 20015) < 5);
    assert_true(fabs(mr_policy_distance_km(90, 0, -90, 0) - 20015) < 5);
    assert_true(mr_policy_distance_km(1.35, 103.82, 1.35, 103.82) == 0);
    /* Across the antimeridian: Fiji to Samoa is short. */
    assert_true(mr_policy_distance_km(-17.7, 178.0, -13.8, -172.0) < 1200);
}

static void test_step_names(void **state)
{
    assert_string_equal(mr_policy_step_name(MR_POLICY_STEP_COUNTRY), "country");
    assert_string_equal(mr_policy_step_name(MR_POLICY_STEP_CONTINENT), "continent");
    assert_string_equal(mr_policy_step_name(MR_POLICY_STEP_PROXIMITY), "proximity");
    assert_string_equal(mr_policy_step_name(MR_POLICY_STEP_DEFAULT), "default");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),    cmocka_unit_test(test_cap_and_null_steps),
        cmocka_unit_test(test_ties),     cmocka_unit_test(test_many_regions),
        cmocka_unit_test(test_distance), cmocka_unit_test(test_step_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
