/* tests/unit/test_geoip.c: GeoIP lookups against the databases written by
 * tools/mkmmdb.pl (its header has the network table these cases rely on).
 * The databases are found in $MERIDIAN_TESTDATA, else in ../testdata beside
 * this binary, else in build/release/testdata; `make testdata` writes them.
 * Run from the repository root (the optional real-database case reads
 * geo/data/country.mmdb). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

#include "common/err.h"
#include "conf/snapshot.h"
#include "geo/geoip.h"

#define REAL_DB "geo/data/country.mmdb"

static const char *const geoip2_country[] = {"country", "iso_code", NULL};
static const char *const flat_country[] = {"country_code", NULL};
static const char *const std_latitude[] = {"location", "latitude", NULL};
static const char *const std_longitude[] = {"location", "longitude", NULL};

/* ---- helpers ---- */

static char **copy_strv(const char *const *v)
{
    size_t n = 0;
    char **copy;

    while (v[n] != NULL) {
        n++;
    }
    copy = calloc(n + 1, sizeof(*copy));
    assert_non_null(copy);
    for (size_t i = 0; i < n; i++) {
        copy[i] = strdup(v[i]);
        assert_non_null(copy[i]);
    }
    return copy;
}

/* A bare snapshot with just a geoip block, as conf/ would leave it (paths
 * heap-allocated, so mr_snap_free() can free them). db: a path, or NULL. */
static struct mr_snapshot *new_snap(const char *db, const char *const *country,
                                    const char *const *latitude, const char *const *longitude)
{
    struct mr_snapshot *snap = calloc(1, sizeof(*snap));

    assert_non_null(snap);
    atomic_init(&snap->refs, 1);
    if (db != NULL) {
        snap->geoip.database = strdup(db);
        assert_non_null(snap->geoip.database);
    }
    snap->geoip.country = copy_strv(country);
    snap->geoip.latitude = copy_strv(latitude);
    snap->geoip.longitude = copy_strv(longitude);
    return snap;
}

static const char *testdata_path(const char *name)
{
    static char path[PATH_MAX + 32];

    snprintf(path, sizeof(path), "%s/%s", mr_test_testdata, name);
    return path;
}

/* Opens a test database with the given paths; fails the test if missing. */
static struct mr_snapshot *open_snap(const char *name, const char *const *country,
                                     const char *const *latitude, const char *const *longitude)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = new_snap(testdata_path(name), country, latitude, longitude);

    if (mr_geoip_attach(snap, &errs) != 0) {
        mr_errors_print(&errs, stderr);
        mr_errors_clear(&errs);
        mr_snap_free(snap);
        fail_msg("cannot open %s: run `make testdata` or set MERIDIAN_TESTDATA",
                 testdata_path(name));
    }
    assert_int_equal(errs.n_errors, 0);
    assert_non_null(snap->geo);
    return snap;
}

static void make_addr(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
    }
}

static void lookup(const struct mr_snapshot *snap, const char *ip, struct mr_location *loc)
{
    struct sockaddr_storage ss;

    make_addr(ip, &ss);
    mr_geoip_lookup(snap, (const struct sockaddr *)&ss, loc);
}

/* One expected lookup result; lat/lon are checked when has_coords. */
struct lookup_case {
    const char *ip;
    bool found;
    const char *country, *continent;
    bool has_coords;
    double lat, lon;
};

static void check_cases(const struct mr_snapshot *snap, const struct lookup_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct lookup_case *c = &cases[i];
        struct mr_location loc;

        memset(&loc, 0x5a, sizeof(loc)); /* lookup must set every field */
        lookup(snap, c->ip, &loc);
        if (loc.found != c->found || strcmp(loc.country, c->country) != 0 ||
            strcmp(loc.continent, c->continent) != 0 || loc.has_coords != c->has_coords ||
            (c->has_coords && (fabs(loc.lat - c->lat) > 0.001 || fabs(loc.lon - c->lon) > 0.001))) {
            fail_msg("%s: got found=%d country=\"%.2s\" continent=\"%.2s\" coords=%d %.3f,%.3f; "
                     "want found=%d country=\"%s\" continent=\"%s\" coords=%d %.3f,%.3f",
                     c->ip, loc.found, loc.country, loc.continent, loc.has_coords, loc.lat, loc.lon,
                     c->found, c->country, c->continent, c->has_coords, c->lat, c->lon);
        }
    }
}

/* ---- GeoIP2 schema: everything from the record ---- */

static const struct lookup_case geoip2_cases[] = {
    {"81.2.69.142", true, "GB", "EU", true, 51.50, -0.10},
    {"8.8.8.8", true, "US", "NA", true, 37.75, -97.82},
    {"5.9.1.1", true, "DE", "EU", true, 50.48, 12.37},
    {"2.0.200.1", true, "FR", "EU", true, 48.86, 2.35},
    {"1.0.16.1", true, "JP", "AS", true, 35.69, 139.69},
    {"175.41.130.9", true, "SG", "AS", true, 1.29, 103.85},
    {"200.147.3.4", true, "BR", "SA", true, -23.55, -46.63},
    {"1.159.255.255", true, "AU", "OC", true, -33.87, 151.21},
    {"196.25.1.1", true, "ZA", "AF", true, -26.20, 28.04},
    {"117.200.0.1", true, "IN", "AS", true, 19.08, 72.88},
    /* IPv6 networks, and IPv4 through IPv4-mapped IPv6. */
    {"2001:db8:1::1", true, "DE", "EU", true, 52.52, 13.40},
    {"2001:db8:1:ffff::1", true, "DE", "EU", true, 52.52, 13.40},
    {"2a02:c7f:1234::1", true, "GB", "EU", true, 51.50, -0.10},
    {"::ffff:81.2.69.142", true, "GB", "EU", true, 51.50, -0.10},
    {"::ffff:8.8.8.8", true, "US", "NA", true, 37.75, -97.82},
    /* Lower-case code: upper-cased; continent and centroid from the tables. */
    {"198.51.100.7", true, "GB", "EU", true, 55.38, -3.44},
    /* Three-letter code: no country, but the record's continent. */
    {"203.0.113.7", true, "", "EU", false, 0, 0},
    /* Latitude alone is nothing usable. */
    {"192.0.2.1", false, "", "", false, 0, 0},
    /* Not in the database. */
    {"127.0.0.1", false, "", "", false, 0, 0},
    {"10.1.2.3", false, "", "", false, 0, 0},
    {"192.168.1.1", false, "", "", false, 0, 0},
    {"81.2.70.1", false, "", "", false, 0, 0},
    {"::1", false, "", "", false, 0, 0},
    {"fe80::1", false, "", "", false, 0, 0},
    {"2001:db8:2::1", false, "", "", false, 0, 0},
    {"::ffff:10.0.0.1", false, "", "", false, 0, 0},
    {"::ffff:127.0.0.1", false, "", "", false, 0, 0},
};

static void test_geoip2_schema(void **state)
{
    struct mr_snapshot *snap = open_snap("geoip2.mmdb", geoip2_country, std_latitude,
                                         std_longitude);

    check_cases(snap, geoip2_cases, sizeof(geoip2_cases) / sizeof(geoip2_cases[0]));
    mr_snap_free(snap);
}

/* ---- flat schema (the contract's example): continent and centroid from
 * the country tables ---- */

static const struct lookup_case flat_cases[] = {
    {"81.2.69.142", true, "GB", "EU", true, 55.38, -3.44},
    {"8.8.8.8", true, "US", "NA", true, 37.09, -95.71},
    {"175.41.130.9", true, "SG", "AS", true, 1.35, 103.82},
    {"1.130.0.1", true, "AU", "OC", true, -25.27, 133.78},
    {"::ffff:81.2.69.142", true, "GB", "EU", true, 55.38, -3.44},
    {"2001:db8:1::1", true, "DE", "EU", true, 51.17, 10.45},
    {"2a02:c7f::1", true, "GB", "EU", true, 55.38, -3.44},
    {"198.51.100.7", true, "GB", "EU", true, 55.38, -3.44},
    /* A code no table knows: found, but nothing more. */
    {"203.0.113.7", true, "ZZ", "", false, 0, 0},
    /* Empty string: not a country. */
    {"192.0.2.1", false, "", "", false, 0, 0},
    {"127.0.0.1", false, "", "", false, 0, 0},
    {"::1", false, "", "", false, 0, 0},
};

static void test_flat_schema(void **state)
{
    struct mr_snapshot *snap = open_snap("flat.mmdb", flat_country, std_latitude, std_longitude);

    check_cases(snap, flat_cases, sizeof(flat_cases) / sizeof(flat_cases[0]));
    mr_snap_free(snap);
}

/* ---- lookup paths that miss or meet the wrong type read as absent ---- */

static void test_wrong_paths(void **state)
{
    static const char *const to_map[] = {"country", NULL};
    static const char *const missing[] = {"nope", "iso_code", NULL};
    static const char *const through_string[] = {"country", "iso_code", "x", NULL};
    static const char *const array_index[] = {"country", "0", NULL};
    static const char *const empty[] = {NULL};
    static const char *const string_latitude[] = {"country", "iso_code", NULL};
    static const char *const *const bad_country[] = {to_map, missing, through_string, array_index,
                                                     empty};
    static const struct lookup_case no_country = {"81.2.69.142", true,  "",   "EU",
                                                  true,          51.50, -0.10};
    static const struct lookup_case centroid = {"81.2.69.142", true,  "GB", "EU",
                                                true,          55.38, -3.44};
    static const struct lookup_case nothing = {"81.2.69.142", false, "", "", false, 0, 0};
    struct mr_snapshot *snap;

    /* Country path wrong: the record still has a continent and location. */
    for (size_t i = 0; i < sizeof(bad_country) / sizeof(bad_country[0]); i++) {
        snap = open_snap("geoip2.mmdb", bad_country[i], std_latitude, std_longitude);
        check_cases(snap, &no_country, 1);
        mr_snap_free(snap);
    }
    /* Latitude at a string, or longitude path missing: the centroid. */
    snap = open_snap("geoip2.mmdb", geoip2_country, string_latitude, std_longitude);
    check_cases(snap, &centroid, 1);
    mr_snap_free(snap);
    snap = open_snap("geoip2.mmdb", geoip2_country, std_latitude, missing);
    check_cases(snap, &centroid, 1);
    mr_snap_free(snap);
    /* The flat database read with the GeoIP2 default paths: nothing. */
    snap = open_snap("flat.mmdb", geoip2_country, std_latitude, std_longitude);
    check_cases(snap, &nothing, 1);
    mr_snap_free(snap);
    /* Latitude path at the flat database's string. */
    snap = open_snap("flat.mmdb", flat_country, flat_country, flat_country);
    check_cases(snap, &centroid, 1);
    mr_snap_free(snap);
}

/* ---- odd addresses ---- */

static void test_odd_addresses(void **state)
{
    struct mr_snapshot *snap = open_snap("geoip2.mmdb", geoip2_country, std_latitude,
                                         std_longitude);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct mr_location loc;

    memset(&loc, 0x5a, sizeof(loc));
    mr_geoip_lookup(snap, NULL, &loc);
    assert_false(loc.found);
    assert_string_equal(loc.country, "");
    memset(&loc, 0x5a, sizeof(loc));
    mr_geoip_lookup(snap, (const struct sockaddr *)&un, &loc);
    assert_false(loc.found);
    assert_false(loc.has_coords);
    mr_snap_free(snap);
}

/* ---- attach ---- */

static void test_no_database(void **state)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = new_snap(NULL, geoip2_country, std_latitude, std_longitude);
    struct mr_location loc;

    assert_int_equal(mr_geoip_attach(snap, &errs), 0);
    assert_int_equal(errs.n_errors, 0);
    assert_null(snap->geo);
    assert_int_equal(snap->n_release_hooks, 0);
    memset(&loc, 0x5a, sizeof(loc));
    lookup(snap, "81.2.69.142", &loc);
    assert_false(loc.found);
    assert_false(loc.has_coords);
    assert_string_equal(loc.country, "");
    assert_string_equal(loc.continent, "");
    mr_snap_free(snap);
    /* No snapshot at all reads the same. */
    lookup(NULL, "81.2.69.142", &loc);
    assert_false(loc.found);
}

/* Attaching a file that is not a usable database: -1, one error naming the
 * path, and a snapshot left without a database (or hook). */
static void expect_open_error(const char *path, const char *reason)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = new_snap(path, geoip2_country, std_latitude, std_longitude);
    char prefix[PATH_MAX + 64];

    assert_int_equal(mr_geoip_attach(snap, &errs), -1);
    assert_int_equal(errs.n_errors, 1);
    snprintf(prefix, sizeof(prefix), "geoip.database: cannot open %s: ", path);
    if (strncmp(errs.errors[0], prefix, strlen(prefix)) != 0 ||
        strlen(errs.errors[0]) == strlen(prefix)) {
        fail_msg("error \"%s\" does not start with \"%s\" and a reason", errs.errors[0], prefix);
    }
    if (reason != NULL && strstr(errs.errors[0], reason) == NULL) {
        fail_msg("error \"%s\" does not say \"%s\"", errs.errors[0], reason);
    }
    assert_null(snap->geo);
    assert_int_equal(snap->n_release_hooks, 0);
    mr_errors_clear(&errs);
    mr_snap_free(snap);
}

static void test_open_errors(void **state)
{
    char dir[] = "/tmp/meridian-test-geoip-XXXXXX";
    char path[PATH_MAX];
    char junk[4096];

    expect_open_error("/nonexistent/meridian/country.mmdb", "No such file");

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/empty.mmdb", dir);
    mr_test_write_file(path, "", 0);
    expect_open_error(path, "empty file");
    assert_int_equal(unlink(path), 0);

    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (char)(i * 7 + 3);
    }
    snprintf(path, sizeof(path), "%s/junk.mmdb", dir);
    mr_test_write_file(path, junk, sizeof(junk));
    expect_open_error(path, "invalid metadata");
    assert_int_equal(unlink(path), 0);

    /* A directory is not a database either. */
    expect_open_error(dir, "is a directory");
    assert_int_equal(rmdir(dir), 0);
}

/* The hook closes the database (LeakSanitizer would report the mapping's
 * bookkeeping otherwise) and is safe to run twice. */
static void test_release_hook(void **state)
{
    struct mr_snapshot *snap = open_snap("geoip2.mmdb", geoip2_country, std_latitude,
                                         std_longitude);
    struct mr_errors errs = {0};

    assert_int_equal(snap->n_release_hooks, 1);
    /* Attaching again keeps the open database and adds no hook. */
    assert_int_equal(mr_geoip_attach(snap, &errs), 0);
    assert_int_equal(snap->n_release_hooks, 1);
    snap->release_hooks[0](snap);
    assert_null(snap->geo);
    mr_snap_free(snap);

    /* Through the reference count, as the control thread drops it. */
    snap = open_snap("flat.mmdb", flat_country, std_latitude, std_longitude);
    mr_snap_release(snap);
}

static void test_hooks_full(void **state)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap = new_snap(testdata_path("geoip2.mmdb"), geoip2_country, std_latitude,
                                        std_longitude);

    snap->n_release_hooks = MR_SNAP_MAX_HOOKS; /* all taken, by no-ops */
    for (size_t i = 0; i < MR_SNAP_MAX_HOOKS; i++) {
        snap->release_hooks[i] = NULL;
    }
    assert_int_equal(mr_geoip_attach(snap, &errs), -1);
    assert_int_equal(errs.n_errors, 1);
    assert_null(snap->geo);
    mr_errors_clear(&errs);
    snap->n_release_hooks = 0;
    mr_snap_free(snap);
}

/* ---- shared by threads ---- */

#define THREADS 4
#define ROUNDS 20000

static void *lookup_many(void *arg)
{
    const struct mr_snapshot *snap = arg;
    static const char *const ips[] = {"81.2.69.142", "::ffff:8.8.8.8", "2001:db8:1::1",
                                      "127.0.0.1"};
    static const char *const want[] = {"GB", "US", "DE", ""};
    struct sockaddr_storage ss[4];
    intptr_t bad = 0;

    for (size_t i = 0; i < 4; i++) {
        make_addr(ips[i], &ss[i]);
    }
    for (size_t r = 0; r < ROUNDS; r++) {
        struct mr_location loc;

        mr_geoip_lookup(snap, (const struct sockaddr *)&ss[r % 4], &loc);
        bad += strcmp(loc.country, want[r % 4]) != 0;
    }
    return (void *)bad;
}

static void test_threads(void **state)
{
    struct mr_snapshot *snap = open_snap("geoip2.mmdb", geoip2_country, std_latitude,
                                         std_longitude);
    pthread_t threads[THREADS];

    for (size_t i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, lookup_many, snap), 0);
    }
    for (size_t i = 0; i < THREADS; i++) {
        void *bad;

        assert_int_equal(pthread_join(threads[i], &bad), 0);
        assert_int_equal((intptr_t)bad, 0);
    }
    mr_snap_free(snap);
}

/* ---- the real CC0 database, when it has been fetched ---- */

static void test_real_database(void **state)
{
    struct mr_errors errs = {0};
    struct mr_snapshot *snap;
    struct mr_location loc;

    if (access(REAL_DB, R_OK) != 0) {
        skip();
    }
    snap = new_snap(REAL_DB, flat_country, std_latitude, std_longitude);
    assert_int_equal(mr_geoip_attach(snap, &errs), 0);
    lookup(snap, "81.2.69.142", &loc);
    assert_true(loc.found);
    assert_string_equal(loc.country, "GB");
    assert_string_equal(loc.continent, "EU");
    assert_true(loc.has_coords);
    lookup(snap, "8.8.8.8", &loc);
    assert_true(loc.found);
    assert_string_equal(loc.country, "US");
    assert_string_equal(loc.continent, "NA");
    lookup(snap, "::ffff:8.8.8.8", &loc);
    assert_string_equal(loc.country, "US");
    lookup(snap, "127.0.0.1", &loc);
    assert_false(loc.found);
    mr_snap_free(snap);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geoip2_schema), cmocka_unit_test(test_flat_schema),
        cmocka_unit_test(test_wrong_paths),   cmocka_unit_test(test_odd_addresses),
        cmocka_unit_test(test_no_database),   cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_release_hook),  cmocka_unit_test(test_hooks_full),
        cmocka_unit_test(test_threads),       cmocka_unit_test(test_real_database),
    };

    mr_test_find_testdata(argc > 0 ? argv[0] : "");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
