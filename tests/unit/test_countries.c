/* tests/unit/test_countries.c: the country -> continent and centroid tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "geo/countries.h"

/* MaxMind's assignments, including the transcontinental cases. */
static const struct {
    const char *cc;
    const char *continent;
} continent_cases[] = {
    {"GB", "EU"}, {"DE", "EU"}, {"RU", "EU"}, {"CY", "EU"}, {"XK", "EU"}, {"TR", "AS"},
    {"KZ", "AS"}, {"GE", "AS"}, {"AM", "AS"}, {"AZ", "AS"}, {"JP", "AS"}, {"SG", "AS"},
    {"IN", "AS"}, {"IL", "AS"}, {"EG", "AF"}, {"ZA", "AF"}, {"MA", "AF"}, {"US", "NA"},
    {"MX", "NA"}, {"PA", "NA"}, {"CA", "NA"}, {"GL", "NA"}, {"PR", "NA"}, {"BR", "SA"},
    {"AR", "SA"}, {"FK", "SA"}, {"AU", "OC"}, {"NZ", "OC"}, {"TL", "OC"}, {"AQ", "AN"},
    {"TF", "AN"}, {"AD", "EU"}, {"ZW", "AF"},
};

static void test_continents(void **state)
{
    for (size_t i = 0; i < sizeof(continent_cases) / sizeof(continent_cases[0]); i++) {
        char out[3] = "";

        assert_true(mr_countries_continent(continent_cases[i].cc, out));
        if (strcmp(out, continent_cases[i].continent) != 0) {
            fail_msg("%s: continent %s, want %s", continent_cases[i].cc, out,
                     continent_cases[i].continent);
        }
    }
}

static const struct {
    const char *cc;
    double lat, lon;
} centroid_cases[] = {
    {"GB", 55.38, -3.44},   {"US", 37.09, -95.71},  {"DE", 51.17, 10.45},  {"SG", 1.35, 103.82},
    {"AU", -25.27, 133.78}, {"BR", -14.24, -51.93}, {"RU", 61.52, 105.32}, {"FJ", -16.58, 179.41},
};

static void test_centroids(void **state)
{
    for (size_t i = 0; i < sizeof(centroid_cases) / sizeof(centroid_cases[0]); i++) {
        double lat = 1000, lon = 1000;

        assert_true(mr_countries_centroid(centroid_cases[i].cc, &lat, &lon));
        if (fabs(lat - centroid_cases[i].lat) > 0.01 || fabs(lon - centroid_cases[i].lon) > 0.01) {
            fail_msg("%s: centroid %.2f,%.2f", centroid_cases[i].cc, lat, lon);
        }
    }
}

static void test_case_insensitive(void **state)
{
    char out[3] = "";
    double lat = 0, lon = 0, lat2 = 0, lon2 = 0;

    assert_true(mr_countries_continent("gb", out));
    assert_string_equal(out, "EU");
    assert_true(mr_countries_continent("Us", out));
    assert_string_equal(out, "NA");
    assert_true(mr_countries_centroid("jp", &lat, &lon));
    assert_true(mr_countries_centroid("JP", &lat2, &lon2));
    assert_true(lat == lat2 && lon == lon2);
}

static void test_unknown(void **state)
{
    static const char *const bad[] = {"ZZ",
                                      "AA",
                                      "EU",
                                      "UK",
                                      "",
                                      "G",
                                      "GBR",
                                      "G1",
                                      "1G",
                                      "  ",
                                      "gb ",
                                      "\xc3\xa9"
                                      "a"};
    char out[3] = "xx";
    double lat = 7, lon = 8;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mr_countries_continent(bad[i], out) || mr_countries_centroid(bad[i], &lat, &lon)) {
            fail_msg("\"%s\" should be unknown", bad[i]);
        }
    }
    assert_false(mr_countries_continent(NULL, out));
    assert_false(mr_countries_centroid(NULL, &lat, &lon));
    /* Outputs untouched on failure. */
    assert_string_equal(out, "xx");
    assert_true(lat == 7 && lon == 8);
}

/* Every ISO 3166-1 code plus XK is found, which also proves the table is
 * sorted (binary search would miss entries otherwise), and every entry has a
 * valid continent and in-range coordinates. */
static void test_whole_table(void **state)
{
    static const char *const continents[] = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"};
    size_t known = 0;

    for (char a = 'A'; a <= 'Z'; a++) {
        for (char b = 'A'; b <= 'Z'; b++) {
            char cc[3] = {a, b, '\0'};
            char out[3];
            double lat, lon;
            bool valid = false;

            if (!mr_countries_continent(cc, out)) {
                assert_false(mr_countries_centroid(cc, &lat, &lon));
                continue;
            }
            known++;
            for (size_t i = 0; i < 7; i++) {
                valid = valid || strcmp(out, continents[i]) == 0;
            }
            assert_true(valid);
            assert_true(mr_countries_centroid(cc, &lat, &lon));
            assert_true(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180);
        }
    }
    assert_int_equal(known, 250);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_continents),       cmocka_unit_test(test_centroids),
        cmocka_unit_test(test_case_insensitive), cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_whole_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
