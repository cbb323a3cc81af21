/* tests/unit/test_jpath.c: JSON paths, the typed readers' accepted and
 * refused values with their messages, and the array iterator. Each test
 * gets a fresh error list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/err.h"
#include "conf/jpath.h"

struct fixture {
    struct mr_errors errs;
    struct mr_jpath jp;
    json_t *doc; /* the JSON a test parsed, freed by teardown */
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    fx->jp.errs = &fx->errs;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    mr_errors_clear(&fx->errs);
    json_decref(fx->doc);
    free(fx);
    return 0;
}

/* ---- helpers ---- */

/* text parsed (any JSON value), owned by the fixture. */
static json_t *parse(struct fixture *fx, const char *text)
{
    json_error_t je;

    json_decref(fx->doc);
    fx->doc = json_loads(text, JSON_DECODE_ANY, &je);
    if (fx->doc == NULL)
        fail_msg("bad test JSON %s: %s", text, je.text);
    return fx->doc;
}

/* Exactly one error, equal to want; the list is emptied for the next case. */
static void expect_one_error(struct fixture *fx, const char *want)
{
    if (fx->errs.n_errors != 1)
        fail_msg("want one error \"%s\", have %zu (first: %s)", want, fx->errs.n_errors,
                 fx->errs.n_errors > 0 ? fx->errs.errors[0] : "none");
    assert_string_equal(fx->errs.errors[0], want);
    assert_int_equal(fx->errs.n_warnings, 0);
    mr_errors_clear(&fx->errs);
}

static void expect_no_problem(struct fixture *fx)
{
    if (fx->errs.n_errors > 0)
        fail_msg("unexpected error: %s", fx->errs.errors[0]);
    assert_int_equal(fx->errs.n_warnings, 0);
}

/* ---- paths ---- */

static void test_paths(void **state)
{
    char a[MR_JPATH_MAX], b[MR_JPATH_MAX];

    mr_jpath_key(a, "", "regions");
    assert_string_equal(a, "regions");
    mr_jpath_index(b, a, 0);
    assert_string_equal(b, "regions[0]");
    mr_jpath_key(a, b, "clusters");
    mr_jpath_index(b, a, 12);
    mr_jpath_key(a, b, "weight");
    assert_string_equal(a, "regions[0].clusters[12].weight");
    /* Keys are written as they are, dots included. */
    mr_jpath_key(a, "hosts", "go.example.com");
    assert_string_equal(a, "hosts.go.example.com");
    mr_jpath_index(a, "", 3);
    assert_string_equal(a, "[3]");
}

static void test_long_paths_are_cut_short(void **state)
{
    char parent[MR_JPATH_MAX], out[MR_JPATH_MAX];

    memset(parent, 'k', sizeof(parent) - 1);
    parent[sizeof(parent) - 1] = '\0';
    mr_jpath_key(out, parent, "name");
    assert_int_equal(strlen(out), MR_JPATH_MAX - 1);
    assert_string_equal(out + MR_JPATH_MAX - 4, "...");
    assert_memory_equal(out, parent, MR_JPATH_MAX - 4);
    mr_jpath_index(out, parent, 7);
    assert_int_equal(strlen(out), MR_JPATH_MAX - 1);
    assert_string_equal(out + MR_JPATH_MAX - 4, "...");
    /* A path of MR_JPATH_MAX bytes with its NUL is cut by one: marked... */
    parent[MR_JPATH_MAX - 3] = '\0';
    mr_jpath_index(out, parent, 7);
    assert_string_equal(out + MR_JPATH_MAX - 4, "...");
    /* ...and one byte shorter still fits whole. */
    parent[MR_JPATH_MAX - 4] = '\0';
    mr_jpath_index(out, parent, 7);
    assert_int_equal(strlen(out), MR_JPATH_MAX - 1);
    assert_string_equal(out + MR_JPATH_MAX - 4, "[7]");
}

/* ---- keys and members ---- */

static void test_unknown_keys_warn(void **state)
{
    static const char *const known[] = {"name", "weight", NULL};
    struct fixture *fx = *state;
    json_t *obj = parse(fx, "{\"name\": 1, \"wieght\": 2, \"weight\": 3, \"x\": null}");

    mr_jpath_check_keys(&fx->jp, obj, "regions[1].clusters[0]", known);
    assert_int_equal(fx->errs.n_errors, 0);
    assert_int_equal(fx->errs.n_warnings, 2);
    assert_string_equal(fx->errs.warnings[0],
                        "regions[1].clusters[0].wieght: unknown key, ignored");
    assert_string_equal(fx->errs.warnings[1], "regions[1].clusters[0].x: unknown key, ignored");
    mr_errors_clear(&fx->errs);
    /* At the top level the key is the whole path. */
    mr_jpath_check_keys(&fx->jp, obj, "", known);
    assert_int_equal(fx->errs.n_warnings, 2);
    assert_string_equal(fx->errs.warnings[0], "wieght: unknown key, ignored");
}

static void test_member(void **state)
{
    struct fixture *fx = *state;
    json_t *obj = parse(fx, "{\"a\": 1, \"n\": null}");

    assert_ptr_equal(mr_jpath_member(&fx->jp, obj, "o", "a", true), json_object_get(obj, "a"));
    assert_null(mr_jpath_member(&fx->jp, obj, "o", "b", false));
    expect_no_problem(fx);
    assert_null(mr_jpath_member(&fx->jp, obj, "o", "b", true));
    expect_one_error(fx, "o.b: required");
    /* JSON null is absent. */
    assert_null(mr_jpath_member(&fx->jp, obj, "o", "n", false));
    expect_no_problem(fx);
    assert_null(mr_jpath_member(&fx->jp, obj, "o", "n", true));
    expect_one_error(fx, "o.n: required");
    /* A missing parent object has no members. */
    assert_null(mr_jpath_member(&fx->jp, NULL, "", "top", true));
    expect_one_error(fx, "top: required");
}

static void test_prefix_and_every_problem_kept(void **state)
{
    static const char *const known[] = {"a", NULL};
    struct fixture *fx = *state;
    json_t *obj = parse(fx, "{\"a\": \"x\", \"b\": 1}");
    int64_t i = 7;
    bool b = true;

    fx->jp.prefix = "state_file: ";
    mr_jpath_check_keys(&fx->jp, obj, "", known);
    assert_false(mr_jpath_member_int(&fx->jp, obj, "", "a", 0, 10, &i));
    mr_jpath_member_bool(&fx->jp, obj, "", "a", &b);
    assert_false(mr_jpath_read_object(&fx->jp, json_object_get(obj, "b"), "b"));
    mr_jpath_error(&fx->jp, "c[2]", "custom %d", 42);
    mr_jpath_warn(&fx->jp, "d", "note %s", "%s");
    assert_int_equal(fx->errs.n_errors, 4);
    assert_string_equal(fx->errs.errors[0], "state_file: a: expected an integer between 0 and 10");
    assert_string_equal(fx->errs.errors[1], "state_file: a: expected a boolean");
    assert_string_equal(fx->errs.errors[2], "state_file: b: expected an object");
    assert_string_equal(fx->errs.errors[3], "state_file: c[2]: custom 42");
    assert_int_equal(fx->errs.n_warnings, 2);
    assert_string_equal(fx->errs.warnings[0], "state_file: b: unknown key, ignored");
    assert_string_equal(fx->errs.warnings[1], "state_file: d: note %s");
    /* Refused values leave the defaults alone. */
    assert_int_equal(i, 7);
    assert_true(b);
}

/* ---- typed readers: accepted and refused values ---- */

static void test_read_object(void **state)
{
    static const char *const refused[] = {"[]", "1", "\"{}\"", "null", "true"};
    struct fixture *fx = *state;

    assert_true(mr_jpath_read_object(&fx->jp, parse(fx, "{}"), "p"));
    expect_no_problem(fx);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        assert_false(mr_jpath_read_object(&fx->jp, parse(fx, refused[i]), "p"));
        expect_one_error(fx, "p: expected an object");
    }
    assert_false(mr_jpath_read_object(&fx->jp, NULL, "p"));
    expect_one_error(fx, "p: expected an object");
}

static void test_read_string(void **state)
{
    static const struct {
        const char *json;
        bool nonempty;
        const char *error; /* NULL: accepted */
    } cases[] = {
        {"\"abc\"", true, NULL},
        {"\"\"", false, NULL},
        {"\"\"", true, "p: expected a non-empty string"},
        {"1", false, "p: expected a string"},
        {"null", false, "p: expected a string"},
        {"[\"a\"]", true, "p: expected a string"},
    };
    struct fixture *fx = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = parse(fx, cases[i].json);
        const char *out = "default";
        bool ok = mr_jpath_read_string(&fx->jp, v, "p", cases[i].nonempty, &out);

        if (cases[i].error == NULL) {
            assert_true(ok);
            expect_no_problem(fx);
            assert_ptr_equal(out, json_string_value(v));
        } else {
            assert_false(ok);
            expect_one_error(fx, cases[i].error);
            assert_string_equal(out, "default");
        }
    }
}

static void test_read_bool(void **state)
{
    static const char *const refused[] = {"0", "1", "\"true\"", "null"};
    struct fixture *fx = *state;
    bool out = false;

    assert_true(mr_jpath_read_bool(&fx->jp, parse(fx, "true"), "p", &out));
    assert_true(out);
    assert_true(mr_jpath_read_bool(&fx->jp, parse(fx, "false"), "p", &out));
    assert_false(out);
    expect_no_problem(fx);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        out = true;
        assert_false(mr_jpath_read_bool(&fx->jp, parse(fx, refused[i]), "p", &out));
        expect_one_error(fx, "p: expected a boolean");
        assert_true(out);
    }
}

static void test_read_int(void **state)
{
    static const struct {
        const char *json;
        int64_t min, max;
        const char *error; /* NULL: accepted */
    } cases[] = {
        {"5", 1, 10, NULL},
        {"1", 1, 10, NULL},
        {"10", 1, 10, NULL},
        {"0", 1, 10, "p: expected an integer between 1 and 10"},
        {"11", 1, 10, "p: expected an integer between 1 and 10"},
        {"-1", 0, 1000, "p: expected an integer between 0 and 1000"},
        {"5.0", 1, 10, "p: expected an integer between 1 and 10"},
        {"\"5\"", 1, 10, "p: expected an integer between 1 and 10"},
        /* INT_MAX as the maximum: only the minimum is stated... */
        {"2147483647", 1, INT_MAX, NULL},
        {"0", 1, INT_MAX, "p: expected an integer >= 1"},
        {"1.5", 1, INT_MAX, "p: expected an integer >= 1"},
        {"null", 0, INT_MAX, "p: expected an integer >= 0"},
        /* ...unless the value is above it. */
        {"2147483648", 1, INT_MAX, "p: expected an integer between 1 and 2147483647"},
    };
    struct fixture *fx = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = parse(fx, cases[i].json);
        int64_t out = -42;
        bool ok = mr_jpath_read_int(&fx->jp, v, "p", cases[i].min, cases[i].max, &out);

        if (cases[i].error == NULL) {
            assert_true(ok);
            expect_no_problem(fx);
            assert_int_equal(out, json_integer_value(v));
        } else {
            assert_false(ok);
            expect_one_error(fx, cases[i].error);
            assert_int_equal(out, -42);
        }
    }
}

static void test_read_number(void **state)
{
    static const struct {
        const char *json;
        double min, max;
        bool min_exclusive;
        const char *expect;
        bool ok;
    } cases[] = {
        {"0.5", 0, 1, true, "> 0 and <= 1", true},
        {"1", 0, 1, true, "> 0 and <= 1", true}, /* integers are numbers */
        {"0", 0, 1, true, "> 0 and <= 1", false},
        {"1.5", 0, 1, true, "> 0 and <= 1", false},
        {"0", 0, 1e308, false, ">= 0", true},
        {"-0.1", 0, 1e308, false, ">= 0", false},
        {"\"1\"", 0, 1e308, false, ">= 0", false},
        {"-90", -90, 90, false, "between -90 and 90", true},
        {"90.5", -90, 90, false, "between -90 and 90", false},
    };
    struct fixture *fx = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = parse(fx, cases[i].json);
        double out = -42;
        bool ok = mr_jpath_read_number(&fx->jp, v, "p", cases[i].min, cases[i].max,
                                       cases[i].min_exclusive, cases[i].expect, &out);
        char want[128];

        assert_int_equal(ok, cases[i].ok);
        if (cases[i].ok) {
            expect_no_problem(fx);
            assert_true(out == json_number_value(v));
        } else {
            snprintf(want, sizeof(want), "p: expected a number %s", cases[i].expect);
            expect_one_error(fx, want);
            assert_true(out == -42);
        }
    }
}

static void test_member_readers(void **state)
{
    struct fixture *fx = *state;
    json_t *obj = parse(fx, "{\"port\": 8080, \"big\": 70000, \"on\": false, \"name\": \"x\","
                            " \"empty\": \"\", \"n\": null}");
    const char *s = "default";
    int64_t i = 1;
    bool b = true;

    assert_true(mr_jpath_member_int(&fx->jp, obj, "l[0]", "port", 1, 65535, &i));
    assert_int_equal(i, 8080);
    /* Absent (or null): true, the default stays. */
    assert_true(mr_jpath_member_int(&fx->jp, obj, "l[0]", "missing", 1, 65535, &i));
    assert_true(mr_jpath_member_int(&fx->jp, obj, "l[0]", "n", 1, 65535, &i));
    assert_int_equal(i, 8080);
    expect_no_problem(fx);
    assert_false(mr_jpath_member_int(&fx->jp, obj, "l[0]", "big", 1, 65535, &i));
    expect_one_error(fx, "l[0].big: expected an integer between 1 and 65535");
    assert_int_equal(i, 8080);

    mr_jpath_member_bool(&fx->jp, obj, "l[0]", "on", &b);
    assert_false(b);
    mr_jpath_member_bool(&fx->jp, obj, "l[0]", "missing", &b);
    assert_false(b);
    expect_no_problem(fx);
    mr_jpath_member_bool(&fx->jp, obj, "l[0]", "port", &b);
    expect_one_error(fx, "l[0].port: expected a boolean");

    assert_true(mr_jpath_member_string(&fx->jp, obj, "l[0]", "name", true, true, &s));
    assert_string_equal(s, "x");
    assert_true(mr_jpath_member_string(&fx->jp, obj, "l[0]", "missing", false, true, &s));
    assert_string_equal(s, "x");
    expect_no_problem(fx);
    assert_false(mr_jpath_member_string(&fx->jp, obj, "l[0]", "missing", true, true, &s));
    expect_one_error(fx, "l[0].missing: required");
    assert_false(mr_jpath_member_string(&fx->jp, obj, "l[0]", "empty", false, true, &s));
    expect_one_error(fx, "l[0].empty: expected a non-empty string");
    assert_string_equal(s, "x");
}

/* ---- arrays ---- */

static void test_member_array_refused(void **state)
{
    static const struct {
        const char *json;
        const char *error;
    } cases[] = {
        {"{\"a\": {}}", "r[1].a: expected an array"},
        {"{\"a\": \"x\"}", "r[1].a: expected an array"},
        {"{\"a\": []}", "r[1].a: expected a non-empty array"},
        {"{\"b\": []}", "r[1].a: required"},
        {"{\"a\": null}", "r[1].a: required"},
    };
    struct fixture *fx = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mr_jpath_iter it;

        assert_int_equal(mr_jpath_member_array(&fx->jp, parse(fx, cases[i].json), "r[1]", "a", &it),
                         0);
        /* A refused array yields nothing and says nothing more. */
        assert_false(mr_jpath_next_object(&fx->jp, &it));
        assert_false(mr_jpath_next(&it));
        expect_one_error(fx, cases[i].error);
    }
}

static void test_iter_array_empty(void **state)
{
    struct fixture *fx = *state;
    struct mr_jpath_iter it;

    /* An empty array is fine when the caller allows it... */
    assert_int_equal(mr_jpath_iter_array(&fx->jp, parse(fx, "[]"), "trusted_proxies", false, &it),
                     0);
    assert_false(mr_jpath_next(&it));
    expect_no_problem(fx);
    /* ...refused when not, and a non-array is refused either way. */
    assert_int_equal(mr_jpath_iter_array(&fx->jp, parse(fx, "[]"), "x", true, &it), 0);
    expect_one_error(fx, "x: expected a non-empty array");
    assert_int_equal(mr_jpath_iter_array(&fx->jp, parse(fx, "{}"), "x", false, &it), 0);
    assert_false(mr_jpath_next(&it));
    expect_one_error(fx, "x: expected an array");
}

static void test_next_object_skips_and_reports(void **state)
{
    struct fixture *fx = *state;
    json_t *obj = parse(fx, "{\"clusters\": [{\"n\": 0}, 1, {\"n\": 2}, [], null, \"s\"]}");
    json_t *arr = json_object_get(obj, "clusters");
    struct mr_jpath_iter it;

    assert_int_equal(mr_jpath_member_array(&fx->jp, obj, "regions[0]", "clusters", &it), 6);
    assert_string_equal(it.array_path, "regions[0].clusters");
    assert_true(mr_jpath_next_object(&fx->jp, &it));
    assert_int_equal(it.i, 0);
    assert_ptr_equal(it.item, json_array_get(arr, 0));
    assert_string_equal(it.path, "regions[0].clusters[0]");
    expect_no_problem(fx);
    assert_true(mr_jpath_next_object(&fx->jp, &it));
    assert_int_equal(it.i, 2);
    assert_ptr_equal(it.item, json_array_get(arr, 2));
    assert_string_equal(it.path, "regions[0].clusters[2]");
    expect_one_error(fx, "regions[0].clusters[1]: expected an object");
    /* Each element passed over is reported, in order, the walk then ends. */
    assert_false(mr_jpath_next_object(&fx->jp, &it));
    assert_int_equal(fx->errs.n_errors, 3);
    assert_string_equal(fx->errs.errors[0], "regions[0].clusters[3]: expected an object");
    assert_string_equal(fx->errs.errors[1], "regions[0].clusters[4]: expected an object");
    assert_string_equal(fx->errs.errors[2], "regions[0].clusters[5]: expected an object");
    assert_false(mr_jpath_next_object(&fx->jp, &it));
    assert_int_equal(fx->errs.n_errors, 3);
}

static void test_next_yields_every_element(void **state)
{
    struct fixture *fx = *state;
    struct mr_jpath_iter it;
    size_t seen = 0;

    assert_int_equal(mr_jpath_iter_array(&fx->jp, parse(fx, "[\"a\", 1, null, {}]"),
                                         "geoip.country", true, &it),
                     4);
    while (mr_jpath_next(&it)) {
        char want[64];

        assert_int_equal(it.i, seen);
        snprintf(want, sizeof(want), "geoip.country[%zu]", seen);
        assert_string_equal(it.path, want);
        seen++;
    }
    assert_int_equal(seen, 4);
    expect_no_problem(fx);
}

/* Two iterators, one inside the other, each with its own paths. */
static void test_nested_arrays(void **state)
{
    struct fixture *fx = *state;
    json_t *root = parse(fx, "{\"regions\": [{\"clusters\": [{}, {}]}, 7,"
                             " {\"clusters\": [3, {}]}]}");
    struct mr_jpath_iter it, cit;
    char seen[256] = "";

    assert_int_equal(mr_jpath_member_array(&fx->jp, root, "", "regions", &it), 3);
    while (mr_jpath_next_object(&fx->jp, &it)) {
        if (mr_jpath_member_array(&fx->jp, it.item, it.path, "clusters", &cit) == 0)
            continue;
        while (mr_jpath_next_object(&fx->jp, &cit)) {
            strcat(seen, cit.path);
            strcat(seen, " ");
        }
    }
    assert_string_equal(seen, "regions[0].clusters[0] regions[0].clusters[1] "
                              "regions[2].clusters[1] ");
    assert_int_equal(fx->errs.n_errors, 2);
    assert_string_equal(fx->errs.errors[0], "regions[1]: expected an object");
    assert_string_equal(fx->errs.errors[1], "regions[2].clusters[0]: expected an object");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_paths_are_cut_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys_warn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_and_every_problem_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_string, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_bool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_int, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_array_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iter_array_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_object_skips_and_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_yields_every_element, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_arrays, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
